//! A matrix product for the CPU backend in the page, C = A·B, written once for two builds.
//!
//! In the page a training step of the tiny GPT spends ~60% of its time in matrix products
//! (README, "The lab page's loop at full speed"), and wasm's 4-lane SIMD has no plain fused
//! multiply-add: flex's `gemm` crate runs separate multiplies and adds. Relaxed SIMD's
//! `f32x4.relaxed_madd` is an FMA on CPUs that have one, but a module using it does not even
//! compile in a browser without relaxed SIMD, and wasm validates whole modules. So this file is
//! compiled twice:
//! - into the core (`layers::LayerOps::matmul` on the CPU backend), with `SeparateMulAdd`;
//! - into `kernels/fma`, a module of its own with no memory, data or stack of its own (it
//!   imports the core's memory), with `relaxed_madd`. The page loads it beside the core when the
//!   browser compiles it (`www/core.js`) and the core calls it instead; without it, the core's
//!   copy runs.
//!
//! The kernel keeps a 4 × 8 block of C in 8 four-lane registers and streams A and B past it:
//! with a row of B (2 vectors) and one value of A splatted, 11 registers, fewer than V8 can
//! allocate on x86-64 (a 12 × 4 block, the `gemm` crate's, needs 16 and spills). Measured in
//! headless Chromium on the tiny GPT's shapes (/tmp micro-benchmark, 2026-12-04, GFLOP/s):
//! `gemm` crate 24–25, this block with separate multiply and add 26, with `relaxed_madd` 33–35.
//!
//! No bounds checks, no allocation, no panics: the callers check the sizes (and the FMA build
//! has no panic machinery to call).

#![allow(clippy::too_many_arguments)]

/// Four f32 lanes and the one operation that differs between the two builds.
pub trait Lanes: Copy {
    fn zero() -> Self;
    fn splat(x: f32) -> Self;
    /// # Safety
    /// `p` is valid for reading 4 floats.
    unsafe fn load(p: *const f32) -> Self;
    /// # Safety
    /// `p` is valid for writing 4 floats.
    unsafe fn store(self, p: *mut f32);
    /// `acc + a·b`, lane by lane (rounded once or twice, as the build allows).
    fn mul_add(a: Self, b: Self, acc: Self) -> Self;
    /// The `COUNT` (1 to 3) floats at `p` in the first lanes, zeros after them.
    /// # Safety
    /// `p` is valid for reading `COUNT` floats.
    unsafe fn load_first<const COUNT: usize>(p: *const f32) -> Self;
    /// Writes the first `COUNT` (1 to 3) lanes to `p`.
    /// # Safety
    /// `p` is valid for writing `COUNT` floats.
    unsafe fn store_first<const COUNT: usize>(self, p: *mut f32);
}

/// A block of `ROWS` rows of C and `VECTORS` × 4 columns: k rank-1 updates in registers, then
/// one store.
///
/// # Safety
/// A's rows `0..ROWS` at stride `a_row`, columns `0..k` at stride `a_col`; B's rows `0..k` at
/// stride `b_row` with `4·VECTORS` contiguous columns; C's rows `0..ROWS` at stride `c_row` with
/// `4·VECTORS` contiguous columns.
#[inline(always)]
unsafe fn block<L: Lanes, const ROWS: usize, const VECTORS: usize>(k: usize, a: *const f32, a_row: usize, a_col: usize, b: *const f32, b_row: usize, c: *mut f32, c_row: usize) {
    let mut acc = [[L::zero(); VECTORS]; ROWS];
    for p in 0..k {
        let b_p = unsafe { b.add(p * b_row) };
        let mut bv = [L::zero(); VECTORS];
        for (v, lanes) in bv.iter_mut().enumerate() {
            *lanes = unsafe { L::load(b_p.add(4 * v)) };
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let av = L::splat(unsafe { *a.add(r * a_row + p * a_col) });
            for v in 0..VECTORS {
                acc_r[v] = L::mul_add(av, bv[v], acc_r[v]);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for (v, lanes) in acc_r.iter().enumerate() {
            unsafe { lanes.store(c.add(r * c_row + 4 * v)) };
        }
    }
}

/// `block` for the last 1 to 3 (`COLUMNS`) columns of C: one vector, B's row loaded and C's
/// stored in part, so that nothing past the last column is touched.
///
/// Until 2026-12-04 these columns were summed one float at a time: with the task's vocabulary of
/// 123 (three such columns), the tiny GPT's LM head ran at 31.7 GFLOP/s forward and its weight
/// gradient, [64, 384]·[384, 123], at 22.3, against 33–41 for the step's other products; with
/// this block, 38.0 and 34.0 (`scripts/matmul-shapes.mjs`, Node, the FMA kernel).
///
/// # Safety
/// As `block`, with `COLUMNS` columns of B and C.
#[inline(always)]
unsafe fn narrow_block<L: Lanes, const ROWS: usize, const COLUMNS: usize>(k: usize, a: *const f32, a_row: usize, a_col: usize, b: *const f32, b_row: usize, c: *mut f32, c_row: usize) {
    let mut acc = [L::zero(); ROWS];
    for p in 0..k {
        let bv = unsafe { L::load_first::<COLUMNS>(b.add(p * b_row)) };
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let av = L::splat(unsafe { *a.add(r * a_row + p * a_col) });
            *acc_r = L::mul_add(av, bv, *acc_r);
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        unsafe { acc_r.store_first::<COLUMNS>(c.add(r * c_row)) };
    }
}

/// Rows `ROWS` of C (all of its columns): 8-column blocks, then one 4-column block, then one
/// narrower block for the last 1 to 3 columns.
#[inline(always)]
unsafe fn rows<L: Lanes, const ROWS: usize>(n: usize, k: usize, a: *const f32, a_row: usize, a_col: usize, b: *const f32, b_row: usize, c: *mut f32, c_row: usize) {
    let mut j = 0;
    while j + 8 <= n {
        unsafe { block::<L, ROWS, 2>(k, a, a_row, a_col, b.add(j), b_row, c.add(j), c_row) };
        j += 8;
    }
    if j + 4 <= n {
        unsafe { block::<L, ROWS, 1>(k, a, a_row, a_col, b.add(j), b_row, c.add(j), c_row) };
        j += 4;
    }
    let (b, c) = unsafe { (b.add(j), c.add(j)) };
    match n - j {
        1 => unsafe { narrow_block::<L, ROWS, 1>(k, a, a_row, a_col, b, b_row, c, c_row) },
        2 => unsafe { narrow_block::<L, ROWS, 2>(k, a, a_row, a_col, b, b_row, c, c_row) },
        3 => unsafe { narrow_block::<L, ROWS, 3>(k, a, a_row, a_col, b, b_row, c, c_row) },
        _ => {}
    }
}

/// C = A·B for `batch` products: A [m, k] at strides (`a_row`, `a_col`), B [k, n] with rows
/// `b_row` apart and contiguous columns, C [m, n] with rows `c_row` apart and contiguous
/// columns; product `i` starts `i·a_batch`, `i·b_batch` and `i·c_batch` floats further on.
///
/// # Safety
/// Every element those sizes and strides name is valid (C's for writing), and C overlaps
/// neither A nor B.
pub unsafe fn matmul<L: Lanes>(batch: usize, m: usize, n: usize, k: usize, a: *const f32, a_batch: usize, a_row: usize, a_col: usize, b: *const f32, b_batch: usize, b_row: usize, c: *mut f32, c_batch: usize, c_row: usize) {
    for i in 0..batch {
        let (a, b, c) = unsafe { (a.add(i * a_batch), b.add(i * b_batch), c.add(i * c_batch)) };
        let mut r = 0;
        while r + 4 <= m {
            unsafe { rows::<L, 4>(n, k, a.add(r * a_row), a_row, a_col, b, b_row, c.add(r * c_row), c_row) };
            r += 4;
        }
        while r < m {
            unsafe { rows::<L, 1>(n, k, a.add(r * a_row), a_row, a_col, b, b_row, c.add(r * c_row), c_row) };
            r += 1;
        }
    }
}

/// wasm's 4-lane SIMD with a multiply and an add: what every browser with SIMD runs.
#[cfg(target_arch = "wasm32")]
#[derive(Clone, Copy)]
pub struct SeparateMulAdd(core::arch::wasm32::v128);

#[cfg(target_arch = "wasm32")]
impl Lanes for SeparateMulAdd {
    #[inline(always)]
    fn zero() -> Self {
        Self(core::arch::wasm32::f32x4_splat(0.0))
    }
    #[inline(always)]
    fn splat(x: f32) -> Self {
        Self(core::arch::wasm32::f32x4_splat(x))
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        Self(unsafe { core::arch::wasm32::v128_load(p.cast()) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { core::arch::wasm32::v128_store(p.cast(), self.0) }
    }
    #[inline(always)]
    fn mul_add(a: Self, b: Self, acc: Self) -> Self {
        use core::arch::wasm32::{f32x4_add, f32x4_mul};
        Self(f32x4_add(acc.0, f32x4_mul(a.0, b.0)))
    }
    #[inline(always)]
    unsafe fn load_first<const COUNT: usize>(p: *const f32) -> Self {
        Self(unsafe { wasm_lanes::load_first::<COUNT>(p) })
    }
    #[inline(always)]
    unsafe fn store_first<const COUNT: usize>(self, p: *mut f32) {
        unsafe { wasm_lanes::store_first::<COUNT>(self.0, p) }
    }
}

/// Partial loads and stores of four-lane vectors, for both wasm builds: no byte outside the
/// `COUNT` floats named is read or written.
#[cfg(target_arch = "wasm32")]
pub mod wasm_lanes {
    use core::arch::wasm32::{v128, v128_load32_lane, v128_load32_zero, v128_load64_zero, v128_store32_lane, v128_store64_lane};

    /// # Safety
    /// `p` is valid for reading `COUNT` (1 to 3) floats.
    #[inline(always)]
    pub unsafe fn load_first<const COUNT: usize>(p: *const f32) -> v128 {
        unsafe {
            match COUNT {
                1 => v128_load32_zero(p.cast()),
                2 => v128_load64_zero(p.cast()),
                _ => v128_load32_lane::<2>(v128_load64_zero(p.cast()), p.add(2).cast()),
            }
        }
    }

    /// # Safety
    /// `p` is valid for writing `COUNT` (1 to 3) floats.
    #[inline(always)]
    pub unsafe fn store_first<const COUNT: usize>(v: v128, p: *mut f32) {
        unsafe {
            match COUNT {
                1 => v128_store32_lane::<0>(v, p.cast()),
                2 => v128_store64_lane::<0>(v, p.cast()),
                _ => {
                    v128_store64_lane::<0>(v, p.cast());
                    v128_store32_lane::<2>(v, p.add(2).cast());
                }
            }
        }
    }
}

/// Four plain floats: the same blocking natively, where the tests check it (native builds use
/// flex's own products, which have AVX2 and FMA).
#[cfg(not(target_arch = "wasm32"))]
#[derive(Clone, Copy)]
pub struct SeparateMulAdd([f32; 4]);

#[cfg(not(target_arch = "wasm32"))]
impl Lanes for SeparateMulAdd {
    fn zero() -> Self {
        Self([0.0; 4])
    }
    fn splat(x: f32) -> Self {
        Self([x; 4])
    }
    unsafe fn load(p: *const f32) -> Self {
        Self(unsafe { [*p, *p.add(1), *p.add(2), *p.add(3)] })
    }
    unsafe fn store(self, p: *mut f32) {
        for (i, x) in self.0.into_iter().enumerate() {
            unsafe { *p.add(i) = x };
        }
    }
    fn mul_add(a: Self, b: Self, acc: Self) -> Self {
        Self(core::array::from_fn(|i| acc.0[i] + a.0[i] * b.0[i]))
    }
    unsafe fn load_first<const COUNT: usize>(p: *const f32) -> Self {
        Self(core::array::from_fn(|i| if i < COUNT { unsafe { *p.add(i) } } else { 0.0 }))
    }
    unsafe fn store_first<const COUNT: usize>(self, p: *mut f32) {
        for (i, x) in self.0.into_iter().enumerate().take(COUNT) {
            unsafe { *p.add(i) = x };
        }
    }
}
