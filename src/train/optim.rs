//! Optimisers that update one parameter row at a time (SGD and lazy Adam).

use crate::config::OptimizerKind;

const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPS: f32 = 1e-8;

/// Optimiser state for one parameter matrix of `rows × width`, updated row by row.
///
/// Adam here is "lazy": a row's moments only move when the row is in a batch, the usual choice
/// for embeddings, where a dense update would cost O(items) per step.
#[derive(Debug, Clone)]
pub struct RowOptimizer {
    kind: OptimizerKind,
    lr: f32,
    width: usize,
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl RowOptimizer {
    /// State for a `rows × width` parameter.
    pub fn new(kind: OptimizerKind, lr: f32, rows: usize, width: usize) -> Self {
        let n = if kind == OptimizerKind::Adam {
            rows * width
        } else {
            0
        };
        Self {
            kind,
            lr,
            width,
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    /// Advances the step counter (once per batch; Adam's bias correction uses it).
    pub fn next_step(&mut self) {
        self.t = self.t.saturating_add(1);
    }

    /// Applies `grad` to `param` (one row, index `row`).
    pub fn apply(&mut self, row: usize, param: &mut [f32], grad: &[f32]) {
        match self.kind {
            OptimizerKind::Sgd => sgd(param, grad, self.lr),
            OptimizerKind::Adam => {
                let r = row * self.width..(row + 1) * self.width;
                let (m, v) = (&mut self.m[r.clone()], &mut self.v[r]);
                adam(param, grad, m, v, self.lr, self.t.max(1));
            }
        }
    }

    /// Splits the whole state into consecutive blocks of `rows_per_block` rows.
    pub fn blocks(&mut self, rows: usize, rows_per_block: usize) -> Vec<RowBlock<'_>> {
        let width = self.width;
        let (lr, t) = (self.lr, self.t.max(1));
        let step = rows_per_block * width;
        let n_blocks = rows.div_ceil(rows_per_block.max(1));
        match self.kind {
            OptimizerKind::Sgd => (0..n_blocks)
                .map(|_| RowBlock {
                    lr,
                    width,
                    t,
                    state: None,
                })
                .collect(),
            OptimizerKind::Adam => self
                .m
                .chunks_mut(step)
                .zip(self.v.chunks_mut(step))
                .map(|(m, v)| RowBlock {
                    lr,
                    width,
                    t,
                    state: Some((m, v)),
                })
                .collect(),
        }
    }
}

/// Optimiser state for a contiguous block of rows (see [`RowOptimizer::blocks`]).
#[derive(Debug)]
pub struct RowBlock<'a> {
    lr: f32,
    width: usize,
    t: i32,
    state: Option<(&'a mut [f32], &'a mut [f32])>,
}

impl RowBlock<'_> {
    /// Applies `grad` to `param`, row `local_row` of this block.
    pub fn apply(&mut self, local_row: usize, param: &mut [f32], grad: &[f32]) {
        match &mut self.state {
            None => sgd(param, grad, self.lr),
            Some((m, v)) => {
                let r = local_row * self.width..(local_row + 1) * self.width;
                adam(param, grad, &mut m[r.clone()], &mut v[r], self.lr, self.t);
            }
        }
    }
}

fn sgd(param: &mut [f32], grad: &[f32], lr: f32) {
    for (p, g) in param.iter_mut().zip(grad) {
        *p -= lr * g;
    }
}

fn adam(param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], lr: f32, t: i32) {
    let c1 = 1.0 - BETA1.powi(t);
    let c2 = 1.0 - BETA2.powi(t);
    let step = lr * c2.sqrt() / c1;
    for i in 0..param.len() {
        let g = grad[i];
        m[i] = BETA1 * m[i] + (1.0 - BETA1) * g;
        v[i] = BETA2 * v[i] + (1.0 - BETA2) * g * g;
        param[i] -= step * m[i] / (v[i].sqrt() + EPS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both optimisers minimise a quadratic (p − 3)².
    #[test]
    fn optimisers_descend() {
        for kind in [OptimizerKind::Sgd, OptimizerKind::Adam] {
            let mut opt = RowOptimizer::new(kind, 0.05, 2, 1);
            let mut p = [0.0f32];
            for _ in 0..2000 {
                opt.next_step();
                let g = [2.0 * (p[0] - 3.0)];
                opt.apply(1, &mut p, &g);
            }
            assert!((p[0] - 3.0).abs() < 1e-2, "{kind:?}: {}", p[0]);
        }
    }

    #[test]
    fn blocks_update_like_rows() {
        let mut a = RowOptimizer::new(OptimizerKind::Adam, 0.1, 4, 2);
        let mut b = a.clone();
        a.next_step();
        b.next_step();
        let mut pa = [1.0f32, 2.0];
        let mut pb = pa;
        a.apply(3, &mut pa, &[0.5, -0.5]);
        let mut blocks = b.blocks(4, 2);
        blocks[1].apply(1, &mut pb, &[0.5, -0.5]);
        assert_eq!(pa, pb);
    }
}
