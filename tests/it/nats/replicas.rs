//! Two serving replicas and one trainer on one nats-server: events through either replica are
//! trained on exactly once (a repeat through the other is a duplicate, within JetStream's
//! window or, skipped by the trainer, beyond it); both replicas serve a new version within
//! 2 s of its publish; a rollback on the trainer moves both; a replica started afterwards is
//! ready from the live snapshot in < 5 s.

use std::time::{Duration, Instant};

use super::{Irgan, Trio, click, eventually, nats_available};

#[test]
fn replicas_share_one_log_and_follow_the_live_pointer() {
    if !nats_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // A 1 s duplicate window, so a repeat after it exercises the trainer's own idempotency.
    let sets = ["nats.duplicate_window_seconds=1.0"];
    let Trio {
        nats,
        trainer,
        a,
        b,
    } = Trio::start(tmp.path(), &sets, true);
    let url = nats.url();
    assert!(
        trainer.version() >= 1,
        "the trainer published its first pair"
    );

    // Events through either replica; a repeat through the other one is a duplicate.
    let through_a: Vec<_> = (0..10)
        .map(|k| click(&format!("a{k}"), "nu-a", &format!("i{k}")))
        .collect();
    let through_b: Vec<_> = (0..10)
        .map(|k| click(&format!("b{k}"), "nu-b", &format!("i{k}")))
        .collect();
    let r = a.post(&through_a).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["accepted"], 10, "{r:?}");
    let r = b.post(&through_b).unwrap();
    assert_eq!(r.json()["accepted"], 10, "{r:?}");
    let r = b.post(&through_a[..3]).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        (
            r.json()["accepted"].as_u64(),
            r.json()["duplicates"].as_u64()
        ),
        (Some(0), Some(3)),
        "a repeat through the other replica is a duplicate: {r:?}"
    );
    // Past the duplicate window JetStream stores a repeat again; the trainer skips it.
    let late = [click("late", "nu-late", "i1")];
    assert_eq!(a.post(&late).unwrap().json()["accepted"], 1);
    std::thread::sleep(Duration::from_millis(1500));
    let r = b.post(&late).unwrap();
    assert_eq!(r.status, 200, "{r:?}");

    // Publish once every event is folded in; the checkpoint counts each id once.
    let last = r.json()["last_seq"].as_u64().unwrap();
    assert!(
        eventually(Duration::from_secs(30), || {
            let m = super::client::get(trainer.port, "/v1/model")
                .unwrap()
                .json();
            m["game"]["applied_seq"].as_u64() >= Some(last)
        }),
        "the trainer folds the events:\n{}",
        trainer.log_text()
    );
    let published_at = Instant::now();
    let version = trainer.publish();
    let pairs = trainer.checkpoint(version);
    for k in 0..10 {
        for user in ["nu-a", "nu-b"] {
            let w = pairs.get(&(user.to_string(), format!("i{k}")));
            assert_eq!(w, Some(&1.0), "{user} i{k} trained on once");
        }
    }
    assert_eq!(
        pairs.get(&("nu-late".to_string(), "i1".to_string())),
        Some(&1.0),
        "a repeat after the duplicate window is still trained on once"
    );

    // Both replicas serve the new version within 2 s of its publish.
    let swapped = eventually(Duration::from_secs(2), || {
        a.version() >= version && b.version() >= version
    });
    let took = published_at.elapsed();
    eprintln!("replicas serve version {version} {took:?} after the publish");
    assert!(
        swapped,
        "replicas at {} and {}, not {version}:\n{}\n{}",
        a.version(),
        b.version(),
        a.log_text(),
        b.log_text()
    );
    // A replica sees the new user the trainer learnt from the other replica's feedback.
    let r = super::client::get(a.port, "/v1/users/nu-b/recommendations?k=3").unwrap();
    assert_eq!(r.status, 200, "{r:?}");

    // Roll back on the trainer (paused, so it publishes nothing newer meanwhile): the pointer
    // moves to a kept older version and both replicas follow it.
    let r = super::client::post(trainer.port, "/v1/training/pause", "{}").unwrap();
    assert!(r.status < 300, "{r:?}");
    let older = version - 1;
    let path = format!("/v1/snapshots/{older}/activate");
    let r = super::client::post(trainer.port, &path, "{}").unwrap();
    assert_eq!(r.status, 200, "{r:?}\n{}", trainer.log_text());
    assert!(
        eventually(Duration::from_secs(10), || a.version() == older
            && b.version() == older),
        "replicas at {} and {} after rolling back to {older}",
        a.version(),
        b.version()
    );

    // Training commands on a replica answer a clear error.
    let r = super::client::post(a.port, "/v1/snapshots", "{}").unwrap();
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(r.json()["code"], "no_trainer", "{r:?}");

    // A replica started after the fact is ready from the live snapshot, without the trainer.
    let mut trainer = trainer;
    trainer.kill();
    let started = Instant::now();
    let mut c = Irgan::spawn(&tmp.path().join("c"), &url, "serve", false, &sets);
    c.wait_ready(Duration::from_secs(60));
    let ready_in = started.elapsed();
    eprintln!("a late replica was ready in {ready_in:?}");
    assert_eq!(
        c.version(),
        older,
        "the late replica serves the live (rolled back) version"
    );
    assert!(ready_in < Duration::from_secs(5), "ready in {ready_in:?}");
}
