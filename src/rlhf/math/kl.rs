//! Stage 3, the KL leash: per-token estimators of KL(π_θ ‖ π_ref) from the sampled tokens.
//!
//! The page: KL = E_{y∼π_θ}[log π_θ(y|x)/π_ref(y|x)], and the sequence log-ratio splits into a sum
//! of per-token log-ratios. Each estimator below is unbiased for the per-token KL when a_t ∼ π_θ
//! (Schulman, "Approximating KL divergence", 2020).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum KlEstimator {
    /// k1 = log π_θ(a_t|s_t) − log π_ref(a_t|s_t): the page's log-ratio. Unbiased, can be negative
    /// on a single token.
    #[default]
    K1,
    /// k3 = (r − 1) − log r with r = π_ref/π_θ: unbiased, never negative, lower variance when
    /// the two policies are close.
    K3,
}

impl KlEstimator {
    pub fn per_token(self, logprob: f32, ref_logprob: f32) -> f32 {
        let log_ratio = logprob - ref_logprob;
        match self {
            Self::K1 => log_ratio,
            Self::K3 => {
                let log_r = -log_ratio; // log(π_ref/π_θ)
                log_r.exp_m1() - log_r
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimators_by_hand() {
        assert!((KlEstimator::K1.per_token(-1.0, -1.5) - 0.5).abs() < 1e-7);
        // r = e^−0.5: (e^−0.5 − 1) + 0.5 = 0.106531
        assert!((KlEstimator::K3.per_token(-1.0, -1.5) - 0.106_531).abs() < 1e-5);
        assert_eq!(KlEstimator::K3.per_token(-2.0, -2.0), 0.0);
        assert!(KlEstimator::K3.per_token(-2.0, -0.5) > 0.0);
    }

    #[test]
    fn both_are_unbiased_for_the_true_kl_of_two_categoricals() {
        let p = [0.5f32, 0.3, 0.2];
        let q = [0.2f32, 0.5, 0.3];
        let true_kl: f32 = p.iter().zip(&q).map(|(p, q)| p * (p / q).ln()).sum();
        for estimator in [KlEstimator::K1, KlEstimator::K3] {
            let expected: f32 = p.iter().zip(&q).map(|(p, q)| p * estimator.per_token(p.ln(), q.ln())).sum();
            assert!((expected - true_kl).abs() < 1e-6, "{estimator:?}");
        }
    }
}
