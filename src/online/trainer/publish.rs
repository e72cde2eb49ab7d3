//! How the recommendation trainer makes snapshots live: the three kinds of publish.
//!
//! - **Game publish**: the game's candidate pair, gated on the hold-out. On schedule it is
//!   *staged* (see [`crate::online::staging`]): its caches fill in the background and it goes
//!   live once filled, with the feedback of the meantime folded in. Asked for (`POST
//!   /v1/snapshots`), at start and at shutdown it goes live at once.
//! - **Fold-in publish**: the live pair with the users of new feedback solved again against
//!   its items, new users and items added (see [`regrow::grown_pair`]). No game step and no
//!   gate: the item side is the gated one, and the fold-in is the solve a cold user gets. This
//!   is how feedback reaches the served model within seconds, and since every other user's
//!   rows are unchanged, their caches carry over ([`Live::carry_from`]).
//! - **Activation** of an older snapshot (in the trainer itself).
//!
//! Every kind writes a checksummed, checkpointed snapshot before it swaps, so a restart
//! replays only the log after the newest one.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::model::MfModel;
use crate::model::topk::ItemIndex;
use crate::online::gate::{Candidate, Evidence};
use crate::online::live::Live;
use crate::online::regrow;
use crate::online::staging::Staged;
use crate::online::trainer::{Published, Trainer, TrainerError, TrainerFailure};
use crate::online::trainer_loop::Clock;
use crate::store::Snapshot;

/// A candidate the gate accepted.
pub(super) struct Accepted {
    g: MfModel,
    d: MfModel,
    validation: Value,
    metadata: Value,
    scores: (Option<f64>, Option<f64>),
}

impl Trainer {
    /// Gates the game's candidate; on acceptance the game plays on from it at full step size.
    pub(super) fn judge(
        &mut self,
        clock: &mut Clock,
        gain: Option<f64>,
    ) -> Result<Accepted, TrainerError> {
        let Some(game) = &self.game else {
            return Err(TrainerError::Refused("no training data yet".into()));
        };
        let (g, d) = (game.generator.clone(), game.discriminator.clone());
        let (d_epochs, g_epochs) = (game.d_epochs(), game.g_epochs());
        let live = self.store.current();
        let candidate = Candidate {
            g: &g,
            d: &d,
            trained: clock.steps_since_publish() > 0,
            d_stats: self.d,
            g_stats: self.g,
            gain,
        };
        let (data, cfg) = (&self.data, &self.cfg);
        let grow_live = |l: &Live| {
            let (nu, ni) = (data.users.len(), data.items.len());
            let none = BTreeSet::new();
            regrow::grown_pair(&l.snapshot, nu, ni, &data.train, cfg, l.version(), &none).0
        };
        let verdict = self.gate.judge(
            &candidate,
            &live,
            grow_live,
            Evidence {
                train: &self.data.train,
                holdout: &self.data.holdout,
                seq: self.data.applied_seq,
            },
            &self.cfg.trainer,
        );
        self.metrics.gate_users.set(self.gate.sample_users() as i64);
        let accepted = verdict.outcome.is_ok();
        let reduced = self.schedule.step_scale() < 1.0;
        self.schedule.evaluated(
            self.data.applied_seq,
            verdict.score,
            verdict.live_score,
            accepted,
        );
        let outcome = if accepted { "published" } else { "refused" };
        self.metrics
            .gate_evaluations
            .with_label_values(&[outcome])
            .inc();
        let scores = (verdict.score, verdict.live_score);
        if let Err(r) = verdict.outcome {
            let refusal = Some((r.reason, r.detail.clone()));
            self.history.gate(scores.0, scores.1, refusal, None);
            return Err(self.refuse(clock, r.reason, r.detail));
        }
        let validation = json!(verdict.validation);
        let metadata = json!({
            "source": "irgan serve",
            "validation": validation,
            "training": { "steps": clock.steps(), "d_epochs": d_epochs, "g_epochs": g_epochs },
            "game": { "d": self.d, "g": self.g },
        });
        clock.reset();
        self.last_refusal = None;
        // An accepted candidate restores the full step size (the schedule did): play on from
        // it at that size.
        if reduced && let Some(game) = self.game.take() {
            self.set_game(game.generator, game.discriminator);
        }
        Ok(Accepted {
            g,
            d,
            validation,
            metadata,
            scores,
        })
    }

    /// Gates the candidate and, if it passes, writes it and swaps it in at once (a staged
    /// candidate is dropped: this one is newer).
    pub(super) fn gate_and_publish(
        &mut self,
        clock: &mut Clock,
    ) -> Result<Published, TrainerError> {
        let a = self.judge(clock, None)?;
        self.staged = None;
        let live = self.store.current();
        let version = self.write_and_go_live(a.g, a.d, a.metadata, Some(&live), "game")?;
        self.history
            .gate(a.scores.0, a.scores.1, None, Some(version));
        Ok(Published {
            version,
            validation: a.validation,
        })
    }

    /// The scheduled publish: gates the candidate and stages it to go live once its caches
    /// are filled. The version in the answer is the live one (the candidate gets its own when
    /// it is promoted).
    pub(super) fn gate_and_stage(&mut self, clock: &mut Clock) -> Result<Published, TrainerError> {
        let t = &self.cfg.trainer;
        let a = self.judge(clock, t.publish_only_gains.then_some(t.min_improvement))?;
        let snapshot = self.snapshot_of(a.g, a.d, a.metadata.clone(), 0);
        let server = &self.cfg.server;
        let live = Live::new(
            snapshot,
            &self.data.seen,
            server.precompute_k,
            server.blend_weight,
        )
        .with_answer_budget(server.answer_budget())
        .asks_like(&self.store.current())
        .with_index(&self.cfg.index);
        self.staged = Some(Staged::start(live, a.metadata, a.scores));
        Ok(Published {
            version: self.store.current().version(),
            validation: a.validation,
        })
    }

    /// Makes the staged candidate live if its fill is done (or `now`), with the feedback that
    /// arrived since it was staged folded in.
    pub(super) fn promote(&mut self, now: bool) -> Result<Option<u64>, TrainerError> {
        if !self.staged.as_ref().is_some_and(|s| now || s.ready()) {
            return Ok(None);
        }
        let Some(mut st) = self.staged.take() else {
            return Ok(None);
        };
        st.changed
            .extend(self.data.unpublished_changes().users.iter().copied());
        let mut metadata = st.metadata.clone();
        metadata["staged_seconds"] = json!(st.since.elapsed().as_secs_f64());
        let version = self.publish_from(&st.live, &st.changed, metadata, "game")?;
        self.promoted_at = Some(std::time::Instant::now());
        self.history
            .gate(st.scores.0, st.scores.1, None, Some(version));
        Ok(Some(version))
    }

    /// Whether acknowledged feedback has waited long enough to be folded into the live pair.
    pub(super) fn fold_in_due(&self) -> bool {
        let wait_ms = self.cfg.trainer.feedback_publish_seconds * 1e3;
        self.store.current().version() > 0
            && self.data.unpublished_acks.first().is_some_and(|&acked| {
                Snapshot::now_unix_ms().saturating_sub(acked) as f64 >= wait_ms
            })
    }

    /// The fold-in publish: the live pair with the new feedback's users and items solved in.
    pub(super) fn fold_in(&mut self) -> Result<u64, TrainerError> {
        let live = self.store.current();
        let changed = self.data.unpublished_changes().users.clone();
        let mut metadata = live.snapshot.metadata.clone();
        metadata["fold_in"] = json!({ "from": live.version(), "users": changed.len() });
        self.publish_from(&live, &changed, metadata, "fold_in")
    }

    /// `base`'s pair grown to today's catalogue with `changed` users (and new users and items)
    /// solved again, written and made live; `base`'s caches carry over.
    fn publish_from(
        &mut self,
        base: &Live,
        changed: &BTreeSet<u32>,
        metadata: Value,
        kind: &str,
    ) -> Result<u64, TrainerError> {
        let (nu, ni) = (self.data.users.len(), self.data.items.len());
        let solving = std::time::Instant::now();
        let (g, d) = regrow::grown_pair(
            &base.snapshot,
            nu,
            ni,
            &self.data.train,
            &self.cfg,
            base.version(),
            changed,
        );
        let solved_s = solving.elapsed().as_secs_f64();
        let version = self.write_and_go_live(g, d, metadata, Some(base), kind)?;
        tracing::debug!(
            version,
            kind,
            users = changed.len(),
            solve_s = solved_s,
            total_s = solving.elapsed().as_secs_f64(),
            "published"
        );
        Ok(version)
    }

    /// A snapshot of the pair over today's ids, trained through the log position folded so far.
    fn snapshot_of(&self, g: MfModel, d: MfModel, mut metadata: Value, version: u64) -> Snapshot {
        metadata["trained_through_seq"] = json!(self.data.applied_seq);
        Snapshot {
            version,
            created_unix_ms: Snapshot::now_unix_ms(),
            generator: g,
            generator_temperature: self.cfg.training.generator.temperature as f32,
            discriminator: d,
            users: self.data.users.clone(),
            items: self.data.items.clone(),
            metadata,
        }
    }

    /// Writes the pair as the next version (with the training data's checkpoint) and swaps it
    /// in, carrying `carry`'s caches; the feedback folded so far counts as published.
    fn write_and_go_live(
        &mut self,
        g: MfModel,
        d: MfModel,
        metadata: Value,
        carry: Option<&Live>,
        kind: &str,
    ) -> Result<u64, TrainerError> {
        let started = std::time::Instant::now();
        let version = self.next_version;
        let snapshot = self.snapshot_of(g, d, metadata, version);
        let checkpoint = self.data.checkpoint();
        self.snapshots
            .write_checkpointed(&snapshot, &checkpoint, self.cfg.storage.keep_snapshots)
            .map_err(TrainerFailure::from)?;
        self.next_version += 1;
        self.go_live(snapshot, carry);
        self.metrics
            .swap_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.publishes.with_label_values(&[kind]).inc();
        let now = Snapshot::now_unix_ms();
        for &acked in &self.data.unpublished_acks {
            self.metrics
                .feedback_to_snapshot_seconds
                .observe(now.saturating_sub(acked) as f64 / 1e3);
        }
        if let Some(st) = &mut self.staged {
            st.changed
                .extend(self.data.unpublished_changes().users.iter().copied());
        }
        self.data.published();
        Ok(version)
    }

    /// Swaps `snapshot` in, with the caches of `carry` taken over where they still hold.
    pub(super) fn go_live(&mut self, snapshot: Snapshot, carry: Option<&Live>) {
        let version = snapshot.version;
        let server = &self.cfg.server;
        let mut live = Live::new(
            snapshot,
            &self.data.seen,
            server.precompute_k,
            server.blend_weight,
        )
        .with_answer_budget(server.answer_budget());
        let carried = carry.map(|c| live.carry_from(c)).unwrap_or_default();
        if !carried.items || carried.new_items > 0 {
            live = live.with_index(&self.cfg.index);
        }
        self.metrics.carried_users.set(carried.users as i64);
        let approximate = matches!(*live.index, ItemIndex::Approximate(_));
        self.metrics
            .topk_index_approximate
            .set(i64::from(approximate));
        self.metrics
            .topk_index_bytes
            .set(live.index.memory_bytes() as i64);
        self.metrics.snapshot_version.set(version as i64);
        self.metrics
            .snapshot_published
            .set(live.published_unix_ms as f64 / 1e3);
        self.store.publish(Arc::new(live));
    }
}
