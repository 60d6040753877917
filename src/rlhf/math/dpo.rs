//! The math page's closing contrast: DPO. Same KL-regularized objective, solved in closed form;
//! the reward is implicit, r(x, y) = β·log(π_θ(y|x)/π_ref(y|x)) (up to a term in x alone), and
//! training is one supervised loss on the labeled pairs:
//!
//! L_DPO = −log σ(β·[(log π_θ(y_w|x) − log π_ref(y_w|x)) − (log π_θ(y_l|x) − log π_ref(y_l|x))])
//!
//! Sequence log-probabilities are sums over completion tokens only.

use super::stats::log_sigmoid;

/// The loss of one pair and its implicit rewards (TRL's `rewards/chosen`, `rewards/rejected`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DpoTerms {
    pub loss: f32,
    pub reward_chosen: f32,
    pub reward_rejected: f32,
}

pub fn dpo_terms(policy_chosen: f32, ref_chosen: f32, policy_rejected: f32, ref_rejected: f32, beta: f32) -> DpoTerms {
    let reward_chosen = beta * (policy_chosen - ref_chosen);
    let reward_rejected = beta * (policy_rejected - ref_rejected);
    DpoTerms { loss: -log_sigmoid(reward_chosen - reward_rejected), reward_chosen, reward_rejected }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_is_log_two_when_the_policy_is_the_reference() {
        let t = dpo_terms(-7.0, -7.0, -3.0, -3.0, 0.1);
        assert!((t.loss - 2f32.ln()).abs() < 1e-6);
        assert_eq!((t.reward_chosen, t.reward_rejected), (0.0, 0.0));
    }

    #[test]
    fn by_hand_including_both_log_probs_falling() {
        // chosen −7 → −8 (−1), rejected −3 → −6 (−3): both fall, the margin grows.
        let t = dpo_terms(-8.0, -7.0, -6.0, -3.0, 0.5);
        assert!((t.reward_chosen + 0.5).abs() < 1e-6 && (t.reward_rejected + 1.5).abs() < 1e-6);
        // −log σ(1) = 0.313262
        assert!((t.loss - 0.313_262).abs() < 1e-5);
    }
}
