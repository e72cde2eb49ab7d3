//! What a search leaves in its directory: `trials.jsonl` (appended and synced as each trial
//! ends, so an interrupted search keeps what it did), `best.toml` and `report.json`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::Config;
use crate::pipeline::PipelineError;
use crate::pipeline::run_dir::io_error;
use crate::store::atomic::write_atomic;

/// `trials.jsonl`: one JSON object per trial, durable once written.
pub struct TrialLog {
    path: PathBuf,
    file: File,
}

impl TrialLog {
    /// Creates (truncates) `dir/trials.jsonl`, creating `dir` if needed.
    pub fn create(dir: &Path) -> Result<Self, PipelineError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let path = dir.join("trials.jsonl");
        let file = File::create(&path).map_err(io_error(&path))?;
        Ok(Self { path, file })
    }

    /// Appends one line and syncs it to disk.
    pub fn append(&mut self, line: &Value) -> Result<(), PipelineError> {
        writeln!(self.file, "{line}")
            .and_then(|()| self.file.sync_data())
            .map_err(io_error(&self.path))
    }
}

/// Writes `dir/report.json` atomically.
pub fn write_report(dir: &Path, report: &Value) -> Result<(), PipelineError> {
    let path = dir.join("report.json");
    let mut bytes = serde_json::to_vec_pretty(report).map_err(|e| PipelineError::Io {
        path: path.clone(),
        source: e.into(),
    })?;
    bytes.push(b'\n');
    write_atomic(&path, &bytes).map_err(io_error(&path))
}

/// Writes `dir/best.toml` atomically: `header` as comment lines, then the whole config (every
/// key, defaults included), which `irgan train --config` reads as is.
pub fn write_best(dir: &Path, header: &[String], cfg: &Config) -> Result<PathBuf, PipelineError> {
    let path = dir.join("best.toml");
    let body = toml::to_string(cfg).map_err(|e| PipelineError::Io {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    let mut text: String = header
        .iter()
        .map(|l| {
            if l.is_empty() {
                "#\n".to_string()
            } else {
                format!("# {l}\n")
            }
        })
        .collect();
    text.push('\n');
    text.push_str(&body);
    write_atomic(&path, text.as_bytes()).map_err(io_error(&path))?;
    Ok(path)
}

/// The UTC calendar date of a Unix time in seconds, `YYYY-MM-DD`.
pub fn utc_date(unix_s: u64) -> String {
    // Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
    let z = (unix_s / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(1_798_675_200), "2026-12-31");
        assert_eq!(utc_date(1_798_761_599), "2026-12-31");
    }

    #[test]
    fn best_toml_loads_back_with_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        cfg.generator.lr = 0.0123;
        cfg.irgan.epochs = 2;
        let path = write_best(dir.path(), &["tuned".into(), String::new()], &cfg).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# tuned\n#\n"), "{text}");
        assert!(text.contains("lr = 0.0123\n"), "{text}");
        assert_eq!(Config::load(Some(&path), &[]).unwrap(), cfg);
    }

    #[test]
    fn trial_lines_are_appended() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = TrialLog::create(&dir.path().join("out")).unwrap();
        log.append(&serde_json::json!({"trial": 1})).unwrap();
        log.append(&serde_json::json!({"trial": 2})).unwrap();
        let text = std::fs::read_to_string(dir.path().join("out/trials.jsonl")).unwrap();
        assert_eq!(text, "{\"trial\":1}\n{\"trial\":2}\n");
    }
}
