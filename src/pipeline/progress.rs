//! Terminal progress of an offline run: an epoch bar and a spinner, hidden with `--quiet`.

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar over `total` epochs (hidden without `progress`).
pub fn bar_for(progress: bool, total: u64) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {pos}/{len} epochs (ETA {eta}) {msg}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// A spinner for a phase without epochs to count (hidden without `progress`).
pub fn spinner(progress: bool, msg: &'static str) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_message(msg);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}
