//! Optimisers that update one parameter row at a time (SGD and lazy Adam), their bundle for the
//! three tensors of an MF model, and the sparse gradient table of a step that touches few rows.

use crate::model::MfModel;
use crate::train::settings::{ModelConfig, OptimizerKind};

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
    /// Adam's bias-corrected step size at `t` ([`adam_step`]), kept so each row's update does
    /// not recompute two powers (they dominated updates of narrow rows such as biases).
    step: f32,
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
            step: adam_step(lr, 1),
        }
    }

    /// The plain-SGD learning rate, when this is SGD (callers may then use a fused update).
    pub fn sgd_rate(&self) -> Option<f32> {
        (self.kind == OptimizerKind::Sgd).then_some(self.lr)
    }

    /// Advances the step counter (once per batch; Adam's bias correction uses it).
    pub fn next_step(&mut self) {
        self.t = self.t.saturating_add(1);
        self.step = adam_step(self.lr, self.t.max(1));
    }

    /// Applies `grad` to `param` (one row, index `row`).
    pub fn apply(&mut self, row: usize, param: &mut [f32], grad: &[f32]) {
        match self.kind {
            OptimizerKind::Sgd => sgd(param, grad, self.lr),
            OptimizerKind::Adam => {
                let r = row * self.width..(row + 1) * self.width;
                let (m, v) = (&mut self.m[r.clone()], &mut self.v[r]);
                adam(param, grad, m, v, self.step);
            }
        }
    }
}

fn sgd(param: &mut [f32], grad: &[f32], lr: f32) {
    for (p, g) in param.iter_mut().zip(grad) {
        *p -= lr * g;
    }
}

/// Adam's step size at step `t` with both bias corrections folded in.
fn adam_step(lr: f32, t: i32) -> f32 {
    let c1 = 1.0 - BETA1.powi(t);
    let c2 = 1.0 - BETA2.powi(t);
    lr * c2.sqrt() / c1
}

fn adam(param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], step: f32) {
    for i in 0..param.len() {
        let g = grad[i];
        m[i] = BETA1 * m[i] + (1.0 - BETA1) * g;
        v[i] = BETA2 * v[i] + (1.0 - BETA2) * g * g;
        param[i] -= step * m[i] / (v[i].sqrt() + EPS);
    }
}

/// Optimiser state for the three tensors of an MF model.
#[derive(Debug, Clone)]
pub struct MfOptimizer {
    pub(crate) user: RowOptimizer,
    pub(crate) item: RowOptimizer,
    pub(crate) bias: RowOptimizer,
    pub(crate) l2: f32,
}

impl MfOptimizer {
    /// State sized for `model`, configured by `cfg` (optimiser, lr, l2).
    pub fn new(model: &MfModel, cfg: &ModelConfig) -> Self {
        let d = model.dim();
        Self {
            user: RowOptimizer::new(cfg.optimizer, cfg.lr, model.n_users(), d),
            item: RowOptimizer::new(cfg.optimizer, cfg.lr, model.n_items(), d),
            bias: RowOptimizer::new(cfg.optimizer, cfg.lr, model.n_items(), 1),
            l2: cfg.l2,
        }
    }

    /// Advances every tensor's step counter (once per batch).
    pub fn next_step(&mut self) {
        self.user.next_step();
        self.item.next_step();
        self.bias.next_step();
    }
}

/// Gradient rows of a step that touches few parameter rows: a slot per touched row, found in
/// O(1) through a row → slot table that is reset only where it was used. Rows are applied in
/// the order they were first touched (deterministic), so no rows × width buffer is needed.
#[derive(Debug, Clone)]
pub struct RowGrads {
    width: usize,
    slot_of: Vec<u32>,
    keys: Vec<usize>,
    values: Vec<f32>,
}

impl RowGrads {
    const EMPTY: u32 = u32::MAX;

    /// An empty table for a `rows × width` parameter.
    pub fn new(rows: usize, width: usize) -> Self {
        Self {
            width,
            slot_of: vec![Self::EMPTY; rows],
            keys: Vec::new(),
            values: Vec::new(),
        }
    }

    /// The gradient row of `key`, zero when first touched.
    pub fn row(&mut self, key: usize) -> &mut [f32] {
        let w = self.width;
        let mut slot = self.slot_of[key];
        if slot == Self::EMPTY {
            slot = self.keys.len() as u32;
            self.slot_of[key] = slot;
            self.keys.push(key);
            self.values.resize(self.values.len() + w, 0.0);
        }
        let slot = slot as usize;
        &mut self.values[slot * w..(slot + 1) * w]
    }

    /// Adds `scale · v + l2 · param` to row `key`.
    pub fn add(&mut self, key: usize, scale: f32, v: &[f32], l2: f32, param: &[f32]) {
        let row = self.row(key);
        for ((r, &x), &p) in row.iter_mut().zip(v).zip(param) {
            *r += scale * x + l2 * p;
        }
    }

    /// The rows touched so far, in first-touch order.
    pub fn touched(&self) -> &[usize] {
        &self.keys
    }

    /// Applies every accumulated row to `param` (row-major, `width` columns) and empties itself.
    pub fn apply_and_clear(&mut self, param: &mut [f32], opt: &mut RowOptimizer) {
        let w = self.width;
        for (slot, &key) in self.keys.iter().enumerate() {
            opt.apply(
                key,
                &mut param[key * w..(key + 1) * w],
                &self.values[slot * w..(slot + 1) * w],
            );
            self.slot_of[key] = Self::EMPTY;
        }
        self.keys.clear();
        self.values.clear();
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
}
