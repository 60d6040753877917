//! Stage 3b: GRPO and RLOO — PPO's objective without the critic.
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
//! two. The metrics use TRL's GRPOTrainer names (`reward`, `reward_std`, `frac_reward_zero_std`,
//! `kl`, `entropy`, `clip_ratio/*`, `completions/*`), plus `gold`, the hidden utility.

use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::Transaction;
use serde::{Deserialize, Serialize};

use super::grpo_loss::GrpoShard;
use super::{linear_decay, Phase, UpdateTotals};
use super::ppo::sample_on_device;
use crate::engine::data_parallel::{flat_parameters, helpers_part, shard_rows, ShardResult, ShardWork};
use crate::engine::model::{with_fresh_ids, Gpt, ScalarModel};
use crate::engine::optim::FlatAdam;
use crate::engine::readback::{count_readback, read_floats, read_scalars};
use crate::error::{LabError, Result};
use crate::rlhf::config::GrpoConfig;
use crate::rlhf::labels::prompt_text;
use crate::rlhf::math::grpo::{group_advantages, Estimator, GroupAdvantages};
use crate::rlhf::math::kl::KlEstimator;
use crate::rlhf::math::stats::mean;
use crate::rlhf::metrics::Metrics;
use crate::rlhf::task::{prompt_tokens, Completion, Tokenizer, EOS, MAX_COMPLETION, PRODUCTS_COUNT};
use crate::rng::Rng;

/// One rollout on the host: `prompts` groups of G consecutive completions. Per-token arrays are
/// row-major [batch × MAX_COMPLETION], zero at PAD.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupRollout {
    pub completions: Vec<Completion>,
    pub lengths: Vec<usize>,
    pub logprobs: Vec<f32>,
    pub ref_logprobs: Vec<f32>,
    /// r_φ's score (after the missing-`<eos>` penalty) and the gold utility, per completion.
    pub scores: Vec<f32>,
    pub gold: Vec<f32>,
    /// Â_i per completion, and each group's statistics.
    pub advantages: Vec<f32>,
    pub groups: Vec<GroupStats>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupStats {
    pub mean: f32,
    pub std: f32,
    pub zero_std: bool,
    pub baselines: Vec<f32>,
}

impl From<GroupAdvantages> for GroupStats {
    fn from(g: GroupAdvantages) -> Self {
        Self { mean: g.mean, std: g.std, zero_std: g.zero_std, baselines: g.baselines }
    }
}

/// The update's sums after the loss, in `GrpoTerms::sums` order.
const UPDATE_METRICS: [&str; 5] = ["kl", "entropy", "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean"];

pub struct GrpoTrainer {
    policy: Gpt,
    optim: FlatAdam,
    reference: Gpt,
    reward: ScalarModel,
    config: GrpoConfig,
    iteration: usize,
    phase: Phase,
    rollout: Option<GroupRollout>,
    /// Sums of this iteration's update metrics, for the `*_avg` figures sent with its last update.
    totals: UpdateTotals,
    updates: usize,
    rng: Rng,
    tokenizer: Tokenizer,
    device: Device,
    train_device: Device,
    poisoned_update: Option<usize>,
}

impl GrpoTrainer {
    /// π_θ ← π_ref (fresh parameter ids); r_φ and π_ref stay frozen.
    pub fn new(reference: &Gpt, reward: &ScalarModel, config: &GrpoConfig, seed: u64, tokenizer: &Tokenizer, device: &Device) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            policy: with_fresh_ids(reference.clone()).train(),
            optim: FlatAdam::default(),
            reference: reference.clone(),
            reward: reward.clone(),
            config: config.clone(),
            iteration: 0,
            phase: Phase::Rollout,
            rollout: None,
            totals: UpdateTotals::default(),
            updates: 0,
            rng: Rng::derive(seed, "grpo"),
            tokenizer: tokenizer.clone(),
            device: device.clone(),
            train_device: device.clone().autodiff(),
            poisoned_update: None,
        })
    }

    pub fn iteration(&self) -> usize {
        self.iteration
    }

    pub fn is_done(&self) -> bool {
        self.iteration >= self.config.iterations
    }

    pub fn policy(&self) -> Gpt {
        self.policy.valid()
    }

    pub fn rollout(&self) -> Option<&GroupRollout> {
        self.rollout.as_ref()
    }

    /// Fault injection for tests: update `update` (1-based, over the run) computes a NaN loss.
    pub fn poison_update(&mut self, update: usize) {
        self.poisoned_update = Some(update);
    }

    fn total_updates(&self) -> usize {
        self.config.iterations * self.config.epochs * self.config.mini_batches
    }

    fn refuse_if_done(&self) -> Result<()> {
        if self.is_done() {
            return Err(LabError::NotReady(format!("all {} GRPO iterations are done", self.config.iterations)));
        }
        Ok(())
    }

    /// One bounded step: a rollout (steps 1–4) or one minibatch update (step 5).
    pub async fn step(&mut self) -> Result<Metrics> {
        self.step_sharded(1, std::future::ready(Ok(Vec::new()))).await
    }

    /// As `PpoTrainer::step_sharded`: a rollout is taken whole; an update's rows may be split
    /// across `shards` workers, `helpers` bringing the other shards' results.
    pub async fn step_sharded<F: std::future::Future<Output = Result<Vec<ShardResult>>>>(&mut self, shards: usize, helpers: F) -> Result<Metrics> {
        self.refuse_if_done()?;
        match self.phase {
            Phase::Rollout if shards <= 1 => self.collect().await,
            Phase::Rollout => Err(LabError::InvalidInput("a rollout is taken whole: its step has no shards".into())),
            Phase::Update { .. } => self.update(shards, helpers).await,
        }
    }

    /// Steps 1–4: sample G completions of each prompt, score, log-probs (one readback), then the
    /// group advantages on the host.
    async fn collect(&mut self) -> Result<Metrics> {
        let (g, batch, n) = (self.config.group_size, self.config.batch_size(), MAX_COMPLETION);
        let temperature = self.config.temperature as f32;
        let products: Vec<usize> = (0..self.config.prompts).map(|_| self.rng.below(PRODUCTS_COUNT)).flat_map(|p| std::iter::repeat_n(p, g)).collect();
        let prompts: Vec<u32> = products.iter().flat_map(|&p| prompt_tokens(&self.tokenizer, p)).collect();
        let policy = self.policy.valid();
        let device = self.device.clone();
        let on_device = sample_on_device(&policy, &self.reference, Some(&self.reward), &prompts, batch, temperature, &mut self.rng, &device)?;
        count_readback();
        let data = Transaction::default()
            .register(on_device.generated)
            .register(on_device.logprobs)
            .register(on_device.ref_logprobs)
            .register(on_device.scores)
            .execute_async()
            .await
            .map_err(|e| LabError::Device(format!("reading the rollout: {e:?}")))?;
        let tokens: Vec<u32> = data[0].iter::<i64>().map(|t| t as u32).collect();
        let floats = |i: usize| -> Vec<f32> { data[i].iter::<f32>().collect() };
        let (mut logprobs, mut ref_logprobs, raw_scores) = (floats(1), floats(2), floats(3));

        let completions: Vec<Completion> = (0..batch).map(|b| Completion::from_generated(products[b], &tokens[b * n..(b + 1) * n])).collect();
        let lengths: Vec<usize> = completions.iter().map(|c| c.tokens.len()).collect();
        for (b, &len) in lengths.iter().enumerate() {
            for t in len..n {
                logprobs[b * n + t] = 0.0;
                ref_logprobs[b * n + t] = 0.0;
            }
        }
        let scores: Vec<f32> = raw_scores.iter().zip(&completions).map(|(&s, c)| if c.ends() { s } else { s - self.config.missing_eos_penalty as f32 }).collect();
        if scores.iter().any(|s| !s.is_finite()) {
            return Err(LabError::NumericalFault { stage: "grpo".into(), step: self.iteration + 1, quantity: "reward score".into() });
        }
        let gold: Vec<f32> = completions.iter().map(|c| c.gold(&self.tokenizer).total).collect();
        let (mut advantages, mut groups) = (Vec::with_capacity(batch), Vec::new());
        for group in scores.chunks(g) {
            let computed = group_advantages(group, self.config.estimator, self.config.scale_rewards);
            advantages.extend_from_slice(&computed.advantages);
            groups.push(GroupStats::from(computed));
        }
        let rollout = GroupRollout { completions, lengths, logprobs, ref_logprobs, scores, gold, advantages, groups };
        let metrics = self.rollout_metrics(&rollout);
        self.rollout = Some(rollout);
        self.totals = UpdateTotals::default();
        self.phase = Phase::Update { epoch: 0, minibatch: 0, order: self.shuffled(batch) };
        Ok(metrics)
    }

    fn shuffled(&mut self, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        self.rng.shuffle(&mut order);
        order
    }

    /// TRL's rollout-side names: `reward` (mean r_φ), `reward_std` (the mean of the groups'
    /// stds), `frac_reward_zero_std` (groups with no spread), `kl` (mean per-token k3 to π_ref
    /// of the sampling policy), `completions/*`; and `gold`, `kl/sequence` (k1 summed per
    /// completion, PPO's `objective/kl`, for comparing the two).
    fn rollout_metrics(&self, r: &GroupRollout) -> Metrics {
        let n = MAX_COMPLETION;
        let real_tokens: usize = r.lengths.iter().sum();
        let (mut k3, mut k1_per_sequence) = (0.0f64, Vec::with_capacity(r.lengths.len()));
        for (b, &len) in r.lengths.iter().enumerate() {
            let mut k1 = 0.0f32;
            for t in 0..len {
                let (lp, ref_lp) = (r.logprobs[b * n + t], r.ref_logprobs[b * n + t]);
                k3 += f64::from(KlEstimator::K3.per_token(lp, ref_lp));
                k1 += lp - ref_lp;
            }
            k1_per_sequence.push(k1);
        }
        let stds: Vec<f32> = r.groups.iter().map(|g| g.std).collect();
        let zero = r.groups.iter().filter(|g| g.zero_std).count();
        let count = r.lengths.len() as f64;
        crate::rlhf::metrics::metrics([
            ("iteration", (self.iteration + 1) as f64),
            ("phase", 0.0),
            ("reward", f64::from(mean(&r.scores))),
            ("reward_std", f64::from(mean(&stds))),
            ("frac_reward_zero_std", zero as f64 / r.groups.len() as f64),
            ("gold", f64::from(mean(&r.gold))),
            ("kl", k3 / real_tokens.max(1) as f64),
            ("kl/sequence", f64::from(mean(&k1_per_sequence))),
            ("completions/mean_length", real_tokens as f64 / count),
            ("completions/clipped_ratio", r.completions.iter().filter(|c| !c.ends()).count() as f64 / count),
        ])
    }

    /// The rows of the next minibatch update, with everything their loss needs.
    fn next_minibatch(&self) -> Option<(Vec<usize>, GrpoShard)> {
        let Phase::Update { minibatch, ref order, .. } = self.phase else { return None };
        let rollout = self.rollout.as_ref()?;
        let size = self.config.minibatch_size();
        let rows: Vec<usize> = order[minibatch * size..((minibatch + 1) * size).min(order.len())].to_vec();
        let n = MAX_COMPLETION;
        let pick = |v: &[f32]| -> Vec<f32> { rows.iter().flat_map(|&r| v[r * n..(r + 1) * n].iter().copied()).collect() };
        let lengths: Vec<usize> = rows.iter().map(|&r| rollout.lengths[r]).collect();
        let real = |r: usize, t: usize| t < rollout.lengths[r];
        let mut advantages = Vec::with_capacity(rows.len() * n);
        let mut weights = Vec::with_capacity(rows.len() * n);
        let mut mask = Vec::with_capacity(rows.len() * n);
        for &r in &rows {
            let w = self.config.loss_type.token_weight(rollout.lengths[r], &lengths, n);
            for t in 0..n {
                let on = real(r, t);
                advantages.push(if on { rollout.advantages[r] } else { 0.0 });
                weights.push(if on { w } else { 0.0 });
                mask.push(if on { 1.0 } else { 0.0 });
            }
        }
        let shard = GrpoShard {
            sequences: rows.iter().map(|&r| rollout.completions[r].sequence(&self.tokenizer)).collect(),
            targets: rows.iter().map(|&r| (0..n).map(|t| rollout.completions[r].tokens.get(t).copied().unwrap_or(EOS)).collect()).collect(),
            old_logprobs: pick(&rollout.logprobs),
            ref_logprobs: pick(&rollout.ref_logprobs),
            advantages,
            weights,
            tokens: lengths.iter().sum::<usize>() as f32,
            mask,
            temperature: self.config.temperature as f32,
            epsilon_low: self.config.epsilon_low as f32,
            epsilon_high: self.config.epsilon_high as f32,
            beta: self.config.beta as f32,
        };
        Some((rows, shard))
    }

    /// The next minibatch update split into `shards`: θ (one readback) and the helpers' rows.
    /// `None` when the next step is a rollout. Changes nothing.
    pub async fn shard_plan(&self, shards: usize) -> Result<Option<(Vec<f32>, Vec<ShardWork<GrpoShard>>)>> {
        self.refuse_if_done()?;
        let Some((rows, minibatch)) = self.next_minibatch() else { return Ok(None) };
        let shards = shards.clamp(1, rows.len());
        let model = self.policy.config();
        let work = (1..shards).map(|i| ShardWork { step: self.updates, model: model.clone(), objective: minibatch.rows(shard_rows(rows.len(), shards, i)) }).collect();
        let theta = read_floats(flat_parameters(&self.policy.valid())).await?;
        Ok(Some((theta, work)))
    }

    async fn update<F: std::future::Future<Output = Result<Vec<ShardResult>>>>(&mut self, shards: usize, helpers: F) -> Result<Metrics> {
        let Phase::Update { epoch, minibatch, ref order } = self.phase else { unreachable!("update runs in the update phase") };
        let order = order.clone();
        let (rows, whole) = self.next_minibatch().expect("a rollout precedes its update");
        let shards = shards.clamp(1, rows.len());
        let own = whole.rows(shard_rows(rows.len(), shards, 0));
        let mut terms = own.terms(&self.policy, &self.train_device);
        if self.poisoned_update == Some(self.updates + 1) {
            self.poisoned_update = None; // one fault: the retry is clean
            terms.loss = terms.loss.mul_scalar(f32::NAN);
        }
        let grads = GradientsParams::from_grads(terms.loss.backward(), &self.policy);
        let gradient_len = crate::engine::optim::flat_gradient_len(&self.policy, &grads);
        let helpers = helpers_part(helpers, shards, self.updates, gradient_len, 1 + UPDATE_METRICS.len(), |_| 0, &self.device).await?;
        let before = (self.policy.clone(), self.optim.clone());
        let lr = linear_decay(self.config.learning_rate, self.updates, self.total_updates());
        let (policy, norm) = self.optim.step_with(lr, self.policy.clone(), &grads, helpers.gradient);
        self.policy = policy;
        // The step's one readback: the loss, the sums and the gradient norm.
        let mut scalars = vec![terms.loss.clone().detach().inner()];
        scalars.extend(terms.sums());
        scalars.push(norm.inner());
        let read = read_scalars(scalars).await?;
        let mut values: Vec<f32> = read[..=UPDATE_METRICS.len()].iter().zip(&helpers.sums).map(|(own, others)| own + others).collect();
        values.push(read[UPDATE_METRICS.len() + 1]);
        let names = ["loss", "KL", "entropy", "low clip ratio", "high clip ratio", "clip ratio", "gradient norm"];
        if let Some(quantity) = super::first_non_finite(&names, &values) {
            (self.policy, self.optim) = before;
            return Err(LabError::NumericalFault { stage: "grpo".into(), step: self.updates + 1, quantity: quantity.into() });
        }
        self.updates += 1;
        let mut m = crate::rlhf::metrics::metrics([
            ("iteration", (self.iteration + 1) as f64),
            ("phase", 1.0),
            ("epoch", (epoch + 1) as f64),
            ("minibatch", (minibatch + 1) as f64),
            ("update", self.updates as f64),
            ("loss", f64::from(values[0])),
            ("grad_norm", f64::from(values[6])),
            ("lr", lr),
        ]);
        // The update's `kl` is π_θ's now, as it moves; the rollout's is the sampler's.
        for (name, value) in UPDATE_METRICS.iter().zip(&values[1..6]) {
            let name = if *name == "kl" { "kl/update" } else { name };
            m.insert(name.to_string(), f64::from(*value));
        }
        self.totals.count += 1.0;
        for name in ["loss", "grad_norm", "kl/update", "entropy", "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean"] {
            *self.totals.sums.entry(name.to_string()).or_default() += m[name];
        }
        let (mut epoch, mut minibatch) = (epoch, minibatch + 1);
        if minibatch == self.config.mini_batches {
            (epoch, minibatch) = (epoch + 1, 0);
        }
        if epoch == self.config.epochs {
            for (name, sum) in &self.totals.sums {
                m.insert(format!("{name}_avg"), sum / self.totals.count);
            }
            m.insert("iteration_done".into(), 1.0);
            self.iteration += 1;
            self.phase = Phase::Rollout;
        } else {
            let order = if minibatch == 0 { self.shuffled(self.config.batch_size()) } else { order };
            self.phase = Phase::Update { epoch, minibatch, order };
        }
        Ok(m)
    }

    /// Group `index` of the current rollout, for the group inspector.
    pub fn record(&self, index: usize) -> Result<GroupRecord> {
        let r = self.rollout.as_ref().ok_or_else(|| LabError::NotReady("no rollout yet: run a GRPO step first".into()))?;
        if index >= r.groups.len() {
            return Err(LabError::InvalidInput(format!("the rollout has {} groups (asked for {index})", r.groups.len())));
        }
        let g = self.config.group_size;
        let stats = &r.groups[index];
        let members = (index * g..(index + 1) * g)
            .zip(&stats.baselines)
            .map(|(i, &baseline)| {
                let c = &r.completions[i];
                GroupMember {
                    tokens: c.tokens.iter().map(|&t| self.tokenizer.word(t).to_string()).collect(),
                    score: r.scores[i],
                    gold: r.gold[i],
                    baseline,
                    advantage: r.advantages[i],
                    ends: c.ends(),
                }
            })
            .collect();
        Ok(GroupRecord {
            index,
            groups: r.groups.len(),
            iteration: self.iteration + usize::from(matches!(self.phase, Phase::Update { .. })),
            product: r.completions[index * g].product,
            prompt: prompt_text(&self.tokenizer, r.completions[index * g].product),
            estimator: self.config.estimator,
            scale_rewards: self.config.scale_rewards,
            mean: stats.mean,
            std: stats.std,
            zero_std: stats.zero_std,
            members,
        })
    }
}

/// One completion of a group, as the group inspector shows it.
#[derive(Debug, Clone, Serialize)]
pub struct GroupMember {
    pub tokens: Vec<String>,
    pub score: f32,
    pub gold: f32,
    /// What r_i was compared with: the group's mean, or the mean of the others (RLOO).
    pub baseline: f32,
    pub advantage: f32,
    pub ends: bool,
}

/// One prompt's group: its completions with r_i, the group's mean and std, and Â_i.
#[derive(Debug, Clone, Serialize)]
pub struct GroupRecord {
    pub index: usize,
    pub groups: usize,
    /// The iteration (1-based) this rollout belongs to.
    pub iteration: usize,
    pub product: usize,
    pub prompt: String,
    pub estimator: Estimator,
    pub scale_rewards: bool,
    pub mean: f32,
    pub std: f32,
    pub zero_std: bool,
    pub members: Vec<GroupMember>,
}

/// What a GRPO snapshot carries besides π_θ's weights and Adam's moments.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct GrpoState {
    iteration: usize,
    updates: usize,
    phase: Phase,
    rollout: Option<GroupRollout>,
    totals: UpdateTotals,
    rng: Rng,
    adam: crate::engine::optim::AdamCounters,
}

impl GrpoTrainer {
    /// The trainer as bytes, mid-iteration included (the rollout in hand travels with it).
    pub async fn snapshot(&self, settings: serde_json::Value) -> Result<Vec<u8>> {
        let weights = crate::engine::checkpoint::record_bytes(&self.policy.valid()).await?;
        let (adam, moments) = self.optim.export().await?;
        let state = GrpoState { iteration: self.iteration, updates: self.updates, phase: self.phase.clone(), rollout: self.rollout.clone(), totals: self.totals.clone(), rng: self.rng.clone(), adam };
        let mut blobs = vec![weights];
        blobs.extend(moments);
        Ok(crate::engine::snapshot::pack(&crate::engine::snapshot::Meta { stage: "grpo".into(), settings, state }, &blobs))
    }

    pub fn restore(&mut self, bytes: &[u8], settings: &serde_json::Value) -> Result<()> {
        let (state, blobs): (GrpoState, _) = crate::engine::snapshot::unpack(bytes, "grpo", settings)?;
        let (weights, moments) = blobs.split_first().ok_or_else(|| LabError::Checkpoint("the GRPO snapshot has no weights".into()))?;
        let policy = crate::engine::checkpoint::load_record(self.policy.valid(), weights)?.train();
        let mut optim = self.optim.clone();
        optim.import(&state.adam, moments, &self.device)?;
        (self.policy, self.optim) = (policy, optim);
        (self.iteration, self.updates, self.phase, self.rollout, self.totals, self.rng) = (state.iteration, state.updates, state.phase, state.rollout, state.totals, state.rng);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::config::Preset;
    use crate::rlhf::math::grpo::LossType;

    fn trainer(config: GrpoConfig) -> GrpoTrainer {
        let device = Device::flex();
        let tok = Tokenizer::new();
        let model_config = Preset::Micro.model(tok.vocab_size());
        let reference = Gpt::new(&model_config, &mut Rng::new(1), &device);
        GrpoTrainer::new(&reference, &varied_reward(&model_config, &device), &config, 3, &tok, &device).unwrap()
    }

    /// A reward model that tells completions apart: `from_trunk`'s head is zero (every score
    /// equal), so the head (the last parameters visited) gets weights of ±1 here.
    fn varied_reward(config: &crate::engine::model::config::ModelConfig, device: &Device) -> ScalarModel {
        let blank = ScalarModel::from_trunk(Gpt::new(config, &mut Rng::new(2), device), device);
        let mut theta = crate::engine::data_parallel::parameter_values(&blank);
        let head = config.d_model + 1;
        let len = theta.len();
        let mut rng = Rng::new(4);
        for v in &mut theta[len - head..] {
            *v = if rng.below(2) == 0 { 1.0 } else { -1.0 };
        }
        crate::engine::data_parallel::with_flat_parameters(blank, &theta, device).unwrap()
    }

    fn small() -> GrpoConfig {
        GrpoConfig { iterations: 2, prompts: 2, group_size: 4, mini_batches: 2, epochs: 2, learning_rate: 1e-3, ..GrpoConfig::default() }
    }

    fn parameters(t: &GrpoTrainer) -> Vec<f32> {
        crate::engine::data_parallel::parameter_values(&t.policy.valid())
    }

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
            assert_eq!(&r.advantages[i * 4..(i + 1) * 4], again.advantages.as_slice());
            assert_eq!(group.mean, again.mean);
        }
        let record = t.record(1).unwrap();
        assert_eq!(record.members.len(), 4);
        assert_eq!(record.members[2].advantage, r.advantages[6]);
        assert!(t.record(2).is_err());
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
        let device = Device::flex();
        let tok = Tokenizer::new();
        let model_config = Preset::Micro.model(tok.vocab_size());
        let reference = Gpt::new(&model_config, &mut Rng::new(1), &device);
        let constant = ScalarModel::from_trunk(Gpt::new(&model_config, &mut Rng::new(2), &device), &device).shift_scores(0.5);
        let config = GrpoConfig { beta: 0.0, ..small() };
        let mut t = GrpoTrainer::new(&reference, &constant, &config, 3, &tok, &device).unwrap();
        let m = pollster::block_on(t.step()).unwrap();
        assert_eq!(m["frac_reward_zero_std"], 1.0, "{m:?}");
        assert_eq!(m["reward_std"], 0.0);
        assert!(t.rollout().unwrap().advantages.iter().all(|a| *a == 0.0));
        let update = pollster::block_on(t.step()).unwrap();
        assert_eq!(update["loss"], 0.0);
        assert_eq!(update["grad_norm"], 0.0, "{update:?}");
    }

    #[test]
    fn an_update_split_across_workers_is_the_whole_update() {
        let (mut whole, mut split) = (trainer(small()), trainer(small()));
        let mut split_updates = 0;
        while !whole.is_done() {
            let expected = pollster::block_on(whole.step()).unwrap();
            let got = match split.phase {
                Phase::Rollout => {
                    assert!(pollster::block_on(split.shard_plan(2)).unwrap().is_none(), "a rollout is not split");
                    pollster::block_on(split.step()).unwrap()
                }
                Phase::Update { .. } => {
                    split_updates += 1;
                    let shards = 2 + split_updates % 2;
                    let results = crate::engine::data_parallel::answers(pollster::block_on(split.shard_plan(shards)).unwrap().unwrap());
                    pollster::block_on(split.step_sharded(shards, std::future::ready(Ok(results)))).unwrap()
                }
            };
            crate::engine::data_parallel::assert_same_metrics(&got, &expected, &[], split_updates);
            let worst = parameters(&whole).iter().zip(parameters(&split)).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "update {split_updates}: parameters differ by {worst}");
        }
        assert_eq!(split_updates, 8);
    }

    #[test]
    fn a_non_finite_update_rolls_back_and_a_snapshot_resumes_mid_iteration() {
        let mut t = trainer(small());
        t.poison_update(2);
        pollster::block_on(t.step()).unwrap(); // rollout
        pollster::block_on(t.step()).unwrap(); // update 1
        let before = parameters(&t);
        let err = pollster::block_on(t.step()).unwrap_err();
        assert!(matches!(err, LabError::NumericalFault { ref quantity, step: 2, .. } if quantity == "loss"), "{err}");
        assert_eq!(parameters(&t), before);
        // A snapshot now, restored into a fresh trainer, continues exactly as this one does.
        let settings = serde_json::to_value(small()).unwrap();
        let bytes = pollster::block_on(t.snapshot(settings.clone())).unwrap();
        let mut resumed = trainer(small());
        resumed.restore(&bytes, &settings).unwrap();
        while !t.is_done() {
            let (a, b) = (pollster::block_on(t.step()).unwrap(), pollster::block_on(resumed.step()).unwrap());
            assert_eq!(a, b);
        }
        assert_eq!(parameters(&t), parameters(&resumed));
        // Another stage's settings are refused.
        let other = serde_json::to_value(GrpoConfig { beta: 0.0, ..small() }).unwrap();
        assert!(trainer(small()).restore(&bytes, &other).is_err());
    }
}
