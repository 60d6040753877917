//! Concatenation that stays one kernel per group on WebGPU.
//!
//! burn's fusion runs a concatenation as one kernel that binds every input, its output and a
//! metadata buffer. cubecl allows a kernel the device's storage buffers per shader stage less
//! one: 8 by WebGPU's default, 10 in Chromium's SwiftShader. A concatenation of more tensors does
//! not fuse and runs as one slice-assign kernel per input. `concatenate` joins at most
//! `CONCATENATED_AT_ONCE` at a time, in a tree. Examples: Adam's 28 gradients take 9 kernels
//! instead of 28; the 20 generated tokens of a rollout take 6.

use burn::prelude::*;
use burn::tensor::kind::Basic;

/// Inputs of one fused concatenation: with its output and metadata, 7 buffers, which fits the
/// WebGPU default of 8 less the one cubecl keeps for wgpu.
pub const CONCATENATED_AT_ONCE: usize = 5;

/// `Tensor::cat(parts, dim)`, as a tree of concatenations of at most `CONCATENATED_AT_ONCE`.
pub fn concatenate<const D: usize, K: Basic>(mut parts: Vec<Tensor<D, K>>, dim: usize) -> Tensor<D, K> {
    while parts.len() > 1 {
        parts = parts
            .chunks(CONCATENATED_AT_ONCE)
            .map(|group| if group.len() == 1 { group[0].clone() } else { Tensor::cat(group.to_vec(), dim) })
            .collect();
    }
    parts.pop().expect("at least one tensor to concatenate")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_concatenation_tree_keeps_the_order() {
        let device = Device::flex();
        for count in [1, 2, 5, 6, 13, 28] {
            let parts: Vec<Vec<f32>> = (0..count).map(|i| (0..i % 4 + 1).map(|j| (100 * i + j) as f32).collect()).collect();
            let tensors = parts.iter().map(|p| Tensor::<1>::from_data(TensorData::new(p.clone(), [p.len()]), &device)).collect();
            let joined: Vec<f32> = concatenate(tensors, 0).into_data().iter::<f32>().collect();
            assert_eq!(joined, parts.concat(), "{count} parts");
        }
    }

    #[test]
    fn integer_columns_join_along_the_second_dimension() {
        let device = Device::flex();
        let columns: Vec<Tensor<2, Int>> = (0..7).map(|i| Tensor::from_data(TensorData::new(vec![i, 10 + i], [2, 1]), &device)).collect();
        let joined: Vec<i64> = concatenate(columns, 1).into_data().iter::<i64>().collect();
        assert_eq!(joined, vec![0, 1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14, 15, 16]);
    }
}
