//! The console at `/ui` in a real browser: a demo server, `chromedriver` on a free loopback
//! port and headless Chromium driven over WebDriver (fantoccini). Every page loads without a
//! script error (the pages collect `error`, `unhandledrejection`, `console.error` and CSP
//! violations into `window.__consoleErrors`), "try it" shows a user's lists, and activating an
//! older snapshot through the page changes the live version (checked over REST). Screenshots
//! of each page go to `target/console-screenshots/`.
//!
//! Skips, saying why, only when `chromium` or `chromedriver` is not installed (Debian:
//! `apt-get install chromium chromium-driver`; `.ci/run` installs them).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::common::{Guard, free_ports};
use crate::service::client::{Server, get, request_with};

const KEY: &str = "console-test-key";

/// The first of `names` on `PATH`.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// Starts chromedriver on a free port and waits until it accepts connections (its `/status`
/// would refuse the test client's `Host: x`: chromedriver only answers `localhost` hosts).
fn chromedriver(binary: &Path) -> (Guard, u16) {
    let [port] = free_ports();
    let child = Command::new(binary)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chromedriver");
    let guard = Guard(child);
    let started = Instant::now();
    let addr = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port));
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "chromedriver did not answer on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (guard, port)
}

/// A JSON read of the server.
fn read(server: &Server, path: &str) -> Value {
    let r = get(server.port, path).expect("GET");
    assert_eq!(r.status, 200, "GET {path}: {r:?}");
    r.json()
}

/// A write to the server with the key.
fn write(server: &Server, path: &str) -> Value {
    let bearer = format!("Bearer {KEY}");
    let r = request_with(
        server.port,
        "POST",
        path,
        None,
        &[("authorization", bearer.as_str())],
    )
    .expect("POST");
    assert!(r.status / 100 == 2, "POST {path}: {r:?}");
    r.json()
}

/// Polls `ready` every 100 ms until it holds; panics with `what` after `limit` (a bound
/// against hanging, not a timing assertion).
fn wait_until(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < limit, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The errors the page collected so far.
async fn page_errors(c: &Client) -> Vec<String> {
    let v = c
        .execute(
            "return window.__consoleErrors || ['errors.js did not load'];",
            vec![],
        )
        .await
        .expect("read the page's errors");
    serde_json::from_value(v).expect("a list of strings")
}

/// Waits for `css` on the page (30 s at most).
async fn element(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
}

/// Writes the page's screenshot as `name.png` and checks it has no errors.
async fn settle(c: &Client, dir: &Path, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write the screenshot");
    let errors = page_errors(c).await;
    assert!(errors.is_empty(), "{name}: errors in the page: {errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_works_in_a_real_browser() {
    let (Some(chrome), Some(driver)) = (
        on_path(&["chromium", "chromium-browser", "google-chrome"]),
        on_path(&["chromedriver"]),
    ) else {
        println!(
            "SKIPPED every_page_works_in_a_real_browser: chromium and chromedriver are not \
             installed (apt-get install chromium chromium-driver)"
        );
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let key = format!("server.api_key={KEY}");
    let server = tokio::task::spawn_blocking({
        let dir = tmp.path().join("data");
        move || {
            let sets = [
                key.as_str(),
                "trainer.publish_every_steps=10",
                "trainer.min_entropy=0.0",
                "trainer.min_d_accuracy=0.0",
                "trainer.tolerance=1.0",
                "trainer.publish_only_gains=false",
            ];
            Server::start(&dir, &sets)
        }
    })
    .await
    .expect("start the server");
    // Some history for the charts, then no more automatic publishes: the versions this test
    // sees are the ones it makes.
    wait_until(
        "trainer steps and a gate evaluation",
        Duration::from_secs(180),
        || {
            // Steps are recorded at most four a second; the demo's game may idle within seconds.
            let h = read(&server, "/v1/training/history");
            let idle = read(&server, "/v1/model")["game"]["state"] == "idle";
            let steps = h["steps"].as_array().map_or(0, Vec::len);
            steps >= 1
                && h["gates"].as_array().is_some_and(|g| !g.is_empty())
                && (steps >= 20 || idle)
        },
    );
    write(&server, "/v1/training/pause");
    let (_driver, driver_port) = chromedriver(&driver);

    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chrome,
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1280,800", "--hide-scrollbars"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let c = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("a WebDriver session");
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&shots).expect("mkdir screenshots");
    let base = format!("http://127.0.0.1:{}", server.port);

    // Overview: the live version, the trainer's state and the charts.
    c.goto(&format!("{base}/ui")).await.expect("open /ui");
    element(&c, "#chart-d svg polyline").await;
    element(&c, "#chart-gate svg circle").await;
    let live = read(&server, "/v1/model")["version"]
        .as_u64()
        .expect("version");
    let shown = element(&c, "#live-version")
        .await
        .text()
        .await
        .expect("text");
    assert_eq!(shown, format!("v{live}"));
    let state = element(&c, "#trainer-state")
        .await
        .text()
        .await
        .expect("text");
    assert!(state == "idle" || state == "busy", "{state}");
    settle(&c, &shots, "overview").await;

    // Try it: G's, D's and the blend's lists (and the exploration list) for the first user.
    c.goto(&format!("{base}/ui/try"))
        .await
        .expect("open /ui/try");
    element(&c, "#recs .list:nth-child(4) tbody tr").await;
    let lists = c
        .find_all(Locator::Css("#recs .list"))
        .await
        .expect("lists");
    assert_eq!(lists.len(), 4, "G, D, blend and explore");
    for list in &lists {
        let rows = list.find_all(Locator::Css("tbody tr")).await.expect("rows");
        assert_eq!(rows.len(), 10, "k = 10 items per list");
    }
    let note = element(&c, "#recs-note").await.text().await.expect("text");
    assert!(note.contains("user u"), "{note}");
    element(&c, "#similar tbody tr").await;
    settle(&c, &shots, "try").await;

    // Configuration: in effect, the key redacted.
    c.goto(&format!("{base}/ui/config"))
        .await
        .expect("open /ui/config");
    let config = element(&c, "#config").await.text().await.expect("text");
    assert!(config.contains("api_key = \"<redacted>\""), "{config}");
    assert!(!config.contains(KEY));
    settle(&c, &shots, "config").await;

    // Snapshots: publish one (with the key typed into the page), then roll back to the oldest.
    c.goto(&format!("{base}/ui/snapshots")).await.expect("open");
    element(&c, "#snapshots tr.live").await;
    element(&c, "#api-key")
        .await
        .send_keys(KEY)
        .await
        .expect("type the key");
    element(&c, "#publish")
        .await
        .click()
        .await
        .expect("publish");
    let published = format!("#snapshot-{} .pill.live", live + 1);
    element(&c, &published).await;
    let list = read(&server, "/v1/snapshots");
    let versions: Vec<u64> = list["snapshots"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["version"].as_u64())
        .collect();
    assert!(versions.len() >= 2, "{list}");
    assert_eq!(list["live"], live + 1, "{list}");
    let oldest = *versions.iter().min().expect("a version");
    settle(&c, &shots, "snapshots").await;
    let activate = format!("button.activate[data-version=\"{oldest}\"]");
    element(&c, &activate)
        .await
        .click()
        .await
        .expect("activate");
    element(&c, "#confirm-ok")
        .await
        .click()
        .await
        .expect("confirm");
    element(&c, &format!("#snapshot-{oldest} .pill.live")).await;
    assert_eq!(read(&server, "/v1/model")["version"], oldest);
    let errors = page_errors(&c).await;
    assert!(
        errors.is_empty(),
        "snapshots: errors in the page: {errors:?}"
    );

    c.close().await.expect("end the session");
    drop(server);
}
