//! A tiny HTTP/1.1 client over `std::net::TcpStream`, and a guard that runs `irgan serve` as a
//! child process (REST and gRPC on free ports) and kills it when dropped (also when a test
//! panics).

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::free_ports;

/// One response.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked), lossily decoded.
    pub body: String,
}

impl Response {
    /// The first header called `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {self:?}"))
    }
}

/// `GET path` on 127.0.0.1:`port`.
pub fn get(port: u16, path: &str) -> io::Result<Response> {
    request(port, "GET", path, None)
}

/// `POST path` with a JSON body on 127.0.0.1:`port`.
pub fn post(port: u16, path: &str, body: &str) -> io::Result<Response> {
    request(port, "POST", path, Some(body))
}

/// One request on a fresh connection (`Connection: close`), read to the end.
pub fn request(port: u16, method: &str, path: &str, body: Option<&str>) -> io::Result<Response> {
    request_with(port, method, path, body, &[])
}

/// Like [`request`], with extra `headers` (e.g. the API key).
pub fn request_with(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> io::Result<Response> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.set_write_timeout(Some(Duration::from_secs(20)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body.unwrap_or(""));
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse(&raw)
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn parse(raw: &[u8]) -> io::Result<Response> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid(format!("no header end in {} bytes", raw.len())))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !version.starts_with("HTTP/1.") {
        return Err(invalid(format!("bad status line {status_line:?}")));
    }
    let status = code
        .parse()
        .map_err(|_| invalid(format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body)?;
    } else if let Some((_, len)) = headers.iter().find(|(k, _)| k == "content-length") {
        let len: usize = len.parse().map_err(|_| invalid("bad content-length"))?;
        if body.len() < len {
            return Err(invalid(format!(
                "body cut short: {} of {len} bytes",
                body.len()
            )));
        }
        body.truncate(len);
    }
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut b: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| invalid("truncated chunk size"))?;
        let size_text = String::from_utf8_lossy(&b[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| invalid(format!("bad chunk size {size_text:?}")))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err(invalid("truncated chunk"));
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// Settings that keep the real process quick on a small machine.
pub const QUICK: &[&str] = &[
    "training.generator.dim=8",
    "training.discriminator.dim=8",
    "training.threads=1",
];

/// `irgan serve --demo` as a child process on free ports (REST and gRPC). Killed (SIGKILL) on
/// drop unless it has already exited.
pub struct Server {
    child: Option<Child>,
    /// Its REST port on 127.0.0.1.
    pub port: u16,
    /// Its gRPC port on 127.0.0.1 (unused when `sets` turn gRPC off).
    pub grpc_port: u16,
    log: PathBuf,
}

impl Server {
    /// Starts the server on `data_dir` and waits (at most 20 s) until `/readyz` answers 200.
    /// `sets` come after the ports, so they can override them.
    pub fn start(data_dir: &Path, sets: &[&str]) -> Self {
        Self::start_on("127.0.0.1", data_dir, sets)
    }

    /// Like [`Server::start`], with both listeners on `host` (e.g. `0.0.0.0`; the tests still
    /// connect through 127.0.0.1).
    pub fn start_on(host: &str, data_dir: &Path, sets: &[&str]) -> Self {
        let [port, grpc_port] = free_ports();
        std::fs::create_dir_all(data_dir).expect("mkdir");
        let log = data_dir.with_extension(format!("{port}.log"));
        let out = File::create(&log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_irgan"));
        cmd.arg("serve")
            .arg("--config")
            .arg(super::DEFAULT_TOML)
            .arg("--demo")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--set")
            .arg(format!("server.bind={host}:{port}"))
            .arg("--set")
            .arg(format!("server.grpc_bind={host}:{grpc_port}"));
        for s in QUICK.iter().chain(sets) {
            cmd.arg("--set").arg(s);
        }
        let child = cmd
            .env_remove("RUST_BACKTRACE")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup log"))
            .stderr(out)
            .spawn()
            .expect("spawn irgan serve");
        let mut server = Self {
            child: Some(child),
            port,
            grpc_port,
            log,
        };
        server.wait_ready(Duration::from_secs(20));
        server
    }

    fn wait_ready(&mut self, limit: Duration) {
        let started = Instant::now();
        loop {
            if let Ok(r) = get(self.port, "/readyz")
                && r.status == 200
            {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("irgan serve exited early ({status}):\n{}", self.log_text());
            }
            assert!(
                started.elapsed() < limit,
                "irgan serve not ready after {limit:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// What the server has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` (e.g. `TERM`, `KILL`) with `kill(1)` and waits (at most 30 s) for the
    /// exit.
    pub fn signal_and_wait(&mut self, signal: &str) -> ExitStatus {
        let pid = self.pid().to_string();
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(&pid)
            .status()
            .expect("run kill");
        assert!(ok.success(), "kill -{signal} {pid} failed");
        let mut child = self.child.take().expect("running");
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "irgan serve did not exit within 30 s of SIG{signal}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
