//! `matmul_kernel::matmul` with `f32x4.relaxed_madd`: an FMA where the CPU has one. This module
//! has no memory, data or stack of its own: it imports the core's memory (`env.memory`) and
//! reads and writes only what its caller's pointers name. scripts/build.sh checks that.
#![no_std]

use core::arch::wasm32::{f32x4_relaxed_madd, f32x4_splat, v128, v128_load, v128_store};

#[allow(dead_code)] // its `SeparateMulAdd` is the core's
#[path = "../../src/engine/cpu/matmul_kernel.rs"]
mod matmul_kernel;

use matmul_kernel::Lanes;

#[derive(Clone, Copy)]
struct RelaxedMulAdd(v128);

impl Lanes for RelaxedMulAdd {
    #[inline(always)]
    fn zero() -> Self {
        Self(f32x4_splat(0.0))
    }
    #[inline(always)]
    fn splat(x: f32) -> Self {
        Self(f32x4_splat(x))
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        Self(unsafe { v128_load(p.cast()) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { v128_store(p.cast(), self.0) }
    }
    #[inline(always)]
    fn mul_add(a: Self, b: Self, acc: Self) -> Self {
        Self(f32x4_relaxed_madd(a.0, b.0, acc.0))
    }
    #[inline(always)]
    unsafe fn load_first<const COUNT: usize>(p: *const f32) -> Self {
        Self(unsafe { matmul_kernel::wasm_lanes::load_first::<COUNT>(p) })
    }
    #[inline(always)]
    unsafe fn store_first<const COUNT: usize>(self, p: *mut f32) {
        unsafe { matmul_kernel::wasm_lanes::store_first::<COUNT>(self.0, p) }
    }
}

/// `matmul_kernel::matmul` (its arguments, pointers as offsets into the core's memory).
///
/// # Safety
/// As `matmul_kernel::matmul`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn matmul(batch: usize, m: usize, n: usize, k: usize, a: *const f32, a_batch: usize, a_row: usize, a_col: usize, b: *const f32, b_batch: usize, b_row: usize, c: *mut f32, c_batch: usize, c_row: usize) {
    unsafe { matmul_kernel::matmul::<RelaxedMulAdd>(batch, m, n, k, a, a_batch, a_row, a_col, b, b_batch, b_row, c, c_batch, c_row) }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
