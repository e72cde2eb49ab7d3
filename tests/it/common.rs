//! Shared helpers: run the real `irgan` binary, write fixture files, train a tiny model.

use std::ffi::OsStr;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use tempfile::TempDir;

/// A tiny adversarial schedule: every test training run finishes in well under a second.
pub const TINY: &[&str] = &[
    "irgan.epochs=2",
    "irgan.d_epochs=3",
    "irgan.g_epochs=2",
    "eval.every_g_epochs=1",
];

/// What one run of the binary did.
pub struct Run {
    /// The command line, for failure messages.
    pub cmd: String,
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl fmt::Debug for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` exited with {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmd, self.code, self.stdout, self.stderr
        )
    }
}

impl Run {
    /// Asserts success (and no panic) and returns `self`.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, Some(0), "expected success: {self:?}");
        assert!(!self.stderr.contains("panicked"), "panic: {self:?}");
        self
    }

    /// Asserts a clean failure: non-zero exit, not a panic (exit 101 or "panicked"), not a
    /// signal, and an error message on stderr. Returns `self`.
    #[track_caller]
    pub fn fails(self) -> Self {
        assert!(
            matches!(self.code, Some(c) if c != 0 && c != 101),
            "expected a clean failure: {self:?}"
        );
        assert!(!self.stderr.contains("panicked"), "panic: {self:?}");
        assert!(!self.stderr.trim().is_empty(), "no error message: {self:?}");
        self
    }

    /// Asserts that stderr contains every one of `needles` and returns `self`.
    #[track_caller]
    pub fn stderr_has(self, needles: &[&str]) -> Self {
        for n in needles {
            assert!(self.stderr.contains(n), "stderr lacks {n:?}: {self:?}");
        }
        self
    }

    /// Stdout parsed as exactly one JSON value.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}): {self:?}"))
    }
}

/// Runs `irgan` with `args` and collects its output.
pub fn irgan<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let cmd = std::iter::once("irgan".into())
        .chain(args.iter().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<String>>()
        .join(" ");
    let out = Command::new(env!("CARGO_BIN_EXE_irgan"))
        .args(&args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    Run {
        cmd,
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `irgan train --quiet --out OUT` with the tiny schedule, then `--set` for each of `sets`
/// (applied after the schedule, so they can override it).
pub fn train(out: &Path, sets: &[&str]) -> Run {
    let mut args: Vec<String> = vec!["train".into(), "--quiet".into(), "--out".into(), s(out)];
    for kv in TINY.iter().chain(sets) {
        args.push("--set".into());
        args.push((*kv).to_owned());
    }
    irgan(args)
}

/// `irgan eval --json` of `model` (`["--snapshot", DIR]` or `["--factors", DIR]`) plus `extra`.
pub fn eval(model: [&str; 2], train: &Path, test: &Path, extra: &[&str]) -> Run {
    let mut args: Vec<String> = vec!["eval".into(), model[0].into(), model[1].into()];
    args.extend(["--train".into(), s(train), "--test".into(), s(test)]);
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    irgan(args)
}

/// A path as a `String` (test paths are UTF-8).
pub fn s(p: &Path) -> String {
    p.to_str().expect("UTF-8 path").to_owned()
}

/// Writes `contents` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, contents).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    p
}

/// Reads and parses a JSON file.
pub fn read_json(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
}

/// Asserts every leaf under `v` is a finite number (no null, string or bool): metric sections.
#[track_caller]
pub fn assert_all_finite(v: &Value, at: &str) {
    match v {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            assert!(x.is_finite(), "{at} = {n} is not finite");
        }
        Value::Object(m) => {
            assert!(!m.is_empty(), "{at} is an empty object");
            for (k, x) in m {
                assert_all_finite(x, &format!("{at}.{k}"));
            }
        }
        other => panic!("{at} = {other} is not a number (NaN serialises as null)"),
    }
}

/// A small interaction data set written by `irgan synth`, in its own temporary directory.
pub struct Data {
    /// Owns the directory.
    pub dir: TempDir,
    /// `train.txt`.
    pub train: PathBuf,
    /// `test.txt`.
    pub test: PathBuf,
}

impl Data {
    /// `irgan synth` with small sizes.
    pub fn synth() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().join("data");
        irgan([
            "synth",
            "--out",
            &s(&d),
            "--users",
            "120",
            "--items",
            "80",
            "--per-user",
            "12",
        ])
        .ok();
        let (train, test) = (d.join("train.txt"), d.join("test.txt"));
        assert!(train.is_file() && test.is_file(), "synth wrote no files");
        Self { dir, train, test }
    }

    /// `--set` overrides pointing the trainer at these files.
    pub fn sets(&self) -> [String; 2] {
        [
            format!("data.train={}", s(&self.train)),
            format!("data.test={}", s(&self.test)),
        ]
    }

    /// Trains on these files with the tiny schedule plus `extra` overrides into `dir/name`;
    /// returns the output directory.
    pub fn train(&self, name: &str, extra: &[&str]) -> PathBuf {
        let out = self.dir.path().join(name);
        let sets = self.sets();
        let mut all: Vec<&str> = sets.iter().map(String::as_str).collect();
        all.extend(extra);
        train(&out, &all).ok();
        out
    }
}

/// A valid factor directory for 3 users and 4 items (dim 2), sequential ids, plus matching
/// train/test files; write bad variants over its files.
pub struct Factors {
    /// Owns the directory.
    pub dir: TempDir,
    /// The factor directory.
    pub factors: PathBuf,
    /// Training interactions over ids 0..3 × 0..4.
    pub train: PathBuf,
    /// Test interactions.
    pub test: PathBuf,
}

impl Factors {
    /// Writes the valid fixture.
    pub fn valid() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let factors = dir.path().join("factors");
        std::fs::create_dir(&factors).expect("mkdir");
        write(
            &factors,
            "user_factors.tsv",
            "0.1\t0.2\n0.3\t-0.1\n-0.2\t0.4\n",
        );
        write(
            &factors,
            "item_factors.tsv",
            "0.5\t0.1\n-0.3\t0.2\n0.2\t0.2\n0.0\t-0.4\n",
        );
        write(&factors, "item_bias.tsv", "0.1\n0.0\n-0.1\n0.2\n");
        let train = write(
            dir.path(),
            "train.txt",
            "0 0 5\n0 1 4\n1 2 5\n2 3 5\n2 0 2\n",
        );
        let test = write(dir.path(), "test.txt", "0 2 5\n1 0 5\n2 1 4\n");
        Self {
            dir,
            factors,
            train,
            test,
        }
    }

    /// `irgan eval --factors` over the fixture's train/test files.
    pub fn eval(&self) -> Run {
        eval(
            ["--factors", &s(&self.factors)],
            &self.train,
            &self.test,
            &["--json"],
        )
    }
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `N` distinct ports that were free on 127.0.0.1 a moment ago (held together while chosen, so
/// they cannot coincide).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: [std::net::TcpListener; N] = std::array::from_fn(|_| {
        std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).expect("bind")
    });
    listeners.map(|l| l.local_addr().expect("addr").port())
}

/// A child process killed on drop (also when the test panics).
pub struct Guard(pub std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `irgan serve --demo` with the shipped config, small models, one thread, free REST and
/// gRPC ports and its data and log under `data_dir`, plus `sets` overrides. Returns the
/// process, its REST port and its log file.
pub fn spawn_demo_server(data_dir: &Path, sets: &[&str]) -> (Guard, u16, PathBuf) {
    let [port, grpc_port] = free_ports();
    let log = data_dir.join("serve.log");
    let out = std::fs::File::create(&log).expect("log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_irgan"));
    cmd.args(["serve", "--demo", "--config"])
        .arg(root().join("config/default.toml"))
        .arg("--data-dir")
        .arg(data_dir.join("data"))
        .args(["--set", &format!("server.bind=127.0.0.1:{port}")])
        .args(["--set", &format!("server.grpc_bind=127.0.0.1:{grpc_port}")]);
    let small = [
        "training.generator.dim=8",
        "training.discriminator.dim=8",
        "training.threads=1",
    ];
    for kv in small.iter().chain(sets) {
        cmd.args(["--set", kv]);
    }
    let child = cmd
        .env_remove("IRGAN_SERVER__BIND")
        .env_remove("IRGAN_SERVER__GRPC_BIND")
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .spawn()
        .expect("spawn irgan serve");
    (Guard(child), port, log)
}

/// Runs `promtool args`, feeding `stdin`; its exit code and combined output.
pub fn promtool(args: &[&str], stdin: Option<&str>) -> (Option<i32>, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    {
        let mut pipe = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            pipe.write_all(text.as_bytes()).expect("write to promtool");
        }
    }
    let out = child.wait_with_output().expect("wait for promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// `promtool` is on PATH and runs.
pub fn promtool_available() -> bool {
    Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
