//! The bounded query pool: CPU-heavy queries (anything but a cached lookup) run here, on a
//! fixed set of threads, never on the async workers that also serve `/healthz` and feedback.
//!
//! Requests wait in one bounded queue; a full queue refuses at once ([`PoolError::Overloaded`],
//! 503 + `Retry-After` / `RESOURCE_EXHAUSTED`) instead of letting latency grow without bound.
//! A worker that takes a scoring request ([`Ask`]) also takes up to `batch − 1` more queued
//! ones on the same snapshot and answers them together ([`batch::answer`]: one GEMM per model
//! for all their users).

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};
use prometheus::{IntCounter, IntGauge};
use tokio::sync::oneshot;

use crate::online::batch::{self, Ask};
use crate::online::live::Live;
use crate::online::metrics::Metrics;
use crate::online::query::Scored;
use crate::online::settings::ServerConfig;

/// Why the pool did not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The queue is full: retry shortly.
    #[error("the query queue is full")]
    Overloaded,
    /// The job panicked or the pool is shutting down.
    #[error("the query failed")]
    Failed,
}

/// The pool's sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Worker threads (0 = one per core).
    pub threads: usize,
    /// Requests that may wait; more are refused.
    pub queue: usize,
    /// Scoring requests answered together (at most).
    pub batch: usize,
}

/// A unit of work.
enum Job {
    /// A scoring request, batched with others on the same snapshot.
    Ask {
        live: Arc<Live>,
        ask: Ask,
        reply: oneshot::Sender<Vec<Scored>>,
    },
    /// Any other query.
    Task(Box<dyn FnOnce() + Send>),
}

struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    capacity: usize,
    batch: usize,
    depth: IntGauge,
    rejected: IntCounter,
}

/// The query pool (see the module doc). Dropping it lets the workers finish the queue and stop.
pub struct QueryPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for QueryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryPool")
            .field("threads", &self.workers.len())
            .field("capacity", &self.shared.capacity)
            .field("batch", &self.shared.batch)
            .finish()
    }
}

impl QueryPool {
    /// Starts the workers. `depth` and `rejected` are the queue-depth gauge and the refusal
    /// counter to keep up to date.
    pub fn start(cfg: PoolConfig, depth: IntGauge, rejected: IntCounter) -> std::io::Result<Self> {
        let threads = match cfg.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                closed: false,
            }),
            ready: Condvar::new(),
            capacity: cfg.queue.max(1),
            batch: cfg.batch.max(1),
            depth,
            rejected,
        });
        let workers = (0..threads)
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("irgan-query-{i}"))
                    .spawn(move || work(&shared))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Self { shared, workers })
    }

    /// Answers `ask` on `live` (batched with other requests on the same snapshot).
    pub async fn ask(&self, live: Arc<Live>, ask: Ask) -> Result<Vec<Scored>, PoolError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Job::Ask { live, ask, reply })?;
        rx.await.map_err(|_| PoolError::Failed)
    }

    /// Runs `f` on the pool and returns its result.
    pub async fn run<T, F>(&self, f: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        self.submit(Job::Task(Box::new(move || {
            // The caller may have given up (timeout): then the result is dropped.
            let _ = reply.send(f());
        })))?;
        rx.await.map_err(|_| PoolError::Failed)
    }

    fn submit(&self, job: Job) -> Result<(), PoolError> {
        let s = &self.shared;
        let mut q = s.queue.lock();
        if q.closed || q.jobs.len() >= s.capacity {
            drop(q);
            s.rejected.inc();
            return Err(PoolError::Overloaded);
        }
        q.jobs.push_back(job);
        s.depth.set(q.jobs.len() as i64);
        drop(q);
        s.ready.notify_one();
        Ok(())
    }
}

/// The service's pool, sized by `server.query_threads`, `server.query_queue` and
/// `server.query_batch`, its metrics (`irgan_query_queue_depth`, `irgan_query_rejected_total`)
/// registered in `metrics`.
pub fn start(server: &ServerConfig, metrics: &Metrics) -> std::io::Result<QueryPool> {
    let depth = IntGauge::new(
        "irgan_query_queue_depth",
        "Queries waiting for the query pool",
    )
    .map_err(std::io::Error::other)?;
    let rejected = IntCounter::new(
        "irgan_query_rejected_total",
        "Queries refused because the query pool's queue was full",
    )
    .map_err(std::io::Error::other)?;
    metrics
        .register(Box::new(depth.clone()))
        .map_err(std::io::Error::other)?;
    metrics
        .register(Box::new(rejected.clone()))
        .map_err(std::io::Error::other)?;
    let cfg = PoolConfig {
        threads: server.query_threads,
        queue: server.query_queue,
        batch: server.query_batch,
    };
    QueryPool::start(cfg, depth, rejected)
}

impl Drop for QueryPool {
    fn drop(&mut self) {
        self.shared.queue.lock().closed = true;
        self.shared.ready.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// A worker: takes the oldest job, and with a scoring request every other queued one on the
/// same snapshot (up to the batch size), until the pool closes and the queue is empty.
fn work(s: &Shared) {
    loop {
        let (first, mut more) = {
            let mut q = s.queue.lock();
            while q.jobs.is_empty() && !q.closed {
                s.ready.wait(&mut q);
            }
            let Some(first) = q.jobs.pop_front() else {
                return; // closed and drained
            };
            let mut more = Vec::new();
            if let Job::Ask { live, .. } = &first {
                let mut i = 0;
                while i < q.jobs.len() && more.len() + 1 < s.batch {
                    let same =
                        matches!(&q.jobs[i], Job::Ask { live: l, .. } if Arc::ptr_eq(l, live));
                    match same.then(|| q.jobs.remove(i)).flatten() {
                        Some(job) => more.push(job),
                        None => i += 1,
                    }
                }
            }
            s.depth.set(q.jobs.len() as i64);
            (first, more)
        };
        match first {
            Job::Task(f) => {
                // A panicking query drops its reply (the caller gets `Failed`); the worker lives.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            }
            Job::Ask { live, ask, reply } => {
                more.insert(
                    0,
                    Job::Ask {
                        live: live.clone(),
                        ask,
                        reply,
                    },
                );
                answer_batch(&live, more);
            }
        }
    }
}

/// Answers the scoring requests of one snapshot together; requests whose caller has gone
/// (timed out) are skipped.
fn answer_batch(live: &Live, jobs: Vec<Job>) {
    let (asks, replies): (Vec<Ask>, Vec<_>) = jobs
        .into_iter()
        .filter_map(|j| match j {
            Job::Ask { ask, reply, .. } if !reply.is_closed() => Some((ask, reply)),
            _ => None,
        })
        .unzip();
    if asks.is_empty() {
        return;
    }
    let answers =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| batch::answer(live, &asks)));
    if let Ok(answers) = answers {
        for (reply, a) in replies.into_iter().zip(answers) {
            let _ = reply.send(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(threads: usize, queue: usize) -> QueryPool {
        QueryPool::start(
            PoolConfig {
                threads,
                queue,
                batch: 8,
            },
            IntGauge::new("depth", "d").unwrap(),
            IntCounter::new("rejected", "r").unwrap(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn runs_tasks_and_survives_a_panic() {
        let p = pool(2, 4);
        assert_eq!(p.run(|| 6 * 7).await, Ok(42));
        let boom: Result<(), _> = p.run(|| panic!("boom")).await;
        assert_eq!(boom, Err(PoolError::Failed));
        assert_eq!(p.run(|| 1).await, Ok(1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_and_counts() {
        let p = Arc::new(pool(1, 2));
        // Hold the single worker until released, then fill the queue.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let q = p.clone();
        let blocker = tokio::spawn(async move {
            q.run(move || {
                let _ = started_tx.send(());
                let _ = rx.recv();
            })
            .await
        });
        tokio::task::spawn_blocking(move || started_rx.recv())
            .await
            .unwrap()
            .unwrap();
        let spawn = |v: i32| {
            let q = p.clone();
            tokio::spawn(async move { q.run(move || v).await })
        };
        let (ta, tb) = (spawn(1), spawn(2));
        while p.shared.queue.lock().jobs.len() < 2 {
            tokio::task::yield_now().await;
        }
        assert_eq!(p.run(|| 3).await, Err(PoolError::Overloaded));
        assert_eq!(p.shared.rejected.get(), 1);
        assert_eq!(p.shared.depth.get(), 2);
        tx.send(()).unwrap();
        assert_eq!(blocker.await.unwrap(), Ok(()));
        assert_eq!(ta.await.unwrap(), Ok(1));
        assert_eq!(tb.await.unwrap(), Ok(2));
    }
}
