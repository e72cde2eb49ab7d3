//! A run's output directory: `log.jsonl` (one line per validation point), `report.json`,
//! `curve.svg`, `snapshot/` and, when asked, `start/` (the pretrained pair as factor directories). Every file but the log is written atomically.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::pipeline::PipelineError;
use crate::store::atomic::write_atomic;

/// The output directory of one run.
pub struct RunDir {
    out: PathBuf,
    log: Option<BufWriter<File>>,
}

/// An I/O failure on `path`.
pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> PipelineError + use<> {
    let path = path.to_path_buf();
    move |source| PipelineError::Io { path, source }
}

impl RunDir {
    /// Creates `out` (and its parents) if needed.
    pub fn create(out: &Path) -> Result<Self, PipelineError> {
        std::fs::create_dir_all(out).map_err(io_error(out))?;
        Ok(Self {
            out: out.to_path_buf(),
            log: None,
        })
    }

    /// Where the snapshot goes.
    pub fn snapshot_dir(&self) -> PathBuf {
        self.out.join("snapshot")
    }

    /// Where the pretrained `role` ("generator" or "discriminator") goes as a factor directory.
    pub fn start_dir(&self, role: &str) -> PathBuf {
        self.start_root().join(role)
    }

    /// Where `--save-start` writes the pretrained pair and its split.
    pub fn start_root(&self) -> PathBuf {
        self.out.join("start")
    }

    fn log_path(&self) -> PathBuf {
        self.out.join("log.jsonl")
    }

    /// Starts (truncates) `log.jsonl`.
    pub fn open_log(&mut self) -> Result<(), PipelineError> {
        let path = self.log_path();
        self.log = Some(BufWriter::new(
            File::create(&path).map_err(io_error(&path))?,
        ));
        Ok(())
    }

    /// Appends one line to `log.jsonl` (opening it first if needed).
    pub fn log(&mut self, line: &Value) -> Result<(), PipelineError> {
        if self.log.is_none() {
            self.open_log()?;
        }
        let path = self.log_path();
        match self.log.as_mut() {
            Some(log) => writeln!(log, "{line}").map_err(io_error(&path)),
            None => Ok(()),
        }
    }

    /// Flushes `log.jsonl` to the file.
    pub fn flush_log(&mut self) -> Result<(), PipelineError> {
        let path = self.log_path();
        match self.log.as_mut() {
            Some(log) => log.flush().map_err(io_error(&path)),
            None => Ok(()),
        }
    }

    /// Writes `report.json` (pretty-printed, newline-terminated) and `curve.svg`.
    pub fn write_report(&mut self, report: &Value, curve_svg: &str) -> Result<(), PipelineError> {
        self.flush_log()?;
        let path = self.out.join("report.json");
        let mut bytes = serde_json::to_vec_pretty(report).map_err(|e| PipelineError::Io {
            path: path.clone(),
            source: e.into(),
        })?;
        bytes.push(b'\n');
        write_atomic(&path, &bytes).map_err(io_error(&path))?;
        let path = self.out.join("curve.svg");
        write_atomic(&path, curve_svg.as_bytes()).map_err(io_error(&path))
    }
}

/// Seconds rounded to milliseconds, for the report's timings.
pub fn round_s(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
