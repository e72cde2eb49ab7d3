//! SIGKILL of the active trainer during ingestion: the standby takes the lease within its TTL,
//! continues from the acknowledged position (the live snapshot's checkpoint, then the stream),
//! and its next snapshot covers every acknowledged event, none twice.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Irgan, NatsServer, click, eventually, nats_available};

/// Events `f{b}-{k}` for users `fu{b}` (one click on each pair).
fn burst(b: usize) -> Vec<Value> {
    (0..20)
        .map(|k| click(&format!("f{b}-{k}"), &format!("fu{b}"), &format!("i{k}")))
        .collect()
}

#[test]
fn a_standby_trainer_takes_over_and_loses_nothing() {
    if !nats_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(&tmp.path().join("nats"));
    let url = nats.url();
    let limit = Duration::from_secs(60);
    let mut active = Irgan::start(&tmp.path().join("t1"), &url, "train", true, &[], limit);
    let mut standby = Irgan::spawn(&tmp.path().join("t2"), &url, "train", false, &[]);
    let replica = Irgan::start(&tmp.path().join("r"), &url, "serve", false, &[], limit);
    // The standby waits for the lease: it does not serve.
    assert!(
        eventually(Duration::from_secs(10), || standby
            .log_text()
            .contains("another trainer holds the lease")),
        "{}",
        standby.log_text()
    );
    assert!(!standby.ready());

    let mut acked = BTreeSet::new();
    let mut killed_at = None;
    let mut before = 0;
    for b in 0..20 {
        if b == 10 {
            active.kill();
            killed_at = Some(Instant::now());
        }
        if b == 12 {
            // Whatever the active trainer published last: the standby numbers after it.
            before = replica.version();
        }
        let r = replica.post(&burst(b)).unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        acked.insert(b);
    }
    let killed_at = killed_at.unwrap();
    // The lease lapses after its TTL (3 s) and the standby takes it, then loads and serves.
    standby.wait_ready(Duration::from_secs(60));
    let took = killed_at.elapsed();
    eprintln!("the standby serves {took:?} after the SIGKILL");
    assert!(
        standby.log_text().contains("took the trainer lease"),
        "{}",
        standby.log_text()
    );
    assert!(took <= Duration::from_secs(10), "takeover took {took:?}");

    let last = replica.post(&burst(0)).unwrap().json()["last_seq"]
        .as_u64()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), || {
            let m = super::client::get(standby.port, "/v1/model")
                .unwrap()
                .json();
            m["game"]["applied_seq"].as_u64() >= Some(last)
        }),
        "{}",
        standby.log_text()
    );
    let version = standby.publish();
    assert!(version > before, "version {version} after {before}");
    let pairs = standby.checkpoint(version);
    for b in &acked {
        for k in 0..20 {
            let key = (format!("fu{b}"), format!("i{k}"));
            assert_eq!(
                pairs.get(&key),
                Some(&1.0),
                "{key:?} trained on exactly once"
            );
        }
    }
    // The replica follows the new trainer's snapshots.
    assert!(eventually(Duration::from_secs(10), || replica.version() >= version));
}

/// A trainer stopped cleanly (SIGTERM) gives its lease up after its final snapshot: with a
/// 60 s TTL, the standby serving within 30 s shows it did not wait for the lease to lapse.
#[test]
fn a_clean_stop_hands_the_lease_over_at_once() {
    if !nats_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(&tmp.path().join("nats"));
    let url = nats.url();
    let sets = ["nats.lease_ttl_seconds=60.0"];
    let limit = Duration::from_secs(60);
    let mut active = Irgan::start(&tmp.path().join("t1"), &url, "train", true, &sets, limit);
    let mut standby = Irgan::spawn(&tmp.path().join("t2"), &url, "train", false, &sets);
    assert!(
        eventually(Duration::from_secs(10), || standby
            .log_text()
            .contains("another trainer holds the lease")),
        "{}",
        standby.log_text()
    );
    active.terminate();
    assert!(
        active.log_text().contains("released the trainer lease"),
        "{}",
        active.log_text()
    );
    standby.wait_ready(Duration::from_secs(30));
}
