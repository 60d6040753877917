//! Stage 3: PPO on the KL-regularized objective.
//!
//! The objective (math page, §3): max_θ E_{x, y∼π_θ}[r_φ(x, y)] − β·KL(π_θ ‖ π_ref), optimized with
//! the per-token effective reward R_t = 1[t = T]·r_φ(x, y) − β·log(π_θ(a_t|s_t)/π_ref(a_t|s_t)),
//! GAE, and the clipped update L_PPO = −L^CLIP + c1·L^VF − c2·S.
//!
//! One iteration, numbered as the page and TRL number it:
//!  1. sample completions from π_θ for task prompts (KV cache, truncated after `<eos>`);
//!  2. score them with the frozen r_φ at the last real token (minus a penalty if they never end);
//!  3. log π_θ, log π_ref and V(s_t) for every real token, by full forward passes;
//!     — 1 to 3 stay on the device and come back in one readback —
//!  4. on the host: per-token KL, R_t, GAE backwards over real tokens, returns R̂ = Â + V, then
//!     whitened Â (`math::gae`, `math::whiten`);
//!  5. K epochs over shuffled minibatches of L_PPO with the rollout quantities frozen, each
//!     minibatch one bounded step (`ppo_loss.rs`); optional early stop on approx KL;
//!  6. the adaptive KL controller updates β (if on).
//!
//! The policy π_θ starts as π_ref; the value model V_ψ starts as r_φ (as TRL and the TL;DR
//! implementation do). Both train with one optimizer on one loss. The machine is the one every
//! on-policy algorithm shares (`on_policy`); this file is PPO's list of choices (`recipe`).

use burn::prelude::*;

use super::on_policy::recipe::{AdaptiveKl, Advantage, Aggregation, Critic, KlPlacement, PolicyLoss, RatioLevel, Recipe, Report, Schedule};
use super::on_policy::reward::Reward;
use super::on_policy::OnPolicyTrainer;
use crate::engine::model::{with_fresh_ids, Gpt, ScalarModel};
use crate::error::Result;
use crate::rlhf::config::PpoConfig;
use crate::rlhf::task::Tokenizer;

pub use super::on_policy::loss::{PolicyAndValue, PpoShard};
pub use super::on_policy::rollout::Rollout;
pub use super::on_policy::sampling::{evaluate_policy, PolicyEvaluation};
pub use super::on_policy::views::{ClipPoint, RolloutRecord};

/// PPO: the on-policy trainer of π_θ and V_ψ.
pub type PpoTrainer = OnPolicyTrainer<PolicyAndValue>;

/// PPO's choices: the KL in the reward, GAE over a learned critic, the token-level clipped
/// surrogate with one ε, the mean over tokens, TRL's clipped value loss.
pub fn recipe(config: &PpoConfig) -> Recipe {
    Recipe {
        stage: "ppo",
        reward: config.reward,
        kl: KlPlacement::InReward {
            estimator: config.kl_estimator,
            beta: config.kl_coef,
            adaptive: config.adaptive_kl.then_some(AdaptiveKl { target: config.target_kl, horizon: config.kl_horizon }),
        },
        advantage: Advantage::Gae { gamma: config.gamma as f32, lam: config.lam as f32 },
        loss: PolicyLoss { epsilon_low: config.cliprange as f32, epsilon_high: config.cliprange as f32, level: RatioLevel::Token, aggregation: Aggregation::TokenMean, ent_coef: config.ent_coef as f32 },
        critic: Some(Critic { cliprange_value: config.cliprange_value as f32, vf_coef: config.vf_coef as f32 }),
        schedule: Schedule::new(config.iterations, (config.batch_size, 1), (config.epochs, config.mini_batches), config.learning_rate, (config.temperature, config.missing_eos_penalty), config.early_stop_kl),
        report: Report::Ppo,
    }
}

impl OnPolicyTrainer<PolicyAndValue> {
    /// π_θ ← π_ref, V_ψ ← r_φ (fresh parameter ids, so the roles never share optimizer state),
    /// trained against r_φ.
    pub fn new(reference: &Gpt, reward: &ScalarModel, config: &PpoConfig, seed: u64, tokenizer: &Tokenizer, device: &Device) -> Result<Self> {
        Self::against(reference, Reward::Model(reward.clone()), reward, config, seed, tokenizer, device)
    }

    /// PPO against `reward` (its source must be `config.reward`'s), V_ψ starting as `value`
    /// (r_φ when there is one, as TRL and the TL;DR implementation do; π_ref's trunk with a zero
    /// head when the reward is a program).
    pub fn against(reference: &Gpt, reward: Reward, value: &ScalarModel, config: &PpoConfig, seed: u64, tokenizer: &Tokenizer, device: &Device) -> Result<Self> {
        config.validate()?;
        let model = PolicyAndValue { policy: with_fresh_ids(reference.clone()), value: with_fresh_ids(value.clone()) };
        let recipe = Recipe { reward: reward.source(), ..recipe(config) };
        Self::with_recipe(recipe, model, reference, reward, seed, tokenizer, device)
    }

    pub fn value_model(&self) -> ScalarModel {
        self.critic().expect("PPO trains a critic")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::on_policy::tests::{ppo as trainer, small_ppo as small};

    #[test]
    fn the_first_minibatch_has_ratio_one_no_clipping_and_no_kl() {
        // The fixture's reward model scores every completion 0.3 and its value head predicts
        // exactly that, so every advantage is 0: only the entropy bonus moves the policy.
        let mut t = trainer(PpoConfig { ent_coef: 0.01, ..small() });
        let rollout = pollster::block_on(t.step()).unwrap();
        assert_eq!(rollout["phase"], 0.0);
        // π_θ = π_ref at the start: the KL estimate is 0 on every token.
        assert!(rollout["objective/kl"].abs() < 1e-5, "{rollout:?}");
        let first = pollster::block_on(t.step()).unwrap();
        assert!((first["val/ratio"] - 1.0).abs() < 1e-5, "{first:?}");
        assert_eq!(first["policy/clipfrac"], 0.0);
        assert!(first["policy/approxkl"].abs() < 1e-9);
        // Later minibatches see a moved policy.
        let second = pollster::block_on(t.step()).unwrap();
        assert!(second["policy/approxkl"] > 1e-9, "{second:?}");
    }

    #[test]
    fn an_iteration_is_a_rollout_then_epochs_times_minibatches_updates() {
        let mut t = trainer(small());
        let mut phases = Vec::new();
        while !t.is_done() {
            let m = pollster::block_on(t.step()).unwrap();
            phases.push((m["phase"] as u8, m.contains_key("iteration_done")));
        }
        // 2 iterations × (1 rollout + 2 epochs × 2 minibatches).
        assert_eq!(phases.len(), 10);
        assert_eq!(phases.iter().filter(|(p, _)| *p == 0).count(), 2);
        assert_eq!(phases.iter().filter(|(_, done)| *done).count(), 2);
        let record = t.record(0).unwrap();
        assert_eq!(record.tokens.len(), record.advantages.len());
        assert_eq!(record.tokens.last().map(String::as_str) == Some("<eos>"), t.rollout().unwrap().completions[0].ends());
    }

    #[test]
    fn the_record_holds_the_page_s_quantities_consistently() {
        let mut t = trainer(small());
        pollster::block_on(t.step()).unwrap();
        let r = t.record(1).unwrap();
        let len = r.tokens.len();
        // R_t = −β·kl_t, plus the score at the last token.
        for i in 0..len {
            let expected = -r.kl_coef * r.kl[i] + if i + 1 == len { r.score } else { 0.0 };
            assert!((r.rewards[i] - expected).abs() < 1e-5);
            assert!((r.returns[i] - (r.advantages_raw[i] + r.values[i])).abs() < 1e-5);
        }
        let (adv, _) = crate::rlhf::math::gae::gae(&r.rewards, &r.values, r.gamma, r.lam);
        assert_eq!(adv, r.advantages_raw);
    }
}
