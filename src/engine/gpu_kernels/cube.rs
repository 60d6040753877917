//! The kernels themselves (cubecl), and `RowKernels` for burn's cubecl backend: one launch each.

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
