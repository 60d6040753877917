//! exp, erf and GELU over `f32` slices, written so that the compiler vectorizes them: the CPU
//! backend's transcendental functions; and the row loops of the softmaxes, of the LM loss's
//! target log-probabilities and of LayerNorm, forward and backward.
//!
//! burn's CPU backend (flex 0.22.1) evaluates `exp` and `erf` one float at a time through libm,
//! and in the page (wasm, 4-lane SIMD) they were a fifth of a training step of the tiny GPT:
//! `expf` 10% (softmax, GELU's gradient, log-probabilities) and `erff` 7–9% (GELU, forward and
//! backward), profiled with `node --cpu-prof` on a build that kept its function names. PyTorch's
//! CPU kernels vectorize both, with the same two approximations as here:
//! - exp: Cephes' `expf` (range reduction by ln 2 in two parts, a degree-5 polynomial, the
//!   exponent added to the bits), within 2 ulp on the range where exp(x) is a normal float;
//! - erf: Abramowitz & Stegun 7.1.26, erf(x) ≈ 1 − (a₁t + a₂t² + a₃t³ + a₄t⁴ + a₅t⁵)·e^(−x²),
//!   t = 1/(1 + p·x), x ≥ 0, odd in x; absolute error below 1.5·10⁻⁷.
//!
//! Every function is branch-free (comparisons become selects), so the loops over slices compile
//! to SIMD on wasm32 (`simd128`) and on x86-64; NaN stays NaN, as the lab's fault detection needs.

use core::f32::consts::{FRAC_1_SQRT_2, LOG2_E};

/// Below this, exp(x) is under the smallest normal float: the result is 0.
const EXP_LOWEST: f32 = -87.336_55;
/// Above this, exp(x) overflows: the result is +∞.
const EXP_HIGHEST: f32 = 88.722_84;

/// e^x for one float, as the slice functions compute it (within 2 ulp of `f32::exp` for
/// normal results; 0 below `EXP_LOWEST`, +∞ above `EXP_HIGHEST`, NaN for NaN).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // Clamp first, so that the exponent's bits below stay in range; the selects at the end put
    // back 0 and ∞. A NaN fails every comparison and flows through as NaN.
    let clamped = if x < EXP_LOWEST { EXP_LOWEST } else if x > EXP_HIGHEST { EXP_HIGHEST } else { x };
    // x = n·ln 2 + r, |r| ≤ ln 2 / 2; ln 2 in two parts (Cody–Waite) keeps r exact.
    let n = (clamped * LOG2_E + 0.5).floor();
    let r = clamped - n * 0.693_359_4 - n * -2.121_944_4e-4;
    // e^r on [−ln 2/2, ln 2/2] (Cephes `expf`).
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1) * r + 5.000_000_1e-1;
    let e_r = p * r * r + r + 1.0;
    // 2^n through the exponent bits. n ∈ [−126, 128]: 2^128 is not a float, so split one factor 2.
    let half_n = n as i32 >> 1;
    let two_to = |k: i32| f32::from_bits(((k + 127) as u32) << 23);
    let value = e_r * two_to(half_n) * two_to(n as i32 - half_n);
    if x < EXP_LOWEST {
        0.0
    } else if x > EXP_HIGHEST {
        f32::INFINITY
    } else {
        value
    }
}

/// erf(x) by Abramowitz & Stegun 7.1.26: absolute error below 1.5·10⁻⁷, but near 0 the
/// subtraction 1 − (…) leaves a relative error of up to ~10⁻⁴ (see `erf`).
#[inline(always)]
fn erf_absolute(x: f32) -> f32 {
    erf_absolute_with(x, exp(-x * x))
}

/// `erf_absolute(x)` given `gaussian` = e^(−x²), which GELU's derivative needs too.
#[inline(always)]
fn erf_absolute_with(x: f32, gaussian: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_8, -1.453_152_1, 1.061_405_4];
    let t = 1.0 / (1.0 + P * x.abs());
    let polynomial = (((A[4] * t + A[3]) * t + A[2]) * t + A[1]) * t + A[0];
    // erf is odd: copy x's sign (also keeps erf(NaN) NaN).
    (1.0 - polynomial * t * gaussian).copysign(x)
}

/// erf(x) for one float. Near 0, where `erf_absolute` cancels, musl's rational approximation
/// erf(x) = x + x·P(x²)/Q(x²) (|x| < 0.84375, within 1 ulp); elsewhere `erf_absolute`. Both are
/// computed and one is selected, so that loops over slices stay branch-free.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let z = x * x;
    let numerator = 1.283_791_7e-1 + z * (-3.250_421e-1 + z * (-2.848_175e-2 + z * (-5.770_270_2e-3 + z * -2.376_301_7e-5)));
    let denominator = 1.0 + z * (3.979_172_1e-1 + z * (6.502_225e-2 + z * (5.081_306_2e-3 + z * (1.324_947_4e-4 + z * -3.960_228_2e-6))));
    let near = x + x * (numerator / denominator);
    let far = erf_absolute(x);
    if x.abs() < 0.843_75 {
        near
    } else {
        far
    }
}

/// 1/√(2π): the standard normal density at 0.
const INV_SQRT_2PI: f32 = 0.398_942_3;

/// GELU(x) = x·Φ(x) = ½·x·(1 + erf(x/√2)) (Hendrycks & Gimpel, 2016), the erf form that
/// `burn::tensor::activation::gelu` computes. GELU adds erf to 1 and scales by x/2, so erf's
/// absolute error is what reaches it (below 10⁻⁷·|x|): `erf_absolute`, without `erf`'s second
/// approximation near 0 and its division.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_absolute(x * FRAC_1_SQRT_2))
}

/// d GELU/dx = Φ(x) + x·φ(x), φ(x) = e^(−x²/2)/√(2π) (Φ with `erf_absolute`, as in `gelu`).
#[inline(always)]
pub fn gelu_derivative(x: f32) -> f32 {
    // e^(−x²/2) is both φ's numerator and the e^(−u²) of erf(u), u = x/√2: computed once.
    let gaussian = exp(-0.5 * x * x);
    let cdf = 0.5 * (1.0 + erf_absolute_with(x * FRAC_1_SQRT_2, gaussian));
    cdf + x * INV_SQRT_2PI * gaussian
}

/// `output[i] = exp(input[i])`.
pub fn exp_slice(input: &[f32], output: &mut [f32]) {
    assert_eq!(input.len(), output.len(), "exp_slice: lengths");
    for (out, &x) in output.iter_mut().zip(input) {
        *out = exp(x);
    }
}

/// `output[i] = GELU(input[i])`.
pub fn gelu_slice(input: &[f32], output: &mut [f32]) {
    assert_eq!(input.len(), output.len(), "gelu_slice: lengths");
    for (out, &x) in output.iter_mut().zip(input) {
        *out = gelu(x);
    }
}

/// `output[i] = GELU(input[i])` and `derivative[i] = GELU'(input[i])` in one pass: a GELU whose
/// gradient will be needed keeps the derivative, and its backward is then one multiplication
/// instead of erf and exp again. Shares `gelu`'s arithmetic, so `output` is `gelu_slice`'s to the
/// bit; the derivative takes φ's e^(−x²/2) from the same e^(−u²), u = x/√2.
pub fn gelu_with_derivative_slice(input: &[f32], output: &mut [f32], derivative: &mut [f32]) {
    assert_eq!(input.len(), output.len(), "gelu_with_derivative_slice: lengths");
    assert_eq!(input.len(), derivative.len(), "gelu_with_derivative_slice: lengths");
    for ((out, d), &x) in output.iter_mut().zip(derivative.iter_mut()).zip(input) {
        let u = x * FRAC_1_SQRT_2;
        let gaussian = exp(-u * u);
        let erf = erf_absolute_with(u, gaussian);
        *out = 0.5 * x * (1.0 + erf);
        *d = 0.5 * (1.0 + erf) + x * INV_SQRT_2PI * gaussian;
    }
}

/// `output[i] = grad[i]·GELU'(input[i])`: GELU's backward.
pub fn gelu_backward_slice(input: &[f32], grad: &[f32], output: &mut [f32]) {
    assert_eq!(input.len(), output.len(), "gelu_backward_slice: lengths");
    assert_eq!(grad.len(), output.len(), "gelu_backward_slice: lengths");
    for ((out, &x), &g) in output.iter_mut().zip(input).zip(grad) {
        *out = g * gelu_derivative(x);
    }
}

/// Softmax of each row of `width` floats: exp(x − max)/Σ exp(x − max). A row whose maximum is
/// −∞ (every entry masked) becomes NaN, as `burn`'s softmax makes it.
pub fn softmax_rows(input: &[f32], width: usize, output: &mut [f32]) {
    assert_eq!(input.len(), output.len(), "softmax_rows: lengths");
    assert!(width > 0 && input.len() % width == 0, "softmax_rows: rows of {width}");
    for (row, out) in input.chunks_exact(width).zip(output.chunks_exact_mut(width)) {
        let (_, total) = shifted_exponentials(row, out);
        let scale = 1.0 / total;
        for o in out.iter_mut() {
            *o *= scale;
        }
    }
}

/// log softmax of each row of `width` floats: x − max − ln Σ exp(x − max).
pub fn log_softmax_rows(input: &[f32], width: usize, output: &mut [f32]) {
    assert_eq!(input.len(), output.len(), "log_softmax_rows: lengths");
    assert!(width > 0 && input.len() % width == 0, "log_softmax_rows: rows of {width}");
    for (row, out) in input.chunks_exact(width).zip(output.chunks_exact_mut(width)) {
        let (max, total) = shifted_exponentials(row, out);
        let log_normalizer = max + total.ln();
        for (o, &x) in out.iter_mut().zip(row) {
            *o = x - log_normalizer;
        }
    }
}

/// For each row of `width` logits z and its target y: `picked` = log softmax(z)_y =
/// z_y − max − ln Σ exp(z − max), and, where asked, `probabilities` = softmax(z) (what the
/// backward needs, `target_log_softmax_backward_rows`). One pass per row where flex takes eight
/// operations over the whole tensor (a maximum, a subtraction, exp, a sum, ln, an addition, a
/// gather, a subtraction) and the backward recomputed the exponentials.
///
/// # Panics
/// If a target is not below `width`, or the lengths disagree.
pub fn target_log_softmax_rows(logits: &[f32], width: usize, targets: &[usize], picked: &mut [f32], probabilities: Option<&mut [f32]>) {
    assert!(width > 0 && logits.len() == targets.len() * width && picked.len() == targets.len(), "target_log_softmax_rows: rows of {width}");
    assert!(targets.iter().all(|&y| y < width), "target_log_softmax_rows: a target outside the {width} classes");
    // Without probabilities to keep, each row's exponentials go to one row of scratch.
    let keep = probabilities.is_some();
    let mut scratch = if keep { Vec::new() } else { vec![0.0; width] };
    let probabilities: &mut [f32] = match probabilities {
        Some(p) => {
            assert_eq!(p.len(), logits.len(), "target_log_softmax_rows: probabilities' length");
            p
        }
        None => &mut scratch,
    };
    for (i, ((row, &y), out)) in logits.chunks_exact(width).zip(targets).zip(picked.iter_mut()).enumerate() {
        let p = if keep { &mut probabilities[i * width..(i + 1) * width] } else { &mut probabilities[..] };
        let (max, total) = shifted_exponentials(row, p);
        *out = row[y] - (max + total.ln());
        if keep {
            let scale = 1.0 / total;
            for e in p.iter_mut() {
                *e *= scale;
            }
        }
    }
}

/// ∂L/∂z of `target_log_softmax_rows` from `grad` = ∂L/∂(log softmax(z)_y), one per row, and
/// the rows' softmax: ∂L/∂z_j = g·(1[j = y] − softmax(z)_j).
pub fn target_log_softmax_backward_rows(probabilities: &[f32], width: usize, targets: &[usize], grad: &[f32], d_logits: &mut [f32]) {
    assert!(width > 0 && probabilities.len() == targets.len() * width && grad.len() == targets.len() && d_logits.len() == probabilities.len(), "target_log_softmax_backward_rows: rows of {width}");
    assert!(targets.iter().all(|&y| y < width), "target_log_softmax_backward_rows: a target outside the {width} classes");
    for (((p, &y), &g), d) in probabilities.chunks_exact(width).zip(targets).zip(grad).zip(d_logits.chunks_exact_mut(width)) {
        for (d, &p) in d.iter_mut().zip(p) {
            *d = -g * p;
        }
        d[y] += g;
    }
}

/// LayerNorm of each row of `gamma.len()` floats, keeping what its backward needs: writes
/// y = x̂·γ + β, x̂ = (x − μ)·r and, one per row, r = 1/√(σ² + ε) (σ² the biased variance).
/// One pass per row where flex takes ten operations over the whole tensor.
pub fn layer_norm_rows(input: &[f32], gamma: &[f32], beta: &[f32], epsilon: f32, output: &mut [f32], normalized: &mut [f32], inverse_std: &mut [f32]) {
    let width = gamma.len();
    assert!(width > 0 && beta.len() == width && input.len().is_multiple_of(width), "layer_norm_rows: rows of {width}");
    assert!(output.len() == input.len() && normalized.len() == input.len() && inverse_std.len() == input.len() / width, "layer_norm_rows: lengths");
    let rows = input.chunks_exact(width).zip(output.chunks_exact_mut(width)).zip(normalized.chunks_exact_mut(width));
    for (((row, out), norm), r) in rows.zip(inverse_std.iter_mut()) {
        let mean = lane_sum(row, row, row, |x, _, _| x) / width as f32;
        let variance = lane_sum(row, row, row, |x, _, _| (x - mean) * (x - mean)) / width as f32;
        *r = 1.0 / (variance + epsilon).sqrt();
        for (((o, n), &x), (&g, &b)) in out.iter_mut().zip(norm.iter_mut()).zip(row).zip(gamma.iter().zip(beta)) {
            *n = (x - mean) * *r;
            *o = *n * g + b;
        }
    }
}

/// The gradients of `layer_norm_rows` from ∂L/∂y (`grad`), x̂, r and γ. With g = ∂L/∂y·γ per
/// row: ∂L/∂x = r·(g − mean(g) − x̂·mean(g·x̂)), ∂L/∂γ = Σ_rows ∂L/∂y·x̂, ∂L/∂β = Σ_rows ∂L/∂y.
pub fn layer_norm_backward_rows(grad: &[f32], normalized: &[f32], inverse_std: &[f32], gamma: &[f32], d_input: &mut [f32], d_gamma: &mut [f32], d_beta: &mut [f32]) {
    let width = gamma.len();
    assert!(width > 0 && grad.len().is_multiple_of(width) && inverse_std.len() == grad.len() / width, "layer_norm_backward_rows: rows of {width}");
    assert!(normalized.len() == grad.len() && d_input.len() == grad.len() && d_gamma.len() == width && d_beta.len() == width, "layer_norm_backward_rows: lengths");
    d_gamma.fill(0.0);
    d_beta.fill(0.0);
    let rows = grad.chunks_exact(width).zip(normalized.chunks_exact(width)).zip(d_input.chunks_exact_mut(width));
    for (((dy, norm), dx), &r) in rows.zip(inverse_std) {
        for ((&dy, &n), (dg, db)) in dy.iter().zip(norm).zip(d_gamma.iter_mut().zip(d_beta.iter_mut())) {
            *dg += dy * n;
            *db += dy;
        }
        let mean_g = lane_sum(dy, gamma, norm, |dy, g, _| dy * g) / width as f32;
        let mean_g_normalized = lane_sum(dy, gamma, norm, |dy, g, n| dy * g * n) / width as f32;
        for (((out, &dy), &n), &g) in dx.iter_mut().zip(dy).zip(norm).zip(gamma) {
            *out = r * (dy * g - mean_g - n * mean_g_normalized);
        }
    }
}

/// `out[j] = exp(row[j] − max)`; returns (max, Σ_j out[j]). Shifting by the maximum keeps every
/// exponential ≤ 1, so none overflows. The maximum and the sum are taken in four lanes
/// (`lane_sum`): in order, each is one dependency chain, and in attention's rows of 24 the two
/// chains took longer than the exponentials.
fn shifted_exponentials(row: &[f32], out: &mut [f32]) -> (f32, f32) {
    let max = row_max(row);
    for (o, &x) in out.iter_mut().zip(row) {
        *o = exp(x - max);
    }
    (max, lane_sum(out, out, out, |e, _, _| e))
}

/// Σ_j term(a_j, b_j, c_j) over slices of one length, in four interleaved partial sums: a sum
/// taken in order is one dependency chain, which does not vectorize.
#[inline(always)]
pub fn lane_sum(a: &[f32], b: &[f32], c: &[f32], term: impl Fn(f32, f32, f32) -> f32) -> f32 {
    let (a4, b4, c4) = (a.chunks_exact(4), b.chunks_exact(4), c.chunks_exact(4));
    let tail: f32 = a4.remainder().iter().zip(b4.remainder()).zip(c4.remainder()).map(|((&x, &y), &z)| term(x, y, z)).sum();
    let mut lanes = [0.0f32; 4];
    for ((x, y), z) in a4.zip(b4).zip(c4) {
        for l in 0..4 {
            lanes[l] += term(x[l], y[l], z[l]);
        }
    }
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + tail
}

/// The largest entry (NaN if any entry is NaN, so that a NaN row stays NaN), in four lanes.
fn row_max(row: &[f32]) -> f32 {
    let larger = |max: f32, x: f32| if x > max || x.is_nan() { x } else { max };
    let chunks = row.chunks_exact(4);
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |max, &x| larger(max, x));
    let mut lanes = [f32::NEG_INFINITY; 4];
    for chunk in chunks {
        for l in 0..4 {
            lanes[l] = larger(lanes[l], chunk[l]);
        }
    }
    larger(larger(larger(lanes[0], lanes[1]), larger(lanes[2], lanes[3])), tail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::f32::consts::LN_2;

    /// Distance in units in the last place between two finite floats of the same sign.
    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    /// Every 97th float bit pattern in the range where exp is a normal float.
    fn exp_inputs() -> impl Iterator<Item = f32> {
        let (low, high) = (EXP_LOWEST.to_bits(), EXP_HIGHEST.to_bits());
        // Negative floats' bits grow away from zero: walk both halves.
        (0..low).step_by(97).map(f32::from_bits).map(|x| -x.abs()).chain((0..high).step_by(97).map(f32::from_bits))
    }

    #[test]
    fn exp_is_within_two_ulp_of_the_standard_librarys() {
        let mut worst = (0, 0.0);
        for x in exp_inputs() {
            let (ours, theirs) = (exp(x), f64::from(x).exp() as f32);
            if theirs < f32::MIN_POSITIVE {
                continue; // subnormal results: ours flushes to 0 below EXP_LOWEST only
            }
            let distance = ulps(ours, theirs);
            if distance > worst.0 {
                worst = (distance, x);
            }
        }
        assert!(worst.0 <= 2, "exp: {} ulp at x = {}", worst.0, worst.1);
    }

    #[test]
    fn exp_keeps_its_special_values() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-1000.0), 0.0);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(100.0), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
        // The edges of the range: 2^±126 and the largest float's neighbourhood.
        assert!(ulps(exp(EXP_HIGHEST), f64::from(EXP_HIGHEST).exp() as f32) <= 2);
        assert!(ulps(exp(EXP_LOWEST), f64::from(EXP_LOWEST).exp() as f32) <= 2);
        assert!(ulps(exp(LN_2), 2.0) <= 1);
    }

    #[test]
    fn erf_is_within_its_bound_of_the_true_function() {
        // erf from f64's libm-free series would be a second approximation; use the integral's
        // relation to the complementary function through f64 exp instead: erf' = 2/√π·e^(−x²),
        // integrated with Simpson's rule on a fine grid from 0.
        let (steps, high) = (400_000, 6.0f64);
        let h = high / steps as f64;
        let density = |x: f64| 2.0 / core::f64::consts::PI.sqrt() * (-x * x).exp();
        let mut integral = 0.0f64;
        let mut worst = (0.0f64, 0.0f64);
        for i in 0..steps {
            let a = i as f64 * h;
            integral += h / 6.0 * (density(a) + 4.0 * density(a + h / 2.0) + density(a + h));
            if i % 37 == 0 {
                let x = a + h;
                for (sign, value) in [(1.0, integral), (-1.0, -integral)] {
                    let ours = f64::from(erf((sign * x) as f32));
                    // The input rounded to f32 moves erf by up to its slope times the rounding.
                    let rounding = density(x) * (x - f64::from(x as f32)).abs();
                    if x < 0.843 {
                        assert!((ours - value).abs() <= 4e-7 * value.abs() + rounding, "erf({}) = {ours}, relative error {}", sign * x, (ours - value).abs() / value.abs());
                    }
                    let error = (ours - value).abs();
                    if error > worst.0 {
                        worst = (error, sign * x);
                    }
                }
            }
        }
        // 1.5e-7 for the formula, plus f32 rounding of the input and the arithmetic.
        assert!(worst.0 < 2.5e-7, "erf: error {} at x = {}", worst.0, worst.1);
        assert!(erf(f32::NAN).is_nan());
        assert_eq!(erf(f32::INFINITY), 1.0);
        assert_eq!(erf(f32::NEG_INFINITY), -1.0);
    }

    #[test]
    fn gelu_and_its_derivative_match_the_definition() {
        // GELU from f64 erf (by the integral, as above, is costly: use Φ's symmetry at known
        // points instead) and a central difference for the derivative.
        for &(x, expected) in &[(0.0f32, 0.0f32), (1.0, 0.841_344_7), (-1.0, -0.158_655_25), (2.0, 1.954_500), (-3.0, -0.004_049_5)] {
            assert!((gelu(x) - expected).abs() < 1e-6, "GELU({x}) = {} ≠ {expected}", gelu(x));
        }
        for i in -80..=80 {
            let x = i as f32 / 10.0;
            let h = 1e-2f32;
            let difference = (f64::from(gelu(x + h)) - f64::from(gelu(x - h))) / (2.0 * f64::from(h));
            assert!((f64::from(gelu_derivative(x)) - difference).abs() < 2e-4, "GELU'({x}) = {} against {difference}", gelu_derivative(x));
        }
    }

    #[test]
    fn gelu_with_its_derivative_is_gelu_to_the_bit_and_its_derivative() {
        let input: Vec<f32> = (-800..=800).map(|i| i as f32 / 100.0).chain([0.0, -0.0, 1e-30, f32::NAN]).collect();
        let (mut output, mut derivative) = (vec![0.0; input.len()], vec![0.0; input.len()]);
        gelu_with_derivative_slice(&input, &mut output, &mut derivative);
        for ((&x, &y), &d) in input.iter().zip(&output).zip(&derivative) {
            assert_eq!(y.to_bits(), gelu(x).to_bits(), "GELU({x})");
            if x.is_nan() {
                assert!(d.is_nan(), "GELU'(NaN) = {d}");
            } else {
                assert!((d - gelu_derivative(x)).abs() <= 1e-6, "GELU'({x}) = {d} against {}", gelu_derivative(x));
            }
        }
    }

    #[test]
    fn the_row_maximum_in_lanes_is_the_maximum_and_keeps_a_nan_anywhere() {
        for width in 1..=11 {
            let row: Vec<f32> = (0..width).map(|i| ((i * 7 % 5) as f32 - 2.0) * 1.5).collect();
            let expected = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(row_max(&row), expected, "width {width}");
            for at in 0..width {
                let mut with_nan = row.clone();
                with_nan[at] = f32::NAN;
                assert!(row_max(&with_nan).is_nan(), "width {width}, NaN at {at}");
            }
        }
        assert_eq!(row_max(&[f32::NEG_INFINITY; 5]), f32::NEG_INFINITY);
    }

    #[test]
    fn softmax_rows_sum_to_one_and_match_the_definition() {
        let input: Vec<f32> = (0..24).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.7).collect();
        let mut ours = vec![0.0; 24];
        softmax_rows(&input, 8, &mut ours);
        let mut logs = vec![0.0; 24];
        log_softmax_rows(&input, 8, &mut logs);
        for (r, row) in input.chunks(8).enumerate() {
            let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let total: f64 = row.iter().map(|&x| f64::from(x - max).exp()).sum();
            for (j, &x) in row.iter().enumerate() {
                let expected = f64::from(x - max).exp() / total;
                assert!((f64::from(ours[r * 8 + j]) - expected).abs() < 1e-6);
                assert!((f64::from(logs[r * 8 + j]) - expected.ln()).abs() < 1e-5);
            }
        }
        // A masked entry (−∞) gets probability 0; a row with a NaN stays NaN.
        let mut out = [0.0; 4];
        softmax_rows(&[0.0, f32::NEG_INFINITY, 1.0, 2.0], 4, &mut out);
        assert_eq!(out[1], 0.0);
        softmax_rows(&[0.0, f32::NAN, 1.0, 2.0], 4, &mut out);
        assert!(out.iter().all(|p| p.is_nan()));
    }
}
