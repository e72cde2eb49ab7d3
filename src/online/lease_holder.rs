//! The trainer's side of the lease (`server.role = "train"`): wait for it as a standby, renew
//! it while training, give it up on a clean stop, and exit at once when it is lost, so two
//! trainers never publish for longer than one TTL.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use prometheus::IntGauge;

use crate::store::nats::lease::Attempt;
use crate::store::nats::{Lease, NatsError};

/// Exit status of a trainer that lost its lease (a supervisor restarts it as a standby).
pub const LOST_LEASE_EXIT: i32 = 75;

/// A lease this process holds, renewed on a thread of its own until released.
pub struct HeldLease {
    lease: Lease,
    revision: AtomicU64,
    released: AtomicBool,
    held: IntGauge,
}

impl std::fmt::Debug for HeldLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldLease")
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl HeldLease {
    /// Blocks until this process holds the lease (a standby waits here), then renews it on a
    /// thread. `held` is set to 1 while it is held.
    pub fn acquire(lease: Lease, held: IntGauge) -> Result<Arc<Self>, NatsError> {
        held.set(0);
        let mut waiting_on = None;
        let revision = loop {
            match lease.try_acquire()? {
                Attempt::Held(r) => break r,
                Attempt::Taken(who) => {
                    if waiting_on.as_ref() != Some(&who) {
                        tracing::info!(holder = %who, "standby: another trainer holds the lease");
                        waiting_on = Some(who);
                    }
                }
            }
            std::thread::sleep(lease.ttl / 4);
        };
        held.set(1);
        tracing::info!(holder = lease.holder(), "took the trainer lease");
        let this = Arc::new(Self {
            lease,
            revision: AtomicU64::new(revision),
            released: AtomicBool::new(false),
            held,
        });
        let renewer = this.clone();
        std::thread::Builder::new()
            .name("irgan-lease".into())
            .spawn(move || renewer.renew_until_released())
            .map_err(NatsError::Runtime)?;
        Ok(this)
    }

    /// Gives the lease up (clean shutdown, after the final snapshot), so a standby takes over
    /// without waiting for the TTL. Blocking.
    pub fn release(&self) {
        if !self.released.swap(true, Ordering::AcqRel) {
            self.lease.release(self.revision.load(Ordering::Acquire));
            self.held.set(0);
            tracing::info!("released the trainer lease");
        }
    }

    fn renew_until_released(&self) {
        let ttl = self.lease.ttl;
        let mut renewed = Instant::now();
        loop {
            std::thread::sleep(ttl / 3);
            if self.released.load(Ordering::Acquire) {
                return;
            }
            let revision = self.revision.load(Ordering::Acquire);
            let e = match self.lease.renew(revision) {
                Ok(r) => {
                    self.revision.store(r, Ordering::Release);
                    renewed = Instant::now();
                    continue;
                }
                Err(e) => e,
            };
            // Why did the compare-and-set fail? Ours at another revision (a lost reply): carry
            // on from it. Lapsed and free: take it again. Someone else's, or no answer for a
            // whole TTL: stop.
            let lost = match self.lease.current() {
                Ok(Some((who, r))) if who == self.lease.holder() => {
                    self.revision.store(r, Ordering::Release);
                    false
                }
                Ok(Some(_)) => true,
                Ok(None) => match self.lease.try_acquire() {
                    Ok(Attempt::Held(r)) => {
                        self.revision.store(r, Ordering::Release);
                        renewed = Instant::now();
                        false
                    }
                    Ok(Attempt::Taken(_)) => true,
                    Err(_) => renewed.elapsed() >= ttl,
                },
                Err(_) => renewed.elapsed() >= ttl,
            };
            if self.released.load(Ordering::Acquire) {
                return;
            }
            if lost {
                self.held.set(0);
                tracing::error!(error = %e, "lost the trainer lease; exiting so a supervisor restarts this trainer as a standby");
                std::process::exit(LOST_LEASE_EXIT);
            }
            tracing::warn!(error = %e, "cannot renew the trainer lease; retrying");
        }
    }
}
