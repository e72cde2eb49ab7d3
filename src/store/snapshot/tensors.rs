//! `tensors.safetensors`: F32, little-endian, row-major tensors, written and read the same way
//! by every snapshot kind.

use std::borrow::Cow;

use safetensors::{Dtype, SafeTensors, View};

use super::error::SnapshotError;
use super::manifest::MANIFEST_FILE;

/// Name of the tensor file inside a snapshot directory.
pub const TENSORS_FILE: &str = "tensors.safetensors";

/// An owned F32 tensor ready for `safetensors::serialize`.
pub(crate) struct F32Tensor {
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl F32Tensor {
    /// The tensor of `shape` holding `values` in row-major order.
    pub(crate) fn new<'a>(shape: &[usize], values: impl Iterator<Item = &'a f32>) -> Self {
        let data = values.flat_map(|x| x.to_le_bytes()).collect();
        Self {
            shape: shape.to_vec(),
            data,
        }
    }
}

impl View for F32Tensor {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// The bytes of a `tensors.safetensors` holding `tensors`.
pub(crate) fn serialize(tensors: Vec<(String, F32Tensor)>) -> Result<Vec<u8>, SnapshotError> {
    safetensors::serialize(tensors, None)
        .map_err(|e| SnapshotError::Format(format!("{TENSORS_FILE}: {e}")))
}

/// Parses the bytes of a `tensors.safetensors`.
pub(crate) fn deserialize(bytes: &[u8]) -> Result<SafeTensors<'_>, SnapshotError> {
    SafeTensors::deserialize(bytes)
        .map_err(|e| SnapshotError::Format(format!("{TENSORS_FILE}: {e}")))
}

/// One F32 tensor's values, checking presence, dtype, shape and finiteness.
pub(crate) fn load_f32(
    st: &SafeTensors<'_>,
    name: &str,
    shape: &[usize],
) -> Result<Vec<f32>, SnapshotError> {
    let view = st
        .tensor(name)
        .map_err(|_| SnapshotError::Format(format!("{TENSORS_FILE}: missing tensor `{name}`")))?;
    if view.dtype() != Dtype::F32 {
        return Err(SnapshotError::Format(format!(
            "{TENSORS_FILE}: tensor `{name}` has dtype {:?}, expected F32",
            view.dtype()
        )));
    }
    if view.shape() != shape {
        return Err(SnapshotError::ShapeMismatch(format!(
            "{TENSORS_FILE}: tensor `{name}` has shape {:?} but {MANIFEST_FILE} implies {shape:?}",
            view.shape()
        )));
    }
    let values: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if !values.iter().all(|x| x.is_finite()) {
        return Err(SnapshotError::NotFinite {
            tensor: name.to_owned(),
        });
    }
    Ok(values)
}
