//! Multi-head causal self-attention, the first part of a block: one fused QKV projection, the
//! causal mask made on the host, and the KV cache that generation writes one position at a time.

use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::TensorData;

use super::parts::{dense, linear, INIT_STD};
use crate::engine::layers::softmax;
use crate::engine::model::config::ModelConfig;
use crate::rng::Rng;

/// Added to masked attention scores: far below any real score, but finite (WGSL need not
/// support infinities).
pub(super) const MASKED_SCORE: f32 = -1e9;

/// Additive causal mask for a block of `len` new positions after `past` cached ones:
/// 0 where query i may see key j (j ≤ past + i), a large negative number elsewhere. Made on the
/// host and uploaded: no kernel launches.
pub(super) fn causal_bias(past: usize, len: usize, device: &Device) -> Tensor<4> {
    causal_bias_over(past, len, past + len, device)
}

/// The same mask over `keys` key positions, `keys` ≥ past + len: positions beyond the last
/// query's are masked too (a KV cache's buffer not yet written).
pub(super) fn causal_bias_over(past: usize, len: usize, keys: usize, device: &Device) -> Tensor<4> {
    let mut values = vec![0.0f32; len * keys];
    for i in 0..len {
        for j in past + i + 1..keys {
            values[i * keys + j] = MASKED_SCORE;
        }
    }
    Tensor::from_data(TensorData::new(values, [1, 1, len, keys]), device)
}

/// Keys and values of earlier positions, one entry per block, for autoregressive generation.
///
/// Each block's keys and values live in one [batch, heads, context, head_dim] buffer allocated
/// at the first call: a new position is written in place (one slice-assign) and attention runs
/// over the whole buffer with the positions not yet written masked out. Growing the cache by
/// concatenation instead copied it at every token.
#[derive(Debug, Default)]
pub struct KvCache {
    pub(super) layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    /// Positions already cached.
    pub len: usize,
    /// Positions the buffers hold: the model's context length.
    pub(super) capacity: usize,
}

/// Where a block's attention reads and writes the cache: its buffers, and how many positions
/// they already hold.
pub(super) struct CacheSlot<'a> {
    pub(super) buffers: &'a mut Option<(Tensor<4>, Tensor<4>)>,
    pub(super) past: usize,
    pub(super) capacity: usize,
}

impl CacheSlot<'_> {
    /// Writes the new positions' keys and values, [B, H, T, hd], after the `past` cached ones;
    /// returns the whole buffers, [B, H, capacity, hd].
    fn write(self, k: Tensor<4>, v: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let [batch, n_heads, seq, head_dim] = k.dims();
        let (past, capacity) = (self.past, self.capacity);
        let (keys, values) = self.buffers.take().unwrap_or_else(|| {
            let zeros = || Tensor::zeros([batch, n_heads, capacity, head_dim], &k.device());
            (zeros(), zeros())
        });
        let written = [0..batch, 0..n_heads, past..past + seq, 0..head_dim];
        let keys = keys.slice_assign(written.clone(), k);
        let values = values.slice_assign(written, v);
        *self.buffers = Some((keys.clone(), values.clone()));
        (keys, values)
    }
}

/// Multi-head causal self-attention with one fused QKV projection.
#[derive(Module, Debug)]
pub struct CausalSelfAttention {
    /// d_model → 3·d_model: queries, keys and values in one matmul.
    pub(super) qkv: Linear,
    /// Heads back into the residual stream.
    pub(super) proj: Linear,
    pub(super) n_heads: usize,
}

impl CausalSelfAttention {
    pub(super) fn new(config: &ModelConfig, rng: &mut Rng, device: &Device) -> Self {
        let d = config.d_model;
        // GPT-2 scales residual projections by 1/√(2·n_layers) so the stream's variance does not
        // grow with depth.
        let residual_std = INIT_STD / (2.0 * config.n_layers as f32).sqrt();
        Self { qkv: linear(d, 3 * d, INIT_STD, rng, device), proj: linear(d, d, residual_std, rng, device), n_heads: config.n_heads }
    }

    /// # Shapes
    /// - `x`: [batch, seq, d_model] — the new positions only when a cache is given
    /// - returns [batch, seq, d_model]
    pub(super) fn forward(&self, x: Tensor<3>, bias: Option<Tensor<4>>, cache: Option<CacheSlot>) -> Tensor<3> {
        let [batch, seq, d_model] = x.dims();
        let head_dim = d_model / self.n_heads;
        let qkv = dense(&self.qkv, x); // [B, T, 3D]
        let n_heads = self.n_heads;
        let scale = 1.0 / (head_dim as f32).sqrt();
        if cache.is_none() && launches_dominate(&qkv.device()) {
            return dense(&self.proj, masked_head_attention(qkv, n_heads, scale, bias));
        }
        // The CPU backend in the page runs the heads on strided views of qkv (`cpu::attention`).
        if let (None, Some(bias)) = (&cache, &bias)
            && let Some(y) = crate::engine::layers::head_attention(qkv.clone(), bias.clone(), n_heads, scale)
        {
            return dense(&self.proj, y);
        }
        let (q, mut k, mut v) = if seq == 1 {
            let [q, k, v] = one_position_heads(qkv, n_heads);
            (q, k, v)
        } else {
            let heads = |t: Tensor<3>| t.reshape([batch, seq, n_heads, head_dim]).swap_dims(1, 2); // [B, H, T, hd]
            let mut parts = qkv.chunk(3, 2).into_iter();
            (heads(parts.next().unwrap()), heads(parts.next().unwrap()), heads(parts.next().unwrap()))
        };
        if let Some(slot) = cache {
            (k, v) = slot.write(k, v);
        }
        let mut scores = crate::engine::layers::matmul(q, k.swap_dims(2, 3)).mul_scalar(scale); // [B, H, T, T_keys]
        if let Some(bias) = bias {
            scores = scores + bias;
        }
        let attention = softmax(scores);
        let y = crate::engine::layers::matmul(attention, v); // [B, H, T, hd]
        // Heads back side by side, [B, T, D]. For one position (generation) [B, H, 1, hd] is
        // already that in memory: a reshape, where the transpose would cost a copy kernel.
        let y = match seq {
            1 => y.reshape([batch, 1, d_model]),
            _ => y.swap_dims(1, 2).reshape([batch, seq, d_model]),
        };
        dense(&self.proj, y)
    }

    /// One new position's attention on a GPU: its keys and values into the cache, then one
    /// kernel over the cache (`gpu_kernels::cached_attention`).
    ///
    /// # Shapes
    /// - `qkv`: [batch, 1, 3·d_model] → [batch, 1, d_model]
    pub(super) fn attend_one_position(&self, qkv: Tensor<3>, slot: CacheSlot) -> Tensor<3> {
        let n_heads = self.n_heads;
        let head_dim = qkv.dims()[2] / 3 / n_heads;
        let length = slot.past + 1;
        let [_, k, v] = one_position_heads(qkv.clone(), n_heads);
        let (keys, values) = slot.write(k, v);
        crate::engine::gpu_kernels::cached_attention(qkv, keys, values, length, 1.0 / (head_dim as f32).sqrt())
    }
}

/// One position's q, k and v heads, each [B, H, 1, hd]: its qkv [B, 1, 3D] is [B, 3H, 1, hd] in
/// memory, and they are slices of it, where the transpose of the general case would cost copies.
fn one_position_heads(qkv: Tensor<3>, n_heads: usize) -> [Tensor<4>; 3] {
    let [batch, _, width] = qkv.dims();
    let head_dim = width / 3 / n_heads;
    let all = qkv.reshape([batch, 3 * n_heads, 1, head_dim]);
    [0, 1, 2].map(|i| all.clone().slice([0..batch, i * n_heads..(i + 1) * n_heads]))
}

/// Whether a step's time on `device` goes to launching kernels rather than to arithmetic: on
/// a GPU (WebGPU, burn-wgpu) each launch costs the same whatever its size (~6 ms on the
/// SwiftShader of headless Chromium), so fewer, larger kernels win; on the CPU backend the
/// arithmetic is the cost. The full-sequence attention is formulated accordingly (see
/// `masked_head_attention`).
pub(super) fn launches_dominate(device: &Device) -> bool {
    // Device equality ignores autodiff: an autodiff CPU device is the CPU backend too.
    *device != Device::flex()
}

/// Causal attention of every head at once without splitting the heads apart.
///
/// Head h sees only its own dimensions: its scores are q_h·k_hᵀ, and q_h·k_hᵀ = q·(k ⊙ m_h)ᵀ for
/// the 0/1 mask m_h of those dimensions. So the keys are repeated once per head with the other
/// heads' dimensions zeroed, [B, H·T, D], and one matmul gives every head's scores,
/// [B, T, H·T]. The values are repeated and masked the same way, so the second matmul sums the
/// heads' outputs into their own dimensions of [B, T, D] directly. The usual layout,
/// [B, H, T, hd], costs a transpose (a copy kernel) for each of q, k, v and y, forward and
/// backward; this costs two masked products and H times the attention's multiply-adds. On
/// burn-wgpu (lavapipe) a training step of the tiny GPT launches 342 kernels instead of 366; on
/// the CPU backend, where those multiply-adds are the cost, the split heads stay.
///
/// # Shapes
/// - `qkv`: [batch, seq, 3·d_model]; `bias`: [1, 1, seq, seq] → [batch, seq, d_model]
pub(super) fn masked_head_attention(qkv: Tensor<3>, n_heads: usize, scale: f32, bias: Option<Tensor<4>>) -> Tensor<3> {
    let [_, seq, width] = qkv.dims();
    let d_model = width / 3;
    let head_dim = d_model / n_heads;
    let mask: Vec<f32> = (0..n_heads).flat_map(|h| (0..d_model).map(move |d| if d / head_dim == h { 1.0 } else { 0.0 })).collect();
    let mask = Tensor::<4>::from_data(TensorData::new(mask, [1, n_heads, 1, d_model]), &qkv.device());
    // The causal bias [1, 1, T, T] is [1, T, 1, T] in memory: the query, then the key.
    let bias = match bias {
        Some(bias) => bias.reshape([1, seq, 1, seq]),
        None => Tensor::zeros([1, seq, 1, seq], &qkv.device()),
    };
    // One operation with its gradient written out (`layers`): q, k and v, and the keys and
    // values repeated per head with the others' dimensions zeroed, [B, H·T, D]; the scores
    // q·kᵀ per head side by side, [B, T, H·T]; their softmax times the values.
    crate::engine::layers::masked_head_attention(qkv, mask, bias, scale)
}
