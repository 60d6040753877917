//! LayerNorm, softmax, log-softmax, target log-probabilities, GELU, exp, the matrix product and
//! attention (the GPU layout, and on the CPU backend in the page `cpu_attention`'s heads), each
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
//! CPU backend's fused row loop), and on GPUs the LayerNorm kernel of `kernels`. On the CPU
//! backend, exp, GELU, the softmaxes and a tracked LayerNorm run `cpu_math`'s vectorized
//! functions, forward and backward; flex computes exp and erf one float at a time.
//! The tests check every forward and gradient against burn's own operations.

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

use crate::cpu_math;
use crate::flex_f32;

/// LayerNorm (Ba et al., 2016) over the last dimension: (x − μ)/√(σ² + ε)·γ + β, σ² the biased
/// variance, as `burn::nn::LayerNorm` computes it.
///
/// # Shapes
/// - `x`: [..., d]; `gamma`, `beta`: [d] → [..., d]
pub fn layer_norm<const D: usize>(x: Tensor<D>, gamma: Tensor<1>, beta: Tensor<1>, epsilon: f32) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as LayerOps>::layer_norm_last(x.into_dispatch(), gamma.into_dispatch(), beta.into_dispatch(), epsilon))
}

/// GELU(x) = x·Φ(x) = ½·x·(1 + erf(x/√2)), elementwise (what `burn::tensor::activation::gelu`
/// computes; on the CPU backend with `cpu_math`'s vectorized erf).
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as LayerOps>::gelu_elementwise(x.into_dispatch()))
}

/// lhs·rhs over the last two dimensions, [..., m, k]·[..., k, n] → [..., m, n], with equal
/// batch dimensions (no broadcasting). On the CPU backend in the page, with `cpu_matmul`'s
/// kernel (relaxed SIMD's FMA where the browser has it); elsewhere burn's `matmul`.
pub fn matmul<const D: usize>(lhs: Tensor<D>, rhs: Tensor<D>) -> Tensor<D> {
    let (l, r) = (lhs.dims(), rhs.dims());
    assert!(D >= 2 && l[..D - 2] == r[..D - 2] && l[D - 1] == r[D - 2], "matmul: [.., m, k]·[.., k, n] with equal batch dimensions, got {l:?}·{r:?}");
    Tensor::from_dispatch(<Dispatch as LayerOps>::matrix_product(lhs.into_dispatch(), rhs.into_dispatch()))
}

/// Multi-head attention on heads split from qkv [B, T, 3D] and merged back into [B, T, D]:
/// softmax(q_h·k_hᵀ·scale + bias)·v_h for each head h, bias [1, 1, T, T]. `None` where the
/// backend has no implementation of its own (`cpu_attention`: the CPU backend in the page);
/// the model then composes it from operations.
pub fn head_attention(qkv: Tensor<3>, bias: Tensor<4>, n_heads: usize, scale: f32) -> Option<Tensor<3>> {
    <Dispatch as LayerOps>::head_attention(qkv.into_dispatch(), bias.into_dispatch(), n_heads, scale).map(Tensor::from_dispatch)
}

/// e^x, elementwise (on the CPU backend with `cpu_math`'s vectorized exp).
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
#[backend_extension(Flex: cfg(all()), Cube: cfg(any(target_arch = "wasm32", feature = "gpu")), Autodiff)]
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

/// The CPU backend runs a LayerNorm as its own fused row-wise loop, and exp, GELU and the
/// softmaxes with `cpu_math`'s vectorized exp and erf (flex computes them one float at a time).
impl LayerOps for burn::backend::Flex {
    fn layer_norm_last(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, epsilon: f32) -> FloatTensor<Self> {
        <Self as burn::backend::ops::ModuleOps<Self>>::layer_norm(x, gamma, Some(beta), f64::from(epsilon))
    }

    fn layer_norm_keeping_parts(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, epsilon: f32) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let Some((rows_shape, width)) = flex_f32::rows_of(&x, &[&gamma, &beta]) else {
            return layer_norm_forward::<Self>(x, gamma, beta, epsilon).into_tuple();
        };
        let (x, gamma, beta) = (x.to_contiguous(), gamma.to_contiguous(), beta.to_contiguous());
        let n = x.layout().num_elements();
        let (mut output, mut normalized, mut inverse_std) = (vec![0.0; n], vec![0.0; n], vec![0.0; n / width]);
        cpu_math::layer_norm_rows(flex_f32::floats(&x), flex_f32::floats(&gamma), flex_f32::floats(&beta), epsilon, &mut output, &mut normalized, &mut inverse_std);
        let shape = x.layout().shape().clone();
        (flex_f32::f32_tensor(output, shape.clone()), flex_f32::f32_tensor(normalized, shape), flex_f32::f32_tensor(inverse_std, rows_shape))
    }

    fn layer_norm_gradients(grad: FloatTensor<Self>, normalized: FloatTensor<Self>, inverse_std: FloatTensor<Self>, gamma: FloatTensor<Self>, wanted: [bool; 3]) -> (Option<FloatTensor<Self>>, Option<FloatTensor<Self>>, Option<FloatTensor<Self>>) {
        let fits = flex_f32::rows_of(&grad, &[&gamma]).is_some_and(|(rows_shape, _)| grad.layout().shape() == normalized.layout().shape() && *inverse_std.layout().shape() == rows_shape && inverse_std.dtype() == grad.dtype() && normalized.dtype() == grad.dtype());
        if !fits {
            return layer_norm_gradients_in_operations::<Self>(grad, normalized, inverse_std, gamma, wanted);
        }
        let (grad, normalized, inverse_std, gamma) = (grad.to_contiguous(), normalized.to_contiguous(), inverse_std.to_contiguous(), gamma.to_contiguous());
        let (n, width) = (grad.layout().num_elements(), gamma.layout().num_elements());
        let (mut d_x, mut d_gamma, mut d_beta) = (vec![0.0; n], vec![0.0; width], vec![0.0; width]);
        cpu_math::layer_norm_backward_rows(flex_f32::floats(&grad), flex_f32::floats(&normalized), flex_f32::floats(&inverse_std), flex_f32::floats(&gamma), &mut d_x, &mut d_gamma, &mut d_beta);
        let [want_x, want_gamma, want_beta] = wanted;
        let vector = Shape::from(vec![width]);
        (
            want_x.then(|| flex_f32::f32_tensor(d_x, grad.layout().shape().clone())),
            want_gamma.then(|| flex_f32::f32_tensor(d_gamma, vector.clone())),
            want_beta.then(|| flex_f32::f32_tensor(d_beta, vector)),
        )
    }

    fn exp_elementwise(x: FloatTensor<Self>) -> FloatTensor<Self> {
        flex_f32::map(x, cpu_math::exp_slice).unwrap_or_else(|x| Self::float_exp(x))
    }

    /// In the page `cpu_matmul`'s kernel; natively flex's product, which has AVX2 and FMA.
    fn matrix_product(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        #[cfg(target_arch = "wasm32")]
        if let Some(kernel) = crate::cpu_matmul::active() {
            return crate::cpu_matmul::matmul(lhs, rhs, kernel).unwrap_or_else(|(lhs, rhs)| Self::float_matmul(lhs, rhs));
        }
        Self::float_matmul(lhs, rhs)
    }

    /// `cpu_attention`, where the page's matrix product runs (`cpu_attention::kernel`).
    fn head_attention_keeping_probabilities(qkv: FloatTensor<Self>, bias: FloatTensor<Self>, n_heads: usize, scale: f32) -> Option<(FloatTensor<Self>, FloatTensor<Self>)> {
        let kernel = crate::cpu_attention::kernel()?;
        let (q_shape, b_shape) = (qkv.layout().shape().clone(), bias.layout().shape().clone());
        let fits = qkv.dtype() == burn::tensor::DType::F32 && bias.dtype() == qkv.dtype() && q_shape.num_dims() == 3 && n_heads > 0 && q_shape[2] % (3 * n_heads) == 0 && b_shape.as_slice() == [1, 1, q_shape[1], q_shape[1]];
        if !fits || q_shape.num_elements() == 0 {
            return None;
        }
        let heads = crate::cpu_attention::Heads { batch: q_shape[0], seq: q_shape[1], d_model: q_shape[2] / 3, heads: n_heads };
        let (qkv, bias) = (qkv.to_contiguous(), bias.to_contiguous());
        let (y, probabilities) = crate::cpu_attention::forward(flex_f32::floats(&qkv), flex_f32::floats(&bias), heads, scale, kernel);
        let (batch, seq, d_model) = (heads.batch, heads.seq, heads.d_model);
        Some((flex_f32::f32_tensor(y, Shape::from(vec![batch, seq, d_model])), flex_f32::f32_tensor(probabilities, Shape::from(vec![batch, n_heads, seq, seq]))))
    }

    fn head_attention_gradient(qkv: FloatTensor<Self>, probabilities: FloatTensor<Self>, grad: FloatTensor<Self>, n_heads: usize, scale: f32) -> Option<FloatTensor<Self>> {
        // The forward kept the probabilities: the backward runs whatever product is chosen now
        // (the core's own if the page changed its choice in between).
        let kernel = crate::cpu_attention::kernel().unwrap_or_else(crate::cpu_matmul::separate_mul_add);
        let shape = qkv.layout().shape().clone();
        let heads = crate::cpu_attention::Heads { batch: shape[0], seq: shape[1], d_model: shape[2] / 3, heads: n_heads };
        let (qkv, probabilities, grad) = (qkv.to_contiguous(), probabilities.to_contiguous(), grad.to_contiguous());
        let d_qkv = crate::cpu_attention::backward(flex_f32::floats(&qkv), flex_f32::floats(&probabilities), flex_f32::floats(&grad), heads, scale, kernel);
        Some(flex_f32::f32_tensor(d_qkv, shape))
    }

    fn gelu_elementwise(x: FloatTensor<Self>) -> FloatTensor<Self> {
        flex_f32::map(x, cpu_math::gelu_slice).unwrap_or_else(|x| Self::gelu(x))
    }

    fn gelu_keeping_derivative(x: FloatTensor<Self>) -> (FloatTensor<Self>, Option<FloatTensor<Self>>) {
        match flex_f32::map_to_two(x, cpu_math::gelu_with_derivative_slice) {
            Ok((output, derivative)) => (output, Some(derivative)),
            Err(x) => (Self::gelu(x), None),
        }
    }

    fn gelu_elementwise_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        flex_f32::map2(x, grad, cpu_math::gelu_backward_slice).unwrap_or_else(|(x, grad)| Self::gelu_backward(x, grad))
    }

    fn softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let width = x.shape()[last_dim::<Self>(&x)];
        flex_f32::map(x, |input, output| cpu_math::softmax_rows(input, width, output)).unwrap_or_else(|x| {
            let last = last_dim::<Self>(&x);
            Self::softmax(x, last)
        })
    }

    fn log_softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let width = x.shape()[last_dim::<Self>(&x)];
        flex_f32::map(x, |input, output| cpu_math::log_softmax_rows(input, width, output)).unwrap_or_else(|x| {
            let last = last_dim::<Self>(&x);
            Self::log_softmax(x, last)
        })
    }

    fn target_log_probabilities(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        let Some((rows_shape, width, indices)) = target_rows(&logits, &targets) else {
            return target_log_probabilities_forward::<Self>(logits, targets).0;
        };
        let logits = logits.to_contiguous();
        let mut picked = vec![0.0; indices.len()];
        cpu_math::target_log_softmax_rows(flex_f32::floats(&logits), width, &indices, &mut picked, None);
        flex_f32::f32_tensor(picked, rows_shape)
    }

    fn target_log_probabilities_keeping_probabilities(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let Some((rows_shape, width, indices)) = target_rows(&logits, &targets) else {
            return target_log_probabilities_keeping_in_operations::<Self>(logits, targets);
        };
        let logits = logits.to_contiguous();
        let (mut picked, mut probabilities) = (vec![0.0; indices.len()], vec![0.0; logits.layout().num_elements()]);
        cpu_math::target_log_softmax_rows(flex_f32::floats(&logits), width, &indices, &mut picked, Some(&mut probabilities));
        (flex_f32::f32_tensor(picked, rows_shape), flex_f32::f32_tensor(probabilities, logits.layout().shape().clone()))
    }

    fn target_log_probabilities_gradient(probabilities: FloatTensor<Self>, targets: IntTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        let fits = target_rows(&probabilities, &targets).filter(|(rows_shape, _, _)| grad.dtype() == probabilities.dtype() && grad.layout().shape() == rows_shape);
        let Some((_, width, indices)) = fits else {
            return target_log_probabilities_gradient_in_operations::<Self>(probabilities, targets, grad);
        };
        let (probabilities, grad) = (probabilities.to_contiguous(), grad.to_contiguous());
        let mut d_logits = vec![0.0; probabilities.layout().num_elements()];
        cpu_math::target_log_softmax_backward_rows(flex_f32::floats(&probabilities), width, &indices, flex_f32::floats(&grad), &mut d_logits);
        flex_f32::f32_tensor(d_logits, probabilities.layout().shape().clone())
    }
}

/// On a GPU, a LayerNorm without a gradient is one kernel (`kernels`) instead of two
/// reductions and the arithmetic around them.
#[cfg(any(target_arch = "wasm32", feature = "gpu"))]
impl LayerOps for burn::backend::Cube {
    fn layer_norm_last(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, epsilon: f32) -> FloatTensor<Self> {
        <Self as crate::kernels::RowKernels>::layer_norm_rows(x, gamma, beta, epsilon)
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

/// For the CPU backend's row loops over logits [.., V] and targets [.., 1]: the rows' shape
/// [.., 1], V and the targets as indices, where the logits hold f32s and every target is a
/// class; `None`: the caller runs the operations (which fail as flex does on a bad target).
fn target_rows(logits: &burn::backend::flex::FlexTensor, targets: &burn::backend::flex::FlexTensor) -> Option<(Shape, usize, Vec<usize>)> {
    let (rows_shape, width) = flex_f32::rows_of(logits, &[])?;
    let indices = flex_f32::indices(targets).filter(|indices| targets.layout().shape() == &rows_shape && indices.iter().all(|&y| y < width))?;
    Some((rows_shape, width, indices))
}

#[derive(Debug)]
struct TargetLogProbabilitiesBackward;

impl<B: Backend + LayerOps> Backward<B, 1> for TargetLogProbabilitiesBackward {
    /// softmax(z) and the targets.
    type State = (FloatTensor<B>, IntTensor<B>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [logits_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let Some(node) = logits_node else { return };
        let (probabilities, targets) = ops.state;
        grads.register::<B>(node.id, B::target_log_probabilities_gradient(probabilities, targets, grad));
    }
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

#[derive(Debug)]
struct AttentionBackward;

impl<B: Backend + LayerOps> Backward<B, 1> for AttentionBackward {
    type State = AttentionState<B>;

    /// With P the probabilities, S the scores and dY the output's gradient (Y = P·V):
    /// dV = Pᵀ·dY, dP = dY·Vᵀ, dS = P ⊙ (dP − Σ_row dP ⊙ P) (the softmax's backward, per head),
    /// dQ = scale·dS·K, dK = scale·dSᵀ·Q; each repeated part's gradient is masked to its head
    /// and summed over the heads, and [dQ, dK, dV] is the gradient of qkv.
    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [qkv_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let Some(node) = qkv_node else { return };
        let AttentionState { q, keys, values, probabilities, head_mask, scale } = ops.state;
        let shape = q.shape();
        let (batch, seq, d_model) = (shape[0], shape[1], shape[2]);
        let n_heads = head_mask.shape()[1];
        let per_head_back = |t: FloatTensor<B>| {
            let t = B::float_reshape(t, Shape::from(vec![batch, n_heads, seq, d_model]));
            B::float_reshape(B::float_sum_dim(B::float_mul(t, head_mask.clone()), 1), Shape::from(vec![batch, seq, d_model]))
        };
        let d_values = B::matrix_product(B::float_swap_dims(probabilities.clone(), 1, 2), grad.clone());
        let d_probabilities = B::matrix_product(grad, B::float_swap_dims(values, 1, 2));
        let by_head = Shape::from(vec![batch, seq, n_heads, seq]);
        let p = B::float_reshape(probabilities, by_head.clone());
        let dp = B::float_reshape(d_probabilities, by_head);
        let d_scores = B::float_mul_scalar(softmax_backward::<B>(p, dp, 3), scale.into());
        let d_scores = B::float_reshape(d_scores, Shape::from(vec![batch, seq, n_heads * seq]));
        let d_q = B::matrix_product(d_scores.clone(), keys);
        let d_keys = B::matrix_product(B::float_swap_dims(d_scores, 1, 2), q);
        let d_qkv = B::float_cat(vec![d_q, per_head_back(d_keys), per_head_back(d_values)], 2);
        grads.register::<B>(node.id, d_qkv);
    }
}

#[derive(Debug)]
struct LayerNormBackward;

impl<B: Backend + LayerOps> Backward<B, 3> for LayerNormBackward {
    /// x̂, r and γ.
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    /// `LayerOps::layer_norm_gradients`: on the CPU backend one pass per row
    /// (`cpu_math::layer_norm_backward_rows`), elsewhere `layer_norm_gradients_in_operations`.
    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [x_node, gamma_node, beta_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (normalized, inverse_std, gamma) = ops.state;
        let (d_x, d_gamma, d_beta) = B::layer_norm_gradients(grad, normalized, inverse_std, gamma, [x_node.is_some(), gamma_node.is_some(), beta_node.is_some()]);
        for (node, gradient) in [(x_node, d_x), (gamma_node, d_gamma), (beta_node, d_beta)] {
            if let (Some(node), Some(gradient)) = (node, gradient) {
                grads.register::<B>(node.id, gradient);
            }
        }
    }
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

#[derive(Debug)]
struct SoftmaxBackward;

impl<B: Backend> Backward<B, 1> for SoftmaxBackward {
    /// y = softmax(x).
    type State = FloatTensor<B>;

    /// ∂L/∂x = y·(∂L/∂y − Σ_j ∂L/∂y_j·y_j) (`softmax_backward`).
    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [x_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let Some(node) = x_node else { return };
        let output = ops.state;
        let last = last_dim::<B>(&output);
        grads.register::<B>(node.id, softmax_backward::<B>(output, grad, last));
    }
}

/// ∂L/∂x for y = softmax(x) along `dim`: y·(∂L/∂y − Σ_j ∂L/∂y_j·y_j).
fn softmax_backward<B: Backend>(output: FloatTensor<B>, grad: FloatTensor<B>, dim: usize) -> FloatTensor<B> {
    let weighted = B::float_sum_dim(B::float_mul(grad.clone(), output.clone()), dim);
    B::float_mul(output, B::float_sub(grad, weighted))
}

#[derive(Debug)]
struct LogSoftmaxBackward;

impl<B: Backend + LayerOps> Backward<B, 1> for LogSoftmaxBackward {
    /// y = log softmax(x).
    type State = FloatTensor<B>;

    /// ∂L/∂x = ∂L/∂y − exp(y)·Σ_j ∂L/∂y_j.
    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [x_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let Some(node) = x_node else { return };
        let output = ops.state;
        let last = last_dim::<B>(&output);
        let total = B::float_sum_dim(grad.clone(), last);
        grads.register::<B>(node.id, B::float_sub(grad, B::float_mul(B::exp_elementwise(output), total)));
    }
}

#[derive(Debug)]
struct ExpBackward;

impl<B: Backend> Backward<B, 1> for ExpBackward {
    /// y = e^x.
    type State = FloatTensor<B>;

    /// ∂L/∂x = ∂L/∂y·e^x = ∂L/∂y·y.
    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [x_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let Some(node) = x_node else { return };
        grads.register::<B>(node.id, B::float_mul(grad, ops.state));
    }
}

#[derive(Debug)]
struct GeluBackward;

/// What a GELU keeps for its backward: GELU'(x) where the forward computed it, else x.
#[derive(Debug, Clone)]
enum GeluState<B: Backend> {
    Derivative(FloatTensor<B>),
    Input(FloatTensor<B>),
}

impl<B: Backend + LayerOps> Backward<B, 1> for GeluBackward {
    type State = GeluState<B>;

    /// ∂L/∂x = ∂L/∂y·(Φ(x) + x·φ(x)).
    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [x_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let Some(node) = x_node else { return };
        let grad_x = match ops.state {
            GeluState::Derivative(derivative) => B::float_mul(grad, derivative),
            GeluState::Input(x) => B::gelu_elementwise_backward(x, grad),
        };
        grads.register::<B>(node.id, grad_x);
    }
}

#[derive(Debug)]
struct MatrixProductBackward;

impl<B: Backend + LayerOps> Backward<B, 2> for MatrixProductBackward {
    /// lhs, rhs.
    type State = (FloatTensor<B>, FloatTensor<B>);

    /// For Y = A·B: ∂L/∂A = ∂L/∂Y·Bᵀ, ∂L/∂B = Aᵀ·∂L/∂Y (per batch index).
    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [lhs_node, rhs_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (lhs, rhs) = ops.state;
        let rank = grad.shape().num_dims();
        if let Some(node) = lhs_node {
            grads.register::<B>(node.id, B::matrix_product(grad.clone(), B::float_swap_dims(rhs, rank - 2, rank - 1)));
        }
        if let Some(node) = rhs_node {
            grads.register::<B>(node.id, B::matrix_product(B::float_swap_dims(lhs, rank - 2, rank - 1), grad));
        }
    }
}

#[derive(Debug)]
struct HeadAttentionBackward;

impl<B: Backend + LayerOps> Backward<B, 1> for HeadAttentionBackward {
    /// qkv, the probabilities, the number of heads and the scale.
    type State = (FloatTensor<B>, FloatTensor<B>, usize, f32);

    /// `LayerOps::head_attention_gradient` (`cpu_attention::backward` has the formulas).
    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [qkv_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let Some(node) = qkv_node else { return };
        let (qkv, probabilities, n_heads, scale) = ops.state;
        let d_qkv = B::head_attention_gradient(qkv, probabilities, grad, n_heads, scale).expect("the backend that kept the probabilities differentiates them");
        grads.register::<B>(node.id, d_qkv);
    }
}

impl<B: Backend + LayerOps, C: CheckpointStrategy> LayerOps for Autodiff<B, C> {
    fn head_attention(qkv: FloatTensor<Self>, bias: FloatTensor<Self>, n_heads: usize, scale: f32) -> Option<FloatTensor<Self>> {
        // The bias is a constant: only qkv is differentiated.
        let bias = bias.into_primitive();
        match HeadAttentionBackward.prepare::<C>([qkv.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let qkv = qkv.into_primitive();
                let (y, probabilities) = B::head_attention_keeping_probabilities(qkv.clone(), bias, n_heads, scale)?;
                Some(prep.finish((qkv, probabilities, n_heads, scale), y))
            }
            OpsKind::UnTracked(prep) => Some(prep.finish(B::head_attention(qkv.into_primitive(), bias, n_heads, scale)?)),
        }
    }

    fn matrix_product(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        match MatrixProductBackward.prepare::<C>([lhs.node(), rhs.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (lhs, rhs) = (lhs.into_primitive(), rhs.into_primitive());
                prep.finish((lhs.clone(), rhs.clone()), B::matrix_product(lhs, rhs))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::matrix_product(lhs.into_primitive(), rhs.into_primitive())),
        }
    }

    fn exp_elementwise(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match ExpBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let output = B::exp_elementwise(x.into_primitive());
                prep.finish(output.clone(), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::exp_elementwise(x.into_primitive())),
        }
    }

    fn gelu_elementwise(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match GeluBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let x = x.into_primitive();
                let (output, derivative) = B::gelu_keeping_derivative(x.clone());
                let state = match derivative {
                    Some(derivative) => GeluState::Derivative(derivative),
                    None => GeluState::Input(x),
                };
                prep.finish(state, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::gelu_elementwise(x.into_primitive())),
        }
    }

    fn layer_norm_last(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, epsilon: f32) -> FloatTensor<Self> {
        match LayerNormBackward.prepare::<C>([x.node(), gamma.node(), beta.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let gamma = gamma.into_primitive();
                let (output, normalized, inverse_std) = B::layer_norm_keeping_parts(x.into_primitive(), gamma.clone(), beta.into_primitive(), epsilon);
                prep.finish((normalized, inverse_std, gamma), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::layer_norm_last(x.into_primitive(), gamma.into_primitive(), beta.into_primitive(), epsilon)),
        }
    }

    fn softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match SoftmaxBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let output = B::softmax_last(x.into_primitive());
                prep.finish(output.clone(), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::softmax_last(x.into_primitive())),
        }
    }

    fn masked_head_attention(qkv: FloatTensor<Self>, head_mask: FloatTensor<Self>, causal_bias: FloatTensor<Self>, scale: f32) -> FloatTensor<Self> {
        // The mask and the bias are constants: only qkv is differentiated.
        let (head_mask, causal_bias) = (head_mask.into_primitive(), causal_bias.into_primitive());
        match AttentionBackward.prepare::<C>([qkv.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let parts = attention_forward::<B>(qkv.into_primitive(), head_mask, causal_bias, scale);
                prep.finish(parts.state, parts.output)
            }
            OpsKind::UnTracked(prep) => prep.finish(attention_forward::<B>(qkv.into_primitive(), head_mask, causal_bias, scale).output),
        }
    }

    fn target_log_probabilities(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        match TargetLogProbabilitiesBackward.prepare::<C>([logits.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (picked, probabilities) = B::target_log_probabilities_keeping_probabilities(logits.into_primitive(), targets.clone());
                prep.finish((probabilities, targets), picked)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::target_log_probabilities(logits.into_primitive(), targets)),
        }
    }

    fn log_softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match LogSoftmaxBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let output = B::log_softmax_last(x.into_primitive());
                prep.finish(output.clone(), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::log_softmax_last(x.into_primitive())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LayerNormConfig;
    use burn::tensor::activation;
    use burn::tensor::{Distribution, TensorData};

    fn assert_close<const D: usize>(ours: Tensor<D>, theirs: Tensor<D>, tolerance: f32, what: &str) {
        let a: Vec<f32> = ours.into_data().iter::<f32>().collect();
        let b: Vec<f32> = theirs.into_data().iter::<f32>().collect();
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(worst <= tolerance, "{what}: max |difference| {worst} > {tolerance}");
    }

    /// A random [2, 3, 8] input and a loss that weighs every output differently, so that no
    /// gradient term cancels by symmetry.
    fn input_and_weights(device: &Device) -> (Tensor<3>, Tensor<3>) {
        let x = Tensor::<3>::random([2, 3, 8], Distribution::Normal(0.5, 2.0), device);
        let w = Tensor::<3>::random([2, 3, 8], Distribution::Normal(0.0, 1.0), device);
        (x, w)
    }

    #[test]
    fn layer_norm_matches_burns_forward_and_gradients() {
        let device = Device::flex().autodiff();
        let (x, w) = input_and_weights(&device);
        // γ and β away from 1 and 0, so that a term that forgets them shows.
        let mut norm = LayerNormConfig::new(8).init(&device);
        norm.gamma = burn::module::Param::from_tensor(Tensor::random([8], Distribution::Normal(1.0, 0.5), &device));
        norm.beta = Some(burn::module::Param::from_tensor(Tensor::random([8], Distribution::Normal(0.0, 0.5), &device)));
        let beta = norm.beta.as_ref().unwrap();

        let x_ours = x.clone().require_grad();
        let (gamma, beta_ours) = (norm.gamma.val(), beta.val());
        let ours = layer_norm(x_ours.clone(), gamma.clone(), beta_ours.clone(), 1e-5);
        let grads_ours = (ours.clone() * w.clone()).sum().backward();

        let x_theirs = x.require_grad();
        let theirs = norm.forward(x_theirs.clone());
        let grads_theirs = (theirs.clone() * w).sum().backward();

        assert_close(ours, theirs, 1e-5, "forward");
        assert_close(x_ours.grad(&grads_ours).unwrap(), x_theirs.grad(&grads_theirs).unwrap(), 1e-5, "∂/∂x");
        assert_close(gamma.grad(&grads_ours).unwrap(), norm.gamma.grad(&grads_theirs).unwrap(), 1e-5, "∂/∂γ");
        assert_close(beta_ours.grad(&grads_ours).unwrap(), beta.grad(&grads_theirs).unwrap(), 1e-5, "∂/∂β");
    }

    #[test]
    fn softmax_and_log_softmax_match_burns_forward_and_gradients() {
        let device = Device::flex().autodiff();
        let (x, w) = input_and_weights(&device);
        for (name, ours_fn, theirs_fn) in [
            ("softmax", softmax::<3> as fn(Tensor<3>) -> Tensor<3>, (|x| activation::softmax(x, 2)) as fn(Tensor<3>) -> Tensor<3>),
            ("log-softmax", log_softmax::<3>, |x| activation::log_softmax(x, 2)),
        ] {
            let x_ours = x.clone().require_grad();
            let ours = ours_fn(x_ours.clone());
            let grads_ours = (ours.clone() * w.clone()).sum().backward();
            let x_theirs = x.clone().require_grad();
            let theirs = theirs_fn(x_theirs.clone());
            let grads_theirs = (theirs.clone() * w.clone()).sum().backward();
            assert_close(ours, theirs, 1e-6, name);
            assert_close(x_ours.grad(&grads_ours).unwrap(), x_theirs.grad(&grads_theirs).unwrap(), 1e-5, name);
        }
    }

    #[test]
    fn gelu_and_exp_match_burns_forward_and_gradients() {
        let device = Device::flex().autodiff();
        let (x, w) = input_and_weights(&device);
        for (name, ours_fn, theirs_fn) in [
            ("GELU", gelu::<3> as fn(Tensor<3>) -> Tensor<3>, activation::gelu as fn(Tensor<3>) -> Tensor<3>),
            ("exp", exp::<3>, |x: Tensor<3>| x.exp()),
        ] {
            let x_ours = x.clone().require_grad();
            let ours = ours_fn(x_ours.clone());
            let grads_ours = (ours.clone() * w.clone()).sum().backward();
            let x_theirs = x.clone().require_grad();
            let theirs = theirs_fn(x_theirs.clone());
            let grads_theirs = (theirs.clone() * w.clone()).sum().backward();
            // x ~ N(0.5, 2): e^x reaches ~e^7, so exp's tolerance is relative.
            let scale = theirs.clone().abs().max().into_scalar::<f32>().max(1.0);
            assert_close(ours, theirs, 1e-6 * scale, name);
            let grad_scale = x_theirs.grad(&grads_theirs).unwrap().abs().max().into_scalar::<f32>().max(1.0);
            assert_close(x_ours.grad(&grads_ours).unwrap(), x_theirs.grad(&grads_theirs).unwrap(), 1e-6 * grad_scale, name);
        }
    }

    #[test]
    fn matmul_matches_burns_forward_and_gradients() {
        let device = Device::flex().autodiff();
        // Batched, with a transposed right side as the attention's scores take it.
        let a = Tensor::<3>::random([2, 5, 8], Distribution::Normal(0.0, 1.0), &device);
        let b = Tensor::<3>::random([2, 7, 8], Distribution::Normal(0.0, 1.0), &device);
        let w = Tensor::<3>::random([2, 5, 7], Distribution::Normal(0.0, 1.0), &device);
        let (a_ours, b_ours) = (a.clone().require_grad(), b.clone().require_grad());
        let ours = matmul(a_ours.clone(), b_ours.clone().swap_dims(1, 2));
        let grads_ours = (ours.clone() * w.clone()).sum().backward();
        let (a_theirs, b_theirs) = (a.require_grad(), b.require_grad());
        let theirs = a_theirs.clone().matmul(b_theirs.clone().swap_dims(1, 2));
        let grads_theirs = (theirs.clone() * w).sum().backward();
        assert_close(ours, theirs, 1e-5, "forward");
        assert_close(a_ours.grad(&grads_ours).unwrap(), a_theirs.grad(&grads_theirs).unwrap(), 1e-5, "∂/∂A");
        assert_close(b_ours.grad(&grads_ours).unwrap(), b_theirs.grad(&grads_theirs).unwrap(), 1e-5, "∂/∂B");
    }

    /// The CPU backend's head attention (`cpu_attention`, turned on for this test's thread)
    /// against the heads composed from burn's operations, forward and ∂qkv; without it, `None`.
    #[test]
    fn head_attention_matches_the_composed_heads() {
        let device = Device::flex().autodiff();
        let (batch, seq, d_model, heads) = (2, 7, 12, 3);
        let scale = 1.0 / ((d_model / heads) as f32).sqrt();
        let qkv = Tensor::<3>::random([batch, seq, 3 * d_model], Distribution::Normal(0.0, 1.0), &device);
        let bias: Vec<f32> = (0..seq * seq).map(|i| if i % seq > i / seq { -1e9 } else { 0.0 }).collect();
        let bias = Tensor::<4>::from_data(TensorData::new(bias, [1, 1, seq, seq]), &device);
        let w = Tensor::<3>::random([batch, seq, d_model], Distribution::Normal(0.0, 1.0), &device);
        assert!(head_attention(qkv.clone(), bias.clone(), heads, scale).is_none(), "natively, the model composes it");

        crate::cpu_attention::tests::NATIVE.with(|on| on.set(true));
        let ours_qkv = qkv.clone().require_grad();
        let ours = head_attention(ours_qkv.clone(), bias.clone(), heads, scale).expect("turned on");
        let grads_ours = (ours.clone() * w.clone()).sum().backward();
        let without_grad = head_attention(qkv.clone().inner(), bias.clone().inner(), heads, scale).expect("turned on");
        crate::cpu_attention::tests::NATIVE.with(|on| on.set(false));

        let theirs_qkv = qkv.require_grad();
        let split = |t: Tensor<3>| t.reshape([batch, seq, heads, d_model / heads]).swap_dims(1, 2);
        let parts = theirs_qkv.clone().chunk(3, 2);
        let scores = split(parts[0].clone()).matmul(split(parts[1].clone()).swap_dims(2, 3)).mul_scalar(scale) + bias;
        let theirs = burn::tensor::activation::softmax(scores, 3).matmul(split(parts[2].clone())).swap_dims(1, 2).reshape([batch, seq, d_model]);
        let grads_theirs = (theirs.clone() * w).sum().backward();
        assert_close(ours, theirs.clone(), 1e-5, "forward");
        assert_close(without_grad, theirs.inner(), 1e-5, "forward without autodiff");
        assert_close(ours_qkv.grad(&grads_ours).unwrap(), theirs_qkv.grad(&grads_theirs).unwrap(), 1e-5, "∂/∂qkv");
    }

    #[test]
    #[should_panic(expected = "equal batch dimensions")]
    fn matmul_refuses_broadcast_batches() {
        let device = Device::flex();
        let _ = matmul(Tensor::<3>::zeros([2, 3, 4], &device), Tensor::<3>::zeros([1, 4, 5], &device));
    }

    #[test]
    fn target_log_probabilities_match_a_gathered_log_softmax() {
        let device = Device::flex().autodiff();
        let (x, _) = input_and_weights(&device);
        // Repeated targets in a row, so that the scatter must add rather than overwrite.
        let targets = Tensor::<2, Int>::from_data(TensorData::new(vec![0i32, 7, 7, 3, 3, 1], [2, 3]), &device);
        let w = Tensor::<2>::random([2, 3], Distribution::Normal(0.0, 1.0), &device);
        let x_ours = x.clone().require_grad();
        let ours = target_log_probabilities(x_ours.clone(), targets.clone());
        let grads_ours = (ours.clone() * w.clone()).sum().backward();
        let x_theirs = x.require_grad();
        let theirs = activation::log_softmax(x_theirs.clone(), 2).gather(2, targets.reshape([2, 3, 1])).reshape([2, 3]);
        let grads_theirs = (theirs.clone() * w).sum().backward();
        assert_close(ours, theirs, 1e-5, "forward");
        assert_close(x_ours.grad(&grads_ours).unwrap(), x_theirs.grad(&grads_theirs).unwrap(), 1e-5, "∂/∂z");
    }

    #[test]
    fn target_log_probabilities_in_rows_and_in_operations_agree() {
        use burn::backend::flex::FlexTensor;
        use burn::backend::Flex;
        let floats = |t: FlexTensor| -> Vec<f32> { t.into_data().iter::<f32>().collect() };
        let worst = |a: Vec<f32>, b: Vec<f32>| a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        let logits: Vec<f32> = (0..2 * 3 * 9).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.4).collect();
        let logits = || FlexTensor::from_data(TensorData::new(logits.clone(), [2, 3, 9]));
        let targets = || FlexTensor::from_data(TensorData::new(vec![0i64, 8, 8, 3, 3, 1], [2, 3, 1]));
        let grad = || FlexTensor::from_data(TensorData::new(vec![0.5f32, -1.0, 2.0, 0.25, -0.75, 1.5], [2, 3, 1]));
        let (picked_rows, p_rows) = <Flex as LayerOps>::target_log_probabilities_keeping_probabilities(logits(), targets());
        let (picked_ops, p_ops) = target_log_probabilities_keeping_in_operations::<Flex>(logits(), targets());
        assert!(worst(floats(picked_rows), floats(picked_ops.clone())) <= 1e-6, "picked");
        assert!(worst(floats(p_rows.clone()), floats(p_ops.clone())) <= 1e-6, "softmax");
        assert!(worst(floats(<Flex as LayerOps>::target_log_probabilities(logits(), targets())), floats(picked_ops)) <= 1e-6, "untracked");
        let d_rows = <Flex as LayerOps>::target_log_probabilities_gradient(p_rows, targets(), grad());
        let d_ops = target_log_probabilities_gradient_in_operations::<Flex>(p_ops, targets(), grad());
        assert!(worst(floats(d_rows), floats(d_ops)) <= 1e-6, "∂/∂z");
        // A target outside the classes is left to the operations (which fail as flex does).
        let outside = FlexTensor::from_data(TensorData::new(vec![0i64, 9, 8, 3, 3, 1], [2, 3, 1]));
        assert!(target_rows(&logits(), &outside).is_none());
    }

    #[test]
    fn without_autodiff_the_forward_is_the_same() {
        let device = Device::flex();
        let (x, _) = input_and_weights(&device);
        assert_close(softmax(x.clone()), activation::softmax(x.clone(), 2), 1e-6, "softmax");
        assert_close(log_softmax(x.clone()), activation::log_softmax(x.clone(), 2), 1e-6, "log-softmax");
        assert_close(gelu(x.clone()), activation::gelu(x.clone()), 1e-6, "GELU");
        // A strided input (a transposed view) and a NaN: the CPU path copies it to rows first,
        // and NaN stays NaN.
        let transposed = x.clone().swap_dims(1, 2);
        assert_close(gelu(transposed.clone()), activation::gelu(transposed.clone()), 1e-6, "GELU of a view");
        assert_close(softmax(transposed.clone()), activation::softmax(transposed, 2), 1e-6, "softmax of a view");
        let with_nan = Tensor::<1>::from_floats([0.5, f32::NAN, -1.0], &device);
        let values: Vec<f32> = gelu(with_nan.clone()).into_data().iter::<f32>().collect();
        assert!(values[1].is_nan() && !values[0].is_nan(), "GELU of NaN: {values:?}");
        let values: Vec<f32> = exp(with_nan).into_data().iter::<f32>().collect();
        assert!(values[1].is_nan() && !values[0].is_nan(), "exp of NaN: {values:?}");
        let gamma = Tensor::<1>::random([8], Distribution::Normal(1.0, 0.5), &device);
        let beta = Tensor::<1>::random([8], Distribution::Normal(0.0, 0.5), &device);
        let mut norm = LayerNormConfig::new(8).init(&device);
        norm.gamma = burn::module::Param::from_tensor(gamma.clone());
        norm.beta = Some(burn::module::Param::from_tensor(beta.clone()));
        assert_close(layer_norm(x.clone(), gamma, beta, 1e-5), norm.forward(x), 1e-5, "layer norm");
    }
}
