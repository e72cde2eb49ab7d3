//! Bad configuration: refused before any work, with a message naming the key.

use crate::common::{Run, irgan, s, train, write};

/// `irgan train` with the tiny schedule and `sets`; the run must fail before creating `--out`.
fn refused(sets: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let run = train(&out, sets).fails();
    assert!(
        !out.exists(),
        "--out was created by a refused config: {run:?}"
    );
    run
}

#[test]
fn unknown_key_is_named() {
    refused(&["irgan.epochz=1"]).stderr_has(&["epochz"]);
    refused(&["generator.dimm=4"]).stderr_has(&["dimm"]);
    refused(&["epochs=1"]).stderr_has(&["epochs"]);
}

#[test]
fn out_of_range_value_names_the_key() {
    for (set, key) in [
        ("irgan.mixture=2", "irgan.mixture"),
        ("irgan.mixture=-0.5", "irgan.mixture"),
        ("data.validation_fraction=1.5", "data.validation_fraction"),
        ("generator.lr=-1", "generator.lr"),
        ("discriminator.dim=0", "discriminator.dim"),
        ("eval.every_g_epochs=0", "eval.every_g_epochs"),
        ("eval.select_metric=\"P@7\"", "eval.select_metric"),
        ("eval.gate_alpha=0", "eval.gate_alpha"),
        ("eval.gate_alpha=1.5", "eval.gate_alpha"),
        ("pretrain.apr.eps=-0.1", "pretrain.apr"),
    ] {
        refused(&[set]).stderr_has(&[key]);
    }
}

#[test]
fn wrongly_typed_value_names_the_key() {
    refused(&["irgan.epochs=abc"]).stderr_has(&["irgan.epochs"]);
    refused(&["eval.protocol=\"sideways\""]).stderr_has(&["sideways"]);
}

#[test]
fn malformed_override() {
    for bad in ["foo", "=3", "irgan..epochs=1", "irgan.=1"] {
        refused(&[bad]).stderr_has(&[bad]);
    }
    // A key below a value that is not a section.
    refused(&["seed.x=1"]).stderr_has(&["seed"]);
}

#[test]
fn bad_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = s(&dir.path().join("out"));
    let file = write(dir.path(), "typo.toml", "[irgan]\nepochz = 1\n");
    irgan(["train", "--config", &s(&file), "--out", &out])
        .fails()
        .stderr_has(&["epochz"]);
    let file = write(dir.path(), "broken.toml", "[irgan\n");
    irgan(["train", "--config", &s(&file), "--out", &out]).fails();
    let missing = dir.path().join("missing.toml");
    irgan(["train", "--config", &s(&missing), "--out", &out])
        .fails()
        .stderr_has(&[&s(&missing)]);
}
