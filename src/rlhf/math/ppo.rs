//! Stage 3 of the math page, the PPO update, on host numbers: the probability ratio, the clipped
//! surrogate, the clipped value loss and the diagnostics TRL logs. The tensor versions in
//! `stages/ppo.rs` are what autodiff differentiates; these are what the clipping view draws and
//! what the tests hold the tensor versions to.
//!
//! ρ_t = π_θ(a_t|s_t)/π_θold(a_t|s_t)
//! L^CLIP_t = min(ρ_t·Â_t, clip(ρ_t, 1 − ε, 1 + ε)·Â_t)
//! L_PPO = E_t[−L^CLIP_t + c1·(V(s_t) − R̂_t)² − c2·S[π_θ](s_t)]

/// L^CLIP_t for one token.
pub fn clipped_surrogate(ratio: f32, advantage: f32, epsilon: f32) -> f32 {
    let unclipped = ratio * advantage;
    let clipped = ratio.clamp(1.0 - epsilon, 1.0 + epsilon) * advantage;
    unclipped.min(clipped)
}

/// The per-token policy loss as TRL writes it, with whether the clip was the active branch.
/// `pg_losses = −Â·ρ`, `pg_losses2 = −Â·clip(ρ)`, loss = max(pg_losses, pg_losses2) = −L^CLIP;
/// "clipped" (counted in `policy/clipfrac`) is `pg_losses2 > pg_losses`.
pub fn policy_loss(log_ratio: f32, advantage: f32, epsilon: f32) -> (f32, bool) {
    let ratio = log_ratio.exp();
    let pg_loss1 = -advantage * ratio;
    let pg_loss2 = -advantage * ratio.clamp(1.0 - epsilon, 1.0 + epsilon);
    (pg_loss1.max(pg_loss2), pg_loss2 > pg_loss1)
}

/// dL^CLIP/dρ: Â where the unclipped term is the minimum, 0 where the objective is flat — the
/// page's "once the ratio moves more than ε in the direction that would help, the objective
/// flattens".
pub fn surrogate_slope(ratio: f32, advantage: f32, epsilon: f32) -> f32 {
    surrogate_slope_asymmetric(ratio, advantage, epsilon, epsilon)
}

/// The same with a clip range of its own on each side: [1 − ε_low, 1 + ε_high] (DAPO's
/// "clip higher", GRPO's and GSPO's ranges).
pub fn surrogate_slope_asymmetric(ratio: f32, advantage: f32, epsilon_low: f32, epsilon_high: f32) -> f32 {
    let flat = (advantage > 0.0 && ratio > 1.0 + epsilon_high) || (advantage < 0.0 && ratio < 1.0 - epsilon_low);
    if flat { 0.0 } else { advantage }
}

/// The clipped value loss (TRL, after the PPO2 baselines): ½·max((V − R̂)², (V_clip − R̂)²), where
/// V_clip = V_old + clip(V − V_old, −ε_v, ε_v); "clipped" counts toward `val/clipfrac`.
///
/// V_clip is computed as clip(V, V_old − ε_v, V_old + ε_v), the same number, so that inside the
/// band it is V bit for bit: V_old + (V − V_old) can round one ulp away from V, and then
/// (V_clip − R̂)² > (V − R̂)² counted a token the clip did not touch (seen in the page: one token
/// of 65 counted by one worker and not by two, whose V differed in the last bits).
pub fn value_loss(value: f32, old_value: f32, target: f32, clip: f32) -> (f32, bool) {
    let clipped_value = value.clamp(old_value - clip, old_value + clip);
    let loss1 = (value - target).powi(2);
    let loss2 = (clipped_value - target).powi(2);
    (0.5 * loss1.max(loss2), loss2 > loss1)
}

/// The k2 estimate of KL(π_old ‖ π_θ) that TRL logs as `policy/approxkl`: ½·(log ρ)².
pub fn approx_kl(log_ratio: f32) -> f32 {
    0.5 * log_ratio * log_ratio
}

/// TRL's `val/ratio` and `val/ratio_var`: the mean and the population variance of ρ over the
/// real tokens of a minibatch (`real[i]` false at PAD). Taken on the host from every token's ρ,
/// because a variance is not a sum of the rows' parts and a minibatch may be split across
/// workers. (0, 0) when no token is real.
pub fn ratio_moments(ratios: &[f32], real: &[bool]) -> (f32, f32) {
    assert_eq!(ratios.len(), real.len());
    let kept: Vec<f32> = ratios.iter().zip(real).filter(|(_, real)| **real).map(|(&rho, _)| rho).collect();
    (crate::rlhf::math::stats::mean(&kept), crate::rlhf::math::stats::variance(&kept))
}

/// Entropy of a categorical distribution given by logits: logsumexp(z) − Σ softmax(z)·z.
pub fn entropy_from_logits(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum_exp: f32 = logits.iter().map(|z| (z - max).exp()).sum();
    let logsumexp = max + sum_exp.ln();
    let expected: f32 = logits.iter().map(|z| (z - logsumexp).exp() * z).sum();
    logsumexp - expected
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surrogate_by_hand() {
        assert!((clipped_surrogate(1.5, 2.0, 0.2) - 2.4).abs() < 1e-6); // clipped at 1.2
        assert!((clipped_surrogate(0.5, 2.0, 0.2) - 1.0).abs() < 1e-6); // below: unclipped
        assert!((clipped_surrogate(0.5, -2.0, 0.2) + 1.6).abs() < 1e-6); // clipped at 0.8
        assert!((clipped_surrogate(1.5, -2.0, 0.2) + 3.0).abs() < 1e-6); // above: unclipped
    }

    #[test]
    fn policy_loss_is_minus_the_surrogate_and_flags_the_flat_region() {
        for &(ratio, adv) in &[(1.5f32, 2.0f32), (0.5, 2.0), (0.5, -2.0), (1.5, -2.0), (1.0, 1.0)] {
            let (loss, clipped) = policy_loss(ratio.ln(), adv, 0.2);
            assert!((loss + clipped_surrogate(ratio, adv, 0.2)).abs() < 1e-5);
            assert_eq!(clipped, surrogate_slope(ratio, adv, 0.2) == 0.0, "ρ={ratio} Â={adv}");
        }
        // At ρ = 1 nothing is clipped and approx KL is 0.
        assert_eq!(policy_loss(0.0, 3.0, 0.2).1, false);
        assert_eq!(approx_kl(0.0), 0.0);
    }

    #[test]
    fn slope_matches_finite_differences_of_the_surrogate() {
        for &(ratio, adv) in &[(1.3f32, 1.0f32), (1.1, 1.0), (0.7, 1.0), (0.7, -1.0), (0.9, -1.0), (1.4, -1.0)] {
            let h = 1e-3;
            let numeric = (clipped_surrogate(ratio + h, adv, 0.2) - clipped_surrogate(ratio - h, adv, 0.2)) / (2.0 * h);
            assert!((numeric - surrogate_slope(ratio, adv, 0.2)).abs() < 1e-3, "ρ={ratio} Â={adv}");
        }
    }

    #[test]
    fn ratio_moments_skip_padding() {
        let (mean, var) = ratio_moments(&[1.0, 3.0, 100.0, 2.0], &[true, true, false, true]);
        assert!((mean - 2.0).abs() < 1e-6);
        assert!((var - 2.0 / 3.0).abs() < 1e-6);
        assert_eq!(ratio_moments(&[5.0], &[false]), (0.0, 0.0));
        // A NaN ρ at a real token makes both NaN (the update's fault check sees it).
        let (mean, var) = ratio_moments(&[f32::NAN, 1.0], &[true, true]);
        assert!(mean.is_nan() && var.is_nan());
    }

    #[test]
    fn an_unclipped_value_is_never_counted_as_clipped() {
        // Values and old values whose difference rounds: V_old + (V − V_old) ≠ V for some.
        // (The former V_old + clip(V − V_old) counted 4 of these 1000 as clipped.)
        let mut rounded = 0;
        for i in 0..1000 {
            let old = i as f32 * 1.3e-4;
            let value = old + 0.15 + i as f32 * 1e-5;
            rounded += usize::from(old + (value - old) != value);
            let (_, clipped) = value_loss(value, old, 3.0, 0.2);
            assert!(!clipped, "V={value} V_old={old}");
        }
        assert!(rounded > 50, "the fixture has values whose round trip rounds ({rounded})");
    }

    #[test]
    fn value_loss_and_entropy_by_hand() {
        // V moved 0.5 from V_old = 0 toward target 1 with clip 0.2: clipped V = 0.2;
        // losses 0.25 and 0.64 → ½·0.64, counted as clipped.
        let (loss, clipped) = value_loss(0.5, 0.0, 1.0, 0.2);
        assert!((loss - 0.32).abs() < 1e-6 && clipped);
        let (loss, clipped) = value_loss(0.1, 0.0, 1.0, 0.2);
        assert!((loss - 0.405).abs() < 1e-6 && !clipped);
        assert!((entropy_from_logits(&[0.0, 0.0, 0.0, 0.0]) - 4f32.ln()).abs() < 1e-6);
        assert!(entropy_from_logits(&[50.0, 0.0, 0.0]) < 1e-6);
    }
}
