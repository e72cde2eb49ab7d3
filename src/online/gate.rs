//! The recommendation trainer's publish gate: a candidate pair goes live only if it is finite,
//! G has not collapsed, D still recognises observed positives, and G's hold-out metric is not
//! worse than the live G's by more than `trainer.tolerance` — or, for a scheduled game candidate
//! with `trainer.publish_only_gains`, only if it beats the live G's metric by
//! `trainer.min_improvement` (a candidate no better than what serves would cost every cache
//! a refill for nothing).
//!
//! The comparison runs on a fixed, seeded sample of at most `trainer.gate_users` hold-out users
//! (0 = all), so a gate costs O(gate_users × items × d) whatever the catalogue; the live G's
//! metric on that sample is cached until the live snapshot or the hold-out changes.

use crate::data::Interactions;
use crate::eval::{Metrics, evaluate_model};
use crate::model::MfModel;
use crate::online::live::Live;
use crate::online::settings::TrainerConfig;
use crate::train::irgan::{DStats, GStats};

/// Cut-offs of the gate's metrics.
const KS: [usize; 2] = [5, 10];

/// Why a candidate may not go live: a stable reason (the refusal metric's label) and a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// `not_finite`, `collapsed`, `d_accuracy` or `worse`.
    pub reason: &'static str,
    /// For people.
    pub detail: String,
}

/// What the gate found about one candidate.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The candidate G's metrics on the sample (empty when a check failed before evaluating).
    pub validation: Metrics,
    /// The candidate's gate metric on the sample, when it was evaluated.
    pub score: Option<f64>,
    /// The live G's gate metric on the sample, when there is a live G and a hold-out.
    pub live_score: Option<f64>,
    /// Accepted, or why not.
    pub outcome: Result<(), Refusal>,
}

/// The candidate pair and what the last step measured.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// G.
    pub g: &'a MfModel,
    /// D.
    pub d: &'a MfModel,
    /// Trained since the last publish (the game statistics describe it).
    pub trained: bool,
    /// D after the last step.
    pub d_stats: DStats,
    /// G in the last step.
    pub g_stats: GStats,
    /// The relative gain over the live metric the candidate must show to pass (`None`: not
    /// worse by more than `trainer.tolerance` is enough). Scheduled game candidates need
    /// `trainer.min_improvement` when `trainer.publish_only_gains` is on.
    pub gain: Option<f64>,
}

/// What candidates are validated on: the training sets (excluded from rankings) and the
/// hold-out, as of a log position.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    /// Positive pairs trained on (excluded when ranking).
    pub train: &'a Interactions,
    /// Positive pairs held out.
    pub holdout: &'a Interactions,
    /// Log position the sets were built at.
    pub seq: u64,
}

/// Identifies a hold-out: the log position it was built at and its shape.
type HoldoutKey = (u64, usize, usize);

/// The sampled users' hold-out pairs.
#[derive(Debug, Clone)]
struct Sample {
    key: HoldoutKey,
    relevant: Interactions,
    users: usize,
}

/// The gate's sample and its cache of the live G's metrics.
#[derive(Debug, Default)]
pub struct Gate {
    seed: u64,
    sample: Option<Sample>,
    /// (live version, hold-out key) → the live G's metrics on the sample.
    live: Option<((u64, HoldoutKey), Metrics)>,
}

/// A fixed pseudo-random rank of user `u` under `seed` (SplitMix64): the sample is the users
/// of lowest rank, so it stays the same as the hold-out grows, except where a new user ranks
/// lower.
fn rank(seed: u64, u: usize) -> u64 {
    let mut z = seed ^ (u as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The hold-out rows of at most `max` users (0 = all) chosen by [`rank`].
fn sampled(holdout: &Interactions, max: usize, seed: u64) -> (Interactions, usize) {
    let mut users = holdout.active_users();
    if max > 0 && users.len() > max {
        users.select_nth_unstable_by_key(max - 1, |&u| rank(seed, u));
        users.truncate(max);
    }
    let pairs: Vec<(u32, u32)> = users
        .iter()
        .flat_map(|&u| holdout.items(u).iter().map(move |&i| (u as u32, i)))
        .collect();
    let n = users.len();
    (
        Interactions::from_pairs(holdout.n_users(), holdout.n_items(), &pairs),
        n,
    )
}

impl Gate {
    /// A gate whose sample is drawn with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            ..Self::default()
        }
    }

    /// Forgets the sample and the cached live metrics (after a restart).
    pub fn invalidate(&mut self) {
        self.sample = None;
        self.live = None;
    }

    /// Hold-out users in the current sample.
    pub fn sample_users(&self) -> usize {
        self.sample.as_ref().map_or(0, |s| s.users)
    }

    /// The sample of `holdout` (as of log position `seq`), drawn again only if it changed.
    fn sample_of(&mut self, holdout: &Interactions, seq: u64, max: usize) -> &Sample {
        let key = (seq, holdout.n_users(), holdout.nnz());
        if self.sample.as_ref().is_some_and(|s| s.key != key) {
            self.sample = None;
        }
        let seed = self.seed;
        self.sample.get_or_insert_with(|| {
            let (relevant, users) = sampled(holdout, max, seed);
            Sample {
                key,
                relevant,
                users,
            }
        })
    }

    /// Metrics of `model` on the sample of the hold-out, training items excluded.
    pub fn validate(&mut self, model: &MfModel, on: Evidence<'_>, cfg: &TrainerConfig) -> Metrics {
        let sample = self.sample_of(on.holdout, on.seq, cfg.gate_users);
        evaluate_model(model, on.train, &sample.relevant, &KS)
    }

    /// The checks that need no evaluation: finite, not collapsed, D still accurate.
    fn sanity(c: &Candidate<'_>, cfg: &TrainerConfig) -> Result<(), Refusal> {
        if !(c.g.is_finite() && c.d.is_finite()) {
            return Err(Refusal {
                reason: "not_finite",
                detail: "non-finite parameters".into(),
            });
        }
        if c.trained && c.g_stats.entropy < cfg.min_entropy {
            return Err(Refusal {
                reason: "collapsed",
                detail: format!(
                    "G collapsed: entropy {:.3} < {}",
                    c.g_stats.entropy, cfg.min_entropy
                ),
            });
        }
        if c.trained && c.d_stats.accuracy_real < cfg.min_d_accuracy {
            return Err(Refusal {
                reason: "d_accuracy",
                detail: format!(
                    "D accuracy {:.3} < {}",
                    c.d_stats.accuracy_real, cfg.min_d_accuracy
                ),
            });
        }
        Ok(())
    }

    /// Judges `candidate` against the live snapshot on the sampled hold-out. `grow_live`
    /// brings the live G to today's catalogue (called only when the cache misses).
    pub fn judge(
        &mut self,
        candidate: &Candidate<'_>,
        live: &Live,
        grow_live: impl FnOnce(&Live) -> MfModel,
        on: Evidence<'_>,
        cfg: &TrainerConfig,
    ) -> Verdict {
        if let Err(r) = Self::sanity(candidate, cfg) {
            return Verdict {
                validation: Metrics::new(),
                score: None,
                live_score: None,
                outcome: Err(r),
            };
        }
        let validation = self.validate(candidate.g, on, cfg);
        let metric = &cfg.gate_metric;
        let score = validation.get(metric).copied().unwrap_or(0.0);
        let live_score = if on.holdout.nnz() == 0 || live.version() == 0 {
            None
        } else {
            let sample_key = self.sample.as_ref().map_or((0, 0, 0), |s| s.key);
            let key = (live.version(), sample_key);
            let cached = self.live.as_ref().filter(|(k, _)| *k == key);
            let live_metrics = match cached {
                Some((_, m)) => m.clone(),
                None => {
                    let old = grow_live(live);
                    let m = self.validate(&old, on, cfg);
                    self.live = Some((key, m.clone()));
                    m
                }
            };
            Some(live_metrics.get(metric).copied().unwrap_or(0.0))
        };
        let outcome = match (live_score, candidate.gain) {
            (Some(b), _) if score < b - cfg.tolerance => Err(Refusal {
                reason: "worse",
                detail: format!(
                    "{metric} {score:.4} is below the live {b:.4} by more than {}",
                    cfg.tolerance
                ),
            }),
            (Some(b), Some(gain)) if score <= b + gain * b.abs() => Err(Refusal {
                reason: "no_gain",
                detail: format!(
                    "{metric} {score:.4} does not beat the live {b:.4} by {:.2} %",
                    gain * 100.0
                ),
            }),
            _ => Ok(()),
        };
        Verdict {
            validation,
            score: Some(score),
            live_score,
            outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_is_bounded_fixed_and_stable_as_users_arrive() {
        let pairs: Vec<(u32, u32)> = (0..500).map(|u| (u, u % 7)).collect();
        let h = Interactions::from_pairs(500, 7, &pairs);
        let (s, n) = sampled(&h, 50, 9);
        assert_eq!(n, 50);
        assert_eq!(s.active_users().len(), 50);
        assert_eq!(sampled(&h, 50, 9).0, s, "same seed, same sample");
        assert_ne!(sampled(&h, 50, 10).0, s, "another seed, another sample");
        assert_eq!(sampled(&h, 0, 9).1, 500, "0 = every hold-out user");
        // New users only enter the sample by ranking below someone in it.
        let more: Vec<(u32, u32)> = (0..600).map(|u| (u, u % 7)).collect();
        let grown = sampled(&Interactions::from_pairs(600, 7, &more), 50, 9).0;
        let kept = s
            .active_users()
            .iter()
            .filter(|&&u| !grown.items(u).is_empty())
            .count();
        assert!(kept >= 35, "{kept}");
    }

    #[test]
    fn the_live_metric_is_computed_once_per_live_version_and_hold_out() {
        use crate::rng;
        let mut r = rng::stream(1, 2, 3);
        let g = MfModel::random(20, 10, 4, 0.5, &mut r);
        let d = g.clone();
        let train = Interactions::from_pairs(20, 10, &[(0, 1), (1, 2)]);
        let holdout_pairs: Vec<(u32, u32)> = (0..20).map(|u| (u, (u % 10))).collect();
        let holdout = Interactions::from_pairs(20, 10, &holdout_pairs);
        let snapshot = crate::store::Snapshot {
            version: 3,
            created_unix_ms: 0,
            generator: g.clone(),
            generator_temperature: 1.0,
            discriminator: d.clone(),
            users: crate::data::IdMap::sequential(20),
            items: crate::data::IdMap::sequential(10),
            metadata: serde_json::json!({}),
        };
        let live = Live::new(snapshot, &train, 0, 0.5);
        let cfg = TrainerConfig {
            gate_users: 8,
            tolerance: 0.0,
            ..TrainerConfig::default()
        };
        let cand = Candidate {
            g: &g,
            d: &d,
            trained: false,
            d_stats: DStats::default(),
            g_stats: GStats::default(),
            gain: None,
        };
        let mut gate = Gate::new(5);
        let calls = std::cell::Cell::new(0);
        let grow = |l: &Live| {
            calls.set(calls.get() + 1);
            l.snapshot.generator.clone()
        };
        let on = |seq| Evidence {
            train: &train,
            holdout: &holdout,
            seq,
        };
        let v = gate.judge(&cand, &live, grow, on(1), &cfg);
        assert_eq!(gate.sample_users(), 8);
        assert_eq!(v.validation["users"], 8.0);
        assert_eq!(v.score, v.live_score, "the same G scores the same");
        assert!(v.outcome.is_ok());
        gate.judge(&cand, &live, grow, on(1), &cfg);
        assert_eq!(calls.get(), 1, "cached");
        gate.judge(&cand, &live, grow, on(2), &cfg);
        assert_eq!(calls.get(), 2, "a new hold-out invalidates the cache");
        let nan = {
            let mut n = g.clone();
            n.bias[0] = f32::NAN;
            n
        };
        let bad = Candidate { g: &nan, ..cand };
        let v = gate.judge(&bad, &live, grow, on(2), &cfg);
        assert_eq!(v.outcome.unwrap_err().reason, "not_finite");
        // The live pair itself gains nothing: refused when a gain is asked for, whatever the
        // tolerance.
        let same = Candidate {
            gain: Some(0.005),
            ..cand
        };
        let loose = TrainerConfig {
            tolerance: 1.0,
            ..cfg.clone()
        };
        let v = gate.judge(&same, &live, grow, on(2), &loose);
        assert_eq!(v.outcome.unwrap_err().reason, "no_gain");
        assert!(
            gate.judge(&cand, &live, grow, on(2), &loose)
                .outcome
                .is_ok()
        );
    }
}
