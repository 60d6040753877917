//! Reading the device from the host: every CPU–GPU sync point of the crate goes through here or
//! calls `count_readback`, so the benchmark can count them (one per training step, one per
//! rollout). On WebGPU in the page every read must be async (`into_data_async`): a synchronous
//! read panics there.

use std::sync::atomic::{AtomicUsize, Ordering};

use burn::prelude::*;
use burn::tensor::TensorData;

use crate::error::{LabError, Result};

static READBACKS: AtomicUsize = AtomicUsize::new(0);

/// Counts one device-to-host transfer. Every readback site of the crate calls this.
pub fn count_readback() {
    READBACKS.fetch_add(1, Ordering::Relaxed);
}

/// Readbacks since the process (or page) started.
pub fn readbacks() -> usize {
    READBACKS.load(Ordering::Relaxed)
}

/// Reads many scalars in one transfer: they are concatenated on the device first.
/// This is a CPU–GPU sync point: the step's one readback.
pub async fn read_scalars(values: Vec<Tensor<1>>) -> Result<Vec<f32>> {
    let all = crate::engine::concat::concatenate(values, 0);
    count_readback();
    let data = all.into_data_async().await.map_err(|e| LabError::Device(format!("reading metrics: {e:?}")))?;
    Ok(floats_of(&data))
}

/// The values of `data` as `f32`: one copy when they are `f32` already, not a conversion
/// element by element (a θ or a gradient is ~100k values).
fn floats_of(data: &TensorData) -> Vec<f32> {
    match data.as_slice::<f32>() {
        Ok(values) => values.to_vec(),
        Err(_) => data.iter::<f32>().collect(),
    }
}

/// Reads one float tensor of any rank (flattened). A CPU–GPU sync point.
pub async fn read_floats<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>> {
    count_readback();
    let data = tensor.into_data_async().await.map_err(|e| LabError::Device(format!("reading results: {e:?}")))?;
    Ok(floats_of(&data))
}
