//! Request and feedback rates over the last half hour: a background task reads the Prometheus
//! counters every [`EVERY`] into a ring of [`SAMPLES`] cumulative samples, and
//! `GET /v1/traffic` turns consecutive samples into rates and latencies. Nothing runs on a
//! request's path, and memory is bounded.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use prometheus::core::Collector;
use serde::Serialize;
use utoipa::ToSchema;

use crate::online::metrics::Metrics;
use crate::store::Snapshot;

/// How often the counters are read.
pub const EVERY: Duration = Duration::from_secs(5);
/// Samples kept (30 minutes at [`EVERY`]).
pub const SAMPLES: usize = 360;

/// Cumulative counters at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
struct Sample {
    unix_ms: u64,
    requests: u64,
    server_errors: u64,
    grpc_requests: u64,
    feedback: u64,
    latency_sum: f64,
    latency_count: u64,
    /// Cumulative counts per latency bucket, summed over routes, with the bucket bounds.
    buckets: Vec<(f64, u64)>,
}

/// Rates between two consecutive samples.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TrafficPoint {
    /// End of the interval (ms since the Unix epoch).
    pub unix_ms: u64,
    /// REST requests per second.
    pub requests_per_second: f64,
    /// REST answers with a 5xx status per second.
    pub server_errors_per_second: f64,
    /// gRPC calls per second.
    pub grpc_per_second: f64,
    /// Feedback events accepted per second.
    pub feedback_per_second: f64,
    /// Mean REST latency in the interval (ms; null without requests).
    pub latency_mean_ms: Option<f64>,
    /// Upper bound of the latency bucket holding the 95th percentile (ms; null without
    /// requests, or when it is beyond the largest bucket).
    pub latency_p95_ms: Option<f64>,
}

/// The ring of samples.
#[derive(Debug, Default)]
pub struct Traffic {
    samples: Mutex<VecDeque<Sample>>,
}

impl Traffic {
    /// Reads the counters now and keeps the sample (the oldest goes beyond [`SAMPLES`]).
    pub fn sample(&self, m: &Metrics) {
        let mut s = Sample {
            unix_ms: Snapshot::now_unix_ms(),
            feedback: m.feedback_accepted.get(),
            ..Sample::default()
        };
        for family in m.requests.collect() {
            for metric in family.get_metric() {
                let n = metric.get_counter().value() as u64;
                s.requests += n;
                let status = metric.get_label().iter().find(|l| l.name() == "status");
                if status.is_some_and(|l| l.value().starts_with('5')) {
                    s.server_errors += n;
                }
            }
        }
        for family in m.grpc_requests.collect() {
            for metric in family.get_metric() {
                s.grpc_requests += metric.get_counter().value() as u64;
            }
        }
        for family in m.latency.collect() {
            for metric in family.get_metric() {
                let h = metric.get_histogram();
                s.latency_sum += h.sample_sum();
                s.latency_count += h.sample_count();
                for (i, b) in h.get_bucket().iter().enumerate() {
                    match s.buckets.get_mut(i) {
                        Some(slot) => slot.1 += b.cumulative_count(),
                        None => s.buckets.push((b.upper_bound(), b.cumulative_count())),
                    }
                }
            }
        }
        let mut ring = self.samples.lock();
        while ring.len() >= SAMPLES {
            ring.pop_front();
        }
        ring.push_back(s);
    }

    /// Rates between consecutive samples, oldest first.
    pub fn points(&self) -> Vec<TrafficPoint> {
        let ring = self.samples.lock();
        ring.iter()
            .zip(ring.iter().skip(1))
            .filter_map(|(a, b)| rates(a, b))
            .collect()
    }
}

/// The rates from `a` to `b`, or `None` when no time passed.
fn rates(a: &Sample, b: &Sample) -> Option<TrafficPoint> {
    let seconds = b.unix_ms.saturating_sub(a.unix_ms) as f64 / 1e3;
    if seconds <= 0.0 {
        return None;
    }
    let per_second = |x: u64, y: u64| y.saturating_sub(x) as f64 / seconds;
    let count = b.latency_count.saturating_sub(a.latency_count);
    let mean = (count > 0).then(|| (b.latency_sum - a.latency_sum).max(0.0) / count as f64 * 1e3);
    // The first bucket whose count in the interval reaches 95 % of the requests.
    let p95 = (count > 0)
        .then(|| {
            let target = (count as f64 * 0.95).ceil() as u64;
            b.buckets.iter().enumerate().find_map(|(i, &(bound, n))| {
                let before = a.buckets.get(i).map_or(0, |p| p.1);
                (n.saturating_sub(before) >= target).then_some(bound * 1e3)
            })
        })
        .flatten();
    Some(TrafficPoint {
        unix_ms: b.unix_ms,
        requests_per_second: per_second(a.requests, b.requests),
        server_errors_per_second: per_second(a.server_errors, b.server_errors),
        grpc_per_second: per_second(a.grpc_requests, b.grpc_requests),
        feedback_per_second: per_second(a.feedback, b.feedback),
        latency_mean_ms: mean.filter(|v| v.is_finite()),
        latency_p95_ms: p95.filter(|v| v.is_finite()),
    })
}

/// Samples `metrics` into `traffic` every [`EVERY`] until the task is aborted.
pub fn spawn_sampler(traffic: Arc<Traffic>, metrics: Arc<Metrics>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            traffic.sample(&metrics);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_consecutive_samples() {
        let m = Metrics::new().expect("metrics");
        let t = Traffic::default();
        t.sample(&m);
        assert!(t.points().is_empty());
        for (status, ms) in [("200", 0.0003), ("200", 0.0003), ("503", 0.02)] {
            m.requests.with_label_values(&["/x", "GET", status]).inc();
            m.latency.with_label_values(&["/x", "GET"]).observe(ms);
        }
        m.feedback_accepted.inc_by(4);
        std::thread::sleep(Duration::from_millis(20));
        t.sample(&m);
        let p = t.points();
        assert_eq!(p.len(), 1);
        let p = &p[0];
        let seconds = 3.0 / p.requests_per_second;
        assert!(seconds > 0.0 && seconds < 10.0, "{p:?}");
        assert!((p.server_errors_per_second * seconds - 1.0).abs() < 1e-9);
        assert!((p.feedback_per_second * seconds - 4.0).abs() < 1e-9);
        assert_eq!(p.grpc_per_second, 0.0);
        let mean = p.latency_mean_ms.expect("mean");
        assert!((mean - (0.3 + 0.3 + 20.0) / 3.0).abs() < 1e-6, "{mean}");
        assert_eq!(p.latency_p95_ms, Some(25.0));
    }
}
