//! The live view of a search on stderr: a bar over the budget and one line per finished trial,
//! the best so far marked with `*` (and bold on a terminal).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::pipeline::tune::space::overrides;
use crate::pipeline::tune::trial::{Outcome, Trial};

/// The live table.
pub struct LiveTable {
    bar: ProgressBar,
    bold: bool,
    metric: String,
}

impl LiveTable {
    /// A table of `metric`, with a bar over `budget` unless `progress` is off.
    pub fn new(progress: bool, budget: Duration, metric: &str) -> Self {
        let bar = if progress {
            let bar = ProgressBar::new(budget.as_millis() as u64);
            let style = ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {percent:>3}% of the budget  {msg}",
            )
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        } else {
            ProgressBar::hidden()
        };
        Self {
            bar,
            bold: std::io::stderr().is_terminal(),
            metric: metric.to_string(),
        }
    }

    /// Prints a line above the bar (or plainly when there is none).
    pub fn say(&self, line: &str) {
        self.bar.suspend(|| eprintln!("{line}"));
    }

    /// The column titles.
    pub fn header(&self) {
        self.say(&format!(
            "  {:>5} {:>4} {:>10} {:>7}  settings",
            "trial",
            "rung",
            format!("val {}", self.metric),
            "secs"
        ));
    }

    /// Moves the bar to `elapsed` and shows what runs.
    pub fn tick(&self, elapsed: Duration, status: &str) {
        self.bar.set_position(elapsed.as_millis() as u64);
        self.bar.set_message(status.to_string());
    }

    /// One finished trial; `best` marks the best so far.
    pub fn trial(&self, t: &Trial, best: bool) {
        let score = match &t.outcome {
            Outcome::Finished(v) => format!("{:.4}", v.score),
            Outcome::Failed(_) => "failed".into(),
            Outcome::Stopped => "stopped".into(),
        };
        let mut line = format!(
            "{} {:>5} {:>4} {:>10} {:>7.1}  {}",
            if best { '*' } else { ' ' },
            t.id,
            t.rung,
            score,
            t.seconds,
            overrides(&t.settings).join(" ")
        );
        if t.baseline {
            line.push_str(" (the config as it is)");
        }
        if let Outcome::Failed(e) = &t.outcome {
            line.push_str(&format!("  ({e})"));
        }
        if best && self.bold {
            line = format!("\x1b[1m{line}\x1b[0m");
        }
        self.say(&line);
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
