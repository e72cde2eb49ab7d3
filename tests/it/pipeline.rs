//! The whole workflow: `synth` → `train` → `eval`, and what each step writes.

use std::path::PathBuf;

use serde_json::Value;

use crate::common::{
    Data, Factors, Run, TINY, assert_all_finite, eval, irgan, read_json, s, train,
};

/// The outputs of a tiny training run on synthetic files.
fn trained() -> (Data, PathBuf) {
    let data = Data::synth();
    let out = data.train("run", &[]);
    (data, out)
}

#[test]
fn train_writes_snapshot_report_log_and_curve() {
    let (_data, out) = trained();

    let manifest = read_json(&out.join("snapshot/manifest.json"));
    assert_eq!(manifest["format"], "irgan-snapshot", "{manifest}");
    assert!(out.join("snapshot/tensors.safetensors").is_file());

    let report = read_json(&out.join("report.json"));
    for key in ["validation", "test", "selection", "timings_s"] {
        assert!(report.get(key).is_some(), "report.json lacks {key:?}");
    }
    assert_all_finite(&report["validation"], "validation");
    assert_all_finite(&report["test"], "test");
    assert_all_finite(&report["timings_s"], "timings_s");
    for split in ["validation", "test"] {
        for stage in ["init", "selected"] {
            for model in ["generator", "discriminator"] {
                let m = &report[split][stage][model];
                for metric in ["P@5", "NDCG@5", "MAP", "MRR"] {
                    assert!(
                        m[metric].is_number(),
                        "{split}.{stage}.{model} lacks {metric}"
                    );
                }
            }
        }
    }
    assert!(report["selection"]["model"].is_string(), "{report}");

    let log = std::fs::read_to_string(out.join("log.jsonl")).expect("log.jsonl");
    let lines: Vec<&str> = log.lines().collect();
    // The initial models, then every G-epoch of every outer epoch (eval.every_g_epochs = 1).
    assert_eq!(lines.len(), 1 + 2 * 2, "{log}");
    for (n, line) in lines.iter().enumerate() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log.jsonl line {} is not JSON ({e}): {line}", n + 1));
        assert!(v.get("validation").is_some(), "line {}: {line}", n + 1);
        assert_all_finite(&v["validation"], &format!("log line {}", n + 1));
    }

    let svg = std::fs::read_to_string(out.join("curve.svg")).expect("curve.svg");
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
    assert!(svg.trim_end().ends_with("</svg>"));
}

/// Checks one `eval --json` output: one JSON object with finite metrics and a positive user count.
fn check_metrics(run: &Run) -> Value {
    assert_eq!(run.stdout.trim().lines().count(), 1, "{run:?}");
    let m = run.json();
    assert!(m.is_object(), "{run:?}");
    for key in ["P@5", "NDCG@5", "MAP", "MRR", "users"] {
        assert!(m.get(key).is_some(), "no {key:?}: {run:?}");
    }
    assert_all_finite(&m, "eval");
    assert!(m["users"].as_f64().unwrap_or(0.0) >= 1.0, "{run:?}");
    m
}

#[test]
fn eval_snapshot_json_under_both_protocols() {
    let (data, out) = trained();
    let snap = s(&out.join("snapshot"));
    let model = ["--snapshot", snap.as_str()];
    let irgan = check_metrics(&eval(model, &data.train, &data.test, &["--json"]).ok());
    let explicit = eval(
        model,
        &data.train,
        &data.test,
        &["--json", "--protocol", "irgan"],
    )
    .ok();
    assert_eq!(
        check_metrics(&explicit),
        irgan,
        "irgan is the default protocol"
    );
    let standard = eval(
        model,
        &data.train,
        &data.test,
        &["--json", "--protocol", "standard"],
    )
    .ok();
    check_metrics(&standard);
    let d = eval(
        model,
        &data.train,
        &data.test,
        &["--json", "--model", "discriminator"],
    )
    .ok();
    check_metrics(&d);
}

#[test]
fn eval_table_output() {
    let (data, out) = trained();
    let snap = s(&out.join("snapshot"));
    let run = eval(["--snapshot", &snap], &data.train, &data.test, &[]).ok();
    for metric in ["P@5", "NDCG@5", "MAP", "MRR"] {
        assert!(
            run.stdout.lines().any(|l| l.starts_with(metric)),
            "no {metric} row: {run:?}"
        );
    }
}

#[test]
fn invalid_protocol_lists_the_choices() {
    let fx = Factors::valid();
    eval(
        ["--factors", &s(&fx.factors)],
        &fx.train,
        &fx.test,
        &["--json", "--protocol", "foo"],
    )
    .fails()
    .stderr_has(&["foo", "irgan", "standard"]);
}

#[test]
fn train_on_in_memory_synthetic_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("run");
    train(
        &out,
        &["data.synthetic.users=60", "data.synthetic.items=40"],
    )
    .ok();
    let report = read_json(&out.join("report.json"));
    assert_eq!(report["data"]["users"], 60, "{report}");
    assert_all_finite(&report["validation"], "validation");
    assert_all_finite(&report["test"], "test");
    assert!(out.join("snapshot/manifest.json").is_file());
}

/// `--save-start` writes the pretrained pair; a run started from it with `init = "factors"`
/// begins exactly where the first one began (same validation and test metrics at epoch 0) and
/// plays the same game.
#[test]
fn a_saved_start_starts_the_next_run_where_the_first_began() {
    let data = Data::synth();
    let first = data.dir.path().join("first");
    let mut args: Vec<String> = ["train", "--quiet", "--save-start", "--out"]
        .map(String::from)
        .into();
    args.push(s(&first));
    let sets = data.sets();
    for kv in TINY.iter().copied().chain(sets.iter().map(String::as_str)) {
        args.extend(["--set".into(), kv.to_owned()]);
    }
    irgan(&args).ok();
    for role in ["generator", "discriminator"] {
        let dir = first.join("start").join(role);
        for file in [
            "user_factors.tsv",
            "item_factors.tsv",
            "item_bias.tsv",
            "items.txt",
        ] {
            assert!(dir.join(file).is_file(), "no {file} in {}", dir.display());
        }
    }
    let g = format!("generator.factors={}", s(&first.join("start/generator")));
    let d = format!(
        "discriminator.factors={}",
        s(&first.join("start/discriminator"))
    );
    let init = [
        "generator.init=factors",
        g.as_str(),
        "discriminator.init=factors",
        d.as_str(),
    ];
    let second = data.train("second", &init);
    let (a, b) = (
        read_json(&first.join("report.json")),
        read_json(&second.join("report.json")),
    );
    for split in ["validation", "test"] {
        assert_eq!(a[split]["init"], b[split]["init"], "{split} at the start");
    }
    assert_eq!(a["test"]["selected"], b["test"]["selected"]);

    // Another seed carves another validation split, which would hold positives the start was
    // trained on: refused until the split is the start's.
    let out = data.dir.path().join("third");
    let sets = data.sets();
    let mut kv: Vec<&str> = sets.iter().map(String::as_str).collect();
    kv.extend(init);
    kv.push("seed=43");
    let refused = train(&out, &kv).fails();
    assert!(
        refused.stderr.contains("data.split_seed = 42"),
        "{refused:?}"
    );
    kv.push("data.split_seed=42");
    train(&out, &kv).ok();

    let search = irgan(["train", "--quiet", "--save-start", "--set", "task=search"]);
    assert_ne!(search.code, Some(0), "{search:?}");
    assert!(search.stderr.contains("--save-start"), "{search:?}");
}

/// The selection gate: at a level no sign-flip test can reach, the start is served whatever the
/// game's best validation point, and the report and the summary say why; with the gate off the
/// report has no verdict.
#[test]
fn a_gate_no_gain_can_pass_serves_the_start() {
    let data = Data::synth();
    let gated = data.dir.path().join("gated");
    let sets = data.sets();
    let mut kv: Vec<&str> = sets.iter().map(String::as_str).collect();
    kv.push("eval.gate_alpha=0.0001");
    let run = train(&gated, &kv).ok();
    assert!(run.stdout.contains("gate: p = "), "{run:?}");
    let report = read_json(&gated.join("report.json"));
    let gate = &report["selection"]["gate"];
    assert_eq!(gate["passed"], false, "{report}");
    assert!(gate["p_value"].as_f64().unwrap() >= 0.0005, "{gate}");
    assert_eq!(report["selection"]["epoch"], 0, "{report}");
    assert_eq!(report["test"]["selected"], report["test"]["init"]);

    let open = data.train("open", &[]);
    assert!(read_json(&open.join("report.json"))["selection"]["gate"].is_null());
}
