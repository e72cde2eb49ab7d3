//! Tests of the feedback log as its users see it: durability, idempotence, group commit, closing,
//! failures and foreign files.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::Connection;

use super::*;
use crate::store::clock::now_unix_ms;
use std::collections::HashSet;
use std::time::Instant;

fn ev(id: Option<&str>, user: &str, item: &str) -> FeedbackEvent {
    FeedbackEvent {
        id: id.map(str::to_owned),
        user: user.into(),
        item: item.into(),
        kind: "click".into(),
        value: Some(1.5),
        timestamp_ms: Some(1_700_000_000_000),
    }
}

fn open(dir: &tempfile::TempDir) -> FeedbackLog {
    FeedbackLog::open(&dir.path().join("feedback.db"), LogOptions::default()).unwrap()
}

fn seqs(a: &[Appended]) -> Vec<u64> {
    a.iter().map(|a| a.seq).collect()
}

#[test]
fn append_and_read_round_trip() {
    let d = tempfile::tempdir().unwrap();
    let log = open(&d);
    assert_eq!(log.last_seq().unwrap(), 0);
    assert_eq!(log.count().unwrap(), 0);
    assert!(log.read_after(0, 10).unwrap().is_empty());

    let mut e2 = ev(None, "u2", "i2");
    e2.kind = "rating".into();
    e2.value = None;
    e2.timestamp_ms = None;
    let events = vec![ev(Some("a"), "u1", "i1"), e2, ev(Some("b"), "u3", "i3")];
    let before = now_unix_ms();
    let out = log.append(events.clone()).unwrap();
    assert_eq!(seqs(&out), [1, 2, 3]);
    assert!(out.iter().all(|a| !a.duplicate));
    let out = log.append(vec![ev(None, "u4", "i4")]).unwrap();
    assert_eq!(seqs(&out), [4]);

    let read = log.read_after(0, 100).unwrap();
    assert_eq!(read.len(), 4);
    for (i, (r, e)) in read.iter().zip(&events).enumerate() {
        assert_eq!(r.seq, i as u64 + 1);
        assert_eq!(&r.event, e);
        assert!(r.acked_unix_ms >= before && r.acked_unix_ms <= now_unix_ms());
    }
    assert!(
        read.windows(2)
            .all(|w| w[0].acked_unix_ms <= w[1].acked_unix_ms)
    );
    assert_eq!(log.read_after(1, 2).unwrap().len(), 2);
    assert_eq!(log.read_after(1, 2).unwrap()[0].seq, 2);
    assert_eq!(log.read_after(3, 100).unwrap()[0].seq, 4);
    assert!(log.read_after(4, 100).unwrap().is_empty());
    assert!(log.read_after(u64::MAX, 100).unwrap().is_empty());
    assert!(log.read_after(0, 0).unwrap().is_empty());
    assert_eq!(log.last_seq().unwrap(), 4);
    assert_eq!(log.count().unwrap(), 4);
    assert!(log.append(Vec::new()).unwrap().is_empty());
}

#[test]
fn idempotent_on_id_across_and_within_calls() {
    let d = tempfile::tempdir().unwrap();
    let log = open(&d);
    log.append(vec![ev(Some("x"), "u", "i"), ev(Some("y"), "u", "j")])
        .unwrap();
    // Across calls: original seq, duplicate flag; the new payload is ignored.
    let out = log
        .append(vec![
            ev(Some("y"), "other", "other"),
            ev(Some("z"), "u", "k"),
            ev(Some("z"), "u", "k"), // within the same call
            ev(Some("x"), "u", "i"),
        ])
        .unwrap();
    assert_eq!(
        out,
        [
            Appended {
                seq: 2,
                duplicate: true
            },
            Appended {
                seq: 3,
                duplicate: false
            },
            Appended {
                seq: 3,
                duplicate: true
            },
            Appended {
                seq: 1,
                duplicate: true
            },
        ]
    );
    assert_eq!(log.count().unwrap(), 3);
    assert_eq!(log.read_after(1, 1).unwrap()[0].event.user, "u");
    // Events without id are never deduplicated.
    let e = ev(None, "u", "i");
    let out = log.append(vec![e.clone(), e.clone()]).unwrap();
    assert_eq!(seqs(&out), [4, 5]);
    let out = log.append(vec![e]).unwrap();
    assert_eq!(
        out,
        [Appended {
            seq: 6,
            duplicate: false
        }]
    );
    assert_eq!(log.count().unwrap(), 6);
}

#[test]
fn non_finite_values_are_rejected_and_nothing_is_stored() {
    let d = tempfile::tempdir().unwrap();
    let log = open(&d);
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut e = ev(None, "u", "i");
        e.value = Some(bad);
        let err = log.append(vec![ev(None, "u", "i"), e]).unwrap_err();
        assert!(matches!(err, LogError::Invalid { index: 1, .. }), "{err}");
    }
    assert_eq!(log.count().unwrap(), 0);
}

#[test]
fn reopen_keeps_everything_and_continues_seq() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("feedback.db");
    {
        let log = FeedbackLog::open(&path, LogOptions::default()).unwrap();
        log.append(vec![ev(Some("a"), "u", "i"), ev(None, "u", "j")])
            .unwrap();
        log.close().unwrap();
    }
    let log = FeedbackLog::open(&path, LogOptions::default()).unwrap();
    assert_eq!(log.last_seq().unwrap(), 2);
    assert_eq!(log.count().unwrap(), 2);
    assert_eq!(
        log.read_after(0, 10).unwrap()[0].event,
        ev(Some("a"), "u", "i")
    );
    let out = log
        .append(vec![ev(Some("a"), "u", "i"), ev(None, "v", "k")])
        .unwrap();
    assert_eq!(
        out,
        [
            Appended {
                seq: 1,
                duplicate: true
            },
            Appended {
                seq: 3,
                duplicate: false
            },
        ]
    );
    drop(log); // without close: Drop stops the writer too
    let log = FeedbackLog::open(&path, LogOptions::default()).unwrap();
    assert_eq!(log.last_seq().unwrap(), 3);
}

#[test]
fn export_jsonl_lines_parse_back() {
    let d = tempfile::tempdir().unwrap();
    let log = open(&d);
    let mut e = ev(Some("q\"uote\n"), "user é", "item");
    e.value = Some(-0.25);
    e.timestamp_ms = None;
    log.append(vec![e.clone(), ev(None, "u", "i")]).unwrap();
    let mut buf = Vec::new();
    assert_eq!(log.export_jsonl(&mut buf).unwrap(), 2);
    let text = String::from_utf8(buf).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    let parsed: Vec<LoggedEvent> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(parsed, log.read_after(0, 10).unwrap());
    assert_eq!(parsed[0].event, e);
    let v: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(v["seq"], 2);
    assert_eq!(v["type"], "click");
    assert!(v["id"].is_null());
    assert!(v["acked_unix_ms"].as_u64().unwrap() > 0);
    // The event alone also parses back (extra fields ignored).
    let plain: FeedbackEvent = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(plain, ev(None, "u", "i"));

    let empty_dir = tempfile::tempdir().unwrap();
    let mut buf = Vec::new();
    assert_eq!(open(&empty_dir).export_jsonl(&mut buf).unwrap(), 0);
    assert!(buf.is_empty());
}

#[test]
fn concurrent_single_event_appends_share_commits() {
    let d = tempfile::tempdir().unwrap();
    let log = open(&d);
    let start = Instant::now();
    let per_thread: Vec<Vec<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let log = log.clone();
                s.spawn(move || {
                    (0..200)
                        .map(|i| {
                            let id = format!("t{t}-{i}");
                            let out = log.append(vec![ev(Some(&id), "u", "i")]).unwrap();
                            assert!(!out[0].duplicate);
                            out[0].seq
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = start.elapsed();
    let all: HashSet<u64> = per_thread.iter().flatten().copied().collect();
    assert_eq!(all.len(), 1600);
    assert_eq!(all, (1..=1600).collect());
    // Each thread's acks come back in increasing seq order.
    assert!(per_thread.iter().all(|s| s.windows(2).all(|w| w[0] < w[1])));
    assert_eq!(log.count().unwrap(), 1600);
    assert_eq!(log.last_seq().unwrap(), 1600);
    let commits = log.commits();
    eprintln!(
        "feedback_log: 8 threads x 200 single-event appends: {commits} commits, {:.0} events/s",
        1600.0 / elapsed.as_secs_f64()
    );
    assert!(commits < 1600, "no group commit: {commits} commits");
}

#[test]
fn throughput_batches_of_100_from_4_threads() {
    let d = tempfile::tempdir().unwrap();
    let log = open(&d);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..4 {
            let log = log.clone();
            s.spawn(move || {
                for b in 0..50 {
                    let batch = (0..100)
                        .map(|i| ev(Some(&format!("{t}-{b}-{i}")), "user", "item"))
                        .collect();
                    log.append(batch).unwrap();
                }
            });
        }
    });
    let elapsed = start.elapsed();
    assert_eq!(log.count().unwrap(), 20_000);
    eprintln!(
        "feedback_log: 20000 events in batches of 100 from 4 threads: {:.3} s, {:.0} events/s, {} commits",
        elapsed.as_secs_f64(),
        20_000.0 / elapsed.as_secs_f64(),
        log.commits()
    );
}

#[test]
fn max_batch_bounds_the_group_but_never_splits_a_request() {
    let d = tempfile::tempdir().unwrap();
    let log = FeedbackLog::open(
        &d.path().join("f.db"),
        LogOptions {
            max_batch: 3,
            queue: 4,
        },
    )
    .unwrap();
    let big: Vec<_> = (0..10).map(|_| ev(None, "u", "i")).collect();
    assert_eq!(
        seqs(&log.append(big).unwrap()),
        (1..=10).collect::<Vec<_>>()
    );
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..25 {
                    log.append(vec![ev(None, "u", "i"), ev(None, "u", "i")])
                        .unwrap();
                }
            });
        }
    });
    assert_eq!(log.count().unwrap(), 210);
    // One commit for the big request, then at most one 2-event request per group (3 < 4).
    assert_eq!(log.commits(), 101);
}

#[tokio::test]
async fn append_async_works_and_is_send() {
    let d = tempfile::tempdir().unwrap();
    let log = open(&d);
    let fut = log.append_async(vec![ev(Some("a"), "u", "i")]);
    fn assert_send<T: Send>(_: &T) {}
    assert_send(&fut);
    assert_eq!(
        fut.await.unwrap(),
        [Appended {
            seq: 1,
            duplicate: false
        }]
    );
    let out = log
        .append_async(vec![ev(Some("a"), "u", "i"), ev(None, "u", "j")])
        .await
        .unwrap();
    assert_eq!(
        out,
        [
            Appended {
                seq: 1,
                duplicate: true
            },
            Appended {
                seq: 2,
                duplicate: false
            },
        ]
    );
    let mut bad = ev(None, "u", "i");
    bad.value = Some(f64::NAN);
    assert!(matches!(
        log.append_async(vec![bad]).await,
        Err(LogError::Invalid { index: 0, .. })
    ));
    log.close().unwrap();
    assert!(matches!(
        log.append_async(vec![ev(None, "u", "i")]).await,
        Err(LogError::Closed)
    ));
    assert_eq!(log.count().unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_async_appenders_with_a_tiny_queue() {
    let d = tempfile::tempdir().unwrap();
    let log = FeedbackLog::open(
        &d.path().join("f.db"),
        LogOptions {
            max_batch: 10_000,
            queue: 2,
        },
    )
    .unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move {
                log.append_async(vec![ev(Some(&i.to_string()), "u", "i")])
                    .await
                    .unwrap()[0]
                    .seq
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for t in tasks {
        assert!(seen.insert(t.await.unwrap()));
    }
    assert_eq!(seen, (1..=200).collect());
    assert_eq!(log.count().unwrap(), 200);
}

#[test]
fn close_commits_queued_appends_then_refuses() {
    let d = tempfile::tempdir().unwrap();
    let log = FeedbackLog::open(
        &d.path().join("f.db"),
        LogOptions {
            max_batch: 100,
            queue: 4,
        },
    )
    .unwrap();
    let stored = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..6 {
            s.spawn(|| {
                loop {
                    let batch: Vec<_> = (0..50).map(|_| ev(None, "u", "i")).collect();
                    match log.append(batch) {
                        Ok(out) => {
                            assert_eq!(out.len(), 50);
                            stored.fetch_add(50, Ordering::Relaxed);
                        }
                        Err(LogError::Closed) => break,
                        Err(e) => panic!("{e}"),
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(100));
        log.close().unwrap();
    });
    // Every acknowledged event is in the log and nothing else is.
    let n = stored.load(Ordering::Relaxed);
    assert!(n > 0);
    assert_eq!(log.count().unwrap(), n);
    assert_eq!(log.last_seq().unwrap(), n);
    assert!(matches!(
        log.append(vec![ev(None, "u", "i")]),
        Err(LogError::Closed)
    ));
    assert!(matches!(log.append(Vec::new()), Err(LogError::Closed)));
    log.close().unwrap(); // idempotent
    // The file is consistent for the next process.
    let path = log.path().to_owned();
    drop(log);
    let log = FeedbackLog::open(&path, LogOptions::default()).unwrap();
    assert_eq!(log.count().unwrap(), n);
}

#[test]
fn failed_group_stores_nothing_and_the_writer_carries_on() {
    let d = tempfile::tempdir().unwrap();
    let log = open(&d);
    log.append(vec![ev(None, "u", "i")]).unwrap();
    // Make every insert of user `boom` fail inside the writer's transaction.
    let side = Connection::open(log.path()).unwrap();
    side.execute_batch(
        "CREATE TRIGGER boom BEFORE INSERT ON events WHEN NEW.user = 'boom'
         BEGIN SELECT RAISE(ABORT, 'boom rejected'); END;",
    )
    .unwrap();
    let err = log
        .append(vec![ev(Some("ok"), "u", "i"), ev(None, "boom", "i")])
        .unwrap_err();
    assert!(matches!(err, LogError::Sqlite { .. }), "{err}");
    assert!(err.to_string().contains("boom rejected"), "{err}");
    assert!(err.to_string().contains("feedback.db"), "{err}");
    assert_eq!(log.count().unwrap(), 1);

    // Concurrent requests: whoever shares a group with a failing one fails too, and only
    // acknowledged events are stored.
    let ok = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..6 {
            let (log, ok) = (&log, &ok);
            s.spawn(move || {
                for i in 0..30 {
                    let user = if t == 0 && i % 3 == 0 { "boom" } else { "u" };
                    match log.append(vec![ev(None, user, "i"), ev(None, "u", "i")]) {
                        Ok(_) => {
                            ok.fetch_add(2, Ordering::Relaxed);
                        }
                        Err(LogError::Sqlite { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            });
        }
    });
    assert_eq!(log.count().unwrap(), 1 + ok.load(Ordering::Relaxed));
    side.execute_batch("DROP TRIGGER boom;").unwrap();
    // "ok" was rolled back with its group, and no seq was burnt.
    let last = log.last_seq().unwrap();
    assert_eq!(last, log.count().unwrap());
    let out = log.append(vec![ev(Some("ok"), "u", "i")]).unwrap();
    assert_eq!(
        out,
        [Appended {
            seq: last + 1,
            duplicate: false
        }]
    );
}

#[test]
fn garbage_file_is_an_error_not_a_panic() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("feedback.db");
    let garbage: Vec<u8> = (0..16_384u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(&path, &garbage).unwrap();
    let err = FeedbackLog::open(&path, LogOptions::default()).unwrap_err();
    assert!(matches!(err, LogError::Sqlite { .. }), "{err}");
    assert!(err.to_string().contains("feedback.db"), "{err}");
    // The file is left alone.
    assert_eq!(std::fs::read(&path).unwrap(), garbage);

    std::fs::write(&path, b"SQLite format 3\0 but truncated").unwrap();
    assert!(FeedbackLog::open(&path, LogOptions::default()).is_err());
}

#[test]
fn foreign_sqlite_databases_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("other.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE users (name TEXT);")
        .unwrap();
    let err = FeedbackLog::open(&path, LogOptions::default()).unwrap_err();
    assert!(matches!(err, LogError::NotALog { .. }), "{err}");

    let path = d.path().join("future.db");
    drop(FeedbackLog::open(&path, LogOptions::default()).unwrap());
    Connection::open(&path)
        .unwrap()
        .execute_batch("UPDATE meta SET value = '99' WHERE key = 'schema_version';")
        .unwrap();
    let err = FeedbackLog::open(&path, LogOptions::default()).unwrap_err();
    assert!(
        matches!(&err, LogError::UnsupportedVersion { found, .. } if found == "99"),
        "{err}"
    );
}

#[test]
fn missing_directory_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    let err =
        FeedbackLog::open(&d.path().join("nope").join("f.db"), LogOptions::default()).unwrap_err();
    assert!(matches!(err, LogError::Sqlite { .. }), "{err}");
}

#[test]
fn ids_can_be_looked_up() {
    let d = tempfile::tempdir().unwrap();
    let log = open(&d);
    log.append(vec![ev(Some("a"), "u", "i"), ev(None, "u", "j")])
        .unwrap();
    assert!(log.contains_id("a").unwrap());
    assert!(!log.contains_id("b").unwrap());
}
