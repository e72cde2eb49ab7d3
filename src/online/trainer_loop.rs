//! One trainer thread for any online task: a bounded command channel, pause and resume, publish
//! now, roll back, shutdown with a final snapshot, a status the handlers read, and one clock.
//!
//! CPU work never runs on an async worker: the task's state lives on the thread, handlers talk to
//! it through [`LoopHandle`], and the task reads new data from its durable log by position, so a
//! busy trainer never loses acknowledged feedback. What a task does in each phase is its own
//! ([`OnlineTask`]); when it does it is this loop's.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::oneshot;

/// Commands a full queue may hold before callers get [`LoopError::Busy`].
const QUEUE: usize = 64;

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
}

impl<T: OnlineTask> Clone for LoopHandle<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            status: self.status.clone(),
        }
    }
}

impl<T: OnlineTask> LoopHandle<T> {
    /// The trainer's latest status.
    pub fn status(&self) -> T::Status {
        self.status.lock().clone()
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
pub fn spawn<T: OnlineTask>(task: T) -> std::io::Result<(LoopHandle<T>, JoinHandle<()>)> {
    let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
    let driver = Driver {
        clock: Clock::new(),
        paused: false,
        status: Arc::default(),
        task,
    };
    driver.publish_status();
    let handle = LoopHandle {
        tx,
        status: driver.status.clone(),
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
}

impl<T: OnlineTask> Driver<T> {
    fn run(mut self, rx: Receiver<Command<T>>) {
        loop {
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
                Ok(c) => {
                    if self.handle(c) {
                        return;
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {}
            }
            if active {
                self.task.step();
                self.clock.tick();
                if self.task.publish_due(&self.clock) {
                    // The task logs and counts its refusals; the loop carries on either way.
                    let _ = self.task.publish(&mut self.clock);
                }
            }
            self.publish_status();
        }
    }

    /// Carries out a command; true means stop. The status is updated before any reply, so a
    /// caller that reads it after the reply sees the command's effect.
    fn handle(&mut self, c: Command<T>) -> bool {
        match c {
            Command::Pause => self.paused = true,
            Command::Resume => self.paused = false,
            Command::Publish(reply) => {
                let r = self.task.publish_now(&mut self.clock);
                self.publish_status();
                let _ = reply.send(r);
            }
            Command::Activate(version, reply) => {
                let r = self.task.activate(version, &mut self.clock);
                self.publish_status();
                let _ = reply.send(r);
            }
            Command::Shutdown(reply) => {
                let version = self.task.finish(&mut self.clock);
                self.publish_status();
                let _ = reply.send(version);
                return true;
            }
        }
        self.publish_status();
        false
    }

    fn publish_status(&self) {
        *self.status.lock() = self.task.status(&self.clock, self.paused);
    }
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
    }

    #[tokio::test]
    async fn commands_reach_the_task() {
        let (h, thread) = spawn(Counter::default()).unwrap();
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
    }
}
