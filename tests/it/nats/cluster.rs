//! A 3-node NATS cluster with the stream and buckets on 3 replicas: the feedback stream's leader
//! node is SIGKILLed in the middle of an ingestion burst; every acknowledged event is kept (the
//! trainer's next snapshot has each exactly once) and ingestion continues after a pause (the
//! cluster electing a new leader), whose length is printed.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Irgan, NatsServer, click, eventually, nats_available};

/// The server name (`n0`…) of the feedback stream's leader.
fn stream_leader(url: &str) -> Option<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        let client = async_nats::connect(url).await.ok()?;
        let js = async_nats::jetstream::new(client);
        let mut stream = js.get_stream("IRGAN_FEEDBACK").await.ok()?;
        let info = stream.info().await.ok()?;
        info.cluster.as_ref()?.leader.clone()
    })
}

fn burst(b: usize) -> Vec<Value> {
    (0..20)
        .map(|k| click(&format!("c{b}-{k}"), &format!("cu{b}"), &format!("i{k}")))
        .collect()
}

#[test]
fn a_three_node_cluster_loses_no_acknowledged_event_when_a_node_dies() {
    if !nats_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut nodes = NatsServer::cluster(&tmp.path().join("nats"));
    let url = nodes
        .iter()
        .map(NatsServer::url)
        .collect::<Vec<_>>()
        .join(",");
    // A lease that outlasts a leader election (the 3 s of the other tests does not: the
    // trainer would give up and exit, with no supervisor here to restart it).
    let sets = ["nats.replicas=3", "nats.lease_ttl_seconds=30.0"];
    // The cluster elects its JetStream leader after the routes connect: retry the first start.
    let started = Instant::now();
    let trainer = loop {
        let mut t = Irgan::spawn(&tmp.path().join("t"), &url, "train", true, &sets);
        eventually(Duration::from_secs(60), || t.ready() || t.exited());
        if t.ready() {
            break t;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the trainer did not start on the cluster:\n{}",
            t.log_text()
        );
        t.kill();
        std::thread::sleep(Duration::from_secs(1));
    };
    let mut leader = None;
    assert!(
        eventually(Duration::from_secs(20), || {
            leader = stream_leader(&nodes[0].url());
            leader.is_some()
        }),
        "no leader for the feedback stream"
    );
    let leader = leader.unwrap();
    let victim: usize = leader.trim_start_matches('n').parse().expect("n0..n2");
    eprintln!("the feedback stream's leader is {leader}: it goes down mid-burst");
    let replica = Irgan::start(
        &tmp.path().join("r"),
        &url,
        "serve",
        false,
        &sets,
        Duration::from_secs(60),
    );

    let mut acked = BTreeSet::new();
    let mut longest_pause = Duration::ZERO;
    let mut last_ack = Instant::now();
    for b in 0..30 {
        if b == 10 {
            nodes[victim].kill();
        }
        // A failed batch is retried with the same ids (idempotent) until acknowledged.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = replica.post(&burst(b));
            if let Ok(r) = &r
                && r.status == 200
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "batch {b} never acknowledged: {r:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        longest_pause = longest_pause.max(last_ack.elapsed());
        last_ack = Instant::now();
        acked.insert(b);
    }
    eprintln!("longest pause in ingestion around the node's death: {longest_pause:?}");

    let last = replica.post(&burst(0)).unwrap().json()["last_seq"]
        .as_u64()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(60), || {
            super::client::get(trainer.port, "/v1/model")
                .ok()
                .and_then(|r| r.json()["game"]["applied_seq"].as_u64())
                >= Some(last)
        }),
        "{}",
        trainer.log_text()
    );
    let version = trainer.publish();
    let pairs = trainer.checkpoint(version);
    for b in &acked {
        for k in 0..20 {
            let key = (format!("cu{b}"), format!("i{k}"));
            assert_eq!(pairs.get(&key), Some(&1.0), "{key:?} kept, once");
        }
    }
}
