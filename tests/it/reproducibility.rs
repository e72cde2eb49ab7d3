//! Same seed and config, same result; a different seed, a different model.

use std::path::Path;

use crate::common::{Data, read_json};

fn tensors(out: &Path) -> Vec<u8> {
    let p = out.join("snapshot/tensors.safetensors");
    std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

#[test]
fn same_seed_same_result_other_seed_other_model() {
    let data = Data::synth();
    let a = data.train("a", &[]);
    let b = data.train("b", &[]);
    let (ra, rb) = (
        read_json(&a.join("report.json")),
        read_json(&b.join("report.json")),
    );
    for key in ["validation", "test", "selection"] {
        assert!(!ra[key].is_null(), "report.json lacks {key:?}");
        assert_eq!(
            ra[key], rb[key],
            "report {key:?} differs between identical runs"
        );
    }
    assert!(
        tensors(&a) == tensors(&b),
        "tensors differ between identical runs"
    );

    let c = data.train("c", &["seed=7"]);
    assert!(
        tensors(&a) != tensors(&c),
        "seed=7 gave the same tensors as seed 42"
    );
}

#[test]
fn thread_count_does_not_change_the_result() {
    let data = Data::synth();
    let one = data.train("one", &["threads=1"]);
    let two = data.train("two", &["threads=2"]);
    let (r1, r2) = (
        read_json(&one.join("report.json")),
        read_json(&two.join("report.json")),
    );
    assert_eq!(r1["validation"], r2["validation"]);
    assert_eq!(r1["test"], r2["test"]);
    assert!(
        tensors(&one) == tensors(&two),
        "tensors depend on the thread count"
    );
}
