//! One worked number per typeset formula, computed by the function that the trainers use (each
//! of which the tensor twins are tested against). The page evaluates its typeset formula at the
//! same inputs and shows both: what it typesets is what the code computes, or it says so.

use serde::Serialize;

use super::bradley_terry;
use super::dpo::dpo_terms;
use super::gae::{gae, shaped_rewards};
use super::grpo::{group_advantages, sequence_log_ratio, token_loss, Estimator};
use super::kl::KlEstimator;
use super::ppo::{clipped_surrogate, policy_loss, value_loss};

/// Equation `equation` at `inputs`, as the lab's function `function` computes it.
#[derive(Debug, Clone, Serialize)]
pub struct Example {
    pub equation: &'static str,
    pub function: &'static str,
    pub inputs: Vec<(&'static str, f32)>,
    pub value: f32,
}

fn example(equation: &'static str, function: &'static str, inputs: &[(&'static str, f32)], value: f32) -> Example {
    Example { equation, function, inputs: inputs.to_vec(), value }
}

/// Every formula the equations panel typesets that the trainers compute.
pub fn examples() -> Vec<Example> {
    let (lp, ref_lp) = (-1.2f32, -1.5f32);
    let (v, v_old, ret, eps_v) = (0.5f32, 0.1, 0.2, 0.2);
    let (log_ratio, adv, eps, c1, c2, s) = (0.3f32, 0.8, 0.2, 0.1, 0.01, 2.5);
    let rewards = [1.0f32, 2.0, 3.0, 6.0];
    let (policy_part, _) = policy_loss(log_ratio, adv, eps);
    let (value_part, _) = value_loss(v, v_old, ret, eps_v);
    let gae_rewards = [-0.1f32, 0.2, 1.0];
    let gae_values = [0.3f32, 0.5, 0.4];
    let (advantages, _) = gae(&gae_rewards, &gae_values, 0.9, 0.8);
    let seq = [0.2f32, -0.1, 0.4];
    vec![
        example("bt-loss", "math::bradley_terry::loss", &[("r_w", 1.2), ("r_l", 0.3)], bradley_terry::loss(1.2, 0.3, 1.0)),
        example("kl", "math::kl::KlEstimator::K1", &[("logp", lp), ("ref_logp", ref_lp)], KlEstimator::K1.per_token(lp, ref_lp)),
        example("effective-reward", "math::gae::shaped_rewards", &[("score", 1.5), ("logp", lp), ("ref_logp", ref_lp), ("beta", 0.05)], *shaped_rewards(1.5, &[lp], &[ref_lp], 0.05, KlEstimator::K1).rewards.last().unwrap()),
        example("gae", "math::gae::gae", &[("R0", gae_rewards[0]), ("R1", gae_rewards[1]), ("R2", gae_rewards[2]), ("V0", gae_values[0]), ("V1", gae_values[1]), ("V2", gae_values[2]), ("gamma", 0.9), ("lam", 0.8)], advantages[0]),
        example("clip", "math::ppo::clipped_surrogate", &[("rho", 1.3), ("A", adv), ("epsilon", eps)], clipped_surrogate(1.3, adv, eps)),
        example("value-loss", "math::ppo::value_loss", &[("V", v), ("V_old", v_old), ("R", ret), ("epsilon_v", eps_v)], value_part),
        example("ppo-loss", "math::ppo::{policy_loss, value_loss}", &[("log_rho", log_ratio), ("A", adv), ("epsilon", eps), ("V", v), ("V_old", v_old), ("R", ret), ("epsilon_v", eps_v), ("c1", c1), ("c2", c2), ("S", s)], policy_part + c1 * value_part - c2 * s),
        example("grpo-advantage", "math::grpo::group_advantages", &[("r1", 1.0), ("r2", 2.0), ("r3", 3.0), ("r4", 6.0), ("i", 4.0)], group_advantages(&rewards, Estimator::Grpo, true).advantages[3]),
        example("rloo-advantage", "math::grpo::group_advantages (rloo)", &[("r1", 1.0), ("r2", 2.0), ("r3", 3.0), ("r4", 6.0), ("i", 4.0)], group_advantages(&rewards, Estimator::Rloo, false).advantages[3]),
        example("reinforce-advantage", "math::grpo::group_advantages (reinforce)", &[("r1", 1.0), ("r2", 2.0), ("r3", 3.0), ("r4", 6.0), ("i", 4.0)], group_advantages(&rewards, Estimator::Reinforce, false).advantages[3]),
        example("grpo-loss", "math::grpo::token_loss", &[("log_rho", log_ratio), ("A", adv), ("epsilon_low", 0.2), ("epsilon_high", 0.28), ("beta", 0.04), ("logp", lp), ("ref_logp", ref_lp)], token_loss(log_ratio, adv, 0.2, 0.28, 0.04, lp, ref_lp).loss),
        example("gspo", "math::grpo::sequence_log_ratio", &[("log_rho1", seq[0]), ("log_rho2", seq[1]), ("log_rho3", seq[2])], sequence_log_ratio(&seq).exp()),
        example("dpo", "math::dpo::dpo_terms", &[("logp_w", -3.0), ("ref_logp_w", -3.4), ("logp_l", -4.0), ("ref_logp_l", -3.7), ("beta", 0.1)], dpo_terms(-3.0, -3.4, -4.0, -3.7, 0.1).loss),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_is_a_finite_number_and_the_value_loss_is_trl_s_half_max() {
        let all = examples();
        assert!(all.iter().all(|e| e.value.is_finite()));
        let value = all.iter().find(|e| e.equation == "value-loss").unwrap().value;
        // V inside the band: ½·(0.5 − 0.2)² = 0.045, not the page's (V − R̂)² = 0.09.
        assert!((value - 0.045).abs() < 1e-6, "{value}");
    }
}
