//! Malformed interaction and factor files: a clean error naming the file (and line), no panic.

use crate::common::{Factors, eval, s, train, write};

/// Writes `contents` (or nothing, for `None`: the file is missing) as `name` and checks that
/// every command reading it as an interaction file fails cleanly with `needles(path)` on stderr:
/// `eval` with it as `--train` and as `--test`, `train` with it as `data.train` and `data.test`.
fn check_interactions(name: &str, contents: Option<&[u8]>, needles: impl Fn(&str) -> Vec<String>) {
    let fx = Factors::valid();
    let bad = fx.dir.path().join(name);
    if let Some(c) = contents {
        write(fx.dir.path(), name, c);
    }
    let want = needles(&s(&bad));
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    let factors = ["--factors", &s(&fx.factors)];
    let out = fx.dir.path().join("out");
    let runs = [
        eval(factors, &bad, &fx.test, &["--json"]),
        eval(factors, &fx.train, &bad, &["--json"]),
        train(&out, &[&format!("data.train={}", s(&bad))]),
        train(
            &out,
            &[
                &format!("data.train={}", s(&fx.train)),
                &format!("data.test={}", s(&bad)),
            ],
        ),
    ];
    for run in runs {
        run.fails().stderr_has(&want);
    }
}

/// `PATH:LINE:` plus the given fragments.
fn at_line(line: usize, fragments: &'static [&'static str]) -> impl Fn(&str) -> Vec<String> {
    move |p| {
        let mut v = vec![format!("{p}:{line}:")];
        v.extend(fragments.iter().map(|f| (*f).to_owned()));
        v
    }
}

#[test]
fn non_numeric_rating() {
    check_interactions(
        "ratings.txt",
        Some(b"0 0 5\n# a comment\n1 2 five\n"),
        at_line(3, &["five"]),
    );
}

#[test]
fn too_few_columns() {
    check_interactions("ratings.txt", Some(b"0 0 5\n0 1 4\n7\n"), at_line(3, &[]));
}

#[test]
fn too_many_columns() {
    check_interactions(
        "ratings.txt",
        Some(b"0 0 5\n0 1 4 100\n1 2 5 100 extra\n"),
        at_line(3, &[]),
    );
}

#[test]
fn nan_rating() {
    check_interactions(
        "ratings.txt",
        Some(b"0 0 5\n0 1 4\n1 2 NaN\n"),
        at_line(3, &["finite"]),
    );
}

#[test]
fn non_utf8_bytes() {
    check_interactions(
        "ratings.txt",
        Some(b"0 0 5\n0 1 4\n1 \xff\xfe 4\n"),
        at_line(3, &["UTF-8"]),
    );
}

#[test]
fn empty_file() {
    let no_records = |p: &str| vec![p.to_owned(), "no records".to_owned()];
    check_interactions("empty.txt", Some(b""), no_records);
    check_interactions("comments.txt", Some(b"# header\n\n   \n"), no_records);
}

#[test]
fn missing_file() {
    check_interactions("absent.txt", None, |p| {
        vec![p.to_owned(), "No such file".to_owned()]
    });
}

/// Overwrites one file of a valid factor directory and checks that `eval --factors` fails
/// cleanly with `needles(path of that file)` on stderr.
fn check_factors(file: &str, contents: &[u8], needles: impl Fn(&str) -> Vec<String>) {
    let fx = Factors::valid();
    let p = write(&fx.factors, file, contents);
    let want = needles(&s(&p));
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    fx.eval().fails().stderr_has(&want);
}

#[test]
fn factors_fixture_is_valid() {
    let fx = Factors::valid();
    let m = fx.eval().ok().json();
    assert!(m["P@3"].is_number(), "{m}");
}

#[test]
fn ragged_item_factors() {
    check_factors(
        "item_factors.tsv",
        b"0.5\t0.1\n-0.3\t0.2\n0.2\n0.0\t-0.4\n",
        at_line(3, &["expected 2 values, found 1"]),
    );
}

#[test]
fn ragged_user_factors() {
    check_factors(
        "user_factors.tsv",
        b"0.1\t0.2\n0.3\t-0.1\t0.7\n-0.2\t0.4\n",
        at_line(2, &["expected 2 values, found 3"]),
    );
}

#[test]
fn bias_count_mismatch() {
    check_factors("item_bias.tsv", b"0.1\n0.0\n-0.1\n", |p| {
        vec![p.to_owned(), "3 bias values but 4 item rows".to_owned()]
    });
}

#[test]
fn bad_factor_values() {
    check_factors(
        "user_factors.tsv",
        b"0.1\t0.2\n0.3\tNaN\n-0.2\t0.4\n",
        at_line(2, &["not finite"]),
    );
    check_factors(
        "item_factors.tsv",
        b"0.5\t0.1\n-0.3\t0.2\n0.2\t0.2\n0.0\tx\n",
        at_line(4, &["`x`"]),
    );
    check_factors(
        "item_bias.tsv",
        b"0.1\n0.0\n\xff\n0.2\n",
        at_line(3, &["UTF-8"]),
    );
    check_factors("item_bias.tsv", b"", |p| {
        vec![p.to_owned(), "no records".to_owned()]
    });
}

#[test]
fn factor_dimension_mismatch() {
    let fx = Factors::valid();
    write(
        &fx.factors,
        "user_factors.tsv",
        "1\t2\t3\n4\t5\t6\n7\t8\t9\n",
    );
    fx.eval()
        .fails()
        .stderr_has(&[&s(&fx.factors), "3 columns", "2"]);
}

#[test]
fn missing_factor_directory() {
    let fx = Factors::valid();
    let gone = fx.dir.path().join("no-such-dir");
    eval(["--factors", &s(&gone)], &fx.train, &fx.test, &["--json"])
        .fails()
        .stderr_has(&[&s(&gone)]);
}

#[test]
fn train_with_ragged_imported_factors() {
    let fx = Factors::valid();
    let p = write(
        &fx.factors,
        "item_factors.tsv",
        "0.5\t0.1\n-0.3\t0.2\n0.2\n0.0\t-0.4\n",
    );
    train(
        &fx.dir.path().join("out"),
        &[
            &format!("data.train={}", s(&fx.train)),
            "generator.init=factors",
            &format!("generator.factors={}", s(&fx.factors)),
            "generator.dim=2",
        ],
    )
    .fails()
    .stderr_has(&[&format!("{}:3:", s(&p))]);
}
