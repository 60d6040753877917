//! One trainer for the supervised stages: SFT (and the base model's pretraining), the reward
//! model and DPO are each an objective (`Objective`) on the same machine, and their files hold
//! just what differs:
//!
//! ```text
//!           model  a batch's row          the loss                    held-out evaluation
//! SFT       π_θ    a demonstration        masked cross-entropy        loss, accuracy, perplexity
//! pretrain  π_θ    a fresh free-text one  cross-entropy, every token  the same
//! reward    r_φ    a labeled pair         Bradley–Terry               loss, accuracy, gold correlation
//! DPO       π_θ    a strict preference    −log σ(β·Δ implicit reward) loss, accuracy
//! ```
//!
//! One step, whatever the objective:
//!  1. draw the next batch (the cursor advances; a failed step puts it back, so the retry draws
//!     the same batch) and split it into shards (`engine::data_parallel`): this trainer computes
//!     shard 0 with the same `Shard::terms` a helper worker runs on the others;
//!  2. add the helpers' gradients, in shard order, to its own; one Adam step at the linearly
//!     decayed rate;
//!  3. at the first step, every `eval_every` steps and at the last, the held-out evaluation;
//!  4. one readback: the loss and the shards' sums, the gradient norm, the held-out values.
//!     A non-finite one puts the model, the optimizer and the cursor back and is named.
//!
//! A snapshot carries the weights, Adam's moments and counters, the step and the cursor.

mod snapshot;
#[cfg(test)]
pub(crate) mod testing;

use std::future::Future;
use std::ops::Range;

use burn::optim::GradientsParams;
use burn::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{first_non_finite, linear_decay, Batches};
use crate::engine::data_parallel::{flat_parameters, helpers_part, shard_rows, Shard, ShardResult, ShardWork};
use crate::engine::model::config::ModelConfig;
use crate::engine::optim::FlatAdam;
use crate::engine::readback::{read_floats, read_scalars};
use crate::error::{LabError, Result};
use crate::rlhf::metrics::{metrics, Metrics};

/// How a stage names itself in its snapshots and its errors.
#[derive(Debug, Clone, Copy)]
pub struct Names {
    /// The snapshot's stage (`engine::snapshot::Meta::stage`): `sft`, `reward`, `dpo`.
    pub stage: &'static str,
    /// The stage in "the … snapshot has no weights".
    pub title: &'static str,
    /// The stage a numerical fault names.
    pub fault: &'static str,
    /// What "all N … are done" counts.
    pub steps: &'static str,
    /// The loss and the shard's sums, in `Shard::terms`' order: a non-finite one is named so.
    pub sums: &'static [&'static str],
}

/// The model a stage trains: its shard's model.
pub type Model<O> = <<O as Objective>::Shard as Shard>::Model;

/// What a supervised stage chooses: its data, its shard of a step, its held-out evaluation and
/// its metrics.
pub trait Objective {
    /// A share of a step's batch, as a helper worker computes it (and this trainer shard 0).
    type Shard: Shard;
    /// One row of a batch: a sequence, a pair.
    type Row: Clone;
    /// Where the training data stands: what a step advances, a failed step puts back and a
    /// snapshot carries (its fields beside `step` and `adam`, as each stage wrote them).
    type Cursor: Clone + Serialize + DeserializeOwned;
    const NAMES: Names;

    /// The shape of `model`, for a helper to build one like it.
    fn shape(model: &Model<Self>) -> ModelConfig;
    /// The next `size` rows (fewer at an epoch's end), advancing `cursor`.
    fn draw(&self, cursor: &mut Self::Cursor, size: usize) -> Vec<Self::Row>;
    /// The shard of `batch` that takes `rows`: its loss is its share of the whole batch's.
    fn shard(&self, batch: &[Self::Row], rows: Range<usize>) -> Self::Shard;
    /// Held-out rows; with none, no step evaluates.
    fn held_out_len(&self) -> usize;
    /// The held-out evaluation of `model`, as device tensors for the step's readback.
    fn held_out(&self, model: &Model<Self>, device: &Device) -> Vec<Tensor<1>>;
    /// The step's metrics beside `step`, `grad_norm` and `lr`: from `sums`, the batch's loss and
    /// sums (every shard's, added up), and `held_out`, the values of `held_out` if it ran.
    fn report(&self, batch: &[Self::Row], cursor: &Self::Cursor, sums: &[f32], held_out: Option<&[f32]>, out: &mut Metrics);
}

/// A supervised run's rate and length.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// The first step's rate, decayed linearly to 0 (`linear_decay`).
    pub learning_rate: f64,
    pub batch_size: usize,
    pub total_steps: usize,
    /// The held-out evaluation's period, in steps.
    pub eval_every: usize,
}

impl Schedule {
    /// `total_steps` steps, evaluated every tenth of the run.
    pub fn tenths(learning_rate: f64, batch_size: usize, total_steps: usize) -> Self {
        Self { learning_rate, batch_size, total_steps, eval_every: (total_steps / 10).max(1) }
    }

    /// `epochs` passes over `rows` rows, evaluated every tenth of the run.
    pub fn epochs(learning_rate: f64, batch_size: usize, epochs: usize, rows: usize) -> Self {
        Self::tenths(learning_rate, batch_size, epochs * Batches::steps_per_epoch(rows, batch_size))
    }
}

/// Trains `Model<O>` on `O`'s objective, one bounded step at a time.
pub struct SupervisedTrainer<O: Objective> {
    pub(in crate::rlhf::stages) model: Model<O>,
    optim: FlatAdam,
    pub(in crate::rlhf::stages) objective: O,
    cursor: O::Cursor,
    schedule: Schedule,
    step: usize,
    pub(in crate::rlhf::stages) device: Device,
    train_device: Device,
    /// Test hook: the step whose loss is replaced by NaN (see `poison_step`).
    poisoned_step: Option<usize>,
}

impl<O: Objective> SupervisedTrainer<O> {
    /// `model` (a fresh copy: its own parameter ids) trained on `objective` from `cursor`.
    pub(in crate::rlhf::stages) fn start(model: Model<O>, objective: O, cursor: O::Cursor, schedule: Schedule, device: &Device) -> Self {
        Self {
            model: model.train(),
            optim: FlatAdam::default(),
            objective,
            cursor,
            schedule,
            step: 0,
            device: device.clone(),
            train_device: device.clone().autodiff(),
            poisoned_step: None,
        }
    }

    pub fn step_count(&self) -> usize {
        self.step
    }

    pub fn total_steps(&self) -> usize {
        self.schedule.total_steps
    }

    pub fn is_done(&self) -> bool {
        self.step >= self.schedule.total_steps
    }

    pub fn held_out_len(&self) -> usize {
        self.objective.held_out_len()
    }

    /// The model as it is now, without its autodiff graph.
    pub fn model(&self) -> Model<O> {
        self.model.valid()
    }

    /// Fault injection for tests: step `step` (1-based) computes a NaN loss, as a diverging run
    /// would. The step must detect it in its one readback, roll back and report it.
    pub fn poison_step(&mut self, step: usize) {
        self.poisoned_step = Some(step);
    }

    fn refuse_if_done(&self) -> Result<()> {
        if self.is_done() {
            return Err(LabError::NotReady(format!("all {} {} are done", self.schedule.total_steps, O::NAMES.steps)));
        }
        Ok(())
    }

    /// One optimizer step (and, at the first, every `eval_every` steps and at the last, a
    /// held-out evaluation). Reads the device once. A non-finite loss or gradient leaves the
    /// model as it was.
    pub async fn step(&mut self) -> Result<Metrics> {
        self.step_sharded(1, std::future::ready(Ok(Vec::new()))).await
    }

    /// The next step split into `shards` (fewer if the batch has fewer rows) for a data-parallel
    /// step (`engine::data_parallel`): θ, every parameter as one vector (one readback), and the
    /// work of shards 1.., for the helpers. Changes nothing: `step_sharded` with as many shards
    /// then draws the same batch.
    pub async fn shard_plan(&self, shards: usize) -> Result<(Vec<f32>, Vec<ShardWork<O::Shard>>)> {
        self.refuse_if_done()?;
        let batch = self.objective.draw(&mut self.cursor.clone(), self.schedule.batch_size);
        let shards = shards.clamp(1, batch.len());
        let model = O::shape(&self.model);
        let work = (1..shards).map(|i| ShardWork { step: self.step, model: model.clone(), objective: self.objective.shard(&batch, shard_rows(batch.len(), shards, i)) }).collect();
        let theta = read_floats(flat_parameters(&self.model.valid())).await?;
        Ok((theta, work))
    }

    /// One optimizer step whose batch is split into `shards`: this trainer computes shard 0's
    /// gradient, `helpers` resolves to the other shards' results (`shard_plan`'s work, computed
    /// elsewhere meanwhile), and their sum makes the step. With one shard and no helpers, this is
    /// `step`. Reads the device once; a helper's failure or a non-finite value leaves the model
    /// as it was.
    pub async fn step_sharded<F: Future<Output = Result<Vec<ShardResult>>>>(&mut self, shards: usize, helpers: F) -> Result<Metrics> {
        self.refuse_if_done()?;
        let position = self.cursor.clone(); // a failed step rewinds to it: the retry draws the same batch
        let batch = self.objective.draw(&mut self.cursor, self.schedule.batch_size);
        let shards = shards.clamp(1, batch.len());
        let own = self.objective.shard(&batch, shard_rows(batch.len(), shards, 0)).terms(&self.model, &self.train_device);
        let mut loss = own.loss;
        if self.poisoned_step == Some(self.step + 1) {
            self.poisoned_step = None; // one fault, as a spike would be: the retry is clean
            loss = loss.mul_scalar(f32::NAN);
        }
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        // The others' gradients, summed on the host in shard order: one upload.
        let gradient_len = crate::engine::optim::flat_gradient_len(&self.model, &grads);
        let sums = O::NAMES.sums.len();
        let helpers = match helpers_part(helpers, shards, self.step, gradient_len, sums, |_| 0, &self.device).await {
            Ok(part) => part,
            Err(e) => {
                self.cursor = position;
                return Err(e);
            }
        };
        let before = (self.model.clone(), self.optim.clone());
        let lr = linear_decay(self.schedule.learning_rate, self.step, self.schedule.total_steps);
        let (model, norm) = self.optim.step_with(lr, self.model.clone(), &grads, helpers.gradient);
        self.model = model;
        self.step += 1;

        let every = self.schedule.eval_every;
        let evaluate = self.objective.held_out_len() > 0 && (self.step == 1 || self.step.is_multiple_of(every) || self.is_done());
        // The step's one readback: the loss, the sums, the gradient norm, the held-out values.
        let mut scalars = vec![loss.detach().inner()];
        scalars.extend(own.sums);
        scalars.push(norm.inner());
        if evaluate {
            scalars.extend(self.objective.held_out(&self.model.valid(), &self.device));
        }
        let mut values = read_scalars(scalars).await?;
        // The batch's sums: this shard's and the helpers'.
        for (value, others) in values.iter_mut().zip(&helpers.sums) {
            *value += others;
        }
        let names: Vec<&str> = O::NAMES.sums.iter().copied().chain(["gradient norm"]).collect();
        if let Some(quantity) = first_non_finite(&names, &values) {
            (self.model, self.optim, self.cursor) = (before.0, before.1, position);
            self.step -= 1;
            return Err(LabError::NumericalFault { stage: O::NAMES.fault.into(), step: self.step + 1, quantity: quantity.into() });
        }
        let mut out = metrics([("step", self.step as f64), ("grad_norm", f64::from(values[sums])), ("lr", lr)]);
        self.objective.report(&batch, &self.cursor, &values[..sums], evaluate.then(|| &values[sums + 1..]), &mut out);
        Ok(out)
    }
}

/// The cursor of a fixed training set read in shuffled batches (the reward model's, DPO's).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Shuffled {
    batches: Batches,
}

impl Shuffled {
    pub(crate) fn new(batches: Batches) -> Self {
        Self { batches }
    }

    /// The next `size` rows of `train` (fewer at an epoch's end).
    pub fn next<T: Clone>(&mut self, train: &[T], size: usize) -> Vec<T> {
        self.batches.next(size).into_iter().map(|i| train[i].clone()).collect()
    }

    /// Completed passes over the training set.
    pub fn epochs_done(&self) -> usize {
        self.batches.epochs_done
    }
}
