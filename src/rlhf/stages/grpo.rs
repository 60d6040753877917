//! Stage 3b: GRPO, RLOO, REINFORCE and GSPO — PPO's objective without the critic.
//!
//! The same KL-regularized objective as stage 3 (math page §3), from the same π_ref and the same
//! frozen r_φ, but the baseline that turns rewards into advantages is a group of completions of
//! the same prompt instead of a learned V_ψ (`math::grpo`). One iteration:
//!
//!  1. for each of `prompts` prompts, sample G completions from π_θ (KV cache, cut at `<eos>`);
//!  2. score each with the frozen r_φ at its last real token (minus the missing-`<eos>` penalty);
//!  3. log π_θ and log π_ref of every real token;
//!     — 1 to 3 stay on the device and come back in one readback —
//!  4. on the host: each group's mean and std, Â_i for every completion (GRPO, Dr. GRPO or
//!     RLOO), the same Â_i at each of its tokens, and the aggregation's weights;
//!  5. K epochs over shuffled minibatches of the clipped loss with ε_low/ε_high and the optional
//!     k3 penalty β·KL(π_θ‖π_ref), each minibatch one bounded step (`grpo_loss.rs`).
//!
//! No value model, no GAE, no reward whitening: one model trains (π_θ ← π_ref) where PPO trains
//! two. The machine is PPO's (`on_policy`); this file is the list of choices that differ. Two more
//! algorithms are one choice each away:
//!  - **REINFORCE** with a baseline (`estimator = "reinforce"`): one completion per prompt, the
//!    baseline the batch's mean, one epoch of one minibatch so that ρ = 1 and the update is the
//!    plain policy gradient −Â·∇log π of the math page (§2).
//!  - **GSPO** (`importance_sampling_level = "sequence"`, Zheng et al. 2025): the ratio of a
//!    completion is the geometric mean of its token ratios, s_i = exp(mean_t log ρ_{i,t}), clipped
//!    per completion (a sequence ratio is much closer to 1: ε is 3e-4/4e-4, TRL's advice).
//!
//! The metrics use TRL's GRPOTrainer names (`reward`, `reward_std`, `frac_reward_zero_std`, `kl`,
//! `entropy`, `clip_ratio/*`, `completions/*`), plus `gold`, the hidden utility.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::on_policy::recipe::{Advantage, Aggregation, KlPlacement, PolicyLoss, Recipe, Report, Schedule};
use super::on_policy::reward::Reward;
use super::on_policy::OnPolicyTrainer;
use crate::engine::model::{with_fresh_ids, Gpt, ScalarModel};
use crate::error::Result;
use crate::rlhf::config::GrpoConfig;
use crate::rlhf::math::grpo::Estimator;
use crate::rlhf::task::Tokenizer;

pub use super::on_policy::loss::GrpoShard;
pub use super::on_policy::recipe::RatioLevel;
pub use super::on_policy::rollout::{GroupStats, Rollout as GroupRollout};
pub use super::on_policy::views::{GroupMember, GroupRecord};

/// The critic-free on-policy trainer of π_θ.
pub type GrpoTrainer = OnPolicyTrainer<Gpt>;

/// The choices of the group-baseline family: the KL in the loss (k3), a baseline from the group
/// (or the batch), the ratio per token or per sequence with ε_low/ε_high, the `loss_type`
/// aggregation, no critic.
pub fn recipe(config: &GrpoConfig) -> Recipe {
    Recipe {
        stage: "grpo",
        reward: config.reward,
        kl: KlPlacement::InLoss { beta: config.beta as f32 },
        advantage: Advantage::Group { estimator: config.estimator, scale: config.scale_rewards },
        loss: PolicyLoss { epsilon_low: config.epsilon_low as f32, epsilon_high: config.epsilon_high as f32, level: config.importance_sampling_level, aggregation: Aggregation::Weighted(config.loss_type), ent_coef: 0.0 },
        critic: None,
        schedule: Schedule::new(config.iterations, (config.prompts, config.group_size), (config.epochs, config.mini_batches), config.learning_rate, (config.temperature, config.missing_eos_penalty), 0.0),
        report: Report::Grpo,
    }
}

/// The algorithms of this family by name, for the sweep, the comparison table and the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupMethod {
    /// The group's mean and std, per-token ratios (the lab's GRPO settings otherwise).
    Grpo,
    /// The leave-one-out mean, no std scaling.
    Rloo,
    /// One completion per prompt, the batch's mean as baseline, one on-policy step per rollout.
    Reinforce,
    /// GRPO's baseline with the sequence-level ratio and its narrow clip.
    Gspo,
}

impl GroupMethod {
    /// `base` (the lab's GRPO settings) changed into this method's: the same rollout size
    /// (prompts × G completions), β and learning rate, so the methods compare at equal samples.
    pub fn settings(self, base: &GrpoConfig) -> GrpoConfig {
        let grpo = GrpoConfig { estimator: Estimator::Grpo, scale_rewards: true, importance_sampling_level: RatioLevel::Token, ..base.clone() };
        match self {
            Self::Grpo => grpo,
            Self::Rloo => GrpoConfig { estimator: Estimator::Rloo, scale_rewards: false, ..grpo },
            Self::Reinforce => GrpoConfig {
                estimator: Estimator::Reinforce,
                scale_rewards: false,
                prompts: base.batch_size(),
                group_size: 1,
                epochs: 1,
                mini_batches: 1,
                ..grpo
            },
            Self::Gspo => GrpoConfig { importance_sampling_level: RatioLevel::Sequence, epsilon_low: 3e-4, epsilon_high: 4e-4, ..grpo },
        }
    }
}

impl OnPolicyTrainer<Gpt> {
    /// π_θ ← π_ref (fresh parameter ids); r_φ and π_ref stay frozen.
    pub fn new(reference: &Gpt, reward: &ScalarModel, config: &GrpoConfig, seed: u64, tokenizer: &Tokenizer, device: &Device) -> Result<Self> {
        Self::against(reference, Reward::Model(reward.clone()), config, seed, tokenizer, device)
    }

    /// The same against `reward` (its source must be `config.reward`'s).
    pub fn against(reference: &Gpt, reward: Reward, config: &GrpoConfig, seed: u64, tokenizer: &Tokenizer, device: &Device) -> Result<Self> {
        config.validate()?;
        let recipe = Recipe { reward: reward.source(), ..recipe(config) };
        Self::with_recipe(recipe, with_fresh_ids(reference.clone()), reference, reward, seed, tokenizer, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use super::super::on_policy::reward::Reward;
    use crate::rlhf::math::grpo::{group_advantages, LossType};
    use crate::rng::Rng;

    use super::super::on_policy::tests::{grpo as trainer, micro, parameters, small_grpo as small};

    #[test]
    fn a_rollout_gives_each_group_its_advantages_and_the_first_update_has_ratio_one() {
        let mut t = trainer(small());
        let rollout = pollster::block_on(t.step()).unwrap();
        assert_eq!(rollout["phase"], 0.0);
        // π_θ = π_ref at the start: k3 is 0 on every token.
        assert!(rollout["kl"].abs() < 1e-6 && rollout["kl/sequence"].abs() < 1e-5, "{rollout:?}");
        let r = t.rollout().unwrap();
        assert_eq!(r.completions.len(), 8);
        for (i, group) in r.groups.iter().enumerate() {
            // The 4 completions of a group answer one prompt, and their Â are the group's.
            assert!(r.completions[i * 4..(i + 1) * 4].iter().all(|c| c.product == r.completions[i * 4].product));
            let again = group_advantages(&r.scores[i * 4..(i + 1) * 4], Estimator::Grpo, true);
            assert_eq!(&r.sequence_advantages[i * 4..(i + 1) * 4], again.advantages.as_slice());
            assert_eq!(group.mean, again.mean);
        }
        let record = t.group_record(1).unwrap();
        assert_eq!(record.members.len(), 4);
        assert_eq!(record.members[2].advantage, r.sequence_advantages[6]);
        assert!(t.group_record(2).is_err());
        let first = pollster::block_on(t.step()).unwrap();
        assert_eq!(first["clip_ratio/region_mean"], 0.0, "ρ = 1 on the first minibatch: {first:?}");
        assert!(first["kl/update"].abs() < 1e-6);
    }

    #[test]
    fn an_iteration_is_a_rollout_then_epochs_times_minibatches_updates_and_the_policy_moves() {
        for loss_type in [LossType::Grpo, LossType::DrGrpo, LossType::Dapo] {
            let mut t = trainer(GrpoConfig { loss_type, ..small() });
            let before = parameters(&t);
            let mut phases = Vec::new();
            while !t.is_done() {
                let m = pollster::block_on(t.step()).unwrap();
                assert!(m.values().all(|v| v.is_finite()), "{m:?}");
                phases.push((m["phase"] as u8, m.contains_key("iteration_done")));
            }
            assert_eq!(phases.len(), 2 * (1 + 2 * 2), "{loss_type:?}");
            assert_eq!(phases.iter().filter(|(_, done)| *done).count(), 2);
            // The last update of an iteration carries the means of its 4 updates.
            assert!(t.totals.count == 4.0 && t.totals.sums.contains_key("clip_ratio/region_mean"));
            assert_ne!(parameters(&t), before, "{loss_type:?}: the policy moved");
        }
    }

    #[test]
    fn a_degenerate_group_is_counted_and_contributes_no_gradient() {
        // A reward model with all-zero head weights scores every completion the same: every group
        // has zero spread, every advantage is 0, and with β = 0 the loss has no gradient at all.
        let (device, tok, model_config, reference) = micro();
        let constant = ScalarModel::from_trunk(Gpt::new(&model_config, &mut Rng::new(2), &device), &device).shift_scores(0.5);
        let config = GrpoConfig { beta: 0.0, ..small() };
        let mut t = GrpoTrainer::new(&reference, &constant, &config, 3, &tok, &device).unwrap();
        let m = pollster::block_on(t.step()).unwrap();
        assert_eq!(m["frac_reward_zero_std"], 1.0, "{m:?}");
        assert_eq!(m["reward_std"], 0.0);
        assert!(t.rollout().unwrap().sequence_advantages.iter().all(|a| *a == 0.0));
        let update = pollster::block_on(t.step()).unwrap();
        assert_eq!(update["loss"], 0.0);
        assert_eq!(update["grad_norm"], 0.0, "{update:?}");
    }

    #[test]
    fn reinforce_is_one_completion_per_prompt_against_the_batch_mean_and_one_on_policy_step() {
        let config = GroupMethod::Reinforce.settings(&small());
        assert_eq!((config.prompts, config.group_size, config.epochs, config.mini_batches), (8, 1, 1, 1));
        let mut t = trainer(config);
        let before = parameters(&t);
        pollster::block_on(t.step()).unwrap();
        let r = t.rollout().unwrap();
        // One group: the batch; Â_i = r_i − mean(r), unscaled.
        assert_eq!(r.groups.len(), 1);
        let batch_mean = r.scores.iter().sum::<f32>() / 8.0;
        for (a, s) in r.sequence_advantages.iter().zip(&r.scores) {
            assert!((a - (s - batch_mean)).abs() < 1e-6);
        }
        // The single update is on-policy: no token's ratio leaves 1, so nothing is clipped.
        let update = pollster::block_on(t.step()).unwrap();
        assert_eq!(update["clip_ratio/region_mean"], 0.0);
        assert!(update.contains_key("iteration_done"), "one update per iteration: {update:?}");
        assert_ne!(parameters(&t), before);
        assert_eq!(t.group_record(0).unwrap().members.len(), 8);
    }

    #[test]
    fn gspo_trains_with_one_ratio_per_completion() {
        let mut t = trainer(GroupMethod::Gspo.settings(&small()));
        let before = parameters(&t);
        let mut clipped = 0.0;
        while !t.is_done() {
            let m = pollster::block_on(t.step()).unwrap();
            assert!(m.values().all(|v| v.is_finite()), "{m:?}");
            clipped += m.get("clip_ratio/region_mean").copied().unwrap_or(0.0);
        }
        assert_ne!(parameters(&t), before);
        // ε = 3e-4/4e-4 around a sequence ratio: later minibatches do clip whole completions.
        assert!(clipped > 0.0, "GSPO's narrow clip never acted");
    }

    #[test]
    fn a_program_s_reward_replaces_r_phi_and_gold_stays_the_hidden_truth() {
        let (device, tok, _, reference) = micro();
        // Against the gold utility (RLVR), the reward is the gold.
        let mut gold = GrpoTrainer::against(&reference, Reward::Gold, &small(), 3, &tok, &device).unwrap();
        let m = pollster::block_on(gold.step()).unwrap();
        assert_eq!(m["reward"], m["gold"]);
        let r = gold.rollout().unwrap();
        assert_eq!(r.scores, r.gold);
        // Against the learner's expression, each score is the expression's value.
        let expression = crate::rlhf::reward_expression::RewardExpression::parse("2*count(\"great\") - 0.1*words", &tok).unwrap();
        let mut custom = GrpoTrainer::against(&reference, Reward::Custom(expression.clone()), &small(), 3, &tok, &device).unwrap();
        pollster::block_on(custom.step()).unwrap();
        let r = custom.rollout().unwrap();
        for (c, s) in r.completions.iter().zip(&r.scores) {
            let great = c.tokens.iter().filter(|&&t| tok.word(t) == "great").count() as f32;
            let words = c.tokens.iter().filter(|&&t| t != crate::rlhf::task::EOS).count() as f32;
            assert!((s - (2.0 * great - 0.1 * words)).abs() < 1e-5, "{s} vs {great} great, {words} words");
            assert_eq!(*s, expression.evaluate(c, &tok));
        }
        assert_eq!(custom.recipe().reward, super::super::on_policy::recipe::RewardSource::Custom);
        while !custom.is_done() {
            pollster::block_on(custom.step()).unwrap();
        }
    }
}
