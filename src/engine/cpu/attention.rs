//! Multi-head attention on the CPU backend in the page, forward and backward, head by head on
//! strided views of qkv: softmax(q_h·k_hᵀ·scale + bias)·v_h for each head h.
//!
//! Written with tensor operations, the heads are split out of qkv [B, T, 3D] by a chunk and a
//! reshape of each part into [B, H, T, hd] (flex copies the strided parts), and merged back by
//! a transpose and a reshape (another copy); backward, each of those is a copy again and the
//! three parts' gradients are concatenated. Here every product reads q, k and v where they lie
//! in qkv and writes y and ∂qkv where they belong: `matmul_kernel` takes any row stride for A,
//! B and C. Only kᵀ and vᵀ are packed per head (the kernel needs B's columns contiguous), a
//! [hd, T] block each. The probabilities are kept for the backward.
//!
//! With p = softmax(s) over the keys, s = q·kᵀ·scale + bias (per head, per batch row):
//! ∂v = pᵀ·∂y, ∂p = ∂y·vᵀ, ∂s = p ⊙ (∂p − Σ_keys ∂p ⊙ p), ∂q = ∂s·k·scale, ∂k = ∂sᵀ·q·scale.

use crate::engine::cpu::matmul::Kernel;

/// The kernel this attention runs with: the page's product (`cpu::matmul::active`); `None` where
/// the model composes the attention from operations instead (flex's own product in the page,
/// and native builds, whose flex products use AVX2 and FMA). Native tests can turn it on.
pub fn kernel() -> Option<Kernel> {
    #[cfg(target_arch = "wasm32")]
    return crate::engine::cpu::matmul::active();
    #[cfg(all(not(target_arch = "wasm32"), test))]
    return tests::NATIVE.with(|on| on.get()).then(crate::engine::cpu::matmul::separate_mul_add);
    #[cfg(all(not(target_arch = "wasm32"), not(test)))]
    return None;
}

/// The sizes of one attention: qkv is [batch, seq, 3·d_model], d_model = heads · head_dim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heads {
    pub batch: usize,
    pub seq: usize,
    pub d_model: usize,
    pub heads: usize,
}

impl Heads {
    fn head_dim(&self) -> usize {
        self.d_model / self.heads
    }

    /// Where q, k and v of batch row `b` and head `h` start in qkv.
    fn offsets(&self, b: usize, h: usize) -> [usize; 3] {
        let start = b * self.seq * 3 * self.d_model + h * self.head_dim();
        [start, start + self.d_model, start + 2 * self.d_model]
    }

    /// Where the probabilities of batch row `b` and head `h` start: [B, H, T, T].
    fn probability_offset(&self, b: usize, h: usize) -> usize {
        (b * self.heads + h) * self.seq * self.seq
    }

    fn check(&self, qkv: &[f32], bias: &[f32]) {
        assert!(self.heads > 0 && self.seq > 0 && self.d_model.is_multiple_of(self.heads) && self.d_model > 0, "attention: {self:?}");
        assert_eq!(qkv.len(), self.batch * self.seq * 3 * self.d_model, "attention: qkv for {self:?}");
        assert_eq!(bias.len(), self.seq * self.seq, "attention: a [seq, seq] bias");
    }
}

/// `block`'s rows (`rows` of `cols` floats, `stride` apart) transposed into `out` ([cols, rows]).
fn transpose_into(block: &[f32], rows: usize, cols: usize, stride: usize, out: &mut [f32]) {
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = block[r * stride + c];
        }
    }
}

/// y [B, T, D] (heads side by side) and the probabilities [B, H, T, T].
pub fn forward(qkv: &[f32], bias: &[f32], shape: Heads, scale: f32, kernel: Kernel) -> (Vec<f32>, Vec<f32>) {
    shape.check(qkv, bias);
    let Heads { batch, seq, d_model, heads } = shape;
    let (hd, row) = (shape.head_dim(), 3 * d_model);
    let mut y = vec![0.0f32; batch * seq * d_model];
    let mut probabilities = vec![0.0f32; batch * heads * seq * seq];
    let mut keys_t = vec![0.0f32; hd * seq];
    let mut scores = vec![0.0f32; seq];
    for b in 0..batch {
        for h in 0..heads {
            let [q, k, v] = shape.offsets(b, h);
            let p = &mut probabilities[shape.probability_offset(b, h)..][..seq * seq];
            transpose_into(&qkv[k..], seq, hd, row, &mut keys_t);
            // SAFETY: q is seq rows of hd floats `row` apart inside qkv; kᵀ is [hd, seq]; p is
            // [seq, seq]; y's block is seq rows of hd floats `d_model` apart inside y.
            unsafe { kernel(1, seq, seq, hd, qkv[q..].as_ptr(), 0, row, 1, keys_t.as_ptr(), 0, seq, p.as_mut_ptr(), 0, seq) };
            for (i, p_row) in p.chunks_exact_mut(seq).enumerate() {
                for ((s, &x), &m) in scores.iter_mut().zip(p_row.iter()).zip(&bias[i * seq..(i + 1) * seq]) {
                    *s = x * scale + m;
                }
                crate::engine::cpu::math::softmax_rows(&scores, seq, p_row);
            }
            unsafe { kernel(1, seq, hd, seq, p.as_ptr(), 0, seq, 1, qkv[v..].as_ptr(), 0, row, y[b * seq * d_model + h * hd..].as_mut_ptr(), 0, d_model) };
        }
    }
    (y, probabilities)
}

/// ∂L/∂qkv [B, T, 3D] from ∂L/∂y [B, T, D], qkv and `forward`'s probabilities.
pub fn backward(qkv: &[f32], probabilities: &[f32], grad: &[f32], shape: Heads, scale: f32, kernel: Kernel) -> Vec<f32> {
    let Heads { batch, seq, d_model, heads } = shape;
    assert_eq!(qkv.len(), batch * seq * 3 * d_model, "attention backward: qkv for {shape:?}");
    assert_eq!(probabilities.len(), batch * heads * seq * seq, "attention backward: probabilities for {shape:?}");
    assert_eq!(grad.len(), batch * seq * d_model, "attention backward: ∂y for {shape:?}");
    let (hd, row) = (shape.head_dim(), 3 * d_model);
    let mut d_qkv = vec![0.0f32; qkv.len()];
    let mut values_t = vec![0.0f32; hd * seq];
    let mut d_scores = vec![0.0f32; seq * seq];
    for b in 0..batch {
        for h in 0..heads {
            let [q, k, v] = shape.offsets(b, h);
            let p = &probabilities[shape.probability_offset(b, h)..][..seq * seq];
            let d_y = grad[b * seq * d_model + h * hd..].as_ptr();
            // SAFETY (every call): the blocks named are seq rows of hd floats at their row
            // strides inside qkv, ∂y and ∂qkv, or [seq, seq] and [hd, seq] buffers; pᵀ and ∂sᵀ
            // are read through their transposed strides (row 1, column seq).
            // ∂v = pᵀ·∂y
            unsafe { kernel(1, seq, hd, seq, p.as_ptr(), 0, 1, seq, d_y, 0, d_model, d_qkv[v..].as_mut_ptr(), 0, row) };
            // ∂p = ∂y·vᵀ, then ∂s = p ⊙ (∂p − Σ ∂p ⊙ p)·scale: the scale of s = q·kᵀ·scale + bias.
            transpose_into(&qkv[v..], seq, hd, row, &mut values_t);
            unsafe { kernel(1, seq, seq, hd, d_y, 0, d_model, 1, values_t.as_ptr(), 0, seq, d_scores.as_mut_ptr(), 0, seq) };
            for (d_row, p_row) in d_scores.chunks_exact_mut(seq).zip(p.chunks_exact(seq)) {
                let dot: f32 = d_row.iter().zip(p_row).map(|(d, p)| d * p).sum();
                for (d, &p) in d_row.iter_mut().zip(p_row) {
                    *d = p * (*d - dot) * scale;
                }
            }
            // ∂q = ∂s·k, ∂k = ∂sᵀ·q
            unsafe { kernel(1, seq, hd, seq, d_scores.as_ptr(), 0, seq, 1, qkv[k..].as_ptr(), 0, row, d_qkv[q..].as_mut_ptr(), 0, row) };
            unsafe { kernel(1, seq, hd, seq, d_scores.as_ptr(), 0, 1, seq, qkv[q..].as_ptr(), 0, row, d_qkv[k..].as_mut_ptr(), 0, row) };
        }
    }
    d_qkv
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rng::Rng;

    thread_local! {
        /// Native tests' switch for `kernel()`: the attention of this file instead of the
        /// composed one, on this test's thread.
        pub(crate) static NATIVE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// The attention in plain loops, head by head, and its gradient by central differences.
    fn reference(qkv: &[f32], bias: &[f32], shape: Heads, scale: f32) -> Vec<f32> {
        let Heads { batch, seq, d_model, heads } = shape;
        let hd = d_model / heads;
        let at = |b: usize, t: usize, part: usize, h: usize, d: usize| qkv[b * seq * 3 * d_model + t * 3 * d_model + part * d_model + h * hd + d];
        let mut y = vec![0.0f32; batch * seq * d_model];
        for b in 0..batch {
            for h in 0..heads {
                for i in 0..seq {
                    let s: Vec<f64> = (0..seq).map(|j| (0..hd).map(|d| f64::from(at(b, i, 0, h, d)) * f64::from(at(b, j, 1, h, d))).sum::<f64>() * f64::from(scale) + f64::from(bias[i * seq + j])).collect();
                    let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                    let total: f64 = e.iter().sum();
                    for d in 0..hd {
                        y[b * seq * d_model + i * d_model + h * hd + d] = ((0..seq).map(|j| e[j] / total * f64::from(at(b, j, 2, h, d))).sum::<f64>()) as f32;
                    }
                }
            }
        }
        y
    }

    fn causal(seq: usize) -> Vec<f32> {
        (0..seq * seq).map(|i| if i % seq > i / seq { -1e9 } else { 0.0 }).collect()
    }

    #[test]
    fn forward_and_backward_match_the_attention_in_plain_loops() {
        let kernel = crate::engine::cpu::matmul::separate_mul_add();
        // 6 positions and heads of 5: every remainder of the kernel's 4 × 8 blocking.
        let shape = Heads { batch: 2, seq: 6, d_model: 10, heads: 2 };
        let scale = 1.0 / 5f32.sqrt();
        let mut rng = Rng::new(3);
        let qkv: Vec<f32> = (0..2 * 6 * 30).map(|_| rng.normal()).collect();
        let bias = causal(6);
        let (y, p) = forward(&qkv, &bias, shape, scale, kernel);
        let expected = reference(&qkv, &bias, shape, scale);
        let worst = y.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "forward differs by {worst}");
        // Masked keys get nothing: the first query sees only itself.
        assert_eq!(p[0], 1.0);
        assert!(p[1..6].iter().all(|&x| x == 0.0));

        // L = Σ y ⊙ w: ∂L/∂y = w; each ∂L/∂qkv against a central difference of L.
        let w: Vec<f32> = (0..y.len()).map(|_| rng.normal()).collect();
        let loss = |qkv: &[f32]| -> f64 { reference(qkv, &bias, shape, scale).iter().zip(&w).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum() };
        let d_qkv = backward(&qkv, &p, &w, shape, scale, kernel);
        for i in (0..qkv.len()).step_by(7) {
            let (mut plus, mut minus) = (qkv.clone(), qkv.clone());
            plus[i] += 1e-2;
            minus[i] -= 1e-2;
            let numeric = (loss(&plus) - loss(&minus)) / 2e-2;
            assert!((f64::from(d_qkv[i]) - numeric).abs() < 2e-3 * numeric.abs().max(1.0), "∂qkv[{i}]: {} against {numeric}", d_qkv[i]);
        }
    }
}
