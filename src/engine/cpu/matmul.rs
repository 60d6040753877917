//! Matrix products of the CPU backend's tensors with `matmul_kernel` (why: that file), in the
//! page; native builds keep flex's own products, which use AVX2 and FMA.
//!
//! Which kernel runs: the relaxed-SIMD module when the page has handed it over
//! (`use_fma_kernel`, from the boundary's `useFmaMatmul`, after a check against the core's
//! own), else the core's copy.

use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Shape};
use std::sync::atomic::{AtomicU8, Ordering};

use crate::engine::cpu::flex_f32::f32_tensor;
use crate::engine::cpu::matmul_kernel::{self, SeparateMulAdd};

/// `matmul_kernel::matmul`'s signature: batch, m, n, k, then A (pointer, batch, row and column
/// strides), B (pointer, batch and row strides; unit column stride), C (pointer, batch and row
/// strides), all in floats.
pub type Kernel = unsafe fn(usize, usize, usize, usize, *const f32, usize, usize, usize, *const f32, usize, usize, *mut f32, usize, usize);

/// The core's own kernel: 4-lane SIMD with a separate multiply and add.
pub fn separate_mul_add() -> Kernel {
    matmul_kernel::matmul::<SeparateMulAdd>
}

/// Which product the page's CPU backend runs, as asked (the boundary's `preferMatmul`): the fastest it
/// has (the FMA kernel where the page handed it over, else the core's), the core's kernel, or
/// flex's own product (the `gemm` crate: what the page ran before this kernel, for the
/// benchmark's before and after).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preference {
    Fastest = 0,
    Simd128 = 1,
    Flex = 2,
}

static PREFERENCE: AtomicU8 = AtomicU8::new(Preference::Fastest as u8);

thread_local! {
    /// The relaxed-SIMD module's kernel, once handed over and checked (`use_fma_kernel`).
    static FMA_KERNEL: std::cell::Cell<Option<Kernel>> = const { std::cell::Cell::new(None) };
}

/// Runs the products with `kernel` (the relaxed-SIMD module's `matmul`, through the boundary's
/// shim) from now on, if it computes what the core's own kernel does: a check on products of
/// every blocking edge, within 1e-4. `false` (and the core's own kernel from then on) if it
/// does not, or if there is none.
pub fn use_fma_kernel(kernel: Option<Kernel>) -> bool {
    FMA_KERNEL.set(None);
    let agrees = kernel.filter(|&k| largest_difference(k, separate_mul_add()) < 1e-4);
    FMA_KERNEL.set(agrees);
    agrees.is_some()
}

pub fn prefer(preference: Preference) {
    PREFERENCE.store(preference as u8, Ordering::Relaxed);
}

fn preference() -> Preference {
    match PREFERENCE.load(Ordering::Relaxed) {
        1 => Preference::Simd128,
        2 => Preference::Flex,
        _ => Preference::Fastest,
    }
}

/// The product the page runs now, by name, and its kernel (`None`: flex's own product).
fn choice() -> (&'static str, Option<Kernel>) {
    match preference() {
        Preference::Flex => ("flex gemm", None),
        Preference::Fastest if FMA_KERNEL.get().is_some() => ("relaxed-simd fma", FMA_KERNEL.get()),
        _ => ("simd128", Some(separate_mul_add())),
    }
}

/// The kernel the page's products run with now; `None`: flex's own product.
pub fn active() -> Option<Kernel> {
    choice().1
}

/// Name of the active product, for the benchmark's record and the page.
pub fn active_name() -> &'static str {
    choice().0
}

/// The largest difference between two kernels' products over every remainder of the blocking
/// (4-row and 8/4-column blocks), with A read transposed too, on values in [-1, 1]: how the page
/// checks a kernel it is handed before using it.
pub fn largest_difference(first: Kernel, second: Kernel) -> f32 {
    let mut worst = 0.0f32;
    // n: every remainder of the 8- and 4-column blocks (1, 12 = 8 + 4, 13, 14, 7 = 4 + 3, 37).
    for (m, k, n) in [(1, 1, 1), (5, 3, 12), (7, 9, 13), (6, 5, 14), (5, 4, 7), (13, 21, 37)] {
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 53 % 97) as f32 / 48.0) - 1.0).collect();
        // A as [m, k] row-major, then the same floats read as the transpose of a [k, m].
        for (a_row, a_col) in [(k, 1), (1, m)] {
            let (mut c1, mut c2) = (vec![0.0f32; m * n], vec![0.0f32; m * n]);
            // SAFETY: A holds m·k floats (either layout names each once), B k·n, C m·n.
            unsafe {
                first(1, m, n, k, a.as_ptr(), 0, a_row, a_col, b.as_ptr(), 0, n, c1.as_mut_ptr(), 0, n);
                second(1, m, n, k, a.as_ptr(), 0, a_row, a_col, b.as_ptr(), 0, n, c2.as_mut_ptr(), 0, n);
            }
            worst = c1.iter().zip(&c2).map(|(x, y)| if x.is_finite() && y.is_finite() { (x - y).abs() } else { f32::INFINITY }).fold(worst, f32::max);
        }
    }
    worst
}

/// Strides of a tensor in floats, or `None` where one is negative (a flipped view).
fn strides(t: &FlexTensor) -> Option<Vec<usize>> {
    t.layout().strides().iter().map(|&s| usize::try_from(s).ok()).collect()
}

/// `lhs`·`rhs` over their last two dimensions, [..., m, k]·[..., k, n] → [..., m, n], with
/// `kernel`. Both back unchanged where it does not apply (another dtype, different ranks or
/// batch dimensions, i.e. broadcasting, an empty dimension): the caller runs flex's product.
pub fn matmul(lhs: FlexTensor, rhs: FlexTensor, kernel: Kernel) -> Result<FlexTensor, (FlexTensor, FlexTensor)> {
    let (lhs_shape, rhs_shape) = (lhs.layout().shape().clone(), rhs.layout().shape().clone());
    let rank = lhs_shape.num_dims();
    let applies = lhs.dtype() == DType::F32
        && rhs.dtype() == DType::F32
        && rank >= 2
        && rhs_shape.num_dims() == rank
        && lhs_shape[..rank - 2] == rhs_shape[..rank - 2]
        && lhs_shape[rank - 1] == rhs_shape[rank - 2]
        && lhs_shape.num_elements() > 0
        && rhs_shape.num_elements() > 0;
    if !applies {
        return Err((lhs, rhs));
    }
    let (m, k, n) = (lhs_shape[rank - 2], lhs_shape[rank - 1], rhs_shape[rank - 1]);
    let lhs = if strides(&lhs).is_some() { lhs } else { lhs.to_contiguous() };
    // The kernel loads B's rows four floats at a time: B needs contiguous columns.
    let rhs = match strides(&rhs) {
        Some(s) if s[rank - 1] == 1 => rhs,
        _ => rhs.to_contiguous(),
    };
    let (a_strides, b_strides) = (strides(&lhs).expect("non-negative"), strides(&rhs).expect("non-negative"));
    let batch_dims = &lhs_shape[..rank - 2];
    let mut out_dims = batch_dims.to_vec();
    out_dims.extend([m, n]);
    let out_shape = Shape::from(out_dims);
    // Not zero-filled: the kernel writes every float of C (m, n and k are at least 1).
    let mut output: Vec<f32> = Vec::with_capacity(out_shape.num_elements());
    let (a, b) = (lhs.storage::<f32>(), rhs.storage::<f32>());
    let (a, b) = (a[lhs.layout().start_offset()..].as_ptr(), b[rhs.layout().start_offset()..].as_ptr());
    let c = output.as_mut_ptr();
    // The innermost batch dimension goes to the kernel in one call; the ones before it (the
    // heads' [B, H] of attention, which a transposed view leaves unmergeable) are looped here.
    let (inner, a_inner, b_inner) = match batch_dims.len() {
        0 => (1, 0, 0),
        d => (batch_dims[d - 1], a_strides[d - 1], b_strides[d - 1]),
    };
    let outer_dims = &batch_dims[..batch_dims.len().saturating_sub(1)];
    let outer: usize = outer_dims.iter().product();
    for index in 0..outer {
        let (mut a_offset, mut b_offset, mut rest) = (0, 0, index);
        for d in (0..outer_dims.len()).rev() {
            let i = rest % outer_dims[d];
            rest /= outer_dims[d];
            a_offset += i * a_strides[d];
            b_offset += i * b_strides[d];
        }
        // SAFETY: every index the kernel forms lies in the tensors' layouts: A [inner, m, k]
        // and B [inner, k, n] at their strides from offsets of in-range batch indices, C the
        // contiguous output's capacity, a fresh buffer that overlaps neither.
        unsafe {
            kernel(inner, m, n, k, a.add(a_offset), a_inner, a_strides[rank - 2], a_strides[rank - 1], b.add(b_offset), b_inner, b_strides[rank - 2], c.add(index * inner * m * n), m * n, n);
        }
    }
    // SAFETY: the loop above wrote C's `outer · inner · m · n` floats, all of its capacity.
    unsafe { output.set_len(out_shape.num_elements()) };
    Ok(f32_tensor(output, out_shape))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::ops::FloatTensorOps;
    use burn::backend::Flex;
    use burn::tensor::{Shape, TensorData};

    fn tensor(dims: &[usize], seed: u32) -> FlexTensor {
        let n: usize = dims.iter().product();
        let values: Vec<f32> = (0..n).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed.wrapping_mul(40503)) >> 8) % 2001) as f32 / 1000.0 - 1.0).collect();
        FlexTensor::from_data(TensorData::new(values, Shape::from(dims.to_vec())))
    }

    fn assert_same(ours: FlexTensor, flex: FlexTensor, what: &str) {
        assert_eq!(ours.layout().shape(), flex.layout().shape(), "{what}: shape");
        let (ours, flex): (Vec<f32>, Vec<f32>) = (ours.into_data().iter::<f32>().collect(), flex.into_data().iter::<f32>().collect());
        let worst = ours.iter().zip(&flex).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "{what}: differs from flex's product by {worst}");
    }

    fn check(lhs: FlexTensor, rhs: FlexTensor, what: &str) {
        let ours = matmul(lhs.clone(), rhs.clone(), separate_mul_add()).unwrap_or_else(|_| panic!("{what}: should apply"));
        assert_same(ours, Flex::float_matmul(lhs, rhs), what);
    }

    #[test]
    fn matches_flex_on_every_edge_of_the_blocking() {
        // Every remainder of the 4-row and 8/4-column blocks, and k of 1.
        for (m, k, n) in [(1, 1, 1), (3, 5, 7), (4, 8, 8), (5, 3, 12), (7, 9, 13), (6, 4, 10), (5, 7, 150), (8, 64, 64), (13, 21, 37), (33, 64, 192)] {
            check(tensor(&[m, k], 1), tensor(&[k, n], 2), &format!("{m}x{k}x{n}"));
        }
    }

    #[test]
    fn matches_flex_on_transposed_and_batched_views() {
        // A transposed (dW = Xᵀ·dY), B transposed (dX = dY·Wᵀ: packed first).
        let x = tensor(&[40, 12], 3);
        let dy = tensor(&[40, 20], 4);
        check(x.transpose(0, 1), dy.clone(), "Xᵀ·dY");
        let w = tensor(&[12, 20], 5);
        check(dy, w.transpose(0, 1), "dY·Wᵀ");
        // Attention's heads: [B, T, H, hd] viewed as [B, H, T, hd], scores against keysᵀ.
        let q = tensor(&[3, 10, 4, 8], 6).transpose(1, 2);
        let keys = tensor(&[3, 10, 4, 8], 7).transpose(1, 2);
        check(q.clone(), keys.clone().transpose(2, 3), "Q·Kᵀ per head");
        check(tensor(&[3, 4, 10, 10], 8), keys, "P·V per head");
        // A sliced view with an offset.
        let wide = tensor(&[6, 30], 9);
        check(wide.narrow(1, 10, 12), tensor(&[12, 9], 10), "sliced A");
    }

    #[test]
    fn the_last_columns_are_written_and_nothing_beside_them() {
        // Each row of C has 3 spare floats after its last column: a kernel that stored a whole
        // vector there would overwrite the sentinels (or, on the last row, memory past C).
        for n in 1..=11 {
            let (m, k, c_row) = (5, 3, n + 3);
            let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 3.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| 1.0 - i as f32 * 0.25).collect();
            let mut c = vec![777.0f32; m * c_row];
            // SAFETY: A [m, k], B [k, n] and C's m rows of c_row floats are all in their vectors.
            unsafe { separate_mul_add()(1, m, n, k, a.as_ptr(), 0, k, 1, b.as_ptr(), 0, n, c.as_mut_ptr(), 0, c_row) };
            for i in 0..m {
                for j in 0..c_row {
                    let expected = if j < n { (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum() } else { 777.0 };
                    assert_eq!(c[i * c_row + j], expected, "n = {n}: C[{i}][{j}]");
                }
            }
        }
    }

    /// A kernel that drops the last term of each sum, as a broken kernel might.
    unsafe fn short_by_one(batch: usize, m: usize, n: usize, k: usize, a: *const f32, a_batch: usize, a_row: usize, a_col: usize, b: *const f32, b_batch: usize, b_row: usize, c: *mut f32, c_batch: usize, c_row: usize) {
        unsafe { separate_mul_add()(batch, m, n, k.saturating_sub(1), a, a_batch, a_row, a_col, b, b_batch, b_row, c, c_batch, c_row) }
    }

    #[test]
    fn the_check_of_a_handed_kernel_tells_a_wrong_one() {
        assert_eq!(largest_difference(separate_mul_add(), separate_mul_add()), 0.0);
        assert!(largest_difference(short_by_one, separate_mul_add()) > 0.1);
    }

    #[test]
    fn leaves_broadcasting_and_empty_products_to_flex() {
        assert!(matmul(tensor(&[2, 3, 4], 1), tensor(&[4, 5], 2), separate_mul_add()).is_err());
        assert!(matmul(tensor(&[2, 3, 4], 1), tensor(&[1, 4, 5], 2), separate_mul_add()).is_err());
        assert!(matmul(tensor(&[3, 0], 1), tensor(&[0, 5], 2), separate_mul_add()).is_err());
    }
}
