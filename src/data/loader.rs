//! Reading interaction files and factor directories: the data layer's loading surface,
//! re-exported from the modules that do each job ([`super::format`], [`super::records`],
//! [`super::dataset`], [`super::factors`]).
//!
//! # Interaction files
//!
//! Two line formats are understood (see [`Format`]):
//!
//! * **ratings** — `user item [rating [timestamp]]`, one interaction per line;
//! * **adjacency** — `user item item …`, every `(user, item)` pair is a positive.
//!
//! Fields are separated by runs of spaces/tabs, or by commas (a line containing a comma is split
//! on commas, and whitespace around each field is ignored; an empty field is an error). Blank lines
//! and lines whose first non-blank character is `#` are skipped; a leading UTF-8 byte-order mark is
//! ignored. User and item ids are arbitrary tokens (not necessarily numbers) and are mapped to dense
//! indices with [`IdMap`]. There is no header detection: comment a CSV header out with `#`.
//!
//! Every problem is reported as a [`DataError`] naming the file and the 1-based line; nothing here
//! panics on bad input.
//!
//! # Factor directories
//!
//! A factor directory (the format of the IRGAN reference's `dns-init/`) holds
//!
//! * `user_factors.tsv` — one row per user, tab-separated floats;
//! * `item_factors.tsv` — one row per item, same width;
//! * `item_bias.tsv` — one float per line, one line per item;
//! * optionally `users.txt` / `items.txt` — one external id per line, naming the rows in order.
//!
//! Without `users.txt`/`items.txt`, row `i` is the user/item whose external id is `i.to_string()`
//! (i.e. [`IdMap::sequential`]), which is how the reference files are indexed. Rows are positional,
//! so blank lines are errors (except at the end of a file).

pub use super::dataset::{Dataset, InteractionSets, load_dataset, to_sets};
pub use super::error::DataError;
pub use super::factors::{
    Factors, ITEM_BIAS_FILE, ITEM_FACTORS_FILE, ITEM_IDS_FILE, USER_FACTORS_FILE, USER_IDS_FILE,
    read_factor_ids, read_factors, read_factors_with_ids,
};
pub use super::format::{Format, LoadOptions};
pub use super::records::{Record, read_records};

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;
    use std::fs;
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::data::IdMap;

    fn file(dir: &tempfile::TempDir, name: &str, contents: &[u8]) -> PathBuf {
        let p = dir.path().join(name);
        fs::write(&p, contents).unwrap();
        p
    }

    fn read(contents: &str, opts: &LoadOptions) -> Result<(Vec<Record>, IdMap, IdMap), DataError> {
        let dir = tempfile::tempdir().unwrap();
        let p = file(&dir, "data.txt", contents.as_bytes());
        let (mut u, mut i) = (IdMap::new(), IdMap::new());
        read_records(&p, opts, &mut u, &mut i).map(|r| (r, u, i))
    }

    fn ratings() -> LoadOptions {
        LoadOptions::default()
    }

    fn adjacency() -> LoadOptions {
        LoadOptions {
            format: Format::Adjacency,
            ..LoadOptions::default()
        }
    }

    fn parse_err(e: DataError) -> (usize, String) {
        let shown = e.to_string();
        match e {
            DataError::Parse { line, message, .. } => {
                assert!(shown.contains("data.txt:"), "{shown}");
                (line, message)
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn every_separator_gives_the_same_records() {
        let want = read("1\t10\t5\t100\n2\t20\t3\t200\n", &ratings()).unwrap();
        for text in [
            "1 10 5 100\n2 20 3 200\n",
            "1   10 \t 5  100\r\n2 20 3 200",
            "1,10,5,100\n2,20,3,200\n",
            "1, 10 ,5, 100\n 2,20,3,200 \n",
        ] {
            assert_eq!(read(text, &ratings()).unwrap(), want, "{text:?}");
        }
        let (recs, users, items) = want;
        assert_eq!(
            recs[0],
            Record {
                user: 0,
                item: 0,
                rating: Some(5.0),
                timestamp: Some(100)
            }
        );
        assert_eq!(recs[1].user, 1);
        assert_eq!((users.name(1), items.name(1)), ("2", "20"));
    }

    #[test]
    fn two_three_and_four_columns() {
        let (r, ..) = read("a x\nb y 2.5\nc z 4 978300760\nd w 1 1.5e9\n", &ratings()).unwrap();
        assert_eq!(r[0].rating, None);
        assert_eq!(r[0].timestamp, None);
        assert_eq!(r[1].rating, Some(2.5));
        assert_eq!(r[1].timestamp, None);
        assert_eq!(
            (r[2].rating, r[2].timestamp),
            (Some(4.0), Some(978_300_760))
        );
        assert_eq!(r[3].timestamp, Some(1_500_000_000));
    }

    #[test]
    fn threshold_decides_positives() {
        let rec = |rating| Record {
            user: 0,
            item: 0,
            rating,
            timestamp: None,
        };
        assert!(rec(None).is_positive(4.0));
        assert!(rec(Some(4.0)).is_positive(4.0));
        assert!(!rec(Some(3.5)).is_positive(4.0));
        let (r, u, i) = read("u1 i1 5\nu1 i2 3\nu2 i1 4\nu2 i3\n", &ratings()).unwrap();
        let sets = to_sets(&r, u.len(), i.len(), 4.0);
        assert_eq!(sets.seen.nnz(), 4);
        assert_eq!(sets.positives.items(0), &[0]);
        assert_eq!(sets.positives.items(1), &[0, 2]);
        assert!(sets.seen.contains(0, 1));
        // Sizes are raised to cover the records rather than panicking.
        let sets = to_sets(&r, 0, 0, 4.0);
        assert_eq!((sets.seen.n_users(), sets.seen.n_items()), (2, 3));
    }

    #[test]
    fn adjacency_lists() {
        let (r, u, i) = read("alice x y z\nbob\ncarol,y\n", &adjacency()).unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(u.names(), &["alice", "bob", "carol"]);
        assert_eq!(i.names(), &["x", "y", "z"]);
        assert!(
            r.iter()
                .all(|x| x.rating.is_none() && x.timestamp.is_none())
        );
        assert_eq!(
            r[3],
            Record {
                user: 2,
                item: 1,
                rating: None,
                timestamp: None
            }
        );
        let sets = to_sets(&r, u.len(), i.len(), 4.0);
        assert_eq!(sets.positives, sets.seen);
        assert!(sets.positives.items(1).is_empty());
    }

    #[test]
    fn comments_blank_lines_and_bom_are_skipped() {
        let text = "\u{feff}# header\n\n   \n1 2 5\n  # indented comment\n\t\n3 4 1\n\n";
        let (r, ..) = read(text, &ratings()).unwrap();
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn string_ids_are_mapped_in_order() {
        let (r, u, i) = read(
            "user-b item:9 5\nuser-a item:1 5\nuser-b item:1 2\n",
            &ratings(),
        )
        .unwrap();
        assert_eq!(u.names(), &["user-b", "user-a"]);
        assert_eq!(i.names(), &["item:9", "item:1"]);
        assert_eq!((r[2].user, r[2].item), (0, 1));
    }

    #[test]
    fn non_numeric_rating_names_file_and_line() {
        let e = read("1 2 5\n# fine\n1 3 five\n", &ratings()).unwrap_err();
        let shown = e.to_string();
        assert!(shown.contains("data.txt:3:"), "{shown}");
        assert!(shown.contains("five"), "{shown}");
        assert_eq!(parse_err(e).0, 3);
    }

    #[test]
    fn malformed_lines_are_errors() {
        let cases = [
            ("1 2 5\n7\n", 2),
            ("1 2 NaN\n", 1),
            ("1 2 inf\n", 1),
            ("1 2 -inf\n", 1),
            ("1,,5\n", 1),
            ("1,2,\n", 1),
            ("1 2 5 x\n", 1),
            ("1 2 5 1e300\n", 1),
            ("1 2 5 100 extra\n", 1),
            ("1 2 5 100\n", 0), // sentinel: valid
        ];
        for (text, line) in cases {
            match read(text, &ratings()) {
                Ok(_) => assert_eq!(line, 0, "{text:?} should fail"),
                Err(e) => assert_eq!(parse_err(e).0, line, "{text:?}"),
            }
        }
        let (_, msg) = parse_err(read("1 2 NaN\n", &ratings()).unwrap_err());
        assert!(msg.contains("finite"), "{msg}");
        assert_eq!(parse_err(read("a,x,,y\n", &adjacency()).unwrap_err()).0, 1);
    }

    #[test]
    fn invalid_utf8_reports_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = file(&dir, "data.txt", b"1 2 5\n1 3 4\n1 \xff\xfe 4\n");
        let (mut u, mut i) = (IdMap::new(), IdMap::new());
        let e = read_records(&p, &ratings(), &mut u, &mut i).unwrap_err();
        assert!(e.to_string().contains("data.txt:3: invalid UTF-8"), "{e}");
    }

    #[test]
    fn empty_and_missing_files() {
        for text in ["", "\n\n", "# only a comment\n"] {
            assert!(
                matches!(read(text, &ratings()), Err(DataError::Empty { .. })),
                "{text:?}"
            );
        }
        assert!(matches!(
            read("lonely-user\n", &adjacency()),
            Err(DataError::Empty { .. })
        ));
        let (mut u, mut i) = (IdMap::new(), IdMap::new());
        let e = read_records(Path::new("/no/such/file.txt"), &ratings(), &mut u, &mut i);
        assert!(matches!(e, Err(DataError::Io { .. })));
    }

    #[test]
    fn bad_last_line_of_a_large_file() {
        let mut text = String::new();
        for k in 0..50_000 {
            let _ = writeln!(text, "{} {} {}", k % 700, k % 1500, 1 + k % 5);
        }
        text.push_str("3 4 oops");
        let (line, _) = parse_err(read(&text, &ratings()).unwrap_err());
        assert_eq!(line, 50_001);
    }

    #[test]
    fn format_parses_and_serializes() {
        assert_eq!("ratings".parse::<Format>(), Ok(Format::Ratings));
        assert_eq!(" Adjacency".parse::<Format>(), Ok(Format::Adjacency));
        assert!("csv".parse::<Format>().is_err());
        assert_eq!(
            serde_json::to_string(&Format::Adjacency).unwrap(),
            "\"adjacency\""
        );
        assert_eq!(
            serde_json::from_str::<Format>("\"ratings\"").unwrap(),
            Format::Ratings
        );
        assert_eq!(Format::Adjacency.to_string(), "adjacency");
        assert_eq!(LoadOptions::default().positive_threshold, 4.0);
    }

    #[test]
    fn test_only_ids_are_added_and_sets_share_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let train = file(&dir, "train.txt", b"u1 a 5\nu2 b 4\nu2 c 1\n");
        let test = file(&dir, "test.txt", b"u3 a 5\nu1 d 5\nu1 b 2\n");
        let ds = load_dataset(&train, Some(&test), &ratings(), IdMap::new(), IdMap::new()).unwrap();
        assert_eq!((ds.n_users(), ds.n_items()), (3, 4));
        let t = ds.test.as_ref().unwrap();
        for s in [&ds.train.positives, &ds.train.seen, &t.positives, &t.seen] {
            assert_eq!((s.n_users(), s.n_items()), (3, 4));
        }
        let u3 = ds.users.get("u3").unwrap() as usize;
        assert!(ds.train.seen.items(u3).is_empty());
        assert_eq!(t.positives.items(u3), &[0]);
        assert_eq!(t.positives.nnz(), 2);
        assert_eq!(t.seen.nnz(), 3);
        assert_eq!(ds.train.positives.nnz(), 2);

        // Pre-seeded maps keep their indices.
        let ds =
            load_dataset(&train, None, &ratings(), IdMap::sequential(2), IdMap::new()).unwrap();
        assert_eq!(ds.users.names(), &["0", "1", "u1", "u2"]);
        assert_eq!(ds.train.seen.n_users(), 4);
        assert!(ds.test.is_none());
    }

    fn factor_dir(user: &str, item: &str, bias: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        file(&dir, USER_FACTORS_FILE, user.as_bytes());
        file(&dir, ITEM_FACTORS_FILE, item.as_bytes());
        file(&dir, ITEM_BIAS_FILE, bias.as_bytes());
        dir
    }

    #[test]
    fn factor_file_errors() {
        let ok_items = "1\t2\n3\t4\n";
        let ok_bias = "0.5\n-0.5\n";
        let m = read_factors(factor_dir("1\t2\n", ok_items, ok_bias).path()).unwrap();
        assert_eq!((m.user.nrows(), m.item.nrows(), m.user.ncols()), (1, 2, 2));

        let e = read_factors(factor_dir("1\t2\n3\n", ok_items, ok_bias).path()).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::Ragged {
                    line: 2,
                    expected: 2,
                    found: 1,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("user_factors.tsv:2:"), "{e}");

        let e = read_factors(factor_dir("1\t2\n", ok_items, "0.5\n").path()).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::BiasCount {
                    found: 1,
                    expected: 2,
                    ..
                }
            ),
            "{e:?}"
        );
        let e = read_factors(factor_dir("1\t2\n", ok_items, "0.5 1\n2 3\n").path()).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::Ragged {
                    expected: 1,
                    found: 2,
                    ..
                }
            ),
            "{e:?}"
        );

        let e = read_factors(factor_dir("1\t2\n", "1\tNaN\n3\t4\n", ok_bias).path()).unwrap_err();
        assert!(matches!(e, DataError::Parse { line: 1, .. }), "{e:?}");
        let e = read_factors(factor_dir("1\tx\n", ok_items, ok_bias).path()).unwrap_err();
        assert!(e.to_string().contains("user_factors.tsv:1:"), "{e}");
        let e = read_factors(factor_dir("1\t2\n\n3\t4\n", ok_items, ok_bias).path()).unwrap_err();
        assert!(matches!(e, DataError::Parse { line: 2, .. }), "{e:?}");

        let e = read_factors(factor_dir("", ok_items, ok_bias).path()).unwrap_err();
        assert!(matches!(e, DataError::Empty { .. }), "{e:?}");
        let e = read_factors(factor_dir("1\t2\t3\n", ok_items, ok_bias).path()).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::DimMismatch {
                    user_dim: 3,
                    item_dim: 2,
                    ..
                }
            ),
            "{e:?}"
        );

        // Id files must match the rows and be unique.
        let dir = factor_dir("1\t2\n", ok_items, ok_bias);
        file(&dir, ITEM_IDS_FILE, b"x\n");
        assert!(matches!(
            read_factor_ids(dir.path()),
            Err(DataError::IdCount {
                ids: 1,
                rows: 2,
                ..
            })
        ));
        file(&dir, ITEM_IDS_FILE, b"x\nx\n");
        let e = read_factor_ids(dir.path()).unwrap_err();
        assert!(matches!(e, DataError::Parse { line: 2, .. }), "{e:?}");
        assert!(matches!(
            read_factors(&dir.path().join("missing")),
            Err(DataError::Io { .. })
        ));
    }

    fn ml100k() -> Option<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/ml-100k");
        dir.join("movielens-100k-train.txt").exists().then_some(dir)
    }

    #[test]
    fn reads_movielens_100k_when_present() {
        let Some(dir) = ml100k() else {
            eprintln!("ml-100k not found, skipping");
            return;
        };
        let start = std::time::Instant::now();
        let ds = load_dataset(
            &dir.join("movielens-100k-train.txt"),
            Some(&dir.join("movielens-100k-test.txt")),
            &LoadOptions::default(),
            IdMap::new(),
            IdMap::new(),
        )
        .unwrap();
        eprintln!("ml-100k loaded in {:?}", start.elapsed());
        assert_eq!(ds.n_users(), 943);
        assert_eq!(ds.train.seen.nnz(), 80_000);
        assert!(ds.train.positives.nnz() > 0);
        assert!(ds.test.as_ref().unwrap().positives.nnz() > 0);

        let init = dir.join("dns-init");
        if init.exists() {
            let m = read_factors(&init).unwrap();
            assert_eq!(m.user.dim(), (943, 5));
            assert_eq!(m.item.dim(), (1683, 5));
            assert_eq!(m.bias.len(), 1683);
            assert!(
                m.user
                    .iter()
                    .chain(&m.item)
                    .chain(&m.bias)
                    .all(|x| x.is_finite())
            );
            let (users, items) = read_factor_ids(&init).unwrap();
            assert_eq!((users.len(), items.len()), (943, 1683));
            // Seeding with the factor ids keeps factor rows aligned with data indices.
            let ds = load_dataset(
                &dir.join("movielens-100k-train.txt"),
                Some(&dir.join("movielens-100k-test.txt")),
                &LoadOptions::default(),
                users,
                items,
            )
            .unwrap();
            assert_eq!((ds.n_users(), ds.n_items()), (943, 1683));
            assert_eq!(ds.users.get("17"), Some(17));
        }
    }
}
