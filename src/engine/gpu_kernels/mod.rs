//! Forward passes without a gradient written as single GPU kernels (cubecl): a LayerNorm over
//! rows; a LayerNorm followed by a linear layer (and GELU); a linear layer with a residual; one
//! new position's attention over a KV cache. Generation runs a block for one position as five
//! of them (`model::Block::forward_one_position`).
//!
//! Generation launches its kernels once per token. Composed of burn's operations, even fused, a
//! LayerNorm is two reductions and the arithmetic between them, a linear layer a matmul and an
//! elementwise kernel for its bias, and one position's attention two matmuls and a softmax: a
//! token of the tiny GPT was 57.65 launches on burn-wgpu, and is 21.95 with these. The work per
//! launch is small (16 rows of 64 at batch 16): each kernel is one cube per row (per row and head
//! for the attention), which reads its row into shared memory once, and whose units stride over
//! the outputs.
//!
//! The trait's default bodies are the same computations in burn's operations: the CPU backend
//! and autodiff run those. `check` runs both, kernels and default bodies, against f64 references
//! on the host. With burn's fusion (WebGPU, burn-wgpu) each call is registered as one opaque
//! operation and runs its kernel when fusion executes its stream.

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::Autodiff;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Shape, TensorMetadata};
use burn::prelude::*;
use burn::tensor::Slice;

/// LayerNorm over the last dimension, (x − μ)/√(σ² + ε)·γ + β with the biased variance: one
/// kernel on a GPU. No gradient: for forwards that record none (see `layers::layer_norm`).
///
/// # Shapes
/// - `x`: [..., d]; `gamma`, `beta`: [d] → [..., d]
pub fn layer_norm_rows<const D: usize>(x: Tensor<D>, gamma: Tensor<1>, beta: Tensor<1>, epsilon: f32) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as RowKernels>::layer_norm_rows(x.into_dispatch(), gamma.into_dispatch(), beta.into_dispatch(), epsilon))
}

/// One new position's causal attention over a KV cache, every head at once: for head h,
/// softmax(q_h·K_hᵀ·scale)·V_h over the first `length` cached positions (the new one
/// included, already written), heads side by side in the output.
///
/// # Shapes
/// - `qkv`: [batch, 1, 3·d_model], the new position's queries, keys and values;
///   `keys`, `values`: [batch, heads, capacity, head_dim] → [batch, 1, d_model]
pub fn cached_attention(qkv: Tensor<3>, keys: Tensor<4>, values: Tensor<4>, length: usize, scale: f32) -> Tensor<3> {
    Tensor::from_dispatch(<Dispatch as RowKernels>::cached_attention(qkv.into_dispatch(), keys.into_dispatch(), values.into_dispatch(), length, scale))
}

/// x·W + b over the last dimension of x after a LayerNorm of it, then GELU if `gelu`: one
/// kernel on a GPU, where it is a LayerNorm, a matmul and a fused elementwise kernel. For a
/// few rows (generation's one position); no gradient.
///
/// # Shapes
/// - `x`: [..., d]; `gamma`, `beta`: [d]; `weight`: [d, n] (any strides); `bias`: [n] → [..., n]
#[allow(clippy::too_many_arguments)]
pub fn norm_linear_rows<const D: usize>(x: Tensor<D>, gamma: Tensor<1>, beta: Tensor<1>, epsilon: f32, weight: Tensor<2>, bias: Tensor<1>, gelu: bool) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as RowKernels>::norm_linear_rows(x.into_dispatch(), gamma.into_dispatch(), beta.into_dispatch(), epsilon, weight.into_dispatch(), bias.into_dispatch(), gelu))
}

/// residual + x·W + b over the last dimension: one kernel on a GPU (a matmul and a fused
/// elementwise kernel otherwise). For a few rows; no gradient.
///
/// # Shapes
/// - `x`: [..., d]; `weight`: [d, n] (any strides); `bias`: [n]; `residual`: [..., n] → [..., n]
pub fn linear_residual_rows<const D: usize>(x: Tensor<D>, weight: Tensor<2>, bias: Tensor<1>, residual: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as RowKernels>::linear_residual_rows(x.into_dispatch(), weight.into_dispatch(), bias.into_dispatch(), residual.into_dispatch()))
}

/// [..., d] times [d, n] → [..., n].
fn linear_output_shape(x: &Shape, weight: &Shape) -> Shape {
    let mut dims: Vec<usize> = (0..x.num_dims()).map(|i| x[i]).collect();
    *dims.last_mut().expect("a tensor of rank ≥ 1") = weight[1];
    Shape::from(dims)
}

/// [batch, 1, 3·d_model] → [batch, 1, d_model]. Needed only where fusion registers the operation.
#[cfg_attr(not(any(feature = "webgpu", feature = "gpu")), allow(dead_code))]
fn attention_output_shape(qkv: &Shape) -> Shape {
    Shape::from(vec![qkv[0], qkv[1], qkv[2] / 3])
}

/// The operations. The default bodies, in burn's operations, are what the CPU backend and
/// autodiff run; burn-cubecl's implementation launches the kernels below.
#[backend_extension(
    Flex: cfg(all()),
    Cube: cfg(any(feature = "webgpu", feature = "gpu")),
    Fusion: cfg(any(feature = "webgpu", feature = "gpu")),
    Autodiff
)]
pub trait RowKernels: Backend {
    #[fusion(dtype = x, shape = x)]
    fn layer_norm_rows(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, epsilon: f32) -> FloatTensor<Self> {
        let last = x.shape().num_dims() - 1;
        let d = x.shape()[last];
        let rank = last + 1;
        let row = |v: FloatTensor<Self>| {
            let dims: Vec<usize> = (0..rank).map(|i| if i == last { d } else { 1 }).collect();
            Self::float_reshape(v, Shape::from(dims))
        };
        let mean = Self::float_mean_dim(x.clone(), last);
        let centered = Self::float_sub(x, mean);
        let variance = Self::float_mean_dim(Self::float_mul(centered.clone(), centered.clone()), last);
        let inverse_std = Self::float_powf_scalar(Self::float_add_scalar(variance, epsilon.into()), (-0.5f32).into());
        let normalized = Self::float_mul(centered, inverse_std);
        Self::float_add(Self::float_mul(normalized, row(gamma)), row(beta))
    }

    #[fusion(dtype = x, shape = linear_output_shape(x, weight))]
    #[allow(clippy::too_many_arguments)]
    fn norm_linear_rows(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, epsilon: f32, weight: FloatTensor<Self>, bias: FloatTensor<Self>, gelu: bool) -> FloatTensor<Self> {
        let y = linear::<Self>(Self::layer_norm_rows(x, gamma, beta, epsilon), weight, bias);
        if gelu {
            Self::gelu(y)
        } else {
            y
        }
    }

    #[fusion(dtype = x, shape = linear_output_shape(x, weight))]
    fn linear_residual_rows(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>, residual: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_add(linear::<Self>(x, weight, bias), residual)
    }

    #[fusion(dtype = qkv, shape = attention_output_shape(qkv))]
    fn cached_attention(qkv: FloatTensor<Self>, keys: FloatTensor<Self>, values: FloatTensor<Self>, length: usize, scale: f32) -> FloatTensor<Self> {
        let [batch, heads, _, head_dim] = keys.shape().dims::<4>();
        let d_model = heads * head_dim;
        // q as [B, H, 1, hd]; the first `length` keys and values.
        let q = Self::float_reshape(Self::float_slice(qkv, &[Slice::from(0..batch), Slice::from(0..1), Slice::from(0..d_model)]), Shape::from(vec![batch, 1, heads, head_dim]));
        let q = Self::float_swap_dims(q, 1, 2);
        let seen = [Slice::from(0..batch), Slice::from(0..heads), Slice::from(0..length), Slice::from(0..head_dim)];
        let keys = Self::float_slice(keys, &seen);
        let values = Self::float_slice(values, &seen);
        let scores = Self::float_mul_scalar(Self::float_matmul(q, Self::float_swap_dims(keys, 2, 3)), scale.into()); // [B, H, 1, T]
        let weights = Self::softmax(scores, 3);
        let y = Self::float_matmul(weights, values); // [B, H, 1, hd]
        Self::float_reshape(y, Shape::from(vec![batch, 1, d_model]))
    }
}

/// x·W + b in burn's operations: [..., d] as [rows, d], one matmul, the bias as a row.
fn linear<B: Backend>(x: FloatTensor<B>, weight: FloatTensor<B>, bias: FloatTensor<B>) -> FloatTensor<B> {
    let shape = x.shape();
    let d = shape[shape.num_dims() - 1];
    let rows = shape.num_elements() / d;
    let output_shape = linear_output_shape(&shape, &weight.shape());
    let n = weight.shape()[1];
    let y = B::float_matmul(B::float_reshape(x, Shape::from(vec![rows, d])), weight);
    let y = B::float_add(y, B::float_reshape(bias, Shape::from(vec![1, n])));
    B::float_reshape(y, output_shape)
}

impl RowKernels for burn::backend::Flex {}

impl<B: Backend + RowKernels, C: CheckpointStrategy> RowKernels for Autodiff<B, C> {}

#[cfg(any(feature = "webgpu", feature = "gpu"))]
mod cube;

/// Host references in f64, and the inputs the tests (here and in the browser) feed both the
/// kernels and the operations.
pub mod reference;

/// The operations on a device against the host references, for the tests here and in the
/// browser (`tests/web.rs`), where a read must be asynchronous.
pub mod check {
    use super::reference;
    use burn::prelude::*;
    use burn::tensor::TensorData;

    async fn read<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, String> {
        let data = t.into_data_async().await.map_err(|e| format!("reading back: {e:?}"))?;
        Ok(data.iter::<f32>().collect())
    }

    fn close(ours: &[f32], expected: &[f32], what: &str) -> Result<(), String> {
        if ours.len() != expected.len() {
            return Err(format!("{what}: {} values, expected {}", ours.len(), expected.len()));
        }
        match ours.iter().zip(expected).position(|(a, b)| (a - b).abs() > 1e-4 * b.abs().max(1.0)) {
            Some(i) => Err(format!("{what}[{i}]: {} vs {}", ours[i], expected[i])),
            None => Ok(()),
        }
    }

    /// A LayerNorm of 48 rows of 64, and of 66,000 rows of 4; the 48 rows through a LayerNorm and a linear layer of
    /// 40 outputs (with and without GELU; the weight a transposed view, as the LM head's wteᵀ)
    /// and through a linear layer with a residual; attention at batch 3, 4 heads of 16, over
    /// 7 of 12 cached positions, the rest of the cache filled with values that would show if
    /// they were read.
    pub async fn operations(device: &Device) -> Result<(), String> {
        let (rows, d) = (48, 64);
        let x = reference::values(rows * d, 1);
        let gamma = reference::values(d, 2);
        let beta = reference::values(d, 3);
        let vector = |v: &[f32]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), device);
        let ours = super::layer_norm_rows(Tensor::<3>::from_data(TensorData::new(x.clone(), [4, rows / 4, d]), device), vector(&gamma), vector(&beta), 1e-5);
        let normalized = reference::layer_norm(&x, &gamma, &beta, 1e-5);
        close(&read(ours).await?, &normalized, "layer norm")?;

        // More rows than a grid dimension holds on WebGPU (65,535): the cubes spread.
        let (many, short) = (66_000, 4);
        let long = reference::values(many * short, 10);
        let (gamma_short, beta_short) = (&gamma[..short], &beta[..short]);
        let ours = super::layer_norm_rows(Tensor::<2>::from_data(TensorData::new(long.clone(), [many, short]), device), vector(gamma_short), vector(beta_short), 1e-5);
        close(&read(ours).await?, &reference::layer_norm(&long, gamma_short, beta_short, 1e-5), "layer norm of 66,000 rows")?;

        let n = 40;
        let weight_t = reference::values(n * d, 7); // [n, d]
        let weight: Vec<f32> = (0..d * n).map(|k| weight_t[(k % n) * d + k / n]).collect(); // [d, n]
        let bias = reference::values(n, 8);
        for gelu in [false, true] {
            let weight_view = Tensor::<2>::from_data(TensorData::new(weight_t.clone(), [n, d]), device).transpose();
            let ours = super::norm_linear_rows(Tensor::<2>::from_data(TensorData::new(x.clone(), [rows, d]), device), vector(&gamma), vector(&beta), 1e-5, weight_view, vector(&bias), gelu);
            close(&read(ours).await?, &reference::linear(&normalized, &weight, &bias, None, gelu), &format!("norm linear, gelu {gelu}"))?;
        }
        let residual = reference::values(rows * n, 9);
        let ours = super::linear_residual_rows(
            Tensor::<3>::from_data(TensorData::new(x.clone(), [2, rows / 2, d]), device),
            Tensor::<2>::from_data(TensorData::new(weight.clone(), [d, n]), device),
            vector(&bias),
            Tensor::<3>::from_data(TensorData::new(residual.clone(), [2, rows / 2, n]), device),
        );
        close(&read(ours).await?, &reference::linear(&x, &weight, &bias, Some(&residual), false), "linear residual")?;

        let (batch, heads, capacity, head_dim, length) = (3, 4, 12, 16, 7);
        let qkv = reference::values(batch * 3 * heads * head_dim, 4);
        let mut keys = reference::values(batch * heads * capacity * head_dim, 5);
        let mut values = reference::values(batch * heads * capacity * head_dim, 6);
        for (i, (k, v)) in keys.iter_mut().zip(values.iter_mut()).enumerate() {
            if (i / head_dim) % capacity >= length {
                (*k, *v) = (1e3, 1e3);
            }
        }
        let scale = 0.25;
        let cache = |v: &[f32]| Tensor::<4>::from_data(TensorData::new(v.to_vec(), [batch, heads, capacity, head_dim]), device);
        let ours = super::cached_attention(Tensor::from_data(TensorData::new(qkv.clone(), [batch, 1, 3 * heads * head_dim]), device), cache(&keys), cache(&values), length, scale);
        if ours.dims() != [batch, 1, heads * head_dim] {
            return Err(format!("cached attention: shape {:?}", ours.dims()));
        }
        close(&read(ours).await?, &reference::cached_attention(&qkv, &keys, &values, batch, heads, capacity, head_dim, length, scale), "cached attention")
    }
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;

    #[test]
    fn the_operations_match_the_host_on_the_cpu_backend() {
        pollster::block_on(super::check::operations(&Device::flex())).unwrap();
    }

    /// The kernels themselves, on burn-wgpu (a software Vulkan device does): run with
    /// `cargo test --release --features gpu --target-dir target/gpu kernels`.
    #[cfg(feature = "gpu")]
    #[test]
    fn the_kernels_match_the_host_on_a_gpu() {
        let device = crate::engine::device::test_gpu();
        pollster::block_on(super::check::operations(&device)).unwrap();
    }
}
