//! Whitening (TRL's `masked_whiten`): advantages are shifted to zero mean and scaled to unit
//! variance over the real tokens of a batch, so the step size does not depend on the reward's
//! scale. Returns are computed before this, from the raw advantages.

/// Whitens `values` over the cells where `mask` is true; masked-out cells become 0.
/// The variance is the unbiased one (÷(n − 1)), as in TRL. With `shift_mean = false` the mean
/// is added back (TRL uses that for rewards).
pub fn masked_whiten(values: &[f32], mask: &[bool], shift_mean: bool) -> Vec<f32> {
    assert_eq!(values.len(), mask.len());
    let n = mask.iter().filter(|&&m| m).count();
    if n == 0 {
        return vec![0.0; values.len()];
    }
    let mean = values.iter().zip(mask).filter(|(_, m)| **m).map(|(v, _)| v).sum::<f32>() / n as f32;
    let sum_sq: f32 = values.iter().zip(mask).filter(|(_, m)| **m).map(|(v, _)| (v - mean).powi(2)).sum();
    let var = if n > 1 { sum_sq / (n - 1) as f32 } else { 0.0 };
    let inv_std = 1.0 / (var + 1e-8).sqrt();
    values
        .iter()
        .zip(mask)
        .map(|(v, &m)| {
            if !m {
                0.0
            } else if shift_mean {
                (v - mean) * inv_std
            } else {
                (v - mean) * inv_std + mean
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitened_values_have_zero_mean_unit_variance_and_ignore_the_mask() {
        let values = [1.0, 2.0, 3.0, 100.0];
        let mask = [true, true, true, false];
        let w = masked_whiten(&values, &mask, true);
        // mean 2, unbiased var 1 → [−1, 0, 1], masked cell 0.
        assert!((w[0] + 1.0).abs() < 1e-4 && w[1].abs() < 1e-6 && (w[2] - 1.0).abs() < 1e-4);
        assert_eq!(w[3], 0.0);
        let kept = masked_whiten(&values, &mask, false);
        assert!((kept[0] - 1.0).abs() < 1e-4);
    }
}
