//! The CPU backend's own kernels, for the page: burn's CPU backend (flex) runs them where its own
//! operations were slow in wasm's 4-lane SIMD (docs/performance.md says by how much).
//!
//! ```text
//! math.rs           exp, erf, GELU, softmax, log-softmax and LayerNorm rows, branch-free SIMD
//! matmul_kernel.rs  the matrix product in 4 × 8 blocks; also compiled into kernels/fma with FMA
//! matmul.rs         that kernel on flex's tensors, and which build of it runs
//! attention.rs      multi-head attention head by head on strided views of qkv, with its backward
//! flex_f32.rs       flex's f32 tensors as slices, so the loops above run on them in one pass
//! ```

pub mod attention;
pub mod flex_f32;
pub mod math;
pub mod matmul;
pub mod matmul_kernel;
