//! The smallest parts of the GPT: weights drawn on the host, the dense layer x·W + b, LayerNorm,
//! and the one-kernel GPU forms a block's generation step uses (LayerNorm with a linear layer, a
//! linear layer with the residual).

use burn::module::Param;
use burn::nn::{LayerNorm, Linear};
use burn::prelude::*;
use burn::tensor::TensorData;

use crate::rng::Rng;

/// GPT-2's initial scale for every weight matrix.
pub(super) const INIT_STD: f32 = 0.02;

pub(super) fn normal_tensor<const D: usize>(shape: [usize; D], std: f32, rng: &mut Rng, device: &Device) -> Tensor<D> {
    let n = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rng.normal() * std).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

pub(super) fn linear(d_input: usize, d_output: usize, std: f32, rng: &mut Rng, device: &Device) -> Linear {
    Linear {
        weight: Param::from_tensor(normal_tensor([d_input, d_output], std, rng, device)),
        bias: Some(Param::from_tensor(Tensor::zeros([d_output], device))),
    }
}

/// x·W + b over the last dimension of [batch, seq, d_in]: one 2-D matmul, then a broadcast add.
///
/// burn's `Linear::forward` is a single module operation that its fusion cannot look into, so
/// its bias add ran as a kernel of its own. Written out, the add fuses with what follows it
/// (the residual, GELU) into one elementwise kernel.
pub(super) fn dense(layer: &Linear, x: Tensor<3>) -> Tensor<3> {
    let [batch, seq, d_in] = x.dims();
    let weight = layer.weight.val();
    let d_out = weight.dims()[1];
    let y = crate::engine::layers::matmul(x.reshape([batch * seq, d_in]), weight).reshape([batch, seq, d_out]);
    match &layer.bias {
        Some(bias) => y + bias.val().reshape([1, 1, d_out]),
        None => y,
    }
}

/// `LayerNormConfig`'s default ε, which every LayerNorm of the model is made with.
pub const LAYER_NORM_EPSILON: f32 = 1e-5;

/// LayerNorm over the last dimension (Ba et al., 2016): (x − μ)/√(σ² + ε)·γ + β, σ² the biased
/// variance, as `burn::nn::LayerNorm::forward` computes it, with its gradient written out
/// (`layers::layer_norm`).
///
/// burn's module is one operation that its fusion cannot look into, and written out in tensor
/// operations its backward was 28 kernel launches on burn-wgpu; `layers` keeps the forward in
/// fusible operations and gives autodiff one node with the closed-form backward.
pub(super) fn layer_norm(norm: &LayerNorm, x: Tensor<3>) -> Tensor<3> {
    let (gamma, beta) = norm_parameters(norm, &x.device());
    crate::engine::layers::layer_norm(x, gamma, beta, LAYER_NORM_EPSILON)
}

/// γ and β of a LayerNorm (β zero where it has none).
pub(super) fn norm_parameters(norm: &LayerNorm, device: &Device) -> (Tensor<1>, Tensor<1>) {
    let d = norm.gamma.dims()[0];
    let beta = match &norm.beta {
        Some(beta) => beta.val(),
        None => Tensor::from_data(TensorData::new(vec![0.0f32; d], [d]), device),
    };
    (norm.gamma.val(), beta)
}

/// A linear layer's bias (zero where it has none).
pub(super) fn bias_of(layer: &Linear, device: &Device) -> Tensor<1> {
    match &layer.bias {
        Some(bias) => bias.val(),
        None => {
            let n = layer.weight.dims()[1];
            Tensor::from_data(TensorData::new(vec![0.0f32; n], [n]), device)
        }
    }
}

/// layer(LayerNorm(x)), then GELU if `gelu`: one kernel (`gpu_kernels::norm_linear_rows`).
pub(super) fn norm_linear(norm: &LayerNorm, layer: &Linear, x: Tensor<3>, gelu: bool) -> Tensor<3> {
    let device = x.device();
    let (gamma, beta) = norm_parameters(norm, &device);
    crate::engine::gpu_kernels::norm_linear_rows(x, gamma, beta, LAYER_NORM_EPSILON, layer.weight.val(), bias_of(layer, &device), gelu)
}

/// residual + layer(x): one kernel (`gpu_kernels::linear_residual_rows`).
pub(super) fn linear_residual(layer: &Linear, x: Tensor<3>, residual: Tensor<3>) -> Tensor<3> {
    let device = x.device();
    crate::engine::gpu_kernels::linear_residual_rows(x, layer.weight.val(), bias_of(layer, &device), residual)
}
