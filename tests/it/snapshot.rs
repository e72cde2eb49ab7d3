//! Damaged snapshots are refused with a clear error, never a panic.

use std::path::{Path, PathBuf};

use crate::common::{Data, Run, eval, s};

/// A trained snapshot and the data to evaluate it on.
fn snapshot() -> (Data, PathBuf) {
    let data = Data::synth();
    let snap = data.train("run", &[]).join("snapshot");
    (data, snap)
}

fn eval_snapshot(data: &Data, snap: &Path) -> Run {
    eval(
        ["--snapshot", &s(snap)],
        &data.train,
        &data.test,
        &["--json"],
    )
}

#[test]
fn flipped_byte_fails_the_checksum() {
    let (data, snap) = snapshot();
    eval_snapshot(&data, &snap).ok();
    let p = snap.join("tensors.safetensors");
    let mut bytes = std::fs::read(&p).expect("read tensors");
    // Past the safetensors header: a parameter value, so only the checksum can notice.
    let at = bytes.len() - 4;
    bytes[at] ^= 0x01;
    std::fs::write(&p, &bytes).expect("write tensors");
    let run = eval_snapshot(&data, &snap)
        .fails()
        .stderr_has(&["tensors.safetensors"]);
    let lower = run.stderr.to_lowercase();
    assert!(
        lower.contains("sha-256") || lower.contains("checksum"),
        "not a checksum error: {run:?}"
    );
}

#[test]
fn truncated_tensors_are_refused() {
    let (data, snap) = snapshot();
    let p = snap.join("tensors.safetensors");
    let bytes = std::fs::read(&p).expect("read tensors");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).expect("write tensors");
    eval_snapshot(&data, &snap)
        .fails()
        .stderr_has(&["tensors.safetensors"]);
}

#[test]
fn missing_manifest_is_not_a_snapshot() {
    let (data, snap) = snapshot();
    std::fs::remove_file(snap.join("manifest.json")).expect("rm manifest");
    eval_snapshot(&data, &snap)
        .fails()
        .stderr_has(&["manifest.json"]);
    let nowhere = snap.join("nowhere");
    eval_snapshot(&data, &nowhere).fails();
}
