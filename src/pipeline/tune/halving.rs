//! Successive halving on a wall-clock budget: the rungs' resources, and which trial runs next.
//!
//! The scheduler is asynchronous successive halving (ASHA; Li et al., "A System for Massively
//! Parallel Hyperparameter Tuning", MLSys 2020) run one trial at a time: whenever a trial is in
//! the top 1/η of the trials finished on its rung and has not been promoted yet, it runs again on
//! the next rung with η times the resource; otherwise a new trial starts on the lowest rung. It
//! needs no trial count in advance, so it uses whatever budget there is, and every decision
//! depends only on the scores, so a seed replays the same sequence.

use std::collections::BTreeSet;

/// The resource of each rung, smallest first: `max`, `max/η`, `max/η²`, … (rounded), down to
/// no less than `min`. A single rung (`[max]`) when `max < min·η`: plain random search.
pub fn rungs(min: usize, max: usize, eta: usize) -> Vec<usize> {
    let (min, eta) = (min.max(1), eta.max(2));
    if max <= min {
        return vec![max];
    }
    let mut count: usize = 1;
    let mut r = min;
    while r.saturating_mul(eta) <= max {
        r *= eta;
        count += 1;
    }
    (0..count)
        .map(|i| {
            let shrink = (eta as f64).powi((count - 1 - i) as i32);
            ((max as f64 / shrink).round() as usize).max(min)
        })
        .collect()
}

/// What to run next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// A new trial (ids count from 1) on rung 0.
    Sample {
        /// Its id.
        trial: u64,
    },
    /// A finished trial again, one rung up.
    Promote {
        /// Its id.
        trial: u64,
        /// The rung it runs on now.
        rung: usize,
    },
}

impl Job {
    /// The trial's id.
    pub fn trial(self) -> u64 {
        match self {
            Job::Sample { trial } | Job::Promote { trial, .. } => trial,
        }
    }

    /// The rung it runs on.
    pub fn rung(self) -> usize {
        match self {
            Job::Sample { .. } => 0,
            Job::Promote { rung, .. } => rung,
        }
    }
}

/// The scheduler's state: scores per rung and the trials already promoted.
#[derive(Debug, Clone)]
pub struct Asha {
    eta: usize,
    /// `(trial, score)` of every trial finished on each rung.
    finished: Vec<Vec<(u64, f64)>>,
    /// Trials promoted out of each rung.
    promoted: Vec<BTreeSet<u64>>,
    sampled: u64,
}

impl Asha {
    /// A scheduler over `rungs` rungs keeping the top `1/eta` of each.
    pub fn new(rungs: usize, eta: usize) -> Self {
        let rungs = rungs.max(1);
        Self {
            eta: eta.max(2),
            finished: vec![Vec::new(); rungs],
            promoted: vec![BTreeSet::new(); rungs],
            sampled: 0,
        }
    }

    /// New trials started so far.
    pub fn sampled(&self) -> u64 {
        self.sampled
    }

    /// Records a trial's score on a rung (a failed trial scores −∞: it counts, never rises).
    pub fn record(&mut self, trial: u64, rung: usize, score: f64) {
        let score = if score.is_nan() {
            f64::NEG_INFINITY
        } else {
            score
        };
        if let Some(r) = self.finished.get_mut(rung) {
            r.push((trial, score));
        }
    }

    /// The trials of a rung that may rise: its top `⌊n/η⌋` by score (ties: the earlier trial).
    pub fn top(&self, rung: usize) -> Vec<u64> {
        let mut ranked = self.finished.get(rung).cloned().unwrap_or_default();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(ranked.len() / self.eta);
        ranked
            .into_iter()
            .filter(|&(_, s)| s > f64::NEG_INFINITY)
            .map(|(t, _)| t)
            .collect()
    }

    /// Takes the next job: a promotion into the highest rung that has one and `fits`, else a new
    /// trial if `may_sample` and rung 0 `fits`; `None` when nothing may run.
    pub fn next(&mut self, fits: impl Fn(usize) -> bool, may_sample: bool) -> Option<Job> {
        for rung in (0..self.finished.len().saturating_sub(1)).rev() {
            if !fits(rung + 1) {
                continue;
            }
            let waiting = self
                .top(rung)
                .into_iter()
                .find(|t| !self.promoted[rung].contains(t));
            if let Some(trial) = waiting {
                self.promoted[rung].insert(trial);
                return Some(Job::Promote {
                    trial,
                    rung: rung + 1,
                });
            }
        }
        if may_sample && fits(0) {
            self.sampled += 1;
            return Some(Job::Sample {
                trial: self.sampled,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rungs_grow_by_eta_up_to_the_full_resource() {
        assert_eq!(rungs(1, 3, 3), [1, 3]);
        assert_eq!(rungs(1, 15, 3), [2, 5, 15]);
        assert_eq!(rungs(1, 27, 3), [1, 3, 9, 27]);
        assert_eq!(rungs(2, 10, 2), [3, 5, 10]);
        assert_eq!(rungs(1, 1, 3), [1]);
        assert_eq!(rungs(1, 2, 3), [2]);
        assert_eq!(rungs(5, 3, 3), [3]);
        for (min, max, eta) in [(1, 100, 3), (3, 50, 2), (1, 7, 4)] {
            let r = rungs(min, max, eta);
            assert_eq!(*r.last().unwrap(), max);
            assert!(r[0] >= min && r.windows(2).all(|w| w[0] < w[1]), "{r:?}");
        }
    }

    /// Runs the scheduler on scores `score(trial, rung)` for `jobs` jobs.
    fn replay(
        rungs: usize,
        eta: usize,
        jobs: usize,
        score: impl Fn(u64, usize) -> f64,
    ) -> Vec<Job> {
        let mut asha = Asha::new(rungs, eta);
        let mut out = Vec::new();
        for _ in 0..jobs {
            let job = asha.next(|_| true, true).unwrap();
            asha.record(job.trial(), job.rung(), score(job.trial(), job.rung()));
            out.push(job);
        }
        out
    }

    #[test]
    fn the_top_third_rises_one_rung_at_a_time() {
        // Scores rise with the trial id, so each new trial tops rung 0 once three have run.
        let jobs = replay(3, 3, 12, |t, r| t as f64 + r as f64 * 0.1);
        let promoted: Vec<(u64, usize)> = jobs
            .iter()
            .filter_map(|j| match *j {
                Job::Promote { trial, rung } => Some((trial, rung)),
                Job::Sample { .. } => None,
            })
            .collect();
        // 3 is the best of {1, 2, 3}, 4 of {1..4}, 5 of {1..5}; then rung 1 holds three trials
        // ({3, 4, 5}) and its best, 5, climbs to rung 2 before anything new starts.
        assert_eq!(promoted[..5], [(3, 1), (4, 1), (5, 1), (5, 2), (6, 1)]);
        assert_eq!(jobs[..3], [1, 2, 3].map(|trial| Job::Sample { trial }));
    }

    #[test]
    fn failures_never_rise_and_ties_favour_the_earlier_trial() {
        let mut a = Asha::new(2, 2);
        for t in 1..=4 {
            assert_eq!(a.next(|r| r == 0, true), Some(Job::Sample { trial: t }));
            a.record(t, 0, if t == 4 { f64::NAN } else { 0.5 });
        }
        assert_eq!(a.top(0), [1, 2]);
        assert_eq!(
            a.next(|_| true, true),
            Some(Job::Promote { trial: 1, rung: 1 })
        );
        assert_eq!(
            a.next(|_| true, true),
            Some(Job::Promote { trial: 2, rung: 1 })
        );
        assert_eq!(a.next(|_| true, true), Some(Job::Sample { trial: 5 }));
    }

    #[test]
    fn jobs_that_do_not_fit_are_skipped() {
        let mut a = Asha::new(2, 2);
        for t in 1..=2 {
            a.next(|_| true, true);
            a.record(t, 0, t as f64);
        }
        // Rung 1 does not fit: sample instead; nothing fits or may be sampled: stop.
        assert_eq!(a.next(|r| r == 0, true), Some(Job::Sample { trial: 3 }));
        assert_eq!(a.next(|r| r == 0, false), None);
        assert_eq!(
            a.next(|_| true, false),
            Some(Job::Promote { trial: 2, rung: 1 })
        );
    }

    #[test]
    fn the_sequence_is_a_function_of_the_scores() {
        let score = |t: u64, r: usize| ((t * 7919) % 13) as f64 + r as f64;
        assert_eq!(replay(3, 3, 40, score), replay(3, 3, 40, score));
    }
}
