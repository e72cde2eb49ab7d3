//! The paper's MovieLens-100k DNS starting point, evaluated under the IRGAN protocol, must
//! reproduce the reference numbers. Skipped when `../shared/data/ml-100k` is absent.

use std::path::Path;

use crate::common::{eval, s};

#[test]
fn ml100k_dns_init_matches_the_reference() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/ml-100k");
    if !dir.exists() {
        eprintln!(
            "{} not found: skipping the ML-100k acceptance check",
            dir.display()
        );
        return;
    }
    let run = eval(
        ["--factors", &s(&dir.join("dns-init"))],
        &dir.join("movielens-100k-train.txt"),
        &dir.join("movielens-100k-test.txt"),
        &["--protocol", "irgan", "--json"],
    )
    .ok();
    let m = run.json();
    for (metric, want) in [
        ("P@3", "0.3845"),
        ("P@5", "0.3474"),
        ("P@10", "0.2967"),
        ("NDCG@3", "0.3986"),
        ("NDCG@5", "0.3749"),
        ("NDCG@10", "0.3518"),
    ] {
        let got = m[metric]
            .as_f64()
            .unwrap_or_else(|| panic!("no {metric}: {run:?}"));
        assert_eq!(format!("{got:.4}"), want, "{metric} = {got}");
    }
}
