//! One trainer thread for any online task: a bounded command channel, pause and resume, publish
//! now, roll back, shutdown with a final snapshot, a status the handlers read, and one clock.
//!
//! CPU work never runs on an async worker: the task's state lives on the thread, handlers talk to
//! it through [`LoopHandle`], and the task reads new data from its durable log by position, so a
//! busy trainer never loses acknowledged feedback. What a task does in each phase is its own
//! ([`OnlineTask`]); when it does it is this loop's.
//!
//! The thread cannot die silently: every call into the task runs under `catch_unwind`; a panic
//! (or an error the task calls a failure) is logged, counted (`irgan_trainer_restarts_total`)
//! and the task rebuilds itself from the live snapshot ([`OnlineTask::recover`]). A recovery
//! that fails again is retried with a bounded back-off while the thread keeps answering
//! commands; queries go on serving the live snapshot throughout.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prometheus::{IntCounter, IntGauge};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::online::metrics::Metrics;

/// Commands a full queue may hold before callers get [`LoopError::Busy`].
const QUEUE: usize = 64;

/// First wait before retrying a recovery that failed (or after failures in quick succession).
const BACKOFF_START: Duration = Duration::from_millis(100);

/// Longest wait between recovery attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A failure this long after the previous one starts the back-off afresh.
const CALM: Duration = Duration::from_secs(120);

/// Why the loop could not take a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LoopError {
    /// The command queue is full (back-pressure).
    #[error("the trainer is busy; retry shortly")]
    Busy,
    /// The trainer thread has stopped.
    #[error("the trainer has stopped")]
    Stopped,
    /// This task has no such command.
    #[error("this trainer cannot do that")]
    Unsupported,
    /// The trainer failed and is rebuilding itself from the live snapshot.
    #[error("the trainer is restarting after a failure; retry shortly")]
    Restarting,
}

/// Whether the trainer is alive, and its failures (`GET /v1/model` shows them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Health {
    /// The task is running (false while a failed recovery waits to be retried, or after
    /// the thread has stopped).
    pub up: bool,
    /// Restarts (recoveries from the live snapshot) since start.
    pub restarts: u64,
    /// The last failure (panic message or error), if any.
    pub last_failure: Option<String>,
    /// When the last failure happened (unix ms).
    pub last_failure_unix_ms: Option<u64>,
}

/// The loop's own metrics for one task (`task` label): restarts, up and busy.
#[derive(Debug, Clone)]
pub struct LoopMetrics {
    restarts: IntCounter,
    up: IntGauge,
    busy: IntGauge,
}

impl LoopMetrics {
    /// The series of `task` (e.g. `"recommendation"`, `"search"`) in `metrics`.
    pub fn new(metrics: &Metrics, task: &str) -> Self {
        Self {
            restarts: metrics.trainer_restarts.with_label_values(&[task]),
            up: metrics.trainer_up.with_label_values(&[task]),
            busy: metrics.trainer_busy.with_label_values(&[task]),
        }
    }
}

/// The loop's one clock: steps and the time since the last publish (or refusal, as the task
/// decides by calling [`Clock::reset`]).
#[derive(Debug, Clone)]
pub struct Clock {
    steps: u64,
    steps_since_publish: u64,
    last_publish: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    fn new() -> Self {
        Self {
            steps: 0,
            steps_since_publish: 0,
            last_publish: Instant::now(),
        }
    }

    fn tick(&mut self) {
        self.steps += 1;
        self.steps_since_publish += 1;
    }

    /// Starts a new publish period (after a publish, a refused candidate or a roll back).
    pub fn reset(&mut self) {
        self.steps_since_publish = 0;
        self.last_publish = Instant::now();
    }

    /// Trainer steps since start.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Trainer steps since the last [`Clock::reset`].
    pub fn steps_since_publish(&self) -> u64 {
        self.steps_since_publish
    }

    /// Seconds since the last [`Clock::reset`].
    pub fn seconds_since_publish(&self) -> f64 {
        self.last_publish.elapsed().as_secs_f64()
    }
}

/// One online learning task (recommendation, search) as the loop drives it.
pub trait OnlineTask: Send + 'static {
    /// What a successful publish returns.
    type Published: Send + 'static;
    /// The task's error; the loop's own failures convert into it.
    type Error: From<LoopError> + Send + 'static;
    /// What the handlers see of the trainer.
    type Status: Clone + Default + Send + 'static;

    /// Name of the trainer thread.
    const THREAD_NAME: &'static str;
    /// How long the loop waits for a command when there is nothing to train.
    const IDLE_WAIT: Duration;

    /// Reads data that arrived since the last call (from the task's durable log) into the
    /// training state. Failures are logged: the next call retries.
    fn absorb_new_data(&mut self);
    /// Whether there is something to train right now.
    fn can_step(&self) -> bool;
    /// One training step.
    fn step(&mut self);
    /// Whether a scheduled publish is due after a step.
    fn publish_due(&self, clock: &Clock) -> bool;
    /// Gates the candidate and publishes it on schedule.
    fn publish(&mut self, clock: &mut Clock) -> Result<Self::Published, Self::Error>;
    /// Gates the candidate and publishes it because a caller asked to.
    fn publish_now(&mut self, clock: &mut Clock) -> Result<Self::Published, Self::Error>;
    /// Makes an earlier snapshot live again; the default has no snapshots to go back to.
    fn activate(&mut self, version: u64, clock: &mut Clock) -> Result<u64, Self::Error> {
        let _ = (version, clock);
        Err(LoopError::Unsupported.into())
    }
    /// Takes in the last data and publishes it if the gate accepts; the live version after.
    fn finish(&mut self, clock: &mut Clock) -> Option<u64>;
    /// The status to show.
    fn status(&self, clock: &Clock, paused: bool) -> Self::Status;
    /// Rebuilds the training state from the live snapshot after a panic or a failure: the
    /// game restarts from the live pair and derived state is reset. Data comes back from the
    /// durable log by position, so nothing acknowledged is lost.
    fn recover(&mut self) -> Result<(), String>;
    /// Whether an error a command returned is a failure of the trainer itself (restart)
    /// rather than an answer such as a refusal; the default: never.
    fn failure(e: &Self::Error) -> Option<String> {
        let _ = e;
        None
    }
}

/// The text of a panic payload.
fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".into()
    }
}

fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

type Reply<T> = oneshot::Sender<T>;

enum Command<T: OnlineTask> {
    Publish(Reply<Result<T::Published, T::Error>>),
    Activate(u64, Reply<Result<u64, T::Error>>),
    Pause,
    Resume,
    Shutdown(Reply<Option<u64>>),
}

/// The handlers' side of a trainer loop.
pub struct LoopHandle<T: OnlineTask> {
    tx: SyncSender<Command<T>>,
    status: Arc<Mutex<T::Status>>,
    health: Arc<Mutex<Health>>,
}

impl<T: OnlineTask> Clone for LoopHandle<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            status: self.status.clone(),
            health: self.health.clone(),
        }
    }
}

impl<T: OnlineTask> LoopHandle<T> {
    /// The trainer's latest status.
    pub fn status(&self) -> T::Status {
        self.status.lock().clone()
    }

    /// Whether the trainer is alive, and its restarts.
    pub fn health(&self) -> Health {
        self.health.lock().clone()
    }

    fn send(&self, c: Command<T>) -> Result<(), LoopError> {
        self.tx.try_send(c).map_err(|e| match e {
            TrySendError::Full(_) => LoopError::Busy,
            TrySendError::Disconnected(_) => LoopError::Stopped,
        })
    }

    /// Gates the current candidate and publishes it if it passes.
    pub async fn publish(&self) -> Result<T::Published, T::Error> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Publish(tx))?;
        rx.await.map_err(|_| LoopError::Stopped)?
    }

    /// Makes an earlier snapshot live again (roll back); training continues from it.
    pub async fn activate(&self, version: u64) -> Result<u64, T::Error> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Activate(version, tx))?;
        rx.await.map_err(|_| LoopError::Stopped)?
    }

    /// Pauses training (queries and feedback continue).
    pub fn pause(&self) -> Result<(), LoopError> {
        self.send(Command::Pause)
    }

    /// Resumes training.
    pub fn resume(&self) -> Result<(), LoopError> {
        self.send(Command::Resume)
    }

    /// Takes in the last data, publishes a final snapshot if the gate accepts it, and stops the
    /// thread. Returns the live version.
    pub async fn shutdown(&self) -> Result<Option<u64>, LoopError> {
        let (tx, rx) = oneshot::channel();
        // Shutdown must get through even when the queue is full.
        self.tx
            .send(Command::Shutdown(tx))
            .map_err(|_| LoopError::Stopped)?;
        rx.await.map_err(|_| LoopError::Stopped)
    }
}

/// Starts `task` on its own thread; the handle is the only way to talk to it.
pub fn spawn<T: OnlineTask>(
    task: T,
    metrics: LoopMetrics,
) -> std::io::Result<(LoopHandle<T>, JoinHandle<()>)> {
    let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
    let health = Arc::new(Mutex::new(Health {
        up: true,
        ..Health::default()
    }));
    metrics.up.set(1);
    let mut driver = Driver {
        clock: Clock::new(),
        paused: false,
        status: Arc::default(),
        health: health.clone(),
        metrics,
        task,
        down: None,
        streak: 0,
        last_failure: None,
    };
    driver.publish_status(false);
    let handle = LoopHandle {
        tx,
        status: driver.status.clone(),
        health,
    };
    let thread = std::thread::Builder::new()
        .name(T::THREAD_NAME.into())
        .spawn(move || driver.run(rx))?;
    Ok((handle, thread))
}

/// The thread's state: the task and what the loop keeps about it.
struct Driver<T: OnlineTask> {
    task: T,
    clock: Clock,
    paused: bool,
    status: Arc<Mutex<T::Status>>,
    health: Arc<Mutex<Health>>,
    metrics: LoopMetrics,
    /// Set while the task is broken: when to try recovering next.
    down: Option<Instant>,
    /// Failures in quick succession (decides the back-off).
    streak: u32,
    last_failure: Option<Instant>,
}

/// What a turn of the loop decided.
enum Flow {
    Continue,
    Stop,
}

impl<T: OnlineTask> Driver<T> {
    fn run(mut self, rx: Receiver<Command<T>>) {
        loop {
            let flow = if let Some(retry_at) = self.down {
                self.turn_down(&rx, retry_at)
            } else {
                // A panic outside a command (absorbing data, stepping, a scheduled publish)
                // lands here; one inside a command is caught where it can still be answered.
                match catch_unwind(AssertUnwindSafe(|| self.turn(&rx))) {
                    Ok(flow) => flow,
                    Err(p) => {
                        self.fail(format!("panic: {}", panic_message(p.as_ref())));
                        Flow::Continue
                    }
                }
            };
            if let Flow::Stop = flow {
                break;
            }
        }
        self.health.lock().up = false;
        self.metrics.up.set(0);
        self.metrics.busy.set(0);
    }

    /// One turn of a healthy task: new data, a command or a step (and a scheduled publish).
    fn turn(&mut self, rx: &Receiver<Command<T>>) -> Flow {
        self.task.absorb_new_data();
        let active = !self.paused && self.task.can_step();
        // Wait for a command only when there is nothing to train.
        let cmd = if active {
            rx.try_recv().map_err(|e| match e {
                TryRecvError::Empty => RecvTimeoutError::Timeout,
                TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            })
        } else {
            rx.recv_timeout(T::IDLE_WAIT)
        };
        match cmd {
            Ok(c) => return self.handle(c),
            Err(RecvTimeoutError::Disconnected) => return Flow::Stop,
            Err(RecvTimeoutError::Timeout) => {}
        }
        if active {
            self.task.step();
            self.clock.tick();
            if self.task.publish_due(&self.clock) {
                // The task logs and counts its refusals; the loop carries on either way.
                if let Err(e) = self.task.publish(&mut self.clock)
                    && let Some(failure) = T::failure(&e)
                {
                    self.fail(failure);
                }
            }
        }
        self.publish_status(active);
        Flow::Continue
    }

    /// One turn of a broken task: answer commands until the next recovery attempt.
    fn turn_down(&mut self, rx: &Receiver<Command<T>>, retry_at: Instant) -> Flow {
        let wait = retry_at.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(c) => self.handle(c),
            Err(RecvTimeoutError::Disconnected) => Flow::Stop,
            Err(RecvTimeoutError::Timeout) => {
                self.recover();
                Flow::Continue
            }
        }
    }

    /// Runs `f` on the task; a panic becomes a failure (logged, counted, recovered from) and
    /// `None`.
    fn guarded<R>(&mut self, f: impl FnOnce(&mut T, &mut Clock) -> R) -> Option<R> {
        let (task, clock) = (&mut self.task, &mut self.clock);
        match catch_unwind(AssertUnwindSafe(|| f(task, clock))) {
            Ok(r) => Some(r),
            Err(p) => {
                self.fail(format!("panic: {}", panic_message(p.as_ref())));
                None
            }
        }
    }

    /// Records a failure and restarts the task from the live snapshot, at once for an
    /// isolated failure, after a growing (bounded) back-off for repeated ones.
    fn fail(&mut self, failure: String) {
        tracing::error!(
            trainer = T::THREAD_NAME,
            %failure,
            "the trainer failed; restarting it from the live snapshot"
        );
        let now = Instant::now();
        let calm = self.last_failure.is_none_or(|t| now - t > CALM);
        self.streak = if calm {
            1
        } else {
            self.streak.saturating_add(1)
        };
        self.last_failure = Some(now);
        {
            let mut h = self.health.lock();
            h.last_failure = Some(failure);
            h.last_failure_unix_ms = Some(now_unix_ms());
        }
        if self.streak <= 1 {
            self.recover();
        } else {
            self.go_down(now + backoff(self.streak - 1));
        }
    }

    /// One recovery attempt: up again, or down until the next attempt.
    fn recover(&mut self) {
        self.metrics.restarts.inc();
        self.health.lock().restarts += 1;
        let outcome = catch_unwind(AssertUnwindSafe(|| self.task.recover()))
            .unwrap_or_else(|p| Err(format!("panic: {}", panic_message(p.as_ref()))));
        match outcome {
            Ok(()) => {
                self.down = None;
                self.health.lock().up = true;
                self.metrics.up.set(1);
                self.clock.reset();
                tracing::info!(trainer = T::THREAD_NAME, "the trainer restarted");
                self.publish_status(false);
            }
            Err(e) => {
                self.streak = self.streak.saturating_add(1);
                let wait = backoff(self.streak);
                tracing::error!(
                    trainer = T::THREAD_NAME,
                    error = %e,
                    retry_in_s = wait.as_secs_f64(),
                    "restarting the trainer failed"
                );
                self.health.lock().last_failure = Some(format!("restart failed: {e}"));
                self.go_down(Instant::now() + wait);
            }
        }
    }

    fn go_down(&mut self, retry_at: Instant) {
        self.down = Some(retry_at);
        self.health.lock().up = false;
        self.metrics.up.set(0);
        self.metrics.busy.set(0);
    }

    /// Carries out a command. The status is updated before any reply, so a caller that reads
    /// it after the reply sees the command's effect. While the task is down, commands that
    /// need it are answered [`LoopError::Restarting`].
    fn handle(&mut self, c: Command<T>) -> Flow {
        let down = self.down.is_some();
        match c {
            Command::Pause => self.paused = true,
            Command::Resume => self.paused = false,
            Command::Publish(reply) if down => {
                let _ = reply.send(Err(LoopError::Restarting.into()));
            }
            Command::Activate(_, reply) if down => {
                let _ = reply.send(Err(LoopError::Restarting.into()));
            }
            Command::Publish(reply) => {
                let r = self
                    .guarded(|t, clock| t.publish_now(clock))
                    .unwrap_or_else(|| Err(LoopError::Restarting.into()));
                self.check(&r);
                self.publish_status(false);
                let _ = reply.send(r);
            }
            Command::Activate(version, reply) => {
                let r = self
                    .guarded(|t, clock| t.activate(version, clock))
                    .unwrap_or_else(|| Err(LoopError::Restarting.into()));
                self.check(&r);
                self.publish_status(false);
                let _ = reply.send(r);
            }
            Command::Shutdown(reply) => {
                // A broken task has nothing trustworthy to publish: the live version stands.
                let version = if down {
                    None
                } else {
                    self.guarded(|t, clock| t.finish(clock)).flatten()
                };
                self.publish_status(false);
                let _ = reply.send(version);
                return Flow::Stop;
            }
        }
        self.publish_status(false);
        Flow::Continue
    }

    /// Restarts the task if a command's error is a failure of the trainer.
    fn check<R>(&mut self, r: &Result<R, T::Error>) {
        if let Err(e) = r
            && let Some(failure) = T::failure(e)
        {
            self.fail(failure);
        }
    }

    fn publish_status(&mut self, active: bool) {
        self.metrics
            .busy
            .set(i64::from(active && self.down.is_none()));
        let paused = self.paused;
        // A status that cannot be computed keeps the last one rather than killing the thread.
        if let Ok(s) = catch_unwind(AssertUnwindSafe(|| self.task.status(&self.clock, paused))) {
            *self.status.lock() = s;
        }
    }
}

/// The wait before recovery attempt number `n` (1-based) of a streak: doubling, bounded.
fn backoff(n: u32) -> Duration {
    let factor = 2u32.saturating_pow(n.saturating_sub(1).min(16));
    BACKOFF_START.saturating_mul(factor).min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task that counts steps and publishes every third one.
    #[derive(Default)]
    struct Counter {
        steps: u64,
        published: Vec<u64>,
    }

    impl OnlineTask for Counter {
        type Published = u64;
        type Error = LoopError;
        type Status = (u64, bool, usize);
        const THREAD_NAME: &'static str = "test-trainer";
        const IDLE_WAIT: Duration = Duration::from_millis(5);

        fn absorb_new_data(&mut self) {}
        fn can_step(&self) -> bool {
            true
        }
        fn step(&mut self) {
            self.steps += 1;
        }
        fn publish_due(&self, clock: &Clock) -> bool {
            clock.steps_since_publish() >= 3
        }
        fn publish(&mut self, clock: &mut Clock) -> Result<u64, LoopError> {
            clock.reset();
            self.published.push(self.steps);
            Ok(self.steps)
        }
        fn publish_now(&mut self, clock: &mut Clock) -> Result<u64, LoopError> {
            self.publish(clock)
        }
        fn finish(&mut self, _clock: &mut Clock) -> Option<u64> {
            Some(self.steps)
        }
        fn status(&self, clock: &Clock, paused: bool) -> (u64, bool, usize) {
            (clock.steps(), paused, self.published.len())
        }
        fn recover(&mut self) -> Result<(), String> {
            Ok(())
        }
    }

    fn loop_metrics() -> (Metrics, LoopMetrics) {
        let m = Metrics::new().unwrap();
        let l = LoopMetrics::new(&m, "test");
        (m, l)
    }

    #[tokio::test]
    async fn commands_reach_the_task() {
        let (_m, lm) = loop_metrics();
        let (h, thread) = spawn(Counter::default(), lm).unwrap();
        h.pause().unwrap();
        // Once paused (status says so before the reply), steps stop.
        let v = h.publish().await.unwrap();
        let (steps, paused, _) = h.status();
        assert!(paused && steps == v);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(h.status().0, steps);
        assert!(matches!(h.activate(1).await, Err(LoopError::Unsupported)));
        h.resume().unwrap();
        while h.status().0 < steps + 10 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let last = h.shutdown().await.unwrap().unwrap();
        assert!(last >= steps + 10);
        thread.join().unwrap();
        assert_eq!(h.pause(), Err(LoopError::Stopped));
        assert!(matches!(h.shutdown().await, Err(LoopError::Stopped)));
        assert!(!h.health().up);
    }

    /// A task that panics on chosen steps, in `activate`, and (while `recover_fails` > 0) in
    /// its recovery.
    #[derive(Default)]
    struct Fragile {
        steps: u64,
        panic_at: Vec<u64>,
        recover_fails: u32,
        recoveries: u32,
    }

    impl OnlineTask for Fragile {
        type Published = u64;
        type Error = LoopError;
        type Status = (u64, u32);
        const THREAD_NAME: &'static str = "test-fragile";
        const IDLE_WAIT: Duration = Duration::from_millis(5);

        fn absorb_new_data(&mut self) {}
        fn can_step(&self) -> bool {
            true
        }
        fn step(&mut self) {
            self.steps += 1;
            if self.panic_at.contains(&self.steps) {
                panic!("step {} fell over", self.steps);
            }
        }
        fn publish_due(&self, _clock: &Clock) -> bool {
            false
        }
        fn publish(&mut self, _clock: &mut Clock) -> Result<u64, LoopError> {
            Ok(self.steps)
        }
        fn publish_now(&mut self, _clock: &mut Clock) -> Result<u64, LoopError> {
            Ok(self.steps)
        }
        fn activate(&mut self, version: u64, _clock: &mut Clock) -> Result<u64, LoopError> {
            let v: Vec<u64> = Vec::new();
            Ok(v[version as usize]) // index out of bounds, like the old roll-back bug
        }
        fn finish(&mut self, _clock: &mut Clock) -> Option<u64> {
            Some(self.steps)
        }
        fn status(&self, _clock: &Clock, _paused: bool) -> (u64, u32) {
            (self.steps, self.recoveries)
        }
        fn recover(&mut self) -> Result<(), String> {
            if self.recover_fails > 0 {
                self.recover_fails -= 1;
                panic!("recovery fell over too");
            }
            self.recoveries += 1;
            Ok(())
        }
    }

    async fn wait_until(what: &str, done: impl Fn() -> bool) {
        for _ in 0..2000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("waited 10 s for {what}");
    }

    #[tokio::test]
    async fn panics_restart_the_task_and_the_thread_lives_on() {
        let (m, lm) = loop_metrics();
        let task = Fragile {
            panic_at: vec![3, 4],
            recover_fails: 2,
            ..Fragile::default()
        };
        let (h, thread) = spawn(task, lm).unwrap();
        // Step 3 panics (restart at once), step 4 right after (a streak: back-off), and the
        // next two recoveries panic too: the loop backs off and keeps trying.
        wait_until("steps past the panics", || h.status().0 > 10).await;
        let health = h.health();
        assert!(health.up, "{health:?}");
        assert_eq!(health.restarts, 4, "{health:?}");
        assert_eq!(h.status().1, 2, "two recoveries succeeded");
        assert!(
            m.render()
                .contains("irgan_trainer_restarts_total{task=\"test\"} 4")
        );
        // A panicking command is answered (not dropped) and the trainer recovers.
        assert_eq!(h.activate(7).await, Err(LoopError::Restarting));
        wait_until("the restart after activate", || h.health().up).await;
        let health = h.health();
        assert_eq!(health.restarts, 5, "{health:?}");
        assert!(
            health
                .last_failure
                .as_deref()
                .is_some_and(|f| f.contains("index out of bounds")),
            "{health:?}"
        );
        assert!(h.publish().await.is_ok());
        assert!(h.shutdown().await.unwrap().is_some());
        thread.join().unwrap();
        assert!(m.render().contains("irgan_trainer_up{task=\"test\"} 0"));
    }

    #[test]
    fn back_off_doubles_and_is_bounded() {
        assert_eq!(backoff(1), BACKOFF_START);
        assert_eq!(backoff(2), BACKOFF_START * 2);
        assert_eq!(backoff(40), BACKOFF_MAX);
    }
}
