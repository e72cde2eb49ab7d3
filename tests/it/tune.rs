//! `irgan tune`: a search judged on validation only, whose best config `irgan train` takes as is.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{Data, Run, irgan, read_json, s, write};

/// A tiny synthetic task (`data.train = ""`) with a `[tune]` section over four keys.
const CONFIG: &str = r#"
seed = 3
[data]
train = ""
[data.synthetic]
users = 120
items = 80
per_user = 12
[eval]
every_g_epochs = 1
[generator]
dim = 8
init = "als"
[discriminator]
dim = 8
init = "als"
[pretrain.als]
iterations = 4
[irgan]
epochs = 3
d_epochs = 2
g_epochs = 2

[tune]
eta = 3
[tune.space]
"pretrain.als.alpha" = { log_uniform = [1.0, 50.0] }
"generator.lr" = { log_uniform = [1e-4, 1e-1] }
"irgan.d_temperature" = { uniform = [0.2, 2.0] }
"generator.dim" = { choice = [4, 8] }
"#;

/// `irgan tune --quiet` with `args`.
fn tune(args: &[&str]) -> Run {
    let mut all = vec!["tune", "--quiet"];
    all.extend(args);
    irgan(all)
}

/// The lines of `trials.jsonl`, each checked to be one JSON object with the common fields.
fn trials(out: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(out.join("trials.jsonl")).expect("trials.jsonl");
    text.lines()
        .enumerate()
        .map(|(n, line)| {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("trials.jsonl line {} is not JSON ({e}): {line}", n + 1)
            });
            for key in ["trial", "rung", "settings", "status", "seconds"] {
                assert!(v.get(key).is_some(), "line {} lacks {key}: {line}", n + 1);
            }
            if v["status"] == "ok" {
                let score = v["validation_score"].as_f64().expect("validation_score");
                assert!(score.is_finite(), "{line}");
            }
            v
        })
        .collect()
}

/// Fails when any object key below `v` mentions the test split.
#[track_caller]
fn assert_no_test_key(v: &Value, at: &str) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                assert!(!k.to_lowercase().contains("test"), "{at}.{k} mentions test");
                assert_no_test_key(x, &format!("{at}.{k}"));
            }
        }
        Value::Array(xs) => xs.iter().for_each(|x| assert_no_test_key(x, at)),
        _ => {}
    }
}

#[test]
fn best_toml_trains_as_is_and_reproduces_the_validation_score() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write(dir.path(), "tiny.toml", CONFIG);
    let out = dir.path().join("tuned");
    let run = tune(&["--config", &s(&config), "--budget", "2s", "--out", &s(&out)]).ok();
    assert!(
        run.stderr.contains("val P@5") && run.stderr.contains("* "),
        "{run:?}"
    );
    assert!(run.stdout.contains("best: trial"), "{run:?}");
    for text in [&run.stdout, &run.stderr] {
        assert!(!text.to_lowercase().contains("test"), "{run:?}");
    }

    let lines = trials(&out);
    assert!(
        lines.iter().any(|t| t["rung"] == 1),
        "no trial was promoted"
    );
    // Trial 1 is the config as it is, on the smallest rung.
    assert_eq!(lines[0]["baseline"], true, "{}", lines[0]);
    assert_eq!(
        lines[0]["settings"],
        serde_json::json!({ "irgan.epochs": 1 })
    );
    let report = read_json(&out.join("report.json"));
    assert_no_test_key(&report, "report");
    for (n, t) in lines.iter().enumerate() {
        assert_no_test_key(t, &format!("trials.jsonl:{}", n + 1));
    }
    assert_eq!(report["trials"]["run"], lines.len());
    assert_eq!(report["schedule"]["rungs"], serde_json::json!([1, 3]));
    let best = report["best"]["validation_score"]
        .as_f64()
        .expect("best score");
    let top = lines.iter().filter_map(|t| t["validation_score"].as_f64());
    assert_eq!(top.fold(f64::MIN, f64::max), best);

    let toml = std::fs::read_to_string(out.join("best.toml")).expect("best.toml");
    assert!(toml.starts_with("# Found by `irgan tune`"), "{toml}");
    assert!(!toml.lines().any(|l| l.starts_with("[tune")), "{toml}");
    let trained = dir.path().join("trained");
    irgan([
        "train",
        "--quiet",
        "--config",
        &s(&out.join("best.toml")),
        "--out",
        &s(&trained),
    ])
    .ok();
    let r = read_json(&trained.join("report.json"));
    assert_eq!(
        r["validation"]["selected"]["generator"]["P@5"].as_f64(),
        Some(best),
        "{r}"
    );

    // The config with its [tune] section trains too.
    let plain = dir.path().join("plain");
    irgan([
        "train",
        "--quiet",
        "--config",
        &s(&config),
        "--out",
        &s(&plain),
    ])
    .ok();
}

/// `irgan tune` on files written by `irgan synth`, with `--set`s and a test file `test`.
fn tune_files(data: &Data, test: &Path, out: &Path) -> Run {
    let sets = [
        format!("data.train={}", s(&data.train)),
        format!("data.test={}", s(test)),
        "irgan.epochs=3".into(),
        "eval.every_g_epochs=1".into(),
        "tune.max_trials=4".into(),
    ];
    let mut args = vec![
        "--budget".to_string(),
        "1m".into(),
        "--seed".into(),
        "5".into(),
    ];
    args.extend(["--out".into(), s(out)]);
    for kv in &sets {
        args.extend(["--set".into(), kv.clone()]);
    }
    tune(&args.iter().map(String::as_str).collect::<Vec<_>>()).ok()
}

/// A trial's line without its timings.
fn untimed(mut t: Value) -> Value {
    for k in ["seconds", "ended_at_s"] {
        t.as_object_mut().expect("object").remove(k);
    }
    t
}

#[test]
fn trials_are_reproducible_and_the_test_file_is_never_opened() {
    let data = Data::synth();
    let missing: PathBuf = data.dir.path().join("no-such-test.txt");
    let unreadable: PathBuf = data.dir.path().to_path_buf(); // a directory
    let a = data.dir.path().join("a");
    let b = data.dir.path().join("b");
    tune_files(&data, &missing, &a);
    tune_files(&data, &unreadable, &b);
    let (ta, tb) = (trials(&a), trials(&b));
    assert!(ta.len() >= 4, "{ta:?}");
    let untimed = |ts: Vec<Value>| ts.into_iter().map(untimed).collect::<Vec<_>>();
    assert_eq!(untimed(ta), untimed(tb));
    let report = read_json(&a.join("report.json"));
    assert_eq!(report["default_space"], true);
    assert_eq!(report["trials"]["new"], 4);
}

#[test]
fn bad_spaces_and_budgets_are_refused_before_any_trial() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let with_space = |name: &str, entry: &str| {
        let text = CONFIG.split("[tune.space]").next().unwrap_or_default();
        write(dir.path(), name, format!("{text}[tune.space]\n{entry}\n"))
    };
    let cases = [
        (
            with_space("typo.toml", "\"generator.lrr\" = { uniform = [0.1, 0.2] }"),
            "10s",
            "generator.lrr",
        ),
        (
            with_space("range.toml", "\"irgan.mixture\" = { uniform = [0.5, 1.5] }"),
            "10s",
            "irgan.mixture",
        ),
        (
            with_space("kind.toml", "\"generator.lr\" = { loguniform = [1, 2] }"),
            "10s",
            "loguniform",
        ),
        (
            with_space("ok.toml", "\"generator.lr\" = { uniform = [0.1, 0.2] }"),
            "10",
            "90s, 10m",
        ),
    ];
    for (config, budget, needle) in cases {
        tune(&[
            "--config",
            &s(&config),
            "--budget",
            budget,
            "--out",
            &s(&out),
        ])
        .fails()
        .stderr_has(&[needle]);
        assert!(!out.exists(), "{} created --out", config.display());
    }
    let search = write(dir.path(), "search.toml", "task = \"search\"\n");
    tune(&[
        "--config",
        &s(&search),
        "--budget",
        "10s",
        "--out",
        &s(&out),
    ])
    .fails()
    .stderr_has(&["recommendation"]);
}

#[test]
fn a_trial_that_would_overrun_the_budget_is_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write(dir.path(), "slow.toml", CONFIG);
    let out = dir.path().join("out");
    // One D phase of this length takes far longer than the budget.
    tune(&[
        "--config",
        &s(&config),
        "--budget",
        "1s",
        "--out",
        &s(&out),
        "--set",
        "irgan.d_epochs=10000000",
    ])
    .fails()
    .stderr_has(&["no trial finished within the budget of 1s"]);
    let lines = trials(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["status"], "stopped");
    let report = read_json(&out.join("report.json"));
    assert_eq!(report["trials"]["stopped"], 1);
    assert!(!out.join("best.toml").exists());
}
