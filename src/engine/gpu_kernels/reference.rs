//! Host references in f64, and the inputs the tests (here and in the browser) feed both the
//! kernels and the operations.

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
