//! Metric names: the contract between the trainers and the charts.
//!
//! Each stage's bounded step returns a `Metrics` map; the page draws whatever it is sent. Names
//! follow TRL's vocabulary where TRL has one (`objective/kl`, `policy/clipfrac`, `rewards/margins`,
//! …). `CATALOG` explains each in one line and names the equation of the math page it belongs to;
//! the page shows that text beside every chart.

use std::collections::BTreeMap;

use serde::Serialize;

/// One step's numbers, by name.
pub type Metrics = BTreeMap<String, f64>;

/// Builds a `Metrics` map from (name, value) pairs.
pub fn metrics<const N: usize>(pairs: [(&str, f64); N]) -> Metrics {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// What a metric means, for the page's explanations.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MetricInfo {
    pub name: &'static str,
    pub explanation: &'static str,
    /// Anchor of the equation on the math page (empty when none).
    pub equation: &'static str,
}

const fn m(name: &'static str, explanation: &'static str, equation: &'static str) -> MetricInfo {
    MetricInfo { name, explanation, equation }
}

pub const CATALOG: &[MetricInfo] = &[
    m("loss/train", "Cross-entropy of the next token on this step's batch (completion tokens only unless 'all tokens' is on).", "sft"),
    m("loss/held_out", "The same cross-entropy on demonstrations the model never trains on: generalization, not memory.", "sft"),
    m("accuracy/train", "Share of target tokens the model ranks first, on this batch.", "sft"),
    m("accuracy/held_out", "Share of held-out target tokens the model ranks first.", "sft"),
    m("perplexity/held_out", "exp(held-out loss): how many words the model is choosing between, on average.", "sft"),
    m("rm/loss", "Bradley–Terry loss −log σ(r_w − r_l) on this batch of labeled pairs.", "bt-loss"),
    m("rm/accuracy", "Share of this batch's pairs where the preferred completion scores higher.", "bt-loss"),
    m("rm/held_out_accuracy", "The same on labels held out from training; compare with the agreement ceiling.", "bt-loss"),
    m("rm/held_out_loss", "Bradley–Terry loss on the held-out labels.", "bt-loss"),
    m("rm/agreement_ceiling", "Accuracy a perfect reward model could reach on these labels, given the labeler's noise.", "bt-model"),
    m("rewards/chosen", "Mean score of the preferred completions (reward model), or β·log(π_θ/π_ref) of them (DPO).", "bt-model"),
    m("rewards/rejected", "Mean score of the rejected completions.", "bt-model"),
    m("rewards/margins", "Mean of chosen − rejected: how far apart the model puts the pair.", "bt-model"),
    m("rewards/accuracies", "Share of pairs whose chosen completion gets the larger implicit reward (DPO).", "dpo"),
    m("rm/gold_correlation", "Pearson correlation between reward-model scores and the hidden gold utility on held-out completions.", "bt-model"),
    m("logps/chosen", "Summed log π_θ of the chosen completions (DPO): it can fall while the margin grows.", "dpo"),
    m("logps/rejected", "Summed log π_θ of the rejected completions (DPO).", "dpo"),
    m("dpo/loss", "DPO loss −log σ(β·[(log π_θ − log π_ref)(y_w) − (log π_θ − log π_ref)(y_l)]).", "dpo"),
    m("dpo/held_out_accuracy", "Accuracy of the implicit reward on held-out pairs.", "dpo"),
    m("objective/scores", "Mean reward-model score r_φ(x, y) of this iteration's completions.", "effective-reward"),
    m("objective/gold", "Mean hidden gold utility of the same completions: if it falls while the score climbs, the policy is hacking the reward model.", "effective-reward"),
    m("objective/kl", "Mean over completions of the summed per-token KL estimate log π_θ/π_ref.", "kl"),
    m("objective/non_score_reward", "Mean summed −β·KL penalty per completion.", "effective-reward"),
    m("objective/rlhf_reward", "Score plus KL penalty: the quantity PPO maximizes.", "objective"),
    m("objective/entropy", "Mean summed −log π_θ of the sampled tokens: how spread out the policy still is.", "entropy"),
    m("objective/kl_coef", "β, the KL coefficient used this iteration (changes only with the adaptive controller).", "effective-reward"),
    m("policy/approxkl", "½·E[(log ρ)²]: how far this update moved the policy from the one that sampled.", "ratio"),
    m("policy/clipfrac", "Share of tokens where the clipped term was the active one (the objective was flat).", "clip"),
    m("policy/entropy", "Mean per-token entropy of π_θ during the update.", "entropy"),
    m("loss/policy", "Mean −L^CLIP over tokens.", "clip"),
    m("loss/value", "Mean clipped value loss ½·max((V − R̂)², (V_clip − R̂)²).", "value-loss"),
    m("val/clipfrac", "Share of tokens where the value clip was active.", "value-loss"),
    m("val/ratio", "Mean probability ratio ρ = π_θ/π_θold over the update.", "ratio"),
    m("val/ratio_var", "Variance of ρ over the update.", "ratio"),
    m("val/explained_variance", "1 − Var[R̂ − V]/Var[R̂] at rollout time: how much of the return the value model predicts.", "gae"),
    m("val/mean_length", "Mean completion length in tokens, <eos> included.", ""),
    m("val/eos_fraction", "Share of completions that ended with <eos> before the length limit.", ""),
    m("reward", "GRPO/RLOO: mean reward-model score r_φ of this rollout's completions.", "grpo-advantage"),
    m("reward_std", "Mean over prompts of the std of r_φ within the prompt's group: the spread the group baseline works with.", "grpo-advantage"),
    m("frac_reward_zero_std", "Share of groups whose completions all scored the same: their advantages are 0 and they teach nothing.", "grpo-advantage"),
    m("gold", "Mean hidden gold utility of the rollout's completions: if it stalls while reward climbs, the policy is hacking r_φ.", "grpo-advantage"),
    m("kl", "Mean per-token k3 estimate of KL(π_θ‖π_ref) of the sampling policy: what β·KL penalizes.", "grpo-loss"),
    m("kl/sequence", "Mean over completions of the summed log π_θ/π_ref (k1): PPO's objective/kl, for comparing the two.", "kl"),
    m("kl/update", "Mean per-token k3 KL(π_θ‖π_ref) of the policy as this minibatch update sees it.", "grpo-loss"),
    m("entropy", "Mean per-token entropy of π_θ during the update.", "entropy"),
    m("clip_ratio/low_mean", "Share of tokens with ρ < 1 − ε_low and a negative advantage: the objective is flat below.", "grpo-loss"),
    m("clip_ratio/high_mean", "Share of tokens with ρ > 1 + ε_high and a positive advantage: flat above (raise ε_high to let rare good tokens grow).", "grpo-loss"),
    m("clip_ratio/region_mean", "Share of tokens clipped on either side.", "grpo-loss"),
    m("completions/mean_length", "Mean completion length in tokens, <eos> included.", ""),
    m("completions/clipped_ratio", "Share of completions cut at the length limit without <eos>.", ""),
    m("loss", "GRPO/RLOO loss of this minibatch: the clipped surrogate (plus β·k3), aggregated by the loss type.", "grpo-loss"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_names_are_unique() {
        let mut names: Vec<&str> = CATALOG.iter().map(|m| m.name).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len());
    }
}
