//! Stage 2 of the math page: the Bradley–Terry preference model and its loss.
//!
//! p(y_w ≻ y_l | x) = σ(r(x, y_w) − r(x, y_l)),   L(φ) = −E[log σ(r_w − r_l)].
//!
//! A tie is the target ½: −½·log σ(r_a − r_b) − ½·log σ(r_b − r_a).

use super::stats::{log_sigmoid, sigmoid};

/// Probability that the completion scored `r_w` is preferred to the one scored `r_l`.
pub fn preference_probability(r_w: f32, r_l: f32) -> f32 {
    sigmoid(r_w - r_l)
}

/// Loss of one comparison with target probability `target` that the first is preferred
/// (1 for a strict preference, ½ for a tie): the cross-entropy of σ(r_a − r_b) against it.
pub fn loss(r_a: f32, r_b: f32, target: f32) -> f32 {
    let margin = r_a - r_b;
    -(target * log_sigmoid(margin) + (1.0 - target) * log_sigmoid(-margin))
}

/// ∂loss/∂r_a (and ∂loss/∂r_b is its negative): σ(r_a − r_b) − target.
pub fn loss_gradient(r_a: f32, r_b: f32, target: f32) -> f32 {
    sigmoid(r_a - r_b) - target
}

/// Mean loss over a batch of (r_a, r_b, target).
pub fn mean_loss(pairs: &[(f32, f32, f32)]) -> f32 {
    pairs.iter().map(|&(a, b, t)| loss(a, b, t)).sum::<f32>() / pairs.len().max(1) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_is_log_two_at_equal_rewards_and_matches_hand_values() {
        assert!((loss(0.3, 0.3, 1.0) - 2f32.ln()).abs() < 1e-6);
        // margin 1: −log σ(1) = log(1 + e^−1) = 0.313262
        assert!((loss(1.5, 0.5, 1.0) - 0.313_262).abs() < 1e-5);
        // a tie at margin 1: ½(0.313262 + 1.313262)
        assert!((loss(1.5, 0.5, 0.5) - 0.813_262).abs() < 1e-5);
        assert!((preference_probability(2.0, 0.0) - 0.880_797).abs() < 1e-5);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        for &(a, b, t) in &[(0.2, -0.4, 1.0), (1.0, 2.0, 1.0), (0.5, 0.1, 0.5)] {
            let h = 1e-3;
            let numeric = (loss(a + h, b, t) - loss(a - h, b, t)) / (2.0 * h);
            assert!((numeric - loss_gradient(a, b, t)).abs() < 1e-3, "{a} {b} {t}");
        }
        // Equal rewards and a strict preference: gradient −½ pushes r_w up.
        assert!((loss_gradient(0.0, 0.0, 1.0) + 0.5).abs() < 1e-7);
    }
}
