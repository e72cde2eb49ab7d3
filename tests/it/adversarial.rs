//! The game itself: on synthetic latent-cluster data, adversarial training lifts a randomly
//! initialised G well above its start, and `eval.refit` replays the selection on all data.

use tempfile::TempDir;

use crate::common::{read_json, train};

/// G starts random (its ranking is noise); D's rewards alone must teach it the clusters.
const GAME: &[&str] = &[
    "irgan.epochs=10",
    "irgan.d_epochs=10",
    "irgan.g_epochs=5",
    "eval.every_g_epochs=5",
    "generator.dim=8",
    "discriminator.dim=8",
    "generator.init_scale=0.1",
    "discriminator.init_scale=0.1",
    "generator.optimizer=adam",
    "generator.lr=0.01",
    "irgan.baseline=running_mean",
    "discriminator.optimizer=adam",
    "discriminator.lr=0.02",
];

#[test]
fn adversarial_training_lifts_g_above_its_init() {
    let dir = TempDir::new().unwrap();
    train(dir.path(), GAME).ok();
    let report = read_json(&dir.path().join("report.json"));
    let init = report["validation"]["init"]["generator"]["P@5"]
        .as_f64()
        .unwrap();
    let selected = report["validation"]["selected"]["generator"]["P@5"]
        .as_f64()
        .unwrap();
    assert!(
        report["selection"]["g_epochs"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert!(
        selected > 3.0 * init && selected > 0.03,
        "G: {init} -> {selected}"
    );
    let test_init = report["test"]["init"]["generator"]["P@5"].as_f64().unwrap();
    let test_selected = report["test"]["selected"]["generator"]["P@5"]
        .as_f64()
        .unwrap();
    assert!(
        test_selected > 1.5 * test_init,
        "test G: {test_init} -> {test_selected}"
    );
}

#[test]
fn refit_replays_the_selected_schedule_on_all_training_data() {
    let (a, b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    train(a.path(), GAME).ok();
    let mut with_refit = GAME.to_vec();
    with_refit.push("eval.refit=true");
    train(b.path(), &with_refit).ok();
    let (ra, rb) = (
        read_json(&a.path().join("report.json")),
        read_json(&b.path().join("report.json")),
    );
    // Selection is made on the same validation run; only the final models differ.
    assert_eq!(ra["selection"]["g_epochs"], rb["selection"]["g_epochs"]);
    assert_eq!(ra["validation"], rb["validation"]);
    assert_eq!(rb["selection"]["refit_on_all_training_data"], true);
    assert_ne!(ra["test"]["selected"], rb["test"]["selected"]);
    let a_bytes = std::fs::read(a.path().join("snapshot/tensors.safetensors")).unwrap();
    let b_bytes = std::fs::read(b.path().join("snapshot/tensors.safetensors")).unwrap();
    assert_ne!(a_bytes, b_bytes);
}
