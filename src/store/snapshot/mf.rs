//! The recommendation snapshot's own part: the manifest section describing G and D (matrix
//! factorisation models), their tensors, and the checks on their shapes and values.

use ndarray::{Array1, Array2};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use super::error::SnapshotError;
use super::tensors::{F32Tensor, TENSORS_FILE, load_f32};
use crate::model::MfModel;

/// `generator` section of the manifest: G's shape and its softmax temperature.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct GeneratorInfo {
    #[serde(flatten)]
    pub(super) shape: ModelInfo,
    pub(super) temperature: f32,
}

/// `discriminator` section of the manifest (and the shape part of `generator`).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ModelInfo {
    pub(super) users: usize,
    pub(super) items: usize,
    pub(super) dim: usize,
}

impl ModelInfo {
    /// The section describing `m`.
    pub(super) fn of(m: &MfModel) -> Self {
        Self {
            users: m.n_users(),
            items: m.n_items(),
            dim: m.dim(),
        }
    }
}

/// The recommendation manifest's own part (`generator`, `discriminator`).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct MfPart {
    pub(super) generator: GeneratorInfo,
    pub(super) discriminator: ModelInfo,
}

/// The three tensors (`{prefix}.user`, `.item`, `.bias`) of one model.
pub(super) fn model_tensors(prefix: &str, m: &MfModel) -> [(String, F32Tensor); 3] {
    [
        (
            format!("{prefix}.user"),
            F32Tensor::new(m.user.shape(), m.user.iter()),
        ),
        (
            format!("{prefix}.item"),
            F32Tensor::new(m.item.shape(), m.item.iter()),
        ),
        (
            format!("{prefix}.bias"),
            F32Tensor::new(m.bias.shape(), m.bias.iter()),
        ),
    ]
}

/// Errors unless every parameter of `m` is finite, naming the first bad tensor.
pub(super) fn check_finite(prefix: &str, m: &MfModel) -> Result<(), SnapshotError> {
    let parts = [
        ("user", m.user.iter().all(|x| x.is_finite())),
        ("item", m.item.iter().all(|x| x.is_finite())),
        ("bias", m.bias.iter().all(|x| x.is_finite())),
    ];
    match parts.iter().find(|(_, ok)| !ok) {
        Some((part, _)) => Err(SnapshotError::NotFinite {
            tensor: format!("{prefix}.{part}"),
        }),
        None => Ok(()),
    }
}

/// Errors unless `m` covers exactly `users` users and `items` items with consistent dims.
pub(super) fn check_model_shapes(
    prefix: &str,
    m: &MfModel,
    users: usize,
    items: usize,
) -> Result<(), SnapshotError> {
    let (u, du) = m.user.dim();
    let (i, di) = m.item.dim();
    let b = m.bias.len();
    let problem = if u != users {
        format!("{prefix}.user has {u} rows but there are {users} user ids")
    } else if i != items {
        format!("{prefix}.item has {i} rows but there are {items} item ids")
    } else if du != di {
        format!("{prefix}.user has dim {du} but {prefix}.item has dim {di}")
    } else if b != i {
        format!("{prefix}.bias has length {b} but {prefix}.item has {i} rows")
    } else {
        return Ok(());
    };
    Err(SnapshotError::ShapeMismatch(problem))
}

/// Loads one model's three tensors, checking them against the manifest's shape.
pub(super) fn load_model(
    st: &SafeTensors<'_>,
    prefix: &str,
    info: &ModelInfo,
) -> Result<MfModel, SnapshotError> {
    let dim = info.dim;
    let matrix = |part: &str, rows: usize| -> Result<Array2<f32>, SnapshotError> {
        let name = format!("{prefix}.{part}");
        let values = load_f32(st, &name, &[rows, dim])?;
        Array2::from_shape_vec((rows, dim), values)
            .map_err(|e| SnapshotError::ShapeMismatch(format!("{TENSORS_FILE}: `{name}`: {e}")))
    };
    let user = matrix("user", info.users)?;
    let item = matrix("item", info.items)?;
    let bias = Array1::from_vec(load_f32(st, &format!("{prefix}.bias"), &[info.items])?);
    Ok(MfModel { user, item, bias })
}
