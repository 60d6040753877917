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
//! implementation do). Both train with one optimizer on one loss.

use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::Transaction;
use serde::Serialize;

use super::ppo_loss::{completion_values, PolicyAndValue, PpoShard};
use super::reward::score_sequences;
use super::{completion_logprobs, first_non_finite, float_tensor, int_tensor, linear_decay, Phase, UpdateTotals};
use crate::engine::data_parallel::{flat_parameters, helpers_part, shard_rows, ShardResult, ShardWork};
use crate::engine::model::{with_fresh_ids, Gpt, ScalarModel};
use crate::engine::optim::FlatAdam;
use crate::engine::readback::{count_readback, read_floats, read_scalars};
use crate::engine::sample::{generate_on_device, SampleOptions};
use crate::error::{LabError, Result};
use crate::rlhf::config::PpoConfig;
use crate::rlhf::labels::prompt_text;
use crate::rlhf::math::gae::{shape_batch, td_errors};
use crate::rlhf::math::stats::{explained_variance, mean, variance};
use crate::rlhf::math::whiten::masked_whiten;
use crate::rlhf::metrics::Metrics;
use crate::rlhf::task::{prompt_tokens, Completion, Tokenizer, EOS, MAX_COMPLETION, PAD, PRODUCTS_COUNT, PROMPT_LEN, SEQ_LEN};
use crate::rng::Rng;

/// One rollout on the host: every per-token array is row-major [batch × MAX_COMPLETION], zero
/// at PAD. These are exactly the numbers the rollout inspector, GAE stepper and clipping view show.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Rollout {
    pub completions: Vec<Completion>,
    pub lengths: Vec<usize>,
    pub logprobs: Vec<f32>,
    pub ref_logprobs: Vec<f32>,
    pub values: Vec<f32>,
    /// Reward-model score (after the missing-<eos> penalty) and gold utility, per completion.
    pub scores: Vec<f32>,
    pub gold: Vec<f32>,
    pub kl: Vec<f32>,
    pub non_score: Vec<f32>,
    pub rewards: Vec<f32>,
    pub advantages_raw: Vec<f32>,
    pub advantages: Vec<f32>,
    pub returns: Vec<f32>,
    /// ρ of each token at its latest update (1 before any), and whether the clip was active.
    pub ratio: Vec<f32>,
    pub clipped: Vec<bool>,
    pub kl_coef: f64,
}

impl Rollout {
    fn mask(&self) -> Vec<bool> {
        self.lengths.iter().flat_map(|&len| (0..MAX_COMPLETION).map(move |t| t < len)).collect()
    }
}

const UPDATE_METRICS: [&str; 9] = [
    "loss/total",
    "loss/policy",
    "loss/value",
    "policy/entropy",
    "policy/clipfrac",
    "val/clipfrac",
    "policy/approxkl",
    "val/ratio",
    "val/ratio_var",
];

/// The first 7 of `UPDATE_METRICS` are sums over real tokens divided by the minibatch's count
/// (`PpoTerms::sums`): a split update adds its shards' up. ρ's moments are taken on the host.
const UPDATE_SUMS: usize = 7;

pub struct PpoTrainer {
    model: PolicyAndValue,
    optim: FlatAdam,
    reference: Gpt,
    reward: ScalarModel,
    config: PpoConfig,
    kl_coef: f64,
    iteration: usize,
    phase: Phase,
    rollout: Option<Rollout>,
    totals: UpdateTotals,
    updates: usize,
    rng: Rng,
    tokenizer: Tokenizer,
    device: Device,
    train_device: Device,
    poisoned_update: Option<usize>,
}

impl PpoTrainer {
    /// π_θ ← π_ref, V_ψ ← r_φ (fresh parameter ids, so the roles never share optimizer state).
    pub fn new(reference: &Gpt, reward: &ScalarModel, config: &PpoConfig, seed: u64, tokenizer: &Tokenizer, device: &Device) -> Result<Self> {
        config.validate()?;
        let model = PolicyAndValue { policy: with_fresh_ids(reference.clone()), value: with_fresh_ids(reward.clone()) }.train();
        Ok(Self {
            model,
            optim: FlatAdam::default(),
            reference: reference.clone(),
            reward: reward.clone(),
            config: config.clone(),
            kl_coef: config.kl_coef,
            iteration: 0,
            phase: Phase::Rollout,
            rollout: None,
            totals: UpdateTotals::default(),
            updates: 0,
            rng: Rng::derive(seed, "ppo"),
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
        self.model.policy.valid()
    }

    pub fn value_model(&self) -> ScalarModel {
        self.model.value.valid()
    }

    pub fn rollout(&self) -> Option<&Rollout> {
        self.rollout.as_ref()
    }

    /// Fault injection for tests: update step `update` (1-based, counted over the whole run)
    /// computes a NaN loss.
    pub fn poison_update(&mut self, update: usize) {
        self.poisoned_update = Some(update);
    }

    fn total_updates(&self) -> usize {
        self.config.iterations * self.config.epochs * self.config.mini_batches
    }

    /// One bounded step: a rollout (steps 1–4) or one minibatch update (step 5).
    pub async fn step(&mut self) -> Result<Metrics> {
        self.step_sharded(1, std::future::ready(Ok(Vec::new()))).await
    }

    /// Steps 1–4: sample, score, evaluate (one readback), then shape rewards, GAE and whitening
    /// on the host.
    async fn collect(&mut self) -> Result<Metrics> {
        let batch = self.config.batch_size;
        let n = MAX_COMPLETION;
        let temperature = self.config.temperature as f32;
        let products: Vec<usize> = (0..batch).map(|_| self.rng.below(PRODUCTS_COUNT)).collect();
        let prompts: Vec<u32> = products.iter().flat_map(|&p| prompt_tokens(&self.tokenizer, p)).collect();
        let policy = self.model.policy.valid();
        let value = self.model.value.valid();
        let device = self.device.clone();

        // 1–3 on the device.
        let rollout = sample_on_device(&policy, &self.reference, Some(&self.reward), &prompts, batch, temperature, &mut self.rng, &device)?;
        let values = completion_values(&value, rollout.inputs);
        // The rollout's one readback.
        count_readback();
        let data = Transaction::default()
            .register(rollout.generated)
            .register(rollout.logprobs)
            .register(rollout.ref_logprobs)
            .register(values)
            .register(rollout.scores)
            .execute_async()
            .await
            .map_err(|e| LabError::Device(format!("reading the rollout: {e:?}")))?;
        let tokens: Vec<u32> = data[0].iter::<i64>().map(|t| t as u32).collect();
        let floats = |i: usize| -> Vec<f32> { data[i].iter::<f32>().collect() };
        let (mut logprobs, mut ref_logprobs, mut values, raw_scores) = (floats(1), floats(2), floats(3), floats(4));

        // 4. Host post-processing.
        let completions: Vec<Completion> = (0..batch).map(|b| Completion::from_generated(products[b], &tokens[b * n..(b + 1) * n])).collect();
        let lengths: Vec<usize> = completions.iter().map(|c| c.tokens.len()).collect();
        for (b, &len) in lengths.iter().enumerate() {
            for t in len..n {
                logprobs[b * n + t] = 0.0;
                ref_logprobs[b * n + t] = 0.0;
                values[b * n + t] = 0.0;
            }
        }
        let scores: Vec<f32> = raw_scores
            .iter()
            .zip(&completions)
            .map(|(&s, c)| if c.ends() { s } else { s - self.config.missing_eos_penalty as f32 })
            .collect();
        let gold: Vec<f32> = completions.iter().map(|c| c.gold(&self.tokenizer).total).collect();
        let shaped = shape_batch(&scores, &logprobs, &ref_logprobs, &values, &lengths, n, self.kl_coef as f32, self.config.kl_estimator, self.config.gamma as f32, self.config.lam as f32);
        let mut rollout = Rollout {
            completions,
            lengths,
            logprobs,
            ref_logprobs,
            values,
            scores,
            gold,
            kl: shaped.kl,
            non_score: shaped.non_score,
            rewards: shaped.rewards,
            advantages: Vec::new(),
            advantages_raw: shaped.advantages,
            returns: shaped.returns,
            ratio: vec![1.0; batch * n],
            clipped: vec![false; batch * n],
            kl_coef: self.kl_coef,
        };
        let mask = rollout.mask();
        rollout.advantages = masked_whiten(&rollout.advantages_raw, &mask, true);
        for (name, values) in [("reward score", &rollout.scores), ("value", &rollout.values), ("advantage", &rollout.advantages)] {
            if values.iter().any(|v| !v.is_finite()) {
                return Err(LabError::NumericalFault { stage: "ppo".into(), step: self.iteration + 1, quantity: name.into() });
            }
        }
        let metrics = self.rollout_metrics(&rollout, &mask);
        self.rollout = Some(rollout);
        self.phase = Phase::Update { epoch: 0, minibatch: 0, order: self.shuffled(batch) };
        self.totals = UpdateTotals::default();
        Ok(metrics)
    }

    fn shuffled(&mut self, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        self.rng.shuffle(&mut order);
        order
    }

    fn rollout_metrics(&self, r: &Rollout, mask: &[bool]) -> Metrics {
        let n = MAX_COMPLETION;
        let per_sequence = |v: &[f32]| -> Vec<f32> { (0..r.lengths.len()).map(|b| v[b * n..(b + 1) * n].iter().sum()).collect() };
        let kl = mean(&per_sequence(&r.kl));
        let non_score = mean(&per_sequence(&r.non_score));
        let neg_logprobs: Vec<f32> = r.logprobs.iter().map(|l| -l).collect();
        let (values, returns): (Vec<f32>, Vec<f32>) = r.values.iter().zip(&r.returns).zip(mask).filter(|(_, m)| **m).map(|((v, ret), _)| (*v, *ret)).unzip();
        let scores = mean(&r.scores);
        let mut m = crate::rlhf::metrics::metrics([
            ("iteration", (self.iteration + 1) as f64),
            ("phase", 0.0),
            ("objective/scores", f64::from(scores)),
            ("objective/gold", f64::from(mean(&r.gold))),
            ("objective/kl", f64::from(kl)),
            ("objective/non_score_reward", f64::from(non_score)),
            ("objective/rlhf_reward", f64::from(scores + non_score)),
            ("objective/entropy", f64::from(mean(&per_sequence(&neg_logprobs)))),
            ("objective/kl_coef", self.kl_coef),
            ("val/mean_length", r.lengths.iter().sum::<usize>() as f64 / r.lengths.len() as f64),
            ("val/eos_fraction", r.completions.iter().filter(|c| c.ends()).count() as f64 / r.lengths.len() as f64),
        ]);
        let ev = explained_variance(&values, &returns);
        if ev.is_finite() {
            m.insert("val/explained_variance".into(), f64::from(ev));
        }
        m
    }

    /// Step 5: one minibatch of the clipped update.
    /// The rows of the next minibatch update, with everything their loss needs (`PpoShard`).
    fn next_minibatch(&self) -> Option<(Vec<usize>, PpoShard)> {
        let Phase::Update { minibatch, ref order, .. } = self.phase else { return None };
        let rollout = self.rollout.as_ref()?;
        let size = self.config.minibatch_size();
        let rows: Vec<usize> = order[minibatch * size..((minibatch + 1) * size).min(order.len())].to_vec();
        let n = MAX_COMPLETION;
        let pick = |v: &[f32]| -> Vec<f32> { rows.iter().flat_map(|&r| v[r * n..(r + 1) * n].iter().copied()).collect() };
        let mask: Vec<f32> = rows.iter().flat_map(|&r| (0..n).map(move |t| if t < rollout.lengths[r] { 1.0 } else { 0.0 })).collect();
        let shard = PpoShard {
            sequences: rows.iter().map(|&r| rollout.completions[r].sequence(&self.tokenizer)).collect(),
            targets: rows
                .iter()
                .map(|&r| {
                    let c = &rollout.completions[r];
                    (0..n).map(|t| c.tokens.get(t).copied().unwrap_or(EOS)).collect()
                })
                .collect(),
            old_logprobs: pick(&rollout.logprobs),
            advantages: pick(&rollout.advantages),
            returns: pick(&rollout.returns),
            old_values: pick(&rollout.values),
            tokens: mask.iter().sum(),
            mask,
            temperature: self.config.temperature as f32,
            cliprange: self.config.cliprange as f32,
            cliprange_value: self.config.cliprange_value as f32,
            vf_coef: self.config.vf_coef as f32,
            ent_coef: self.config.ent_coef as f32,
        };
        Some((rows, shard))
    }

    /// The next minibatch update split into `shards` (fewer if it has fewer rows) for a
    /// data-parallel step (`engine::data_parallel`): θ of policy and value model as one vector (one readback)
    /// and the helpers' rows. `None` when the next step is a rollout, which is taken whole.
    /// Changes nothing.
    pub async fn shard_plan(&self, shards: usize) -> Result<Option<(Vec<f32>, Vec<ShardWork<PpoShard>>)>> {
        self.refuse_if_done()?;
        let Some((rows, minibatch)) = self.next_minibatch() else { return Ok(None) };
        let shards = shards.clamp(1, rows.len());
        let model = self.model.policy.config();
        let work = (1..shards)
            .map(|i| ShardWork { step: self.updates, model: model.clone(), objective: minibatch.rows(shard_rows(rows.len(), shards, i)) })
            .collect();
        let theta = read_floats(flat_parameters(&self.model.valid())).await?;
        Ok(Some((theta, work)))
    }

    fn refuse_if_done(&self) -> Result<()> {
        if self.is_done() {
            return Err(LabError::NotReady(format!("all {} PPO iterations are done", self.config.iterations)));
        }
        Ok(())
    }

    /// One minibatch update (step 5) whose rows are split into `shards`: this trainer computes
    /// shard 0's gradient and terms, `helpers` resolves to the other shards' (`shard_plan`'s
    /// work, computed elsewhere meanwhile), and their sums make the update. With one shard and
    /// no helpers this is the whole update. A helper's failure or a non-finite value leaves the
    /// models as they were.
    pub async fn step_sharded<F: std::future::Future<Output = Result<Vec<ShardResult>>>>(&mut self, shards: usize, helpers: F) -> Result<Metrics> {
        self.refuse_if_done()?;
        match self.phase {
            Phase::Rollout if shards <= 1 => self.collect().await,
            Phase::Rollout => Err(LabError::InvalidInput("a rollout is taken whole: its step has no shards".into())),
            Phase::Update { .. } => self.update(shards, helpers).await,
        }
    }

    async fn update<F: std::future::Future<Output = Result<Vec<ShardResult>>>>(&mut self, shards: usize, helpers: F) -> Result<Metrics> {
        let (epoch, minibatch, order) = match &self.phase {
            Phase::Update { epoch, minibatch, order } => (*epoch, *minibatch, order.clone()),
            Phase::Rollout => unreachable!("update runs in the update phase"),
        };
        let (rows, whole) = self.next_minibatch().expect("a rollout precedes its update");
        let b = rows.len();
        let n = MAX_COMPLETION;
        let shards = shards.clamp(1, b);
        let own = whole.rows(shard_rows(b, shards, 0));
        let mut terms = own.terms(&self.model, &self.train_device);
        if self.poisoned_update == Some(self.updates + 1) {
            self.poisoned_update = None; // one fault: the retry is clean
            terms.loss = terms.loss.mul_scalar(f32::NAN);
        }
        let grads = GradientsParams::from_grads(terms.loss.backward(), &self.model);
        // The others' gradients summed on the host in shard order (one upload), their sums, and
        // their rows' ρ in row order.
        let gradient_len = crate::engine::optim::flat_gradient_len(&self.model, &grads);
        let helpers = helpers_part(helpers, shards, self.updates, gradient_len, UPDATE_SUMS, |i| shard_rows(b, shards, i).len() * n, &self.device).await?;
        let (extra, helper_sums, helper_ratios) = (helpers.gradient, helpers.sums, helpers.per_token);
        let before = (self.model.clone(), self.optim.clone());
        let lr = linear_decay(self.config.learning_rate, self.updates, self.total_updates());
        let (model, norm) = self.optim.step_with(lr, self.model.clone(), &grads, extra);
        self.model = model;

        let own_rows = own.rows_count();
        let mut scalars = terms.sums();
        scalars.push(norm.inner());
        scalars.push(terms.ratio.detach().inner().reshape([own_rows * n]));
        let read = read_scalars(scalars).await?;
        // The minibatch's sums: this shard's and the helpers'; ρ of every row, in row order.
        let sums: Vec<f32> = read[..UPDATE_SUMS].iter().zip(&helper_sums).map(|(own, others)| own + others).collect();
        let grad_norm = read[UPDATE_SUMS];
        let mut ratios = read[UPDATE_SUMS + 1..].to_vec();
        ratios.extend(helper_ratios);
        let real: Vec<bool> = whole.mask.iter().map(|&m| m > 0.0).collect();
        let (ratio_mean, ratio_var) = crate::rlhf::math::ppo::ratio_moments(&ratios, &real);
        let mut values = sums;
        values.extend([ratio_mean, ratio_var, grad_norm]);
        if let Some(quantity) = first_non_finite(&["loss", "policy loss", "value loss", "entropy", "clip fraction", "value clip fraction", "approx KL", "ratio", "ratio variance", "gradient norm"], &values) {
            (self.model, self.optim) = before;
            return Err(LabError::NumericalFault { stage: "ppo".into(), step: self.updates + 1, quantity: quantity.into() });
        }
        self.updates += 1;
        // Record each token's ratio and whether its clip was active, for the views.
        let epsilon = self.config.cliprange as f32;
        let rollout = self.rollout.as_mut().expect("a rollout precedes its update");
        for (i, &r) in rows.iter().enumerate() {
            for t in 0..rollout.lengths[r] {
                let rho = ratios[i * n + t];
                let adv = rollout.advantages[r * n + t];
                rollout.ratio[r * n + t] = rho;
                rollout.clipped[r * n + t] = crate::rlhf::math::ppo::surrogate_slope(rho, adv, epsilon) == 0.0;
            }
        }
        let mut m = crate::rlhf::metrics::metrics([
            ("iteration", (self.iteration + 1) as f64),
            ("phase", 1.0),
            ("epoch", (epoch + 1) as f64),
            ("minibatch", (minibatch + 1) as f64),
            ("update", self.updates as f64),
            ("grad_norm", f64::from(values[9])),
            ("lr", lr),
        ]);
        self.totals.count += 1.0;
        for (name, value) in UPDATE_METRICS.iter().zip(&values[..9]) {
            m.insert((*name).to_string(), f64::from(*value));
            *self.totals.sums.entry((*name).to_string()).or_default() += f64::from(*value);
        }

        // Advance; stop the epochs early if the policy moved too far (cleanrl's target_kl).
        let early_stop = self.config.early_stop_kl > 0.0 && f64::from(values[6]) > self.config.early_stop_kl;
        let (mut epoch, mut minibatch) = (epoch, minibatch + 1);
        if minibatch == self.config.mini_batches {
            minibatch = 0;
            epoch += 1;
        }
        if epoch == self.config.epochs || early_stop {
            self.finish_iteration(&mut m, early_stop);
        } else {
            let order = if minibatch == 0 { self.shuffled(self.config.batch_size) } else { order };
            self.phase = Phase::Update { epoch, minibatch, order };
        }
        Ok(m)
    }

    /// Step 6 and the iteration's averages.
    fn finish_iteration(&mut self, m: &mut Metrics, early_stop: bool) {
        for (name, sum) in &self.totals.sums {
            m.insert(format!("{name}_avg"), sum / self.totals.count);
        }
        m.insert("iteration_done".into(), 1.0);
        m.insert("early_stop".into(), f64::from(u8::from(early_stop)));
        if self.config.adaptive_kl {
            // Ziegler et al. (2019): β ← β·(1 + clip(KL/target − 1, −0.2, 0.2)·n/horizon).
            let rollout = self.rollout.as_ref().expect("a rollout precedes its update");
            let kl = mean(&(0..rollout.lengths.len()).map(|b| rollout.kl[b * MAX_COMPLETION..(b + 1) * MAX_COMPLETION].iter().sum()).collect::<Vec<f32>>());
            let error = (f64::from(kl) / self.config.target_kl - 1.0).clamp(-0.2, 0.2);
            self.kl_coef *= 1.0 + error * self.config.batch_size as f64 / self.config.kl_horizon;
        }
        self.iteration += 1;
        self.phase = Phase::Rollout;
    }

    /// The first completion of the current rollout that answers `product`'s prompt, if any (the
    /// GRPO group inspector shows its per-token advantages beside a group's).
    pub fn completion_for(&self, product: usize) -> Option<usize> {
        self.rollout.as_ref()?.completions.iter().position(|c| c.product == product)
    }

    /// One completion of the current rollout, token by token, for the inspector and the GAE
    /// stepper; and the batch's (ρ, Â) points for the clipping view.
    pub fn record(&self, index: usize) -> Result<RolloutRecord> {
        let r = self.rollout.as_ref().ok_or_else(|| LabError::NotReady("no rollout yet: run a PPO step first".into()))?;
        if index >= r.completions.len() {
            return Err(LabError::InvalidInput(format!("rollout has {} completions (asked for {index})", r.completions.len())));
        }
        let n = MAX_COMPLETION;
        let len = r.lengths[index];
        let row = |v: &[f32]| v[index * n..index * n + len].to_vec();
        let c = &r.completions[index];
        let values = row(&r.values);
        let rewards = row(&r.rewards);
        let mask = r.mask();
        let points: Vec<ClipPoint> = (0..r.ratio.len())
            .filter(|&i| mask[i])
            .map(|i| ClipPoint { ratio: r.ratio[i], advantage: r.advantages[i], clipped: r.clipped[i] })
            .collect();
        Ok(RolloutRecord {
            index,
            prompt: prompt_text(&self.tokenizer, c.product),
            tokens: c.tokens.iter().map(|&t| self.tokenizer.word(t).to_string()).collect(),
            score: r.scores[index],
            gold: r.gold[index],
            logprobs: row(&r.logprobs),
            ref_logprobs: row(&r.ref_logprobs),
            kl: row(&r.kl),
            non_score: row(&r.non_score),
            deltas: td_errors(&rewards, &values, self.config.gamma as f32),
            rewards,
            values,
            advantages_raw: row(&r.advantages_raw),
            advantages: row(&r.advantages),
            returns: row(&r.returns),
            ratio: row(&r.ratio),
            clipped: r.clipped[index * n..index * n + len].to_vec(),
            gamma: self.config.gamma as f32,
            lam: self.config.lam as f32,
            kl_coef: r.kl_coef as f32,
            cliprange: self.config.cliprange as f32,
            batch: r.completions.len(),
            points,
        })
    }
}

/// What a PPO snapshot carries besides the two models' weights and Adam's moments.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
struct PpoState {
    kl_coef: f64,
    iteration: usize,
    updates: usize,
    phase: Phase,
    rollout: Option<Rollout>,
    totals: UpdateTotals,
    rng: Rng,
    adam: crate::engine::optim::AdamCounters,
}

impl PpoTrainer {
    /// The trainer as bytes, mid-iteration included (the rollout in hand travels with it).
    pub async fn snapshot(&self, settings: serde_json::Value) -> Result<Vec<u8>> {
        let models = crate::engine::checkpoint::record_bytes(&self.model.valid()).await?;
        let (adam, moments) = self.optim.export().await?;
        let state = PpoState {
            kl_coef: self.kl_coef,
            iteration: self.iteration,
            updates: self.updates,
            phase: self.phase.clone(),
            rollout: self.rollout.clone(),
            totals: self.totals.clone(),
            rng: self.rng.clone(),
            adam,
        };
        let mut blobs = vec![models];
        blobs.extend(moments);
        Ok(crate::engine::snapshot::pack(&crate::engine::snapshot::Meta { stage: "ppo".into(), settings, state }, &blobs))
    }

    pub fn restore(&mut self, bytes: &[u8], settings: &serde_json::Value) -> Result<()> {
        let (state, blobs): (PpoState, _) = crate::engine::snapshot::unpack(bytes, "ppo", settings)?;
        let (models, moments) = blobs.split_first().ok_or_else(|| LabError::Checkpoint("the PPO snapshot has no weights".into()))?;
        let model = crate::engine::checkpoint::load_record(self.model.valid(), models)?.train();
        let mut optim = self.optim.clone();
        optim.import(&state.adam, moments, &self.device)?;
        self.model = model;
        self.optim = optim;
        self.kl_coef = state.kl_coef;
        self.iteration = state.iteration;
        self.updates = state.updates;
        self.phase = state.phase;
        self.rollout = state.rollout;
        self.totals = state.totals;
        self.rng = state.rng;
        Ok(())
    }
}

/// A (ρ, Â) point of the clipping view.
#[derive(Debug, Clone, Serialize)]
pub struct ClipPoint {
    pub ratio: f32,
    pub advantage: f32,
    pub clipped: bool,
}

/// One completion of a rollout, every per-token quantity of the page's §3–§6 in a row.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutRecord {
    pub index: usize,
    pub prompt: String,
    pub tokens: Vec<String>,
    pub score: f32,
    pub gold: f32,
    pub logprobs: Vec<f32>,
    pub ref_logprobs: Vec<f32>,
    pub kl: Vec<f32>,
    pub non_score: Vec<f32>,
    pub rewards: Vec<f32>,
    pub values: Vec<f32>,
    pub deltas: Vec<f32>,
    pub advantages_raw: Vec<f32>,
    pub advantages: Vec<f32>,
    pub returns: Vec<f32>,
    pub ratio: Vec<f32>,
    pub clipped: Vec<bool>,
    pub gamma: f32,
    pub lam: f32,
    pub kl_coef: f32,
    pub cliprange: f32,
    pub batch: usize,
    pub points: Vec<ClipPoint>,
}

/// Summary statistics of a set of completions, as the frontier and the comparison table use them.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyEvaluation {
    /// Mean reward-model score (None when there is no reward model yet).
    pub score: Option<f32>,
    pub gold: f32,
    /// Mean over completions of the summed per-token log π/π_ref (k1): an estimate of KL(π‖π_ref).
    pub kl: f32,
    pub kl_std_error: f32,
    pub mean_length: f32,
    pub eos_fraction: f32,
    pub completions: usize,
}

/// Steps 1–3 of an iteration on the device, for `batch` prompts (`prompts`, PROMPT_LEN ids each):
/// completions sampled from `policy`, scored by `reward` at their last real token (zeros without
/// one), and every slot's log-prob under the policy and π_ref at `temperature`. Nothing is read.
pub(super) struct DeviceRollout {
    /// [B, N] sampled ids, PAD after `<eos>`.
    pub generated: Tensor<2, Int>,
    /// [B, SEQ_LEN − 1]: prompt and completion, the models' inputs.
    pub inputs: Tensor<2, Int>,
    /// [B, N]: 1 at real tokens.
    pub real: Tensor<2>,
    pub logprobs: Tensor<2>,
    pub ref_logprobs: Tensor<2>,
    /// [B]
    pub scores: Tensor<1>,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn sample_on_device(policy: &Gpt, reference: &Gpt, reward: Option<&ScalarModel>, prompts: &[u32], batch: usize, temperature: f32, rng: &mut Rng, device: &Device) -> Result<DeviceRollout> {
    let options = SampleOptions { temperature, top_k: 0, max_new_tokens: MAX_COMPLETION };
    let generated = generate_on_device(policy, prompts, batch, options, rng, device)?; // [B, N]
    let sequences = Tensor::cat(vec![int_tensor(prompts, batch, PROMPT_LEN, device), generated.clone()], 1); // [B, SEQ_LEN]
    let inputs = sequences.clone().slice([0..batch, 0..SEQ_LEN - 1]);
    let is_pad = generated.clone().equal_elem(PAD as i32);
    // Gather at EOS where PAD sits, so every log-prob is an ordinary number; PAD is masked later.
    let targets = generated.clone().mask_fill(is_pad.clone(), EOS as i32);
    let real = is_pad.bool_not().float(); // [B, N]
    // The last real token of row b sits at P + length_b − 1: a one-hot row made on the device.
    let scores = match reward {
        Some(reward) => {
            let last = real.clone().sum_dim(1).add_scalar((PROMPT_LEN - 1) as f32); // [B, 1]
            let positions = float_tensor((0..SEQ_LEN).map(|i| i as f32).collect(), [1, SEQ_LEN], device);
            score_sequences(reward, sequences, positions.equal(last).float())
        }
        None => Tensor::zeros([batch], device),
    };
    let (logprobs, _) = completion_logprobs(policy, inputs.clone(), targets.clone(), temperature);
    let (ref_logprobs, _) = completion_logprobs(reference, inputs.clone(), targets, temperature);
    Ok(DeviceRollout { generated, inputs, real, logprobs, ref_logprobs, scores })
}

/// Evaluates a policy on `count` fresh prompts: RM score, gold utility, and the sequence KL to
/// π_ref measured the same way for every method (k1 summed over the sampled tokens, sampled at
/// temperature 1). One readback per batch of 64.
pub async fn evaluate_policy(policy: &Gpt, reference: &Gpt, reward: Option<&ScalarModel>, tokenizer: &Tokenizer, count: usize, seed: u64, device: &Device) -> Result<PolicyEvaluation> {
    let mut rng = Rng::derive(seed, "evaluate");
    let (mut scores, mut golds, mut kls, mut lengths, mut ends) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), 0usize);
    let n = MAX_COMPLETION;
    let mut left = count;
    while left > 0 {
        let batch = left.min(64);
        left -= batch;
        let products: Vec<usize> = (0..batch).map(|_| rng.below(PRODUCTS_COUNT)).collect();
        let prompts: Vec<u32> = products.iter().flat_map(|&p| prompt_tokens(tokenizer, p)).collect();
        let rollout = sample_on_device(policy, reference, reward, &prompts, batch, 1.0, &mut rng, device)?;
        let kl = ((rollout.logprobs - rollout.ref_logprobs) * rollout.real).sum_dim(1).reshape([batch]);
        count_readback();
        let data = Transaction::default()
            .register(rollout.generated)
            .register(rollout.scores)
            .register(kl)
            .execute_async()
            .await
            .map_err(|e| LabError::Device(format!("reading an evaluation: {e:?}")))?;
        let tokens: Vec<u32> = data[0].iter::<i64>().map(|t| t as u32).collect();
        scores.extend(data[1].iter::<f32>());
        kls.extend(data[2].iter::<f32>());
        for (b, &p) in products.iter().enumerate() {
            let c = Completion::from_generated(p, &tokens[b * n..(b + 1) * n]);
            golds.push(c.gold(tokenizer).total);
            lengths.push(c.tokens.len() as f32);
            ends += usize::from(c.ends());
        }
    }
    Ok(PolicyEvaluation {
        score: reward.map(|_| mean(&scores)),
        gold: mean(&golds),
        kl: mean(&kls),
        kl_std_error: (variance(&kls) / kls.len().max(1) as f32).sqrt(),
        mean_length: mean(&lengths),
        eos_fraction: ends as f32 / count.max(1) as f32,
        completions: count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::config::Preset;

    fn trainer(config: PpoConfig) -> PpoTrainer {
        let device = Device::flex();
        let tok = Tokenizer::new();
        let model_config = Preset::Micro.model(tok.vocab_size());
        let reference = Gpt::new(&model_config, &mut Rng::new(1), &device);
        let reward = ScalarModel::from_trunk(Gpt::new(&model_config, &mut Rng::new(2), &device), &device).shift_scores(0.3);
        PpoTrainer::new(&reference, &reward, &config, 3, &tok, &device).unwrap()
    }

    fn small() -> PpoConfig {
        PpoConfig { iterations: 2, batch_size: 8, mini_batches: 2, epochs: 2, learning_rate: 1e-3, ..PpoConfig::default() }
    }

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
            phases.push((m["phase"] as u8, m.get("iteration_done").is_some()));
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

    /// The helpers' results for the next update split in `shards`, each from its own worker.
    fn helpers(trainer: &PpoTrainer, shards: usize) -> Vec<ShardResult> {
        crate::engine::data_parallel::answers(pollster::block_on(trainer.shard_plan(shards)).unwrap().expect("an update is next"))
    }

    fn parameters(trainer: &PpoTrainer) -> Vec<f32> {
        crate::engine::data_parallel::parameter_values(&trainer.model.valid())
    }

    #[test]
    fn an_update_split_across_workers_is_the_whole_update() {
        // 8 completions in minibatches of 4, split in 2 and 3 shards (unequal) by turns; an
        // entropy bonus so that the first updates move the policy too.
        let config = PpoConfig { ent_coef: 0.01, ..small() };
        let (mut whole, mut split) = (trainer(config.clone()), trainer(config));
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
                    let results = helpers(&split, shards);
                    assert_eq!(results.len(), shards - 1);
                    pollster::block_on(split.step_sharded(shards, std::future::ready(Ok(results)))).unwrap()
                }
            };
            crate::engine::data_parallel::assert_same_metrics(&got, &expected, &[], split_updates);
            let worst = parameters(&whole).iter().zip(parameters(&split)).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "update {split_updates}: parameters differ by {worst}");
            let (a, b) = (whole.rollout().unwrap(), split.rollout().unwrap());
            assert!(a.ratio.iter().zip(&b.ratio).all(|(x, y)| (x - y).abs() < 1e-5), "the views' ρ differ");
            assert_eq!(a.clipped, b.clipped);
        }
        assert_eq!(split_updates, 8);
        // The policy did move: the last update's ρ is not 1 everywhere.
        assert!(split.rollout().unwrap().ratio.iter().any(|r| (r - 1.0).abs() > 1e-4));
    }

    #[test]
    fn a_failed_stale_or_malformed_helper_changes_nothing() {
        let mut t = trainer(small());
        // A rollout has no shards.
        let refused = pollster::block_on(t.step_sharded(2, std::future::ready(Ok(Vec::new())))).unwrap_err();
        assert!(refused.to_string().contains("taken whole"), "{refused}");
        pollster::block_on(t.step()).unwrap(); // rollout
        let stale = helpers(&t, 2);
        pollster::block_on(t.step()).unwrap(); // update 1
        let before = parameters(&t);
        let failed = pollster::block_on(t.step_sharded(2, std::future::ready(Err(LabError::InvalidInput("a helper worker failed: gone".into()))))).unwrap_err();
        assert!(failed.to_string().contains("gone"), "{failed}");
        let refused = pollster::block_on(t.step_sharded(2, std::future::ready(Ok(stale)))).unwrap_err();
        assert!(refused.to_string().contains("step 1, not step 2"), "{refused}");
        let mut short = helpers(&t, 2);
        short[0].per_token.pop();
        let refused = pollster::block_on(t.step_sharded(2, std::future::ready(Ok(short)))).unwrap_err();
        assert!(refused.to_string().contains("per-token values"), "{refused}");
        assert_eq!(parameters(&t), before);
        assert_eq!(t.updates, 1);
        // A helper refuses rows that do not fit the model.
        let (theta, mut work) = pollster::block_on(t.shard_plan(2)).unwrap().unwrap();
        work[0].objective.advantages.pop();
        let err = pollster::block_on(crate::engine::data_parallel::compute(work[0].step, &work[0].model, &work[0].objective, &theta, None)).map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("advantages"), "{err}");
        // The same update then goes through.
        let results = helpers(&t, 2);
        pollster::block_on(t.step_sharded(2, std::future::ready(Ok(results)))).unwrap();
        assert_eq!(t.updates, 2);
    }

    #[test]
    fn a_non_finite_update_rolls_back() {
        let mut t = trainer(small());
        t.poison_update(2);
        pollster::block_on(t.step()).unwrap(); // rollout
        pollster::block_on(t.step()).unwrap(); // update 1
        let before = t.policy();
        let err = pollster::block_on(t.step()).unwrap_err();
        assert!(matches!(err, LabError::NumericalFault { ref quantity, step: 2, .. } if quantity == "loss"), "{err}");
        let read = |m: &Gpt| -> Vec<f32> {
            m.forward(int_tensor(&[1, 5, 7], 1, 3, &Device::flex())).into_data().iter::<f32>().collect()
        };
        assert_eq!(read(&before), read(&t.policy()));
        t.poisoned_update = None;
        assert!(pollster::block_on(t.step()).is_ok());
    }
}
