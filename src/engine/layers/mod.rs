//! LayerNorm, softmax, log-softmax, target log-probabilities, GELU, exp, the matrix product and
//! attention (the GPU layout, and on the CPU backend in the page `cpu::attention`'s heads), each
//! one operation to autodiff with its gradient written out.
//!
//! Written with tensor operations, each of these is several operations that autodiff
//! differentiates one at a time, and their backward passes were most of a training step's
//! kernel launches on GPU devices: a LayerNorm took 30 launches forward and backward, a softmax
//! 25, a log-softmax 21 (`cargo run --release --features gpu --example dispatches`); here 13, 10
//! and 9. The backward passes below are the closed forms. They are still made of the backend's
//! own operations, so burn's fusion fuses their elementwise parts on WebGPU, and the CPU backend
//! runs them with fewer autodiff nodes to record and walk.
//!
//! The public functions take and return `Tensor`s; `Dispatch` routes them to the backend a
//! tensor lives on (`#[backend_extension]`), to the autodiff implementation when it tracks
//! gradients. Forwards without a gradient use the backend's own LayerNorm where it has one (the
//! CPU backend's fused row loop), and on GPUs the LayerNorm kernel of `gpu_kernels`. On the CPU
//! backend, exp, GELU, the softmaxes and a tracked LayerNorm run `cpu::math`'s vectorized
//! functions, forward and backward; flex computes exp and erf one float at a time.
//! The tests check every forward and gradient against burn's own operations.
//!
//! This file has the public functions, the `LayerOps` trait and the forwards and gradients in
//! the backend's own operations (the trait's default bodies, what GPUs run); `cpu.rs` the CPU
//! backend's row loops; `autodiff.rs` the autodiff nodes with their written-out backward passes;
//! `tests.rs` the checks against burn.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::ops::{ActivationOps, FloatTensorOps};
use burn::backend::{backend_extension, Backend, Dispatch, Shape, TensorMetadata};
use burn::prelude::*;
use burn::tensor::{IndexingUpdateOp, Slice};

use crate::engine::cpu::flex_f32;

mod autodiff;
mod cpu;
#[cfg(test)]
mod tests;

/// LayerNorm (Ba et al., 2016) over the last dimension: (x − μ)/√(σ² + ε)·γ + β, σ² the biased
/// variance, as `burn::nn::LayerNorm` computes it.
///
/// # Shapes
/// - `x`: [..., d]; `gamma`, `beta`: [d] → [..., d]
pub fn layer_norm<const D: usize>(x: Tensor<D>, gamma: Tensor<1>, beta: Tensor<1>, epsilon: f32) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as LayerOps>::layer_norm_last(x.into_dispatch(), gamma.into_dispatch(), beta.into_dispatch(), epsilon))
}

/// GELU(x) = x·Φ(x) = ½·x·(1 + erf(x/√2)), elementwise (what `burn::tensor::activation::gelu`
/// computes; on the CPU backend with `cpu::math`'s vectorized erf).
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as LayerOps>::gelu_elementwise(x.into_dispatch()))
}

/// lhs·rhs over the last two dimensions, [..., m, k]·[..., k, n] → [..., m, n], with equal
/// batch dimensions (no broadcasting). On the CPU backend in the page, with `cpu::matmul`'s
/// kernel (relaxed SIMD's FMA where the browser has it); elsewhere burn's `matmul`.
pub fn matmul<const D: usize>(lhs: Tensor<D>, rhs: Tensor<D>) -> Tensor<D> {
    let (l, r) = (lhs.dims(), rhs.dims());
    assert!(D >= 2 && l[..D - 2] == r[..D - 2] && l[D - 1] == r[D - 2], "matmul: [.., m, k]·[.., k, n] with equal batch dimensions, got {l:?}·{r:?}");
    Tensor::from_dispatch(<Dispatch as LayerOps>::matrix_product(lhs.into_dispatch(), rhs.into_dispatch()))
}

/// Multi-head attention on heads split from qkv [B, T, 3D] and merged back into [B, T, D]:
/// softmax(q_h·k_hᵀ·scale + bias)·v_h for each head h, bias [1, 1, T, T]. `None` where the
/// backend has no implementation of its own (`cpu::attention`: the CPU backend in the page);
/// the model then composes it from operations.
pub fn head_attention(qkv: Tensor<3>, bias: Tensor<4>, n_heads: usize, scale: f32) -> Option<Tensor<3>> {
    <Dispatch as LayerOps>::head_attention(qkv.into_dispatch(), bias.into_dispatch(), n_heads, scale).map(Tensor::from_dispatch)
}

/// e^x, elementwise (on the CPU backend with `cpu::math`'s vectorized exp).
pub fn exp<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as LayerOps>::exp_elementwise(x.into_dispatch()))
}

/// softmax(x)_i = exp(x_i − max x)/Σ_j exp(x_j − max x) over the last dimension.
pub fn softmax<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as LayerOps>::softmax_last(x.into_dispatch()))
}

/// log softmax(x)_i = x_i − m − log Σ_j exp(x_j − m), m = max x, over the last dimension.
pub fn log_softmax<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as LayerOps>::log_softmax_last(x.into_dispatch()))
}

/// log softmax(z)[target] for each position: the log-probability of one token per position,
/// without the [.., V] tensor of log-probabilities in between.
///
/// As a log-softmax and a gather, the backward is a reduction, a zero-filled [B, T, V] tensor
/// and a scatter; with the gradient written out it is one elementwise kernel and one scatter,
/// since ∂/∂z_j of log softmax(z)_y is 1[j = y] − softmax(z)_j.
///
/// # Shapes
/// - `logits`: [batch, seq, vocab]; `targets`: [batch, seq] → [batch, seq]
pub fn target_log_probabilities(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<2> {
    let [batch, seq, _] = logits.dims();
    let targets = targets.reshape([batch, seq, 1]);
    let picked: Tensor<3> = Tensor::from_dispatch(<Dispatch as LayerOps>::target_log_probabilities(logits.into_dispatch(), targets.into_dispatch()));
    picked.reshape([batch, seq])
}

/// Causal attention of every head at once, heads kept side by side (see
/// `model::masked_head_attention`, which explains the formulation), with its backward written
/// out.
///
/// Differentiated operation by operation, the split of `qkv` into q, k and v costs, backward,
/// one zero-filled [B, T, 3D] tensor and one slice-assign per part, and two additions to join
/// them; here the three gradients are concatenated once.
///
/// # Shapes
/// - `qkv`: [batch, seq, 3·d_model]; `head_mask`: [1, heads, 1, d_model], 1 where a dimension
///   belongs to the head; `causal_bias`: [1, seq, 1, seq] → [batch, seq, d_model]
pub fn masked_head_attention(qkv: Tensor<3>, head_mask: Tensor<4>, causal_bias: Tensor<4>, scale: f32) -> Tensor<3> {
    Tensor::from_dispatch(<Dispatch as LayerOps>::masked_head_attention(qkv.into_dispatch(), head_mask.into_dispatch(), causal_bias.into_dispatch(), scale))
}

/// The operations, per backend. The default bodies are the forward passes in the backend's own
/// operations (the CPU backend; burn's fusion over cubecl, which fuses them lazily); autodiff
/// has its own implementation, which records one node with a written-out backward.
#[backend_extension(Flex: cfg(all()), Cube: cfg(any(feature = "webgpu", feature = "gpu")), Autodiff)]
pub trait LayerOps: Backend {
    fn layer_norm_last(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, epsilon: f32) -> FloatTensor<Self> {
        layer_norm_forward::<Self>(x, gamma, beta, epsilon).output
    }

    /// A LayerNorm whose backward is needed: (y, x̂, r), as `LayerNormParts` names them.
    fn layer_norm_keeping_parts(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, epsilon: f32) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        layer_norm_forward::<Self>(x, gamma, beta, epsilon).into_tuple()
    }

    /// (∂L/∂x, ∂L/∂γ, ∂L/∂β) of a LayerNorm from ∂L/∂y and its (x̂, r, γ), each where `wanted`
    /// ([x, γ, β]; `LayerNormBackward`).
    #[allow(clippy::type_complexity)]
    fn layer_norm_gradients(grad: FloatTensor<Self>, normalized: FloatTensor<Self>, inverse_std: FloatTensor<Self>, gamma: FloatTensor<Self>, wanted: [bool; 3]) -> (Option<FloatTensor<Self>>, Option<FloatTensor<Self>>, Option<FloatTensor<Self>>) {
        layer_norm_gradients_in_operations::<Self>(grad, normalized, inverse_std, gamma, wanted)
    }

    fn exp_elementwise(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_exp(x)
    }

    /// [..., m, k]·[..., k, n] → [..., m, n], equal batch dimensions.
    fn matrix_product(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_matmul(lhs, rhs)
    }

    /// `head_attention`: `None` by default (composed from operations by the model).
    fn head_attention(qkv: FloatTensor<Self>, bias: FloatTensor<Self>, n_heads: usize, scale: f32) -> Option<FloatTensor<Self>> {
        Self::head_attention_keeping_probabilities(qkv, bias, n_heads, scale).map(|(y, _)| y)
    }

    /// `head_attention` and its probabilities [B, H, T, T], for the backward.
    #[allow(clippy::type_complexity)]
    fn head_attention_keeping_probabilities(_qkv: FloatTensor<Self>, _bias: FloatTensor<Self>, _n_heads: usize, _scale: f32) -> Option<(FloatTensor<Self>, FloatTensor<Self>)> {
        None
    }

    /// ∂L/∂qkv of `head_attention` from ∂L/∂y, qkv and the probabilities, where
    /// `head_attention_keeping_probabilities` gave them.
    fn head_attention_gradient(_qkv: FloatTensor<Self>, _probabilities: FloatTensor<Self>, _grad: FloatTensor<Self>, _n_heads: usize, _scale: f32) -> Option<FloatTensor<Self>> {
        None
    }

    fn gelu_elementwise(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::gelu(x)
    }

    /// GELU(x), and GELU'(x) where the backend computes it in the same pass (the CPU backend):
    /// what a GELU whose gradient is needed keeps for its backward. `None`: the backward
    /// recomputes it from x (GPUs, where it fuses into the backward's other elementwise work).
    fn gelu_keeping_derivative(x: FloatTensor<Self>) -> (FloatTensor<Self>, Option<FloatTensor<Self>>) {
        (Self::gelu_elementwise(x), None)
    }

    /// ∂L/∂x = ∂L/∂y·GELU'(x) for y = GELU(x).
    fn gelu_elementwise_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::gelu_backward(x, grad)
    }

    fn softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let last = last_dim::<Self>(&x);
        Self::softmax(x, last)
    }

    fn log_softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let last = last_dim::<Self>(&x);
        Self::log_softmax(x, last)
    }

    fn masked_head_attention(qkv: FloatTensor<Self>, head_mask: FloatTensor<Self>, causal_bias: FloatTensor<Self>, scale: f32) -> FloatTensor<Self> {
        attention_forward::<Self>(qkv, head_mask, causal_bias, scale).output
    }

    /// `targets`: [.., 1] indices into the last dimension of `logits`.
    fn target_log_probabilities(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        target_log_probabilities_forward::<Self>(logits, targets).0
    }

    /// `target_log_probabilities` whose backward is needed: (log softmax(z)_y, softmax(z)).
    fn target_log_probabilities_keeping_probabilities(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> (FloatTensor<Self>, FloatTensor<Self>) {
        target_log_probabilities_keeping_in_operations::<Self>(logits, targets)
    }

    /// ∂L/∂z from softmax(z), the targets and ∂L/∂(log softmax(z)_y) ([.., 1]).
    fn target_log_probabilities_gradient(probabilities: FloatTensor<Self>, targets: IntTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        target_log_probabilities_gradient_in_operations::<Self>(probabilities, targets, grad)
    }
}

/// On a GPU, a LayerNorm without a gradient is one kernel (`gpu_kernels`) instead of two
/// reductions and the arithmetic around them.
#[cfg(any(feature = "webgpu", feature = "gpu"))]
impl LayerOps for burn::backend::Cube {
    fn layer_norm_last(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, epsilon: f32) -> FloatTensor<Self> {
        <Self as crate::engine::gpu_kernels::RowKernels>::layer_norm_rows(x, gamma, beta, epsilon)
    }
}

/// What a LayerNorm's forward leaves for its backward.
struct LayerNormParts<B: Backend> {
    output: FloatTensor<B>,
    /// x̂ = (x − μ)·r
    normalized: FloatTensor<B>,
    /// r = 1/√(σ² + ε), one per row: [..., 1]
    inverse_std: FloatTensor<B>,
}

impl<B: Backend> LayerNormParts<B> {
    /// (y, x̂, r): what `LayerOps::layer_norm_keeping_parts` returns.
    fn into_tuple(self) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
        (self.output, self.normalized, self.inverse_std)
    }
}

/// The index of the last dimension.
fn last_dim<B: Backend>(x: &FloatTensor<B>) -> usize {
    x.shape().num_dims() - 1
}

/// [d] as [1, ..., 1, d], to broadcast over a tensor of `rank` dimensions.
fn as_row<B: Backend>(vector: FloatTensor<B>, rank: usize) -> FloatTensor<B> {
    let d = vector.shape()[0];
    let dims: Vec<usize> = (0..rank).map(|i| if i + 1 == rank { d } else { 1 }).collect();
    B::float_reshape(vector, Shape::from(dims))
}

/// [..., d] as [rows, d].
fn as_rows<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let shape = x.shape();
    let d = shape[shape.num_dims() - 1];
    B::float_reshape(x, Shape::from(vec![shape.num_elements() / d, d]))
}

/// Σ over the rows of [rows, d], as [d]: the gradient of a [d] vector broadcast over the rows.
fn column_sums<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let d = x.shape()[1];
    B::float_reshape(B::float_sum_dim(x, 0), Shape::from(vec![d]))
}

fn layer_norm_forward<B: Backend>(x: FloatTensor<B>, gamma: FloatTensor<B>, beta: FloatTensor<B>, epsilon: f32) -> LayerNormParts<B> {
    let rank = x.shape().num_dims();
    let last = last_dim::<B>(&x);
    // Reshapes first: in burn's fusion a reshape ends the run of operations fused into one
    // kernel, so between the normalization and the scale it would split them.
    let (gamma, beta) = (as_row::<B>(gamma, rank), as_row::<B>(beta, rank));
    let centered = B::float_sub(x.clone(), B::float_mean_dim(x, last));
    let variance = B::float_mean_dim(B::float_mul(centered.clone(), centered.clone()), last);
    let inverse_std = B::float_recip(B::float_sqrt(B::float_add_scalar(variance, epsilon.into())));
    let normalized = B::float_mul(centered, inverse_std.clone());
    let output = B::float_add(B::float_mul(normalized.clone(), gamma), beta);
    LayerNormParts { output, normalized, inverse_std }
}

/// The picked log-probabilities and the log normalizer m + log Σ exp(z − m), m = max z.
fn target_log_probabilities_forward<B: Backend + LayerOps>(logits: FloatTensor<B>, targets: IntTensor<B>) -> (FloatTensor<B>, FloatTensor<B>) {
    let last = last_dim::<B>(&logits);
    let max = B::float_max_dim(logits.clone(), last);
    let log_sum_exp = B::float_log(B::float_sum_dim(B::exp_elementwise(B::float_sub(logits.clone(), max.clone())), last));
    let log_normalizer = B::float_add(max, log_sum_exp);
    let picked = B::float_gather(last, logits, targets);
    (B::float_sub(picked, log_normalizer.clone()), log_normalizer)
}

/// `LayerOps::target_log_probabilities_keeping_probabilities` in operations: the forward, then
/// softmax(z) = exp(z − log normalizer).
fn target_log_probabilities_keeping_in_operations<B: Backend + LayerOps>(logits: FloatTensor<B>, targets: IntTensor<B>) -> (FloatTensor<B>, FloatTensor<B>) {
    let (picked, log_normalizer) = target_log_probabilities_forward::<B>(logits.clone(), targets);
    (picked, B::exp_elementwise(B::float_sub(logits, log_normalizer)))
}

/// ∂L/∂z_j = g·(1[j = y] − softmax(z)_j), g = ∂L/∂(log softmax(z)_y), in operations: −g·softmax(z),
/// then g added at the target.
fn target_log_probabilities_gradient_in_operations<B: Backend>(probabilities: FloatTensor<B>, targets: IntTensor<B>, grad: FloatTensor<B>) -> FloatTensor<B> {
    let last = last_dim::<B>(&probabilities);
    let spread = B::float_mul(probabilities, B::float_neg(grad.clone()));
    B::float_scatter(last, spread, targets, grad, IndexingUpdateOp::Add)
}

/// What the attention's forward leaves for its backward.
struct AttentionParts<B: Backend> {
    output: FloatTensor<B>,
    state: AttentionState<B>,
}

#[derive(Debug, Clone)]
struct AttentionState<B: Backend> {
    q: FloatTensor<B>,
    /// Keys and values repeated per head, other heads' dimensions zeroed: [B, H·T, D].
    keys: FloatTensor<B>,
    values: FloatTensor<B>,
    /// softmax of the scores, [B, T, H·T].
    probabilities: FloatTensor<B>,
    head_mask: FloatTensor<B>,
    scale: f32,
}

fn attention_forward<B: Backend + LayerOps>(qkv: FloatTensor<B>, head_mask: FloatTensor<B>, causal_bias: FloatTensor<B>, scale: f32) -> AttentionParts<B> {
    let shape = qkv.shape();
    let (batch, seq, d_model) = (shape[0], shape[1], shape[2] / 3);
    let n_heads = head_mask.shape()[1];
    let part = |i: usize| B::float_slice(qkv.clone(), &[Slice::from(0..batch), Slice::from(0..seq), Slice::from(i * d_model..(i + 1) * d_model)]);
    let per_head = |t: FloatTensor<B>| {
        let t = B::float_reshape(t, Shape::from(vec![batch, 1, seq, d_model]));
        B::float_reshape(B::float_mul(t, head_mask.clone()), Shape::from(vec![batch, n_heads * seq, d_model]))
    };
    let (q, keys, values) = (part(0), per_head(part(1)), per_head(part(2)));
    let scores = B::float_mul_scalar(B::matrix_product(q.clone(), B::float_swap_dims(keys.clone(), 1, 2)), scale.into());
    let scores = B::float_add(B::float_reshape(scores, Shape::from(vec![batch, seq, n_heads, seq])), causal_bias);
    let probabilities = B::float_reshape(B::softmax_last(scores), Shape::from(vec![batch, seq, n_heads * seq]));
    let output = B::matrix_product(probabilities.clone(), values.clone());
    AttentionParts { output, state: AttentionState { q, keys, values, probabilities, head_mask, scale } }
}

/// A LayerNorm's gradients in the backend's operations, each where `wanted` ([x, γ, β]). With
/// g = ∂L/∂y·γ (per row, n = d):
/// ∂L/∂x = r·(g − mean(g) − x̂·mean(g·x̂)),  ∂L/∂γ = Σ_rows ∂L/∂y·x̂,  ∂L/∂β = Σ_rows ∂L/∂y.
///
/// The two row means are matrix products with γ, Σ_d ∂L/∂y_d·γ_d and Σ_d (∂L/∂y·x̂)_d·γ_d:
/// one kernel each, where the product g and its reduction were two, and ∂L/∂y·x̂ serves ∂L/∂γ
/// too. Everything runs on [rows, d] views made first: in burn's fusion a reshape between two
/// operations keeps them out of one kernel.
#[allow(clippy::type_complexity)]
fn layer_norm_gradients_in_operations<B: Backend>(
    grad: FloatTensor<B>,
    normalized: FloatTensor<B>,
    inverse_std: FloatTensor<B>,
    gamma: FloatTensor<B>,
    [want_x, want_gamma, want_beta]: [bool; 3],
) -> (Option<FloatTensor<B>>, Option<FloatTensor<B>>, Option<FloatTensor<B>>) {
    let shape = normalized.shape();
    let d = shape[shape.num_dims() - 1];
    let (grad, normalized, inverse_std) = (as_rows::<B>(grad), as_rows::<B>(normalized), as_rows::<B>(inverse_std));
    let (gamma_column, gamma_row) = (B::float_reshape(gamma.clone(), Shape::from(vec![d, 1])), B::float_reshape(gamma, Shape::from(vec![1, d])));
    let grad_normalized = B::float_mul(grad.clone(), normalized.clone());
    let d_beta = want_beta.then(|| column_sums::<B>(grad.clone()));
    let d_gamma = want_gamma.then(|| column_sums::<B>(grad_normalized.clone()));
    let d_x = want_x.then(|| {
        let sum_g = B::float_matmul(grad.clone(), gamma_column.clone()); // [rows, 1]
        let sum_g_normalized = B::float_matmul(grad_normalized, gamma_column);
        let means = B::float_mul_scalar(B::float_add(sum_g, B::float_mul(normalized, sum_g_normalized)), (1.0 / d as f32).into());
        let inner = B::float_sub(B::float_mul(grad, gamma_row), means);
        B::float_reshape(B::float_mul(inner, inverse_std), shape)
    });
    (d_x, d_gamma, d_beta)
}

/// ∂L/∂x for y = softmax(x) along `dim`: y·(∂L/∂y − Σ_j ∂L/∂y_j·y_j).
fn softmax_backward<B: Backend>(output: FloatTensor<B>, grad: FloatTensor<B>, dim: usize) -> FloatTensor<B> {
    let weighted = B::float_sum_dim(B::float_mul(grad.clone(), output.clone()), dim);
    B::float_mul(output, B::float_sub(grad, weighted))
}
