//! One on-policy trainer for every algorithm of stage 3: PPO, GRPO, RLOO, REINFORCE and GSPO are
//! its recipes (`recipe.rs`), each the short list of what it chooses:
//!
//! ```text
//!             reward   KL goes           advantage                    ratio     aggregation  critic
//! PPO         r_φ      in the reward     GAE over V_ψ, whitened       token     token mean   V_ψ
//! GRPO        r_φ      in the loss (k3)  (r − group mean)/group std   token     loss_type    —
//! RLOO        r_φ      in the loss (k3)  r − mean of the others       token     loss_type    —
//! REINFORCE   r_φ      in the loss (k3)  r − batch mean               token     loss_type    —
//! GSPO        r_φ      in the loss (k3)  as GRPO                      sequence  loss_type    —
//! ```
//!
//! and any of them may train against another reward (`RewardSource`: the gold utility, or the
//! learner's expression). One iteration, numbered as the page numbers it:
//!  1. sample completions of `prompts` prompts (G each) from π_θ (KV cache, cut at `<eos>`);
//!  2. score them (r_φ at the last real token on the device, or a program on the host), minus a
//!     penalty if they never end;
//!  3. log π_θ, log π_ref (and V(s_t)) of every real token;
//!     — 1 to 3 stay on the device and come back in one readback —
//!  4. on the host: the advantages (`rollout.rs`);
//!  5. K epochs over shuffled minibatches of the loss (`loss.rs`), each minibatch one bounded
//!     step; optional early stop on approx KL; then the adaptive KL controller (if on).
//!
//! Every step is bounded and reads the device once; a non-finite step leaves the models as they
//! were; an update may be split across helper workers; a snapshot resumes mid-iteration.

pub mod loss;
pub mod recipe;
mod report;
pub mod reward;
pub mod rollout;
pub mod sampling;
pub mod views;
#[cfg(test)]
pub(crate) mod tests;

use burn::optim::GradientsParams;
use burn::prelude::*;

use self::loss::{Minibatch, Sums, Trained};
use self::recipe::{Aggregation, KlPlacement, Recipe, Report};
use self::reward::Reward;
use self::rollout::Rollout;
use super::{linear_decay, Phase, UpdateTotals};
use crate::engine::data_parallel::{flat_parameters, helpers_part, shard_rows, ShardResult, ShardWork};
use crate::engine::model::{Gpt, ScalarModel};
use crate::engine::optim::FlatAdam;
use crate::engine::readback::{read_floats, read_scalars};
use crate::error::{LabError, Result};
use crate::rlhf::metrics::Metrics;
use crate::rlhf::task::{Tokenizer, EOS, MAX_COMPLETION};
use crate::rng::Rng;

/// The trainer of `M` (π_θ alone, or π_θ with V_ψ) by `recipe`.
pub struct OnPolicyTrainer<M: Trained> {
    recipe: Recipe,
    pub(in crate::rlhf::stages) model: M,
    optim: FlatAdam,
    reference: Gpt,
    reward: Reward,
    /// β of the KL in the reward (it may adapt); unused when the KL is in the loss.
    kl_coef: f64,
    iteration: usize,
    pub(in crate::rlhf::stages) phase: Phase,
    rollout: Option<Rollout>,
    /// Sums of this iteration's update metrics, for the `*_avg` figures sent with its last update.
    pub(in crate::rlhf::stages) totals: UpdateTotals,
    pub(in crate::rlhf::stages) updates: usize,
    rng: Rng,
    tokenizer: Tokenizer,
    device: Device,
    train_device: Device,
    pub(in crate::rlhf::stages) poisoned_update: Option<usize>,
}

impl<M: Trained> OnPolicyTrainer<M> {
    /// `model` (already π_ref's copy, with fresh parameter ids) trained by `recipe` against `reward`.
    pub(crate) fn with_recipe(recipe: Recipe, model: M, reference: &Gpt, reward: Reward, seed: u64, tokenizer: &Tokenizer, device: &Device) -> Result<Self> {
        if matches!(recipe.advantage, recipe::Advantage::Gae { .. }) != model.critic().is_some() {
            return Err(LabError::InvalidInput(format!("{}: GAE needs a critic, and only GAE uses one", recipe.stage)));
        }
        let kl_coef = match recipe.kl {
            KlPlacement::InReward { beta, .. } => beta,
            KlPlacement::InLoss { .. } => 0.0,
        };
        Ok(Self {
            rng: Rng::derive(seed, recipe.stage),
            recipe,
            model: model.train(),
            optim: FlatAdam::default(),
            reference: reference.clone(),
            reward,
            kl_coef,
            iteration: 0,
            phase: Phase::Rollout,
            rollout: None,
            totals: UpdateTotals::default(),
            updates: 0,
            tokenizer: tokenizer.clone(),
            device: device.clone(),
            train_device: device.clone().autodiff(),
            poisoned_update: None,
        })
    }

    pub fn recipe(&self) -> &Recipe {
        &self.recipe
    }

    pub fn iteration(&self) -> usize {
        self.iteration
    }

    pub fn is_done(&self) -> bool {
        self.iteration >= self.recipe.schedule.iterations
    }

    pub fn policy(&self) -> Gpt {
        self.model.policy().valid()
    }

    /// V_ψ, if the recipe trains one.
    pub fn critic(&self) -> Option<ScalarModel> {
        self.model.critic().map(|c| c.valid())
    }

    pub fn rollout(&self) -> Option<&Rollout> {
        self.rollout.as_ref()
    }

    /// Fault injection for tests: update `update` (1-based, over the run) computes a NaN loss.
    pub fn poison_update(&mut self, update: usize) {
        self.poisoned_update = Some(update);
    }

    fn refuse_if_done(&self) -> Result<()> {
        if self.is_done() {
            return Err(LabError::NotReady(format!("all {} {} iterations are done", self.recipe.schedule.iterations, self.recipe.stage.to_uppercase())));
        }
        Ok(())
    }

    /// One bounded step: a rollout (steps 1–4) or one minibatch update (step 5).
    pub async fn step(&mut self) -> Result<Metrics> {
        self.step_sharded(1, std::future::ready(Ok(Vec::new()))).await
    }

    /// One step whose update rows are split into `shards`: this trainer computes shard 0's
    /// gradient and terms, `helpers` resolves to the other shards' (`shard_plan`'s work, computed
    /// elsewhere meanwhile), and their sums make the update. A rollout is taken whole. A helper's
    /// failure or a non-finite value leaves the models as they were.
    pub async fn step_sharded<F: std::future::Future<Output = Result<Vec<ShardResult>>>>(&mut self, shards: usize, helpers: F) -> Result<Metrics> {
        self.refuse_if_done()?;
        match self.phase {
            Phase::Rollout if shards <= 1 => self.collect().await,
            Phase::Rollout => Err(LabError::InvalidInput("a rollout is taken whole: its step has no shards".into())),
            Phase::Update { .. } => self.update(shards, helpers).await,
        }
    }

    /// Steps 1–4 (`rollout.rs`), then the first minibatch's order.
    async fn collect(&mut self) -> Result<Metrics> {
        let policy = self.model.policy().valid();
        let critic = self.model.critic().map(|c| c.valid());
        let context = rollout::Context { recipe: &self.recipe, reference: &self.reference, reward: &self.reward, tokenizer: &self.tokenizer, device: &self.device, kl_coef: self.kl_coef, iteration: self.iteration };
        let rollout = rollout::collect(&context, &policy, critic.as_ref(), &mut self.rng).await?;
        let metrics = report::rollout_metrics(self.recipe.report, &rollout, self.iteration, self.kl_coef);
        self.rollout = Some(rollout);
        self.phase = Phase::Update { epoch: 0, minibatch: 0, order: self.shuffled(self.recipe.schedule.batch_size()) };
        self.totals = UpdateTotals::default();
        Ok(metrics)
    }

    fn shuffled(&mut self, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        self.rng.shuffle(&mut order);
        order
    }

    /// The rows of the next minibatch update, with everything their loss needs.
    fn next_minibatch(&self) -> Option<(Vec<usize>, Minibatch)> {
        let Phase::Update { minibatch, ref order, .. } = self.phase else { return None };
        let rollout = self.rollout.as_ref()?;
        let (recipe, n) = (&self.recipe, MAX_COMPLETION);
        let size = recipe.schedule.minibatch_size();
        let rows: Vec<usize> = order[minibatch * size..((minibatch + 1) * size).min(order.len())].to_vec();
        let pick = |v: &[f32]| -> Vec<f32> { rows.iter().flat_map(|&r| v[r * n..(r + 1) * n].iter().copied()).collect() };
        let lengths: Vec<usize> = rows.iter().map(|&r| rollout.lengths[r]).collect();
        let mask: Vec<f32> = rows.iter().flat_map(|&r| (0..n).map(move |t| if t < rollout.lengths[r] { 1.0 } else { 0.0 })).collect();
        let weights = match recipe.loss.aggregation {
            Aggregation::TokenMean => Vec::new(),
            Aggregation::Weighted(loss_type) => lengths.iter().flat_map(|&len| {
                let w = loss_type.token_weight(len, &lengths, n);
                (0..n).map(move |t| if t < len { w } else { 0.0 })
            }).collect(),
        };
        let (ref_logprobs, beta) = match recipe.kl {
            KlPlacement::InLoss { beta } => (pick(&rollout.ref_logprobs), beta),
            KlPlacement::InReward { .. } => (Vec::new(), 0.0),
        };
        let critic = recipe.critic;
        let minibatch = Minibatch {
            sequences: rows.iter().map(|&r| rollout.completions[r].sequence(&self.tokenizer)).collect(),
            targets: rows.iter().map(|&r| (0..n).map(|t| rollout.completions[r].tokens.get(t).copied().unwrap_or(EOS)).collect()).collect(),
            old_logprobs: pick(&rollout.logprobs),
            advantages: pick(&rollout.advantages),
            tokens: mask.iter().sum(),
            mask,
            temperature: recipe.schedule.temperature,
            epsilon_low: recipe.loss.epsilon_low,
            epsilon_high: recipe.loss.epsilon_high,
            level: recipe.loss.level,
            weights,
            ref_logprobs,
            beta,
            ent_coef: recipe.loss.ent_coef,
            returns: if critic.is_some() { pick(&rollout.returns) } else { Vec::new() },
            old_values: if critic.is_some() { pick(&rollout.values) } else { Vec::new() },
            cliprange_value: critic.map_or(0.0, |c| c.cliprange_value),
            vf_coef: critic.map_or(0.0, |c| c.vf_coef),
            sums: match recipe.report {
                Report::Ppo => Sums::Ppo,
                Report::Grpo => Sums::Grpo,
            },
        };
        Some((rows, minibatch))
    }

    /// The next minibatch update split into `shards` (fewer if it has fewer rows): θ as one
    /// vector (one readback) and the helpers' rows. `None` when the next step is a rollout, which
    /// is taken whole. Changes nothing.
    pub async fn shard_plan(&self, shards: usize) -> Result<Option<(Vec<f32>, Vec<ShardWork<M::Shard>>)>> {
        self.refuse_if_done()?;
        let Some((rows, minibatch)) = self.next_minibatch() else { return Ok(None) };
        let shards = shards.clamp(1, rows.len());
        let model = self.model.policy().config();
        let work = (1..shards).map(|i| ShardWork { step: self.updates, model: model.clone(), objective: M::shard(minibatch.rows(shard_rows(rows.len(), shards, i))) }).collect();
        let theta = read_floats(flat_parameters(&self.model.valid())).await?;
        Ok(Some((theta, work)))
    }

    async fn update<F: std::future::Future<Output = Result<Vec<ShardResult>>>>(&mut self, shards: usize, helpers: F) -> Result<Metrics> {
        let Phase::Update { epoch, minibatch, ref order } = self.phase else { unreachable!("update runs in the update phase") };
        let order = order.clone();
        let (rows, whole) = self.next_minibatch().expect("a rollout precedes its update");
        let (b, n) = (rows.len(), MAX_COMPLETION);
        let shards = shards.clamp(1, b);
        let own = whole.rows(shard_rows(b, shards, 0));
        let mut terms = own.terms(self.model.policy(), self.model.critic(), &self.train_device);
        if self.poisoned_update == Some(self.updates + 1) {
            self.poisoned_update = None; // one fault: the retry is clean
            terms.loss = terms.loss.mul_scalar(f32::NAN);
        }
        let grads = GradientsParams::from_grads(terms.loss.backward(), &self.model);
        // The others' gradients summed on the host in shard order (one upload), their sums, and
        // (PPO's report) their rows' ρ in row order.
        let sums_len = 1 + whole.sums.after_loss();
        let per_token = whole.sums == Sums::Ppo;
        let gradient_len = crate::engine::optim::flat_gradient_len(&self.model, &grads);
        let helpers = helpers_part(helpers, shards, self.updates, gradient_len, sums_len, |i| if per_token { shard_rows(b, shards, i).len() * n } else { 0 }, &self.device).await?;
        let before = (self.model.clone(), self.optim.clone());
        let lr = linear_decay(self.recipe.schedule.learning_rate, self.updates, self.recipe.schedule.total_updates());
        let (model, norm) = self.optim.step_with(lr, self.model.clone(), &grads, helpers.gradient);
        self.model = model;

        // The step's one readback: the loss, the sums, the gradient norm (and ρ per token).
        let own_rows = own.rows_count();
        let mut scalars = vec![terms.loss.detach().inner()];
        scalars.extend(terms.sums.into_iter().map(|s| s.inner()));
        scalars.push(norm.inner());
        if per_token {
            scalars.push(terms.ratio.detach().inner().reshape([own_rows * n]));
        }
        let read = read_scalars(scalars).await?;
        let sums: Vec<f32> = read[..sums_len].iter().zip(&helpers.sums).map(|(own, others)| own + others).collect();
        let grad_norm = read[sums_len];
        let mut ratios = read[sums_len + 1..].to_vec();
        ratios.extend(helpers.per_token);
        let step = report::UpdateReadback { sums, grad_norm, ratios: &ratios, mask: &whole.mask };
        let reported = match report::update_values(self.recipe.report, &step) {
            Ok(reported) => reported,
            Err(quantity) => {
                (self.model, self.optim) = before;
                return Err(LabError::NumericalFault { stage: self.recipe.stage.into(), step: self.updates + 1, quantity: quantity.into() });
            }
        };
        self.updates += 1;
        if per_token {
            self.record_ratios(&rows, &ratios);
        }
        let mut m = crate::rlhf::metrics::metrics([
            ("iteration", (self.iteration + 1) as f64),
            ("phase", 1.0),
            ("epoch", (epoch + 1) as f64),
            ("minibatch", (minibatch + 1) as f64),
            ("update", self.updates as f64),
            ("grad_norm", f64::from(grad_norm)),
            ("lr", lr),
        ]);
        self.totals.count += 1.0;
        for (name, value) in &reported.values {
            m.insert(name.clone(), *value);
        }
        for name in &reported.averaged {
            *self.totals.sums.entry(name.clone()).or_default() += m[name];
        }

        // Advance; stop the epochs early if the policy moved too far (cleanrl's target_kl).
        let schedule = self.recipe.schedule;
        let early_stop = schedule.early_stop_kl > 0.0 && reported.approx_kl.is_some_and(|kl| kl > schedule.early_stop_kl);
        let (mut epoch, mut minibatch) = (epoch, minibatch + 1);
        if minibatch == schedule.mini_batches {
            (epoch, minibatch) = (epoch + 1, 0);
        }
        if epoch == schedule.epochs || early_stop {
            self.finish_iteration(&mut m, early_stop);
        } else {
            let order = if minibatch == 0 { self.shuffled(schedule.batch_size()) } else { order };
            self.phase = Phase::Update { epoch, minibatch, order };
        }
        Ok(m)
    }

    /// Each token's ρ at its latest update, and whether its clip was active, for the views.
    fn record_ratios(&mut self, rows: &[usize], ratios: &[f32]) {
        let (n, low, high) = (MAX_COMPLETION, self.recipe.loss.epsilon_low, self.recipe.loss.epsilon_high);
        let rollout = self.rollout.as_mut().expect("a rollout precedes its update");
        for (i, &r) in rows.iter().enumerate() {
            for t in 0..rollout.lengths[r] {
                let rho = ratios[i * n + t];
                let adv = rollout.advantages[r * n + t];
                rollout.ratio[r * n + t] = rho;
                rollout.clipped[r * n + t] = crate::rlhf::math::ppo::surrogate_slope_asymmetric(rho, adv, low, high) == 0.0;
            }
        }
    }

    /// The iteration's averages, and the adaptive KL controller (step 6).
    fn finish_iteration(&mut self, m: &mut Metrics, early_stop: bool) {
        for (name, sum) in &self.totals.sums {
            m.insert(format!("{name}_avg"), sum / self.totals.count);
        }
        m.insert("iteration_done".into(), 1.0);
        if self.recipe.report == Report::Ppo {
            m.insert("early_stop".into(), f64::from(u8::from(early_stop)));
        }
        if let KlPlacement::InReward { adaptive: Some(control), .. } = self.recipe.kl {
            // Ziegler et al. (2019): β ← β·(1 + clip(KL/target − 1, −0.2, 0.2)·n/horizon).
            let rollout = self.rollout.as_ref().expect("a rollout precedes its update");
            let kl = rollout.mean_sequence_kl();
            let error = (f64::from(kl) / control.target - 1.0).clamp(-0.2, 0.2);
            self.kl_coef *= 1.0 + error * self.recipe.schedule.batch_size() as f64 / control.horizon;
        }
        self.iteration += 1;
        self.phase = Phase::Rollout;
    }
}

/// What a snapshot carries besides the trained weights and Adam's moments.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct TrainerState {
    kl_coef: f64,
    iteration: usize,
    updates: usize,
    phase: Phase,
    rollout: Option<Rollout>,
    totals: UpdateTotals,
    rng: Rng,
    adam: crate::engine::optim::AdamCounters,
}

impl<M: Trained> OnPolicyTrainer<M> {
    /// The trainer as bytes, mid-iteration included (the rollout in hand travels with it).
    pub async fn snapshot(&self, settings: serde_json::Value) -> Result<Vec<u8>> {
        let weights = crate::engine::checkpoint::record_bytes(&self.model.valid()).await?;
        let (adam, moments) = self.optim.export().await?;
        let state = TrainerState { kl_coef: self.kl_coef, iteration: self.iteration, updates: self.updates, phase: self.phase.clone(), rollout: self.rollout.clone(), totals: self.totals.clone(), rng: self.rng.clone(), adam };
        let mut blobs = vec![weights];
        blobs.extend(moments);
        Ok(crate::engine::snapshot::pack(&crate::engine::snapshot::Meta { stage: self.recipe.stage.into(), settings, state }, &blobs))
    }

    pub fn restore(&mut self, bytes: &[u8], settings: &serde_json::Value) -> Result<()> {
        let stage = self.recipe.stage;
        let (state, blobs): (TrainerState, _) = crate::engine::snapshot::unpack(bytes, stage, settings)?;
        let (weights, moments) = blobs.split_first().ok_or_else(|| LabError::Checkpoint(format!("the {} snapshot has no weights", stage.to_uppercase())))?;
        let model = crate::engine::checkpoint::load_record(self.model.valid(), weights)?.train();
        let mut optim = self.optim.clone();
        optim.import(&state.adam, moments, &self.device)?;
        (self.model, self.optim) = (model, optim);
        (self.kl_coef, self.iteration, self.updates, self.phase, self.rollout, self.totals, self.rng) = (state.kl_coef, state.iteration, state.updates, state.phase, state.rollout, state.totals, state.rng);
        Ok(())
    }
}
