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
mod cube {
    use burn::backend::tensor::FloatTensor;
    use burn::backend::TensorMetadata;
    use burn_cubecl::cubecl;
    use burn_cubecl::kernel::into_contiguous;
    use burn_cubecl::ops::numeric::empty_device_dtype;
    use burn_cubecl::tensor::CubeTensor;
    use burn_cubecl::CubeBackend;
    use cubecl::prelude::*;
    use cubecl::{CubeCount, CubeDim};

    /// Units per cube: under every device's limit; they stride over a row's outputs.
    const UNITS: u32 = 64;

    /// One cube per row, spread over the grid's dimensions where rows pass a dimension's limit
    /// (65,535 on WebGPU); a kernel's row is its `CUBE_POS`, and the cubes past the last row
    /// return at once.
    fn row_cubes(x: &CubeTensor, rows: usize) -> CubeCount {
        cubecl::calculate_cube_count_elemwise(&x.client, rows, CubeDim::new_1d(1))
    }

    /// One cube per row: the row to shared memory, normalized there, then written out.
    #[cube(launch_unchecked)]
    fn layer_norm_rows_kernel(x: &Tensor<f32>, gamma: &Tensor<f32>, beta: &Tensor<f32>, output: &mut Tensor<f32>, rows: u32, epsilon: f32, #[comptime] d: usize) {
        let row = CUBE_POS as usize;
        if row >= rows as usize {
            terminate!();
        }
        let start = row * d;
        let mut values = row_to_shared(x, start, d);
        normalize_in_shared(&mut values, gamma, beta, epsilon, d);
        let mut i = UNIT_POS_X as usize;
        while i < d {
            output[start + i] = values[i];
            i += CUBE_DIM_X as usize;
        }
    }

    /// LayerNorm of a row held in shared memory, in place: every unit reads the row's mean
    /// and variance from there (d reads each, no reduction to wait on), then the units stride
    /// over the row writing (x − μ)·r·γ + β, and wait for each other.
    #[cube]
    fn normalize_in_shared(values: &mut Shared<[f32]>, gamma: &Tensor<f32>, beta: &Tensor<f32>, epsilon: f32, #[comptime] d: usize) {
        let mut sum = f32::new(0.0);
        for i in 0..d {
            sum += values[i];
        }
        let mean = sum / f32::cast_from(d);
        let mut squares = f32::new(0.0);
        for i in 0..d {
            let centered = values[i] - mean;
            squares += centered * centered;
        }
        let inverse_std = f32::new(1.0) / (squares / f32::cast_from(d) + epsilon).sqrt();
        // Every unit has read the whole row: only then may it be overwritten.
        sync_cube();
        let mut i = UNIT_POS_X as usize;
        while i < d {
            values[i] = (values[i] - mean) * inverse_std * gamma[i] + beta[i];
            i += CUBE_DIM_X as usize;
        }
        sync_cube();
    }

    /// Copies a row of `d` values from `start` into shared memory, the cube's units striding
    /// over it, and waits for all of them.
    #[cube]
    fn row_to_shared(x: &Tensor<f32>, start: usize, #[comptime] d: usize) -> Shared<[f32]> {
        let mut row = Shared::<[f32]>::new_slice(d);
        let mut i = UNIT_POS_X as usize;
        while i < d {
            row[i] = x[start + i];
            i += CUBE_DIM_X as usize;
        }
        sync_cube();
        row
    }

    /// One cube per row. The row goes to shared memory once and is normalized there; each
    /// unit then computes its columns: the dot product with
    /// the weight's column, the bias, and GELU (exact, with erf) if asked for. Consecutive
    /// units read consecutive columns of a row-major weight.
    #[cube(launch_unchecked)]
    #[allow(clippy::too_many_arguments)]
    fn norm_linear_kernel(x: &Tensor<f32>, gamma: &Tensor<f32>, beta: &Tensor<f32>, weight: &Tensor<f32>, bias: &Tensor<f32>, output: &mut Tensor<f32>, rows: u32, epsilon: f32, #[comptime] d: usize, #[comptime] gelu: bool) {
        let row = CUBE_POS as usize;
        if row >= rows as usize {
            terminate!();
        }
        let n = output.shape(output.rank() - 1);
        let mut values = row_to_shared(x, row * d, d);
        normalize_in_shared(&mut values, gamma, beta, epsilon, d);
        let (weight_row, weight_column) = (weight.stride(0), weight.stride(1));
        let mut column = UNIT_POS_X as usize;
        while column < n {
            let mut y = bias[column];
            for i in 0..d {
                y += values[i] * weight[i * weight_row + column * weight_column];
            }
            if gelu {
                y = f32::new(0.5) * y * (f32::new(1.0) + Erf::erf(y * f32::new(core::f32::consts::FRAC_1_SQRT_2)));
            }
            output[row * n + column] = y;
            column += CUBE_DIM_X as usize;
        }
    }

    /// One cube per row: the row to shared memory, then each unit's columns: residual + the
    /// dot product with the weight's column + the bias.
    #[cube(launch_unchecked)]
    fn linear_residual_kernel(x: &Tensor<f32>, weight: &Tensor<f32>, bias: &Tensor<f32>, residual: &Tensor<f32>, output: &mut Tensor<f32>, rows: u32, #[comptime] d: usize) {
        let row = CUBE_POS as usize;
        if row >= rows as usize {
            terminate!();
        }
        let n = output.shape(output.rank() - 1);
        let values = row_to_shared(x, row * d, d);
        let (weight_row, weight_column) = (weight.stride(0), weight.stride(1));
        let mut column = UNIT_POS_X as usize;
        while column < n {
            let mut y = residual[row * n + column] + bias[column];
            for i in 0..d {
                y += values[i] * weight[i * weight_row + column * weight_column];
            }
            output[row * n + column] = y;
            column += CUBE_DIM_X as usize;
        }
    }

    /// One cube per (row b, head h). Each unit scores cached positions (q_h·k_t·scale, into
    /// shared memory); after a barrier every unit reads the scores' maximum and normalizer,
    /// and each unit then computes output dimensions: Σ_t softmax_t·v_t,j.
    #[cube(launch_unchecked)]
    fn cached_attention_kernel(qkv: &Tensor<f32>, keys: &Tensor<f32>, values: &Tensor<f32>, output: &mut Tensor<f32>, length: u32, scale: f32, #[comptime] capacity: usize) {
        let heads = keys.shape(1);
        let head_dim = keys.shape(3);
        let b = CUBE_POS_X as usize / heads;
        let h = CUBE_POS_X as usize % heads;
        let length = length as usize;
        let q_start = b * qkv.stride(0) + h * head_dim * qkv.stride(2);
        let cache_start = b * keys.stride(0) + h * keys.stride(1);
        let mut scores = Shared::<[f32]>::new_slice(capacity);
        let mut t = UNIT_POS_X as usize;
        while t < length {
            let row = cache_start + t * keys.stride(2);
            let mut score = f32::new(0.0);
            for i in 0..head_dim {
                score += qkv[q_start + i * qkv.stride(2)] * keys[row + i * keys.stride(3)];
            }
            scores[t] = score * scale;
            t += CUBE_DIM_X as usize;
        }
        sync_cube();
        // WGSL has no infinity literal: a finite floor below any score.
        let mut max = f32::new(-1.0e30);
        for t in 0..length {
            max = f32::max(max, scores[t]);
        }
        let mut normalizer = f32::new(0.0);
        for t in 0..length {
            normalizer += (scores[t] - max).exp();
        }
        let values_start = b * values.stride(0) + h * values.stride(1);
        let mut j = UNIT_POS_X as usize;
        while j < head_dim {
            let mut y = f32::new(0.0);
            for t in 0..length {
                y += (scores[t] - max).exp() * values[values_start + t * values.stride(2) + j * values.stride(3)];
            }
            // The output is contiguous (allocated by the caller): [B, 1, D] in order.
            output[b * heads * head_dim + h * head_dim + j] = y / normalizer;
            j += CUBE_DIM_X as usize;
        }
    }

    /// The output of x·W for `x` [..., d] and `weight` [d, n], allocated (contiguous), with
    /// the number of rows and d. The shapes are checked here: the kernels read unchecked.
    fn linear_output(x: &CubeTensor, weight: &CubeTensor, bias: &CubeTensor) -> (CubeTensor, usize, usize) {
        let d = x.shape()[x.shape().num_dims() - 1];
        let [weight_rows, n] = weight.shape().dims::<2>();
        assert_eq!(weight_rows, d, "a weight of {weight_rows} rows for inputs of {d}");
        assert_eq!(bias.shape().num_elements(), n, "the bias must have the weight's {n} columns");
        let shape = super::linear_output_shape(&x.shape(), &weight.shape());
        let output = empty_device_dtype(x.client.clone(), x.device.clone(), shape, x.dtype);
        (output, x.shape().num_elements() / d, d)
    }

    impl super::RowKernels for CubeBackend {
        fn layer_norm_rows(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, epsilon: f32) -> FloatTensor<Self> {
            let x = into_contiguous(x);
            let gamma = into_contiguous(gamma);
            let beta = into_contiguous(beta);
            let shape = x.shape();
            let d = shape[shape.num_dims() - 1];
            assert!(gamma.shape().num_elements() == d && beta.shape().num_elements() == d, "γ and β must have the row's {d} values");
            let rows = shape.num_elements() / d;
            let output = empty_device_dtype(x.client.clone(), x.device.clone(), shape, x.dtype);
            let client = x.client.clone();
            let cubes = row_cubes(&x, rows);
            // Safety: one cube per row; units stride within the row's d values.
            unsafe {
                layer_norm_rows_kernel::launch_unchecked(
                    &client,
                    cubes,
                    CubeDim::new_1d(UNITS),
                    x.into_tensor_arg(),
                    gamma.into_tensor_arg(),
                    beta.into_tensor_arg(),
                    output.clone().into_tensor_arg(),
                    rows as u32,
                    epsilon,
                    d,
                );
            }
            output
        }

        fn norm_linear_rows(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, epsilon: f32, weight: FloatTensor<Self>, bias: FloatTensor<Self>, gelu: bool) -> FloatTensor<Self> {
            let (x, gamma, beta, bias) = (into_contiguous(x), into_contiguous(gamma), into_contiguous(beta), into_contiguous(bias));
            let (output, rows, d) = linear_output(&x, &weight, &bias);
            assert!(gamma.shape().num_elements() == d && beta.shape().num_elements() == d, "γ and β must have the row's {d} values");
            let client = x.client.clone();
            let cubes = row_cubes(&x, rows);
            // Safety: one cube per row; units stride within the row's d inputs and n outputs.
            unsafe {
                norm_linear_kernel::launch_unchecked(
                    &client,
                    cubes,
                    CubeDim::new_1d(UNITS),
                    x.into_tensor_arg(),
                    gamma.into_tensor_arg(),
                    beta.into_tensor_arg(),
                    weight.into_tensor_arg(),
                    bias.into_tensor_arg(),
                    output.clone().into_tensor_arg(),
                    rows as u32,
                    epsilon,
                    d,
                    gelu,
                );
            }
            output
        }

        fn linear_residual_rows(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>, residual: FloatTensor<Self>) -> FloatTensor<Self> {
            let (x, bias, residual) = (into_contiguous(x), into_contiguous(bias), into_contiguous(residual));
            let (output, rows, d) = linear_output(&x, &weight, &bias);
            assert_eq!(residual.shape(), output.shape(), "the residual must have the output's shape");
            let client = x.client.clone();
            let cubes = row_cubes(&x, rows);
            // Safety: one cube per row; units stride within the row's d inputs and n outputs.
            unsafe {
                linear_residual_kernel::launch_unchecked(
                    &client,
                    cubes,
                    CubeDim::new_1d(UNITS),
                    x.into_tensor_arg(),
                    weight.into_tensor_arg(),
                    bias.into_tensor_arg(),
                    residual.into_tensor_arg(),
                    output.clone().into_tensor_arg(),
                    rows as u32,
                    d,
                );
            }
            output
        }

        fn cached_attention(qkv: FloatTensor<Self>, keys: FloatTensor<Self>, values: FloatTensor<Self>, length: usize, scale: f32) -> FloatTensor<Self> {
            let shape = super::attention_output_shape(&qkv.shape());
            let [batch, heads, capacity, head_dim] = keys.shape().dims::<4>();
            assert!(length <= capacity, "{length} positions in a cache of {capacity}");
            assert_eq!(values.shape(), keys.shape(), "keys and values must have one shape");
            assert_eq!(qkv.shape().dims::<3>(), [batch, 1, 3 * heads * head_dim], "qkv must be one position's queries, keys and values");
            let output = empty_device_dtype(qkv.client.clone(), qkv.device.clone(), shape, qkv.dtype);
            let client = qkv.client.clone();
            // Safety: one cube per (row, head); units stride within the `length` ≤ capacity
            // cached positions and the head's dimensions.
            unsafe {
                cached_attention_kernel::launch_unchecked(
                    &client,
                    CubeCount::Static((batch * heads) as u32, 1, 1),
                    CubeDim::new_1d(UNITS),
                    qkv.into_tensor_arg(),
                    keys.into_tensor_arg(),
                    values.into_tensor_arg(),
                    output.clone().into_tensor_arg(),
                    length as u32,
                    scale,
                    capacity,
                );
            }
            output
        }
    }
}

/// Host references in f64, and the inputs the tests (here and in the browser) feed both the
/// kernels and the operations.
pub mod reference {
    /// A pseudo-random tensor's values in [-2, 2): the same on every backend.
    pub fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = crate::rng::Rng::new(seed);
        (0..n).map(|_| rng.uniform() * 4.0 - 2.0).collect()
    }

    /// LayerNorm of each row of `d` values.
    pub fn layer_norm(x: &[f32], gamma: &[f32], beta: &[f32], epsilon: f32) -> Vec<f32> {
        let d = gamma.len();
        x.chunks(d)
            .flat_map(|row| {
                let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / d as f64;
                let variance = row.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / d as f64;
                let inverse_std = 1.0 / (variance + f64::from(epsilon)).sqrt();
                row.iter().enumerate().map(move |(i, &v)| ((f64::from(v) - mean) * inverse_std * f64::from(gamma[i]) + f64::from(beta[i])) as f32).collect::<Vec<_>>()
            })
            .collect()
    }

    /// erf by Abramowitz and Stegun 7.1.26 (absolute error ≤ 1.5e-7): std has none.
    fn erf(x: f64) -> f64 {
        let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
        let poly = t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
        (1.0 - poly * (-x * x).exp()).copysign(x)
    }

    /// residual + x·W + b for each row of `x`; `weight`: [d, n] row-major; then GELU if asked.
    pub fn linear(x: &[f32], weight: &[f32], bias: &[f32], residual: Option<&[f32]>, gelu: bool) -> Vec<f32> {
        let n = bias.len();
        let d = weight.len() / n;
        let mut out = Vec::with_capacity(x.len() / d * n);
        for (r, row) in x.chunks(d).enumerate() {
            for c in 0..n {
                let mut y = f64::from(bias[c]) + (0..d).map(|i| f64::from(row[i]) * f64::from(weight[i * n + c])).sum::<f64>();
                if gelu {
                    y = 0.5 * y * (1.0 + erf(y / std::f64::consts::SQRT_2));
                }
                out.push((y + residual.map_or(0.0, |res| f64::from(res[r * n + c]))) as f32);
            }
        }
        out
    }

    /// One position's attention over the first `length` of `capacity` cached positions.
    /// `qkv`: [batch, 3·heads·head_dim]; `keys`, `values`: [batch, heads, capacity, head_dim].
    #[allow(clippy::too_many_arguments)]
    pub fn cached_attention(qkv: &[f32], keys: &[f32], values: &[f32], batch: usize, heads: usize, capacity: usize, head_dim: usize, length: usize, scale: f32) -> Vec<f32> {
        let d = heads * head_dim;
        let mut out = vec![0.0f32; batch * d];
        for b in 0..batch {
            for h in 0..heads {
                let cache = |t: usize, i: usize| ((b * heads + h) * capacity + t) * head_dim + i;
                let scores: Vec<f64> = (0..length).map(|t| (0..head_dim).map(|i| f64::from(qkv[b * 3 * d + h * head_dim + i]) * f64::from(keys[cache(t, i)])).sum::<f64>() * f64::from(scale)).collect();
                let max = scores.iter().copied().fold(f64::MIN, f64::max);
                let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = weights.iter().sum();
                for j in 0..head_dim {
                    let y: f64 = (0..length).map(|t| weights[t] * f64::from(values[cache(t, j)])).sum::<f64>() / total;
                    out[b * d + h * head_dim + j] = y as f32;
                }
            }
        }
        out
    }
}

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
