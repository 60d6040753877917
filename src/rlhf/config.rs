//! Typed, documented, validated settings: the model presets and one config per stage.
//!
//! Every field has a default and a one-line reason. `validate()` refuses a bad value with a message
//! naming the field (`sft.learning_rate: …`) before it touches any state; the page shows that
//! message beside the control, and a shared link with a bad value falls back to the default.

use serde::{Deserialize, Serialize};

use crate::engine::model::config::Preset;
use crate::error::{count_in, finite_in, LabError, Result};
use crate::rlhf::math::grpo::{Estimator, LossType};
use crate::rlhf::math::kl::KlEstimator;
use crate::rlhf::stages::on_policy::recipe::{RatioLevel, RewardSource};

/// Largest batch the lab accepts (sequences per step): beyond it a step on the CPU fallback takes
/// seconds and a WebGPU buffer of activations can exceed small adapters' limits.
pub const MAX_BATCH: usize = 256;

/// Pretraining of the base model on the task's free text (all-token loss). Run natively to make
/// the shipped checkpoint, or in the page to start from scratch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PretrainConfig {
    /// Adam step size.
    pub learning_rate: f64,
    /// Sequences per step.
    pub batch_size: usize,
    /// Optimizer steps.
    pub steps: usize,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self { learning_rate: 3e-3, batch_size: 32, steps: 1_500 }
    }
}

impl PretrainConfig {
    pub fn validate(&self) -> Result<()> {
        finite_in("pretrain.learning_rate", self.learning_rate, 1e-7, 1.0)?;
        count_in("pretrain.batch_size", self.batch_size, 1, MAX_BATCH)?;
        count_in("pretrain.steps", self.steps, 1, 1_000_000)
    }
}

/// Stage 1: supervised fine-tuning on demonstrations (cross-entropy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SftConfig {
    /// Adam step size: 1e-3 moves a 100k-parameter model quickly without diverging.
    pub learning_rate: f64,
    /// Demonstrations per step.
    pub batch_size: usize,
    /// Optimizer steps; when they are done, a frozen copy becomes π_ref.
    pub steps: usize,
    /// Learn only the completion tokens (the prompt is given, not demonstrated). Off: every token.
    pub completion_only: bool,
    /// Steps between held-out evaluations (each one costs a forward pass over the held-out set).
    pub eval_every: usize,
    /// Demonstrations generated for training.
    pub train_examples: usize,
    /// Demonstrations held out to measure generalization.
    pub held_out_examples: usize,
}

impl Default for SftConfig {
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
            batch_size: 16,
            steps: 300,
            completion_only: true,
            eval_every: 25,
            train_examples: 4_000,
            held_out_examples: 256,
        }
    }
}

impl SftConfig {
    pub fn validate(&self) -> Result<()> {
        finite_in("sft.learning_rate", self.learning_rate, 1e-7, 1.0)?;
        count_in("sft.batch_size", self.batch_size, 1, MAX_BATCH)?;
        count_in("sft.steps", self.steps, 1, 100_000)?;
        count_in("sft.eval_every", self.eval_every, 1, 100_000)?;
        count_in("sft.train_examples", self.train_examples, 1, 200_000)?;
        count_in("sft.held_out_examples", self.held_out_examples, 1, 20_000)
    }
}

/// Stage 2: preference pairs, the simulated labeler and the Bradley–Terry reward model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardConfig {
    /// Adam step size for the trunk (initialized from π_ref) and the new scalar head.
    pub learning_rate: f64,
    /// Labeled pairs per step (each pair is two sequences).
    pub batch_size: usize,
    /// Passes over the training labels.
    pub epochs: usize,
    /// Labels the simulated labeler makes when asked for a batch of them.
    pub simulated_labels: usize,
    /// Noise temperature τ of the simulated labeler: P(a ≻ b) = σ((u_a − u_b)/τ).
    pub labeler_temperature: f64,
    /// Temperature for sampling the two completions of a pair from π_ref (> 0: they must differ).
    pub sample_temperature: f64,
    /// Share of labels held out to measure accuracy on pairs the model did not train on.
    pub held_out_fraction: f64,
    /// The learner's own reward (`ppo.reward` / `grpo.reward` = `custom`): a weighted sum of
    /// named terms (`rlhf::reward_expression`), parsed and checked in Rust.
    pub expression: String,
}

impl Default for RewardConfig {
    fn default() -> Self {
        Self {
            // 1e-3 for 4 epochs, not 3e-4 for 2: on 2,000 simulated labels (tiny preset, seeds
            // 1–3) held-out accuracy rose from 0.725/0.790/0.740 to 0.800/0.830/0.740 and the
            // correlation with gold from ~0.73 to ~0.82. Longer, larger-step, regularized or
            // ensembled training does not go further (README: "How close the reward model
            // gets"): the gap is what the model fails to learn, not how it is optimized.
            learning_rate: 1e-3,
            batch_size: 16,
            epochs: 4,
            simulated_labels: 2_000,
            labeler_temperature: 0.5,
            sample_temperature: 1.0,
            held_out_fraction: 0.1,
            expression: crate::rlhf::reward_expression::DEFAULT_EXPRESSION.to_string(),
        }
    }
}

impl RewardConfig {
    pub fn validate(&self) -> Result<()> {
        finite_in("reward.learning_rate", self.learning_rate, 1e-7, 1.0)?;
        count_in("reward.batch_size", self.batch_size, 1, MAX_BATCH / 2)?;
        count_in("reward.epochs", self.epochs, 1, 100)?;
        count_in("reward.simulated_labels", self.simulated_labels, 1, 50_000)?;
        finite_in("reward.labeler_temperature", self.labeler_temperature, 1e-3, 100.0)?;
        finite_in("reward.sample_temperature", self.sample_temperature, 0.05, 5.0)?;
        finite_in("reward.held_out_fraction", self.held_out_fraction, 0.0, 0.9)?;
        crate::rlhf::reward_expression::RewardExpression::parse(&self.expression, &crate::rlhf::task::Tokenizer::new()).map(|_| ())
    }
}

/// Stage 3: PPO on the KL-regularized objective. Names and defaults follow TRL's PPOConfig unless
/// a reason is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PpoConfig {
    /// What the policy is trained against: `reward_model` (r_φ), `gold` (the gold utility as a
    /// verifiable reward: RLVR) or `custom` (`reward.expression`).
    pub reward: RewardSource,
    /// PPO iterations (rollout + update) to run.
    pub iterations: usize,
    /// Completions sampled per iteration.
    pub batch_size: usize,
    /// Minibatches each epoch splits the rollout into (TRL `num_mini_batches`).
    pub mini_batches: usize,
    /// Passes over each rollout (TRL `num_ppo_epochs`, 4).
    pub epochs: usize,
    /// Adam step size for policy and value model. Larger than TRL's 3e-6 (for billion-parameter
    /// models): this model has 10⁵ parameters.
    pub learning_rate: f64,
    /// β, the KL coefficient (TRL `kl_coef`, 0.05).
    pub kl_coef: f64,
    /// Adapt β toward `target_kl` (Ziegler et al. 2019) instead of keeping it fixed.
    pub adaptive_kl: bool,
    /// Target sequence KL for the adaptive controller.
    pub target_kl: f64,
    /// Horizon of the adaptive controller, in completions (Ziegler et al.: 10 000).
    pub kl_horizon: f64,
    /// k1 (the page's log-ratio) or k3 (non-negative, lower variance).
    pub kl_estimator: KlEstimator,
    /// Stop an iteration's epochs early when the mean approx KL passes this (0 = never).
    pub early_stop_kl: f64,
    /// γ, the discount (TRL 1.0: a completion is a short episode).
    pub gamma: f64,
    /// λ of GAE (TRL 0.95).
    pub lam: f64,
    /// ε of the clipped surrogate (TRL `cliprange`, 0.2).
    pub cliprange: f64,
    /// Clip of the value update around the rollout's values (TRL `cliprange_value`, 0.2).
    pub cliprange_value: f64,
    /// c1, the value loss coefficient (TRL `vf_coef`, 0.1).
    pub vf_coef: f64,
    /// c2, the entropy bonus. TRL's PPOTrainer has none (0); raise it to keep exploring.
    pub ent_coef: f64,
    /// Sampling temperature of rollouts; log-probs are taken at the same temperature (TRL 0.7).
    pub temperature: f64,
    /// Subtracted from the score of a completion that never emits `<eos>` (0 = no penalty).
    pub missing_eos_penalty: f64,
}

impl Default for PpoConfig {
    fn default() -> Self {
        Self {
            reward: RewardSource::RewardModel,
            iterations: 60,
            batch_size: 32,
            mini_batches: 2,
            epochs: 4,
            learning_rate: 1e-4,
            kl_coef: 0.05,
            adaptive_kl: false,
            target_kl: 1.0,
            kl_horizon: 10_000.0,
            kl_estimator: KlEstimator::K1,
            early_stop_kl: 0.0,
            gamma: 1.0,
            lam: 0.95,
            cliprange: 0.2,
            cliprange_value: 0.2,
            vf_coef: 0.1,
            ent_coef: 0.0,
            temperature: 0.7,
            missing_eos_penalty: 0.0,
        }
    }
}

impl PpoConfig {
    pub fn validate(&self) -> Result<()> {
        count_in("ppo.iterations", self.iterations, 1, 100_000)?;
        count_in("ppo.batch_size", self.batch_size, 1, MAX_BATCH)?;
        count_in("ppo.mini_batches", self.mini_batches, 1, self.batch_size.max(1))?;
        count_in("ppo.epochs", self.epochs, 1, 64)?;
        finite_in("ppo.learning_rate", self.learning_rate, 1e-8, 1.0)?;
        finite_in("ppo.kl_coef", self.kl_coef, 0.0, 10.0)?;
        finite_in("ppo.target_kl", self.target_kl, 1e-4, 100.0)?;
        finite_in("ppo.kl_horizon", self.kl_horizon, 1.0, 1e7)?;
        finite_in("ppo.early_stop_kl", self.early_stop_kl, 0.0, 100.0)?;
        finite_in("ppo.gamma", self.gamma, 0.0, 1.0)?;
        finite_in("ppo.lam", self.lam, 0.0, 1.0)?;
        finite_in("ppo.cliprange", self.cliprange, 1e-3, 10.0)?;
        finite_in("ppo.cliprange_value", self.cliprange_value, 1e-3, 100.0)?;
        finite_in("ppo.vf_coef", self.vf_coef, 0.0, 100.0)?;
        finite_in("ppo.ent_coef", self.ent_coef, 0.0, 10.0)?;
        finite_in("ppo.temperature", self.temperature, 0.05, 5.0)?;
        finite_in("ppo.missing_eos_penalty", self.missing_eos_penalty, 0.0, 100.0)
    }

    pub fn minibatch_size(&self) -> usize {
        self.batch_size.div_ceil(self.mini_batches)
    }
}

/// Stage 3b: GRPO or RLOO from π_ref on the same frozen r_φ: no value model, the baseline of a
/// completion is its group (the other completions of the same prompt). Names and defaults follow
/// TRL's GRPOConfig unless a reason is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpoConfig {
    /// What the policy is trained against (as `ppo.reward`).
    pub reward: RewardSource,
    /// Iterations (rollout + update) to run: PPO's 60, for a comparison at equal rollouts.
    pub iterations: usize,
    /// Prompts per rollout; each gets `group_size` completions. 4 × 8 = PPO's 32 completions.
    pub prompts: usize,
    /// G, completions per prompt (TRL `num_generations`, 8).
    pub group_size: usize,
    /// `grpo`: baseline = the group's mean; `rloo`: the mean of the other G − 1; `reinforce`:
    /// the mean of the whole batch (a group of 1 is then allowed).
    pub estimator: Estimator,
    /// Divide by the group's std (GRPO). Off: Dr. GRPO's unscaled r − mean (and plain RLOO).
    pub scale_rewards: bool,
    /// How per-token losses are summed: `grpo` (per-sequence mean), `dr_grpo` (constant
    /// divisor) or `dapo` (per-token mean over the batch). TRL's default is `dapo`; `grpo` is the
    /// paper's, and shows the length bias.
    pub loss_type: LossType,
    /// Minibatches each epoch splits the rollout into (whole groups need not stay together: Â is
    /// fixed at rollout time).
    pub mini_batches: usize,
    /// Passes over each rollout (TRL `num_iterations`, μ; 1 there makes ρ = 1 and the clip
    /// idle; 2 here, so that the clip has something to do).
    pub epochs: usize,
    /// Adam step size (PPO's, for the comparison).
    pub learning_rate: f64,
    /// β of the k3 KL penalty to π_ref (TRL 0.0: no π_ref needed; 0.04 in the DeepSeekMath
    /// paper). The lab keeps π_ref anyway, to measure KL for the charts.
    pub beta: f64,
    /// ε_low: the ratio's clip below 1 (TRL `epsilon`, 0.2).
    pub epsilon_low: f64,
    /// ε_high: the clip above 1 (TRL `epsilon_high`, = ε_low; DAPO raises it to 0.28 so that
    /// unlikely tokens with a positive advantage can grow: "clip higher").
    pub epsilon_high: f64,
    /// `token`: ρ per token (GRPO); `sequence`: one ratio per completion, the geometric mean of its
    /// tokens' (GSPO; TRL `importance_sampling_level`).
    pub importance_sampling_level: RatioLevel,
    /// Sampling temperature of rollouts; log-probs are taken at the same temperature (PPO's).
    pub temperature: f64,
    /// Subtracted from the score of a completion that never emits `<eos>` (PPO's).
    pub missing_eos_penalty: f64,
}

impl Default for GrpoConfig {
    fn default() -> Self {
        Self {
            reward: RewardSource::RewardModel,
            iterations: 60,
            prompts: 4,
            group_size: 8,
            estimator: Estimator::Grpo,
            scale_rewards: true,
            loss_type: LossType::Grpo,
            mini_batches: 2,
            epochs: 2,
            learning_rate: 1e-4,
            beta: 0.04,
            epsilon_low: 0.2,
            epsilon_high: 0.28,
            importance_sampling_level: RatioLevel::Token,
            temperature: 0.7,
            missing_eos_penalty: 0.0,
        }
    }
}

impl GrpoConfig {
    pub fn validate(&self) -> Result<()> {
        count_in("grpo.iterations", self.iterations, 1, 100_000)?;
        count_in("grpo.prompts", self.prompts, 1, MAX_BATCH / 2)?;
        // REINFORCE's baseline is the batch: a completion needs no siblings, but a batch needs two.
        let fewest = if self.estimator == Estimator::Reinforce { 1 } else { 2 };
        count_in("grpo.group_size", self.group_size, fewest, 64)?;
        if self.batch_size() < 2 {
            return Err(LabError::setting("grpo.prompts", "REINFORCE's baseline is the batch's mean: it needs at least 2 completions (prompts × group size)"));
        }
        if self.batch_size() > MAX_BATCH {
            return Err(LabError::setting("grpo.group_size", format!("prompts × group size is {} completions; at most {MAX_BATCH}", self.batch_size())));
        }
        count_in("grpo.mini_batches", self.mini_batches, 1, self.batch_size())?;
        count_in("grpo.epochs", self.epochs, 1, 64)?;
        finite_in("grpo.learning_rate", self.learning_rate, 1e-8, 1.0)?;
        finite_in("grpo.beta", self.beta, 0.0, 10.0)?;
        finite_in("grpo.epsilon_low", self.epsilon_low, 1e-5, 0.999)?;
        finite_in("grpo.epsilon_high", self.epsilon_high, 1e-5, 10.0)?;
        finite_in("grpo.temperature", self.temperature, 0.05, 5.0)?;
        finite_in("grpo.missing_eos_penalty", self.missing_eos_penalty, 0.0, 100.0)
    }

    /// Completions per rollout: prompts × G.
    pub fn batch_size(&self) -> usize {
        self.prompts * self.group_size
    }

    pub fn minibatch_size(&self) -> usize {
        self.batch_size().div_ceil(self.mini_batches)
    }
}

/// DPO on the same labels as the reward model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DpoConfig {
    /// β of the implicit reward β·log(π_θ/π_ref) (TRL 0.1).
    pub beta: f64,
    /// Adam step size.
    pub learning_rate: f64,
    /// Passes over the training labels.
    pub epochs: usize,
    /// Labeled pairs per step.
    pub batch_size: usize,
}

impl Default for DpoConfig {
    fn default() -> Self {
        Self { beta: 0.1, learning_rate: 3e-4, epochs: 2, batch_size: 16 }
    }
}

impl DpoConfig {
    pub fn validate(&self) -> Result<()> {
        finite_in("dpo.beta", self.beta, 1e-4, 100.0)?;
        finite_in("dpo.learning_rate", self.learning_rate, 1e-8, 1.0)?;
        count_in("dpo.epochs", self.epochs, 1, 100)?;
        count_in("dpo.batch_size", self.batch_size, 1, MAX_BATCH / 2)
    }
}

/// Everything a run needs: what a shared link carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabConfig {
    pub preset: Preset,
    /// Seeds every host-side random stream: weights, data, minibatch order, sampling noise.
    pub seed: u64,
    pub pretrain: PretrainConfig,
    pub sft: SftConfig,
    pub reward: RewardConfig,
    pub ppo: PpoConfig,
    pub grpo: GrpoConfig,
    pub dpo: DpoConfig,
}

impl Default for LabConfig {
    fn default() -> Self {
        Self {
            preset: Preset::Tiny,
            seed: 1,
            pretrain: PretrainConfig::default(),
            sft: SftConfig::default(),
            reward: RewardConfig::default(),
            ppo: PpoConfig::default(),
            grpo: GrpoConfig::default(),
            dpo: DpoConfig::default(),
        }
    }
}

impl LabConfig {
    pub fn validate(&self) -> Result<()> {
        if self.seed > (1u64 << 53) {
            return Err(LabError::setting("seed", "must be a whole number below 2^53 (a link carries it as a JS number)"));
        }
        self.pretrain.validate()?;
        self.sft.validate()?;
        self.reward.validate()?;
        self.ppo.validate()?;
        self.grpo.validate()?;
        self.dpo.validate()
    }

    /// Parses a JSON config (missing fields take their defaults) and validates it. The document
    /// and each section must be JSON objects (serde would otherwise read `[]` as "all defaults").
    pub fn from_json(json: &str) -> Result<Self> {
        fn no_arrays(value: &serde_json::Value, path: &str) -> Result<()> {
            match value {
                serde_json::Value::Array(_) => Err(LabError::setting(if path.is_empty() { "settings" } else { path }, "must be an object of settings, not a list")),
                serde_json::Value::Object(map) => map.iter().try_for_each(|(k, v)| no_arrays(v, &if path.is_empty() { k.clone() } else { format!("{path}.{k}") })),
                _ => Ok(()),
            }
        }
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(json) {
            if !value.is_object() {
                return Err(LabError::InvalidInput("settings must be a JSON object".into()));
            }
            no_arrays(&value, "")?;
        }
        let mut deserializer = serde_json::Deserializer::from_str(json);
        let config: Self = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let path = e.path().to_string();
            let message = e.inner().to_string();
            // serde_json appends " at line 1 column 42": the field name says more to a learner.
            let message = message.split(" at line ").next().unwrap_or(&message).to_string();
            if path == "." { LabError::InvalidInput(format!("settings: {message}")) } else { LabError::setting(path, message) }
        })?;
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::config::{ModelConfig, WEBGPU_MIN_BINDING_BYTES};

    #[test]
    fn the_largest_preset_at_the_largest_batch_fits_any_webgpu_adapter() {
        // Reward and DPO batches hold two sequences per pair: MAX_BATCH sequences at most. The
        // evaluation runs in chunks of 64, sampling in one batch of at most 128 pairs × 2.
        let vocab = crate::rlhf::task::Tokenizer::new().vocab_size();
        for preset in Preset::ALL {
            let bytes = preset.model(vocab).largest_tensor_bytes(MAX_BATCH);
            assert!(bytes < WEBGPU_MIN_BINDING_BYTES / 4, "{preset:?}: {bytes} bytes");
        }
        // And the bound is real: a model far past the presets would not fit.
        let huge = ModelConfig { vocab_size: 65_536, context_length: 1_024, d_model: 1_024, n_layers: 24, n_heads: 32, mlp_ratio: 8 };
        assert!(huge.largest_tensor_bytes(MAX_BATCH) > WEBGPU_MIN_BINDING_BYTES);
    }

    #[test]
    fn defaults_are_valid_and_tiny_is_about_110k_parameters() {
        LabConfig::default().validate().unwrap();
        let tiny = Preset::Tiny.model(150);
        tiny.validate(crate::rlhf::task::SEQ_LEN).unwrap();
        let n = tiny.num_params();
        assert!((100_000..125_000).contains(&n), "{n}");
    }

    #[test]
    fn bad_values_name_their_field() {
        let mut c = LabConfig::default();
        c.sft.learning_rate = f64::NAN;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.starts_with("sft.learning_rate"), "{err}");
        let mut c = LabConfig::default();
        c.ppo.mini_batches = 100;
        assert!(c.validate().unwrap_err().to_string().starts_with("ppo.mini_batches"));
        let mut c = LabConfig::default();
        c.grpo.group_size = 1;
        assert!(c.validate().unwrap_err().to_string().starts_with("grpo.group_size"), "a group of one has no baseline");
        let mut c = LabConfig::default();
        (c.grpo.prompts, c.grpo.group_size) = (64, 8);
        assert!(c.validate().unwrap_err().to_string().contains("512 completions"));
        let mut c = LabConfig::default();
        c.grpo.epsilon_low = 1.0;
        assert!(c.validate().unwrap_err().to_string().starts_with("grpo.epsilon_low"), "1 − ε_low must stay above 0");
        let err = LabConfig::from_json(r#"{"grpo": {"loss_type": "mean"}}"#).unwrap_err().to_string();
        assert!(err.starts_with("grpo.loss_type") && err.contains("dr_grpo"), "{err}");
        let err = LabConfig::from_json(r#"{"sft": {"lerning_rate": 0.1}}"#).unwrap_err().to_string();
        assert!(err.contains("lerning_rate"), "{err}");
        let err = LabConfig::from_json(r#"{"sft": {"steps": "many"}}"#).unwrap_err().to_string();
        assert!(err.starts_with("sft.steps: invalid type"), "{err}");
        let parsed = LabConfig::from_json(r#"{"sft": {"steps": 5}, "preset": "micro"}"#).unwrap();
        assert_eq!(parsed.sft.steps, 5);
        assert_eq!(parsed.sft.batch_size, SftConfig::default().batch_size);
        let mut m = Preset::Tiny.model(150);
        m.n_heads = 3;
        assert!(m.validate(crate::rlhf::task::SEQ_LEN).unwrap_err().to_string().contains("divide"));
    }
}
