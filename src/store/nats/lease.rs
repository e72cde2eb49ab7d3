//! The trainer's lease: one key-value entry (`trainer` in `nats.lease_bucket`) whose bucket
//! drops entries older than `nats.lease_ttl_seconds`. A trainer takes the lease by creating
//! the entry (which fails while another holds it) and keeps it by updating it at its last
//! revision (compare-and-set) several times per TTL; if it stops renewing (crash, partition,
//! SIGKILL) the entry expires and a standby's create succeeds. A renewal that fails on the
//! revision means someone else holds the lease: the holder must stop training at once.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;

use super::{Nats, NatsError};

/// The lease's key.
const KEY: &str = "trainer";

/// A handle on the lease bucket for one would-be holder.
pub struct Lease {
    nats: Arc<Nats>,
    store: kv::Store,
    holder: String,
    /// How long the lease lasts without renewal.
    pub ttl: Duration,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("holder", &self.holder)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// What an attempt on the lease found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// This holder has it, at this revision.
    Held(u64),
    /// Someone else has it (their name, if readable).
    Taken(String),
}

impl Lease {
    /// Opens (creating if missing) the lease bucket; `holder` names this process.
    pub fn open(nats: Arc<Nats>, holder: String) -> Result<Self, NatsError> {
        let c = nats.cfg.clone();
        let ttl = Duration::from_secs_f64(c.lease_ttl_seconds);
        let js = nats.js.clone();
        let store = nats.run(async move {
            Nats::ensure_kv(
                &js,
                &c.lease_bucket,
                "irgan trainer lease",
                1,
                ttl,
                c.replicas,
            )
            .await
        })??;
        Ok(Self {
            nats,
            store,
            holder,
            ttl,
        })
    }

    /// This process's name in the lease.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Tries to take the lease once.
    pub fn try_acquire(&self) -> Result<Attempt, NatsError> {
        let (store, holder) = (self.store.clone(), self.holder.clone());
        self.nats.run(async move {
            match store.create(KEY, holder.clone().into_bytes().into()).await {
                Ok(revision) => Ok(Attempt::Held(revision)),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                    let who = store.get(KEY).await.ok().flatten();
                    let who = who.map(|b| String::from_utf8_lossy(&b).into_owned());
                    Ok(Attempt::Taken(who.unwrap_or_default()))
                }
                Err(e) => Err(NatsError::request("taking the trainer lease", e)),
            }
        })?
    }

    /// Renews the lease held at `revision`; the new revision. Fails when the lease was lost
    /// (expired and taken, or never held) or NATS did not answer.
    pub fn renew(&self, revision: u64) -> Result<u64, NatsError> {
        let (store, holder) = (self.store.clone(), self.holder.clone());
        self.nats.run(async move {
            store
                .update(KEY, holder.into_bytes().into(), revision)
                .await
                .map_err(|e| NatsError::request("renewing the trainer lease", e))
        })?
    }

    /// Who holds the lease now, at which revision (`None`: nobody).
    pub fn current(&self) -> Result<Option<(String, u64)>, NatsError> {
        let store = self.store.clone();
        let entry = self.nats.run(async move { store.entry(KEY).await })?;
        let entry = entry.map_err(|e| NatsError::request("reading the trainer lease", e))?;
        Ok(entry
            .filter(|e| e.operation == kv::Operation::Put)
            .map(|e| (String::from_utf8_lossy(&e.value).into_owned(), e.revision)))
    }

    /// Gives the lease up (clean shutdown), so a standby need not wait for the TTL.
    pub fn release(&self, revision: u64) {
        let store = self.store.clone();
        let _ = self.nats.run(async move {
            let _ = store.delete_expect_revision(KEY, Some(revision)).await;
        });
    }
}
