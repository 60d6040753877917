//! The ceiling of the page's CPU matrix product on this machine: how many GFLOP/s 4-lane
//! (128-bit) fused multiply-adds reach natively, with 12 independent accumulators, so that the
//! FMA units, not their latency, set the pace. wasm's SIMD is 4 lanes wide, and relaxed SIMD's
//! `f32x4.relaxed_madd` is this instruction where the CPU has it: no kernel in the page can go
//! faster. PyTorch's kernels use 8- or 16-lane FMAs (AVX2, AVX-512) on the same CPU.
//!
//!   cargo run --release --example fma_peak
//!
//! A benchmark aid (prints numbers), x86-64 with FMA only.

#[cfg(target_arch = "x86_64")]
fn main() {
    use std::arch::x86_64::{_mm_add_ps, _mm_fmadd_ps, _mm_set1_ps, _mm_storeu_ps};
    use std::time::Instant;

    const ACCUMULATORS: usize = 12;

    /// `iterations` rounds of one FMA on each accumulator; returns a value that depends on all.
    #[target_feature(enable = "fma,avx")]
    unsafe fn run(iterations: usize) -> f32 {
        let mut acc = [_mm_set1_ps(0.0); ACCUMULATORS];
        let (a, b) = (_mm_set1_ps(1.000_000_1), _mm_set1_ps(0.999_999));
        for _ in 0..iterations {
            for lanes in acc.iter_mut() {
                *lanes = _mm_fmadd_ps(a, *lanes, b);
            }
        }
        let total = acc.iter().fold(_mm_set1_ps(0.0), |sum, &lanes| _mm_add_ps(sum, lanes));
        let mut out = [0.0f32; 4];
        unsafe { _mm_storeu_ps(out.as_mut_ptr(), total) };
        out[0]
    }

    if !std::arch::is_x86_feature_detected!("fma") {
        eprintln!("this CPU has no FMA: the page runs separate multiplies and adds");
        return;
    }
    let iterations = 100_000_000;
    for round in 1..=3 {
        let started = Instant::now();
        // SAFETY: FMA and AVX were detected above.
        let check = unsafe { run(iterations) };
        let seconds = started.elapsed().as_secs_f64();
        let flops = (iterations * ACCUMULATORS * 4 * 2) as f64;
        println!("round {round}: {:.1} GFLOP/s with 4-lane FMAs (check {check:.3e})", flops / seconds / 1e9);
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    eprintln!("fma_peak measures x86-64's 4-lane FMA; this is another architecture");
}
