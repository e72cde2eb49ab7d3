//! Tests of the recommendation snapshot: round trips, the documented on-disk layout, and every
//! way a damaged or foreign directory is refused.

use std::fs;
use std::path::Path;

use ndarray::{Array1, Array2, ShapeBuilder};
use safetensors::SafeTensors;
use serde_json::{Value, json};

use super::manifest::sha256_hex;
use super::*;

fn model(users: usize, items: usize, dim: usize, seed: f32) -> MfModel {
    let v = |i: usize, j: usize, k: f32| ((i * 31 + j * 7) as f32 * 0.37 + seed * k).sin();
    MfModel {
        user: Array2::from_shape_fn((users, dim), |(i, j)| v(i, j, 1.0)),
        item: Array2::from_shape_fn((items, dim), |(i, j)| v(i, j, 2.0) * 1e-3),
        bias: Array1::from_shape_fn(items, |i| v(i, 0, 3.0) - 0.5),
    }
}

fn ids(prefix: &str, n: usize) -> IdMap {
    IdMap::from_names((0..n).map(|i| format!("{prefix}-{i}")).collect()).unwrap()
}

/// G and D with different dims on purpose.
fn sample(users: usize, items: usize) -> Snapshot {
    Snapshot {
        version: 42,
        created_unix_ms: 1_700_000_000_123,
        generator: model(users, items, 3, 0.5),
        generator_temperature: 0.2,
        discriminator: model(users, items, 5, 1.5),
        users: ids("user", users),
        items: ids("item", items),
        metadata: json!({
            "config": {"lr": 0.001, "epochs": 30, "name": "ml-100k"},
            "metrics": {"p@5": 0.25, "ndcg@10": [0.5, 0.75]},
        }),
    }
}

fn has_manifest(dir: &Path) -> bool {
    dir.join(MANIFEST_FILE).exists()
}

fn edit_manifest(dir: &Path, f: impl FnOnce(&mut Value)) {
    let p = dir.join(MANIFEST_FILE);
    let mut m: Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
    f(&mut m);
    fs::write(&p, serde_json::to_vec(&m).unwrap()).unwrap();
}

#[test]
fn round_trip_is_exact() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("snap"); // created by write
    let s = sample(7, 11);
    s.write(&dir).unwrap();
    let back = Snapshot::read(&dir).unwrap();
    assert_eq!(back, s);
    assert_eq!(back.generator.dim(), 3);
    assert_eq!(back.discriminator.dim(), 5);
    assert_eq!(back.users.names(), s.users.names());
    assert_eq!(back.items.names(), s.items.names());
    assert_eq!(back.metadata, s.metadata);
    assert_eq!(back.version, 42);
    assert_eq!(back.generator_temperature.to_bits(), 0.2f32.to_bits());
    // Bit-exact tensors.
    let bits = |a: &MfModel| a.user.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&back.generator), bits(&s.generator));
    // Only the three files, no temporaries.
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, [IDS_FILE, MANIFEST_FILE, TENSORS_FILE]);
}

#[test]
fn manifest_has_the_documented_fields() {
    let d = tempfile::tempdir().unwrap();
    let s = sample(4, 6);
    s.write(d.path()).unwrap();
    let m: Value =
        serde_json::from_slice(&fs::read(d.path().join(MANIFEST_FILE)).unwrap()).unwrap();
    assert_eq!(m["format"], "irgan-snapshot");
    assert_eq!(m["format_version"], 1);
    assert_eq!(m["version"], 42);
    assert_eq!(m["created_unix_ms"], 1_700_000_000_123u64);
    assert_eq!(
        m["generator"],
        json!({"users": 4, "items": 6, "dim": 3, "temperature": 0.2})
    );
    assert_eq!(
        m["discriminator"],
        json!({"users": 4, "items": 6, "dim": 5})
    );
    assert_eq!(m["metadata"], s.metadata);
    for f in [TENSORS_FILE, IDS_FILE] {
        let bytes = fs::read(d.path().join(f)).unwrap();
        assert_eq!(m["files"][f]["bytes"], bytes.len());
        assert_eq!(m["files"][f]["sha256"], sha256_hex(&bytes));
    }
    let ids: Value = serde_json::from_slice(&fs::read(d.path().join(IDS_FILE)).unwrap()).unwrap();
    assert_eq!(ids["users"][3], "user-3");
    assert_eq!(ids["items"][5], "item-5");
    // Tensors are readable by the reference safetensors parser with the documented names.
    let raw = fs::read(d.path().join(TENSORS_FILE)).unwrap();
    let st = SafeTensors::deserialize(&raw).unwrap();
    let mut names = st.names();
    names.sort();
    assert_eq!(
        names,
        [
            "discriminator.bias",
            "discriminator.item",
            "discriminator.user",
            "generator.bias",
            "generator.item",
            "generator.user"
        ]
    );
    assert_eq!(st.tensor("discriminator.item").unwrap().shape(), [6, 5]);
}

#[test]
fn non_standard_layout_is_written_in_row_major_order() {
    let d = tempfile::tempdir().unwrap();
    let mut s = sample(3, 4);
    let user = s.generator.user.clone();
    let mut fortran = Array2::zeros((3, 3).f());
    fortran.assign(&user);
    s.generator.user = fortran;
    s.write(d.path()).unwrap();
    let back = Snapshot::read(d.path()).unwrap();
    assert_eq!(back.generator.user, user);
    assert!(back.generator.user.is_standard_layout());
}

#[test]
fn empty_catalogue_round_trips() {
    let d = tempfile::tempdir().unwrap();
    let s = sample(0, 0);
    s.write(d.path()).unwrap();
    assert_eq!(Snapshot::read(d.path()).unwrap(), s);
}

#[test]
fn non_finite_parameters_are_refused_and_nothing_is_written() {
    let d = tempfile::tempdir().unwrap();
    let names = [
        "generator.user",
        "generator.item",
        "generator.bias",
        "discriminator.user",
        "discriminator.item",
        "discriminator.bias",
    ];
    for (k, name) in names.iter().enumerate() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut s = sample(3, 4);
            let m = if k < 3 {
                &mut s.generator
            } else {
                &mut s.discriminator
            };
            match k % 3 {
                0 => m.user[[2, 1]] = bad,
                1 => m.item[[3, 0]] = bad,
                _ => m.bias[1] = bad,
            }
            let dir = d.path().join(format!("{name}-{bad}"));
            match s.write(&dir) {
                Err(SnapshotError::NotFinite { tensor }) => assert_eq!(tensor, *name),
                other => panic!("{name}: expected NotFinite, got {other:?}"),
            }
            assert!(!has_manifest(&dir));
            assert!(!dir.exists(), "nothing should be written");
        }
    }
    let mut s = sample(3, 4);
    s.generator_temperature = f32::NAN;
    let err = s.write(&d.path().join("t")).unwrap_err();
    assert!(
        matches!(err, SnapshotError::NotFinite { ref tensor } if tensor == "generator.temperature")
    );
}

#[test]
fn refused_write_leaves_previous_snapshot_intact() {
    let d = tempfile::tempdir().unwrap();
    let good = sample(3, 4);
    good.write(d.path()).unwrap();
    let mut bad = sample(3, 4);
    bad.discriminator.item[[0, 0]] = f32::NAN;
    assert!(bad.write(d.path()).is_err());
    assert_eq!(Snapshot::read(d.path()).unwrap(), good);
}

#[test]
fn non_finite_values_on_disk_are_rejected() {
    // A file written by another tool with a NaN and a consistent manifest.
    let d = tempfile::tempdir().unwrap();
    let mut s = sample(3, 4);
    s.write(d.path()).unwrap();
    s.discriminator.bias[2] = f32::NAN;
    let tensors = s.tensor_bytes().unwrap();
    fs::write(d.path().join(TENSORS_FILE), &tensors).unwrap();
    edit_manifest(d.path(), |m| {
        m["files"][TENSORS_FILE]["sha256"] = json!(sha256_hex(&tensors));
    });
    match Snapshot::read(d.path()) {
        Err(SnapshotError::NotFinite { tensor }) => assert_eq!(tensor, "discriminator.bias"),
        other => panic!("expected NotFinite, got {other:?}"),
    }
}

#[test]
fn flipped_byte_is_a_checksum_error() {
    let d = tempfile::tempdir().unwrap();
    sample(5, 8).write(d.path()).unwrap();
    let p = d.path().join(TENSORS_FILE);
    let mut bytes = fs::read(&p).unwrap();
    let last = bytes.len() - 1; // inside the tensor data
    bytes[last] ^= 0x01;
    fs::write(&p, &bytes).unwrap();
    let err = Snapshot::read(d.path()).unwrap_err();
    match &err {
        SnapshotError::Checksum { file } => assert!(file.ends_with(TENSORS_FILE)),
        other => panic!("expected Checksum, got {other:?}"),
    }
    assert!(err.to_string().contains(TENSORS_FILE));

    // Also in the header and in ids.json.
    sample(5, 8).write(d.path()).unwrap();
    let mut bytes = fs::read(&p).unwrap();
    bytes[20] ^= 0x20;
    fs::write(&p, &bytes).unwrap();
    assert!(matches!(
        Snapshot::read(d.path()),
        Err(SnapshotError::Checksum { .. })
    ));

    sample(5, 8).write(d.path()).unwrap();
    let ids = d.path().join(IDS_FILE);
    let text = fs::read_to_string(&ids)
        .unwrap()
        .replace("user-3", "user-9");
    fs::write(&ids, text).unwrap();
    match Snapshot::read(d.path()) {
        Err(SnapshotError::Checksum { file }) => assert!(file.ends_with(IDS_FILE)),
        other => panic!("expected Checksum, got {other:?}"),
    }
}

#[test]
fn truncated_or_missing_data_files_are_errors() {
    let d = tempfile::tempdir().unwrap();
    sample(5, 8).write(d.path()).unwrap();
    let p = d.path().join(TENSORS_FILE);
    let bytes = fs::read(&p).unwrap();
    fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    match Snapshot::read(d.path()) {
        Err(SnapshotError::Size {
            file,
            expected,
            actual,
        }) => {
            assert!(file.ends_with(TENSORS_FILE));
            assert_eq!(expected, bytes.len() as u64);
            assert_eq!(actual, (bytes.len() / 2) as u64);
        }
        other => panic!("expected Size, got {other:?}"),
    }
    fs::remove_file(&p).unwrap();
    match Snapshot::read(d.path()) {
        Err(SnapshotError::Io { path, .. }) => assert_eq!(path, p),
        other => panic!("expected Io, got {other:?}"),
    }
}

#[test]
fn missing_or_broken_manifest_is_an_error_not_a_panic() {
    let d = tempfile::tempdir().unwrap();
    assert!(matches!(
        Snapshot::read(d.path()),
        Err(SnapshotError::MissingManifest(_))
    ));
    assert!(matches!(
        Snapshot::read(&d.path().join("does-not-exist")),
        Err(SnapshotError::MissingManifest(_))
    ));

    sample(3, 4).write(d.path()).unwrap();
    let p = d.path().join(MANIFEST_FILE);
    let full = fs::read(&p).unwrap();
    for cut in [0, 1, full.len() / 3, full.len() / 2, full.len() - 3] {
        fs::write(&p, &full[..cut]).unwrap();
        let err = Snapshot::read(d.path()).unwrap_err();
        assert!(
            matches!(err, SnapshotError::Format(_)),
            "cut {cut}: {err:?}"
        );
        assert!(err.to_string().contains(MANIFEST_FILE), "{err}");
    }
    for junk in [&b"\xff\xfe\x00garbage"[..], b"[1, 2, 3]", b"null", b"{}"] {
        fs::write(&p, junk).unwrap();
        assert!(matches!(
            Snapshot::read(d.path()),
            Err(SnapshotError::Format(_))
        ));
    }
    // Right format and version but a missing section.
    fs::write(&p, &full).unwrap();
    edit_manifest(d.path(), |m| {
        m.as_object_mut().unwrap().remove("generator");
    });
    let err = Snapshot::read(d.path()).unwrap_err();
    assert!(err.to_string().contains("generator"), "{err}");
    // A manifest that does not list a required file.
    fs::write(&p, &full).unwrap();
    edit_manifest(d.path(), |m| {
        m["files"].as_object_mut().unwrap().remove(IDS_FILE);
    });
    let err = Snapshot::read(d.path()).unwrap_err();
    assert!(err.to_string().contains(IDS_FILE), "{err}");
    // A manifest that is a directory.
    fs::remove_file(&p).unwrap();
    fs::create_dir(&p).unwrap();
    assert!(Snapshot::read(d.path()).is_err());
}

#[test]
fn unsupported_format_or_version_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    sample(3, 4).write(d.path()).unwrap();
    edit_manifest(d.path(), |m| m["format_version"] = json!(2));
    match Snapshot::read(d.path()) {
        Err(SnapshotError::UnsupportedVersion { found, supported }) => {
            assert_eq!((found, supported), (2, 1));
        }
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
    edit_manifest(d.path(), |m| m["format_version"] = json!("1"));
    assert!(matches!(
        Snapshot::read(d.path()),
        Err(SnapshotError::Format(_))
    ));
    edit_manifest(d.path(), |m| {
        m["format_version"] = json!(1);
        m["format"] = json!("something-else");
    });
    let err = Snapshot::read(d.path()).unwrap_err();
    assert!(matches!(err, SnapshotError::Format(_)));
    assert!(err.to_string().contains("something-else"), "{err}");
}

#[test]
fn overwriting_an_existing_snapshot_works() {
    let d = tempfile::tempdir().unwrap();
    let a = sample(5, 8);
    a.write(d.path()).unwrap();
    assert_eq!(Snapshot::read(d.path()).unwrap(), a);

    let mut b = sample(2, 3);
    b.version = 43;
    b.metadata = json!({"note": "smaller"});
    b.write(d.path()).unwrap();
    assert_eq!(Snapshot::read(d.path()).unwrap(), b);

    let mut c = sample(9, 12);
    c.version = 44;
    c.write(d.path()).unwrap();
    assert_eq!(Snapshot::read(d.path()).unwrap(), c);
    let n = fs::read_dir(d.path()).unwrap().count();
    assert_eq!(n, 3, "no temporaries left behind");
}

#[test]
fn shape_mismatches_are_refused() {
    let d = tempfile::tempdir().unwrap();
    type Mutate = fn(&mut Snapshot);
    let cases: Vec<(&str, Mutate)> = vec![
        ("generator.user", |s| {
            s.generator.user = Array2::zeros((4, 3))
        }),
        ("4 user ids", |s| s.users = ids("user", 4)),
        ("discriminator.item", |s| {
            s.discriminator.item = Array2::zeros((5, 5))
        }),
        ("discriminator.bias", |s| {
            s.discriminator.bias = Array1::zeros(3)
        }),
        (
            "generator.user has dim 3 but generator.item has dim 2",
            |s| s.generator.item = Array2::zeros((4, 2)),
        ),
        ("5 item ids", |s| s.items = ids("item", 5)),
    ];
    for (k, (needle, mutate)) in cases.iter().enumerate() {
        let mut s = sample(3, 4);
        mutate(&mut s);
        let dir = d.path().join(k.to_string());
        match s.write(&dir) {
            Err(SnapshotError::ShapeMismatch(msg)) => {
                assert!(msg.contains(needle), "{needle}: {msg}");
            }
            other => panic!("{needle}: expected ShapeMismatch, got {other:?}"),
        }
        assert!(!dir.exists());
    }
}

#[test]
fn manifest_shape_disagreeing_with_tensors_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    sample(3, 4).write(d.path()).unwrap();
    edit_manifest(d.path(), |m| m["discriminator"]["dim"] = json!(4));
    let err = Snapshot::read(d.path()).unwrap_err();
    assert!(matches!(err, SnapshotError::ShapeMismatch(_)), "{err:?}");
    assert!(err.to_string().contains("discriminator.user"), "{err}");

    sample(3, 4).write(d.path()).unwrap();
    edit_manifest(d.path(), |m| {
        m["generator"]["users"] = json!(100_000_000_000u64)
    });
    assert!(matches!(
        Snapshot::read(d.path()),
        Err(SnapshotError::ShapeMismatch(_))
    ));
}

#[test]
fn ids_disagreeing_with_tensors_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    let s = sample(3, 4);
    s.write(d.path()).unwrap();
    // Rewrite ids.json with one user too many and fix the checksum.
    let names: Vec<String> = (0..4).map(|i| format!("u{i}")).collect();
    let ids = serde_json::to_vec(&json!({"users": names, "items": s.items.names()})).unwrap();
    fs::write(d.path().join(IDS_FILE), &ids).unwrap();
    edit_manifest(d.path(), |m| {
        m["files"][IDS_FILE] = json!({"sha256": sha256_hex(&ids), "bytes": ids.len()});
    });
    assert!(matches!(
        Snapshot::read(d.path()),
        Err(SnapshotError::ShapeMismatch(_))
    ));
    // Duplicate ids.
    let ids =
        serde_json::to_vec(&json!({"users": ["a", "b", "a"], "items": s.items.names()})).unwrap();
    fs::write(d.path().join(IDS_FILE), &ids).unwrap();
    edit_manifest(d.path(), |m| {
        m["files"][IDS_FILE] = json!({"sha256": sha256_hex(&ids), "bytes": ids.len()});
    });
    let err = Snapshot::read(d.path()).unwrap_err();
    assert!(err.to_string().contains("duplicate user id"), "{err}");
}

#[test]
fn manifest_cannot_point_outside_the_directory() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("snap");
    sample(3, 4).write(&dir).unwrap();
    fs::write(d.path().join("outside"), b"x").unwrap();
    for bad in ["../outside", "/etc/passwd", "", "manifest.json", "a/b"] {
        edit_manifest(&dir, |m| {
            m["files"][bad] = json!({"sha256": sha256_hex(b"x"), "bytes": 1});
        });
        let err = Snapshot::read(&dir).unwrap_err();
        assert!(matches!(err, SnapshotError::Format(_)), "{bad}: {err:?}");
        edit_manifest(&dir, |m| {
            m["files"].as_object_mut().unwrap().remove(bad);
        });
    }
    assert!(Snapshot::read(&dir).is_ok());
}

#[test]
fn interrupted_overwrite_reads_as_incomplete() {
    // Simulate a crash right after the old manifest was invalidated.
    let d = tempfile::tempdir().unwrap();
    sample(3, 4).write(d.path()).unwrap();
    fs::remove_file(d.path().join(MANIFEST_FILE)).unwrap();
    assert!(matches!(
        Snapshot::read(d.path()),
        Err(SnapshotError::MissingManifest(_))
    ));
}

#[test]
fn python_can_load_the_snapshot() {
    let available = std::process::Command::new("python3")
        .args(["-c", "import safetensors, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        return; // python3 with numpy + safetensors not installed: skip quietly.
    }
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("snap");
    let s = sample(6, 9);
    s.write(&dir).unwrap();
    let script = r#"
import json, sys
from safetensors.numpy import load_file
d = sys.argv[1]
t = load_file(d + "/tensors.safetensors")
m = json.load(open(d + "/manifest.json"))
ids = json.load(open(d + "/ids.json"))
assert m["format"] == "irgan-snapshot" and m["format_version"] == 1
u = ids["users"].index("user-4")
scores = t["generator.user"][u] @ t["generator.item"].T + t["generator.bias"]
print(repr(float(scores[7])))
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: f64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let want = s.generator.score(4, 7) as f64;
    assert!((got - want).abs() < 1e-5, "python {got} vs rust {want}");
}
