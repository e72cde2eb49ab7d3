//! Which users one online trainer step plays the game on.
//!
//! A step over every user costs seconds at the scale of a real catalogue (Gowalla: ~30,000
//! users, 730,000 positives), and nothing can be published while a step runs. So a step plays on
//! a window of at most `trainer.step_users` users: those whose feedback changed since the last
//! publish first (the step has a purpose: their new data), then the next users of a cursor that
//! cycles through everyone, so every user is visited in turn. Small catalogues fit in one window
//! and play on everyone, as before.

use std::collections::BTreeSet;

use crate::data::Interactions;

/// The cycling cursor over users.
#[derive(Debug, Clone, Default)]
pub struct StepWindow {
    cursor: usize,
}

impl StepWindow {
    /// The positives of the next window: `None` when every user with positives fits in `max`
    /// (or `max` is 0), meaning the step plays on all of `train`. Otherwise the rows of the
    /// `changed` users with positives (at most `max`), then users from the cursor on.
    pub fn next(
        &mut self,
        train: &Interactions,
        changed: &BTreeSet<u32>,
        max: usize,
    ) -> Option<Interactions> {
        let active = train.active_users();
        if max == 0 || active.len() <= max {
            return None;
        }
        let mut picked: BTreeSet<usize> = changed
            .iter()
            .map(|&u| u as usize)
            .filter(|&u| u < train.n_users() && !train.items(u).is_empty())
            .take(max)
            .collect();
        let start = self.cursor % active.len();
        let mut taken = 0;
        while picked.len() < max && taken < active.len() {
            picked.insert(active[(start + taken) % active.len()]);
            taken += 1;
        }
        self.cursor = (start + taken) % active.len();
        let pairs: Vec<(u32, u32)> = picked
            .iter()
            .flat_map(|&u| train.items(u).iter().map(move |&i| (u as u32, i)))
            .collect();
        Some(Interactions::from_pairs(
            train.n_users(),
            train.n_items(),
            &pairs,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Users 0..10 with one positive each (user 3 has none).
    fn train() -> Interactions {
        let pairs: Vec<(u32, u32)> = (0..10u32).filter(|&u| u != 3).map(|u| (u, u)).collect();
        Interactions::from_pairs(10, 10, &pairs)
    }

    #[test]
    fn small_catalogues_play_on_everyone() {
        let mut w = StepWindow::default();
        assert!(w.next(&train(), &BTreeSet::new(), 9).is_none());
        assert!(w.next(&train(), &BTreeSet::new(), 0).is_none());
    }

    #[test]
    fn changed_users_come_first_and_the_cursor_visits_everyone() {
        let t = train();
        let mut w = StepWindow::default();
        // Changed users 7 and 3 (3 has no positives, so it is skipped), then the cursor.
        let first = w.next(&t, &BTreeSet::from([7, 3]), 4).unwrap();
        assert_eq!(first.active_users(), vec![0, 1, 2, 7]);
        let mut seen: BTreeSet<usize> = first.active_users().into_iter().collect();
        for _ in 0..3 {
            let next = w.next(&t, &BTreeSet::new(), 4).unwrap();
            assert_eq!(next.active_users().len(), 4);
            // Rows are copied whole.
            for u in next.active_users() {
                assert_eq!(next.items(u), t.items(u));
            }
            seen.extend(next.active_users());
        }
        assert_eq!(seen.len(), 9, "every user with positives was visited");
    }
}
