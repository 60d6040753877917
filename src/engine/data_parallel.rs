//! Data-parallel training steps for the CPU backend: one batch, split across Web Workers.
//!
//! wasm in the page runs on one thread, and a CPU training step of the tiny GPT is ~60% matrix
//! products already at the 4-lane SIMD peak (docs/performance.md). Threads inside
//! one module would need nightly Rust, `+atomics` and a second `.wasm` (burn-wgpu does not build
//! with it), and burn's CPU backend parallelizes only the largest products. Splitting the *batch*
//! needs none of that: each extra Web Worker runs its own instance of the same module, and a step
//! is
//!
//! 1. the session's trainer draws its batch and splits it into shards (`ShardWork`), without
//!    changing its state, and hands the helpers θ (every parameter, one vector);
//! 2. each helper (`app::shard::GradientWorker`) loads θ and computes its shard's gradient; meanwhile the
//!    trainer computes shard 0's;
//! 3. the trainer adds the helpers' gradients, in shard order, to its own and takes one Adam step.
//!
//! Every shard's loss is divided by the *whole* batch's count of targets, so the sum of the
//! shards' gradients is the batch's gradient: the same step as on one worker, up to the order of
//! float additions (a test holds the two within 1e-5). The page owns the clock and the workers
//! (`www/shards.js`); Rust owns the bounded pieces.
//!
//! This file is the mechanism, for any model: θ as one vector, the rows of each shard, a
//! shard's gradient (`Shard`, `compute`), and the helpers' results checked and summed. Each
//! stage says what its shard computes (`rlhf::stages`); `app::shard` is the helper worker that
//! runs whichever it is sent.

use std::future::Future;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::engine::model::config::ModelConfig;
use crate::error::{LabError, Result};

/// One helper's part of a step: what shard `shard` of it computes, on a model of `model`'s shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardWork<S> {
    /// The step (0-based) it belongs to: a result for another step is refused.
    pub step: usize,
    /// The model θ is laid out for.
    pub model: ModelConfig,
    pub objective: S,
}

impl<S> ShardWork<S> {
    /// The same work with its objective wrapped (`into`), as a helper worker receives it.
    pub fn map<T>(self, wrap: impl FnOnce(S) -> T) -> ShardWork<T> {
        ShardWork { step: self.step, model: self.model, objective: wrap(self.objective) }
    }
}

/// What a stage's shard computes at θ: the model it needs and the terms of its loss.
pub trait Shard {
    /// The trained model(s) the loss is taken over, as one module (θ is its parameters).
    type Model: Module;
    /// A model of `config`'s shape, for θ to be loaded into: only the structure counts.
    fn blank(config: &ModelConfig, device: &Device) -> Self::Model;
    /// Refuses work a model of `config`'s shape could not compute.
    fn validate(&self, config: &ModelConfig) -> Result<()>;
    /// The shard's loss (its share of the step's: divided by the whole step's count), its share of
    /// the step's other sums (the loss is always the first sum, and is not repeated here), and
    /// per-token values that are not sums (`None`: none).
    fn terms(&self, model: &Self::Model, device: &Device) -> ShardTerms;
}

/// A shard's loss and what it reports beside its gradient.
pub struct ShardTerms {
    pub loss: Tensor<1>,
    pub sums: Vec<Tensor<1>>,
    pub per_token: Option<Tensor<1>>,
}

/// The gradient of `shard` (of step `step`, on a model of `config`'s shape) at parameters
/// `theta`, with its sums and per-token values, in one readback; and the model θ was loaded
/// into, for the next call (`cached`, when it has the same shape, is reused rather than built).
pub async fn compute<S: Shard>(step: usize, config: &ModelConfig, shard: &S, theta: &[f32], cached: Option<(ModelConfig, S::Model)>) -> Result<(ShardResult, (ModelConfig, S::Model))> {
    shard.validate(config)?;
    let device = Device::flex();
    let model = match cached {
        Some((shape, model)) if shape == *config => model,
        _ => S::blank(config, &device),
    };
    let model = with_flat_parameters(model, theta, &device)?.train();
    let terms = shard.terms(&model, &device.clone().autodiff());
    let grads = GradientsParams::from_grads(terms.loss.backward(), &model);
    let gradient = crate::engine::optim::flat_gradient(&model, &grads).ok_or_else(|| LabError::InvalidInput("the shard's loss reaches no parameter".into()))?;
    let sums_len = terms.sums.len();
    let per_token_len = terms.per_token.as_ref().map_or(0, |t| t.dims()[0]);
    let mut all = vec![gradient, terms.loss.detach().inner()];
    all.extend(terms.sums);
    all.extend(terms.per_token);
    let values = crate::engine::readback::read_scalars(all).await?;
    let (rest, per_token) = values.split_at(values.len() - per_token_len);
    let (gradient, sums) = rest.split_at(rest.len() - sums_len - 1);
    let result = ShardResult { step, gradient: gradient.to_vec(), sums: sums.to_vec(), per_token: per_token.to_vec() };
    Ok((result, (config.clone(), model.valid())))
}

/// A helper's answer: its shard's gradient (the layout of `optim::flat_gradient`), its shard's
/// share of the step's sums (masked LM: loss, correctly ranked targets; Bradley–Terry: loss,
/// correctly ranked pairs, chosen and rejected scores; DPO: loss, correctly ranked pairs, implicit
/// rewards and log-probs of chosen and rejected; PPO: `PpoTerms::sums`),
/// and values of its rows' tokens that are not sums (PPO: each slot's ρ, for the clipping view
/// and ρ's variance; empty for the masked LM).
#[derive(Debug, Clone, PartialEq)]
pub struct ShardResult {
    pub step: usize,
    pub gradient: Vec<f32>,
    pub sums: Vec<f32>,
    pub per_token: Vec<f32>,
}

/// The rows of a batch of `rows` that shard `index` of `shards` takes: contiguous, sizes
/// differing by at most one.
pub fn shard_rows(rows: usize, shards: usize, index: usize) -> std::ops::Range<usize> {
    let start = rows * index / shards;
    let end = rows * (index + 1) / shards;
    start..end
}

/// Every float parameter of `module`, in its visiting order, as one vector on its device.
pub fn flat_parameters<M: Module>(module: &M) -> Tensor<1> {
    struct Collect(Vec<Tensor<1>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let len = param.shape().num_elements();
            self.0.push(param.val().inner().reshape([len]));
        }
    }
    let mut collect = Collect(Vec::new());
    module.visit(&mut collect);
    crate::engine::concat::concatenate(collect.0, 0)
}

/// `module` with its float parameters replaced, in visiting order, by `values`.
pub fn with_flat_parameters<M: Module>(module: M, values: &[f32], device: &Device) -> Result<M> {
    let expected = module.num_params();
    if values.len() != expected {
        return Err(LabError::InvalidInput(format!("θ has {} values; the model has {expected} parameters", values.len())));
    }
    struct Load<'a> {
        values: &'a [f32],
        offset: usize,
        device: Device,
    }
    impl ModuleMapper for Load<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (id, value, mapper) = param.consume();
            let shape = value.shape();
            let len = shape.num_elements();
            let data = TensorData::new(self.values[self.offset..self.offset + len].to_vec(), shape);
            self.offset += len;
            let mut loaded = Tensor::from_data(data, &self.device);
            if value.is_require_grad() {
                loaded = loaded.require_grad();
            }
            Param::from_mapped_value(id, loaded, mapper)
        }
    }
    Ok(module.map(&mut Load { values, offset: 0, device: device.clone() }))
}

/// The helpers' gradients summed in shard order, checked against the step and the layout.
pub(crate) fn sum_results(results: &[ShardResult], step: usize, gradient_len: usize, sums_len: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    let mut gradient = vec![0.0f32; gradient_len];
    let mut sums = vec![0.0f32; sums_len];
    for (i, result) in results.iter().enumerate() {
        if result.step != step {
            return Err(LabError::InvalidInput(format!("shard {} answered for step {}, not step {}", i + 1, result.step + 1, step + 1)));
        }
        if result.gradient.len() != gradient_len || result.sums.len() != sums_len {
            return Err(LabError::InvalidInput(format!(
                "shard {} sent {} gradient values and {} sums; the step needs {gradient_len} and {sums_len}",
                i + 1,
                result.gradient.len(),
                result.sums.len()
            )));
        }
        for (total, g) in gradient.iter_mut().zip(&result.gradient) {
            *total += g;
        }
        for (total, s) in sums.iter_mut().zip(&result.sums) {
            *total += s;
        }
    }
    Ok((gradient, sums))
}

/// What the helpers of a split step add to the trainer's own shard.
pub(crate) struct HelpersPart {
    /// Their gradients summed, as one vector on the trainer's device (`None` without helpers).
    pub gradient: Option<Tensor<1>>,
    /// Their sums, added up (zeros without helpers).
    pub sums: Vec<f32>,
    /// Their per-token values, one shard after the other.
    pub per_token: Vec<f32>,
}

/// The helpers' part of step `step` split into `shards`: awaits `helpers`, checks that shards
/// 1.. each answered once, for this step, in the layout of `gradient_len` gradient values and
/// `sums_len` sums, with `per_token_len(i)` per-token values from shard i; then adds them up in
/// shard order. Every split trainer (SFT, reward model, PPO) takes its helpers' results here.
pub(crate) async fn helpers_part<F: Future<Output = Result<Vec<ShardResult>>>>(
    helpers: F,
    shards: usize,
    step: usize,
    gradient_len: usize,
    sums_len: usize,
    per_token_len: impl Fn(usize) -> usize,
    device: &Device,
) -> Result<HelpersPart> {
    let results = helpers.await?;
    if results.len() + 1 != shards {
        return Err(LabError::InvalidInput(format!("{} shards answered; the step has {}", results.len() + 1, shards)));
    }
    if results.is_empty() {
        return Ok(HelpersPart { gradient: None, sums: vec![0.0; sums_len], per_token: Vec::new() });
    }
    let (gradient, sums) = sum_results(&results, step, gradient_len, sums_len)?;
    let mut per_token = Vec::new();
    for (i, result) in results.iter().enumerate() {
        let expected = per_token_len(i + 1);
        if result.per_token.len() != expected {
            return Err(LabError::InvalidInput(format!("shard {} sent {} per-token values; its rows have {expected}", i + 1, result.per_token.len())));
        }
        per_token.extend_from_slice(&result.per_token);
    }
    Ok(HelpersPart { gradient: Some(Tensor::from_data(TensorData::new(gradient, [gradient_len]), device)), sums, per_token })
}

/// Test support: each helper's answer to a plan (`shard_plan`'s θ and work), each from a model of
/// its own, as the page's helper workers would give them.
#[cfg(test)]
pub(crate) fn answers<S: Shard>((theta, work): (Vec<f32>, Vec<ShardWork<S>>)) -> Vec<ShardResult> {
    work.iter().map(|w| pollster::block_on(compute(w.step, &w.model, &w.objective, &theta, None)).unwrap().0).collect()
}

/// Test support: a split step's metrics are the whole step's: the same names, each value within
/// 1e-5 (relative above 1), except the names in `shifted`, which may all move by one common
/// amount (within 1e-5). `step` names the step in a failure.
#[cfg(test)]
pub(crate) fn assert_same_metrics(got: &std::collections::BTreeMap<String, f64>, expected: &std::collections::BTreeMap<String, f64>, shifted: &[&str], step: usize) {
    assert_eq!(got.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "step {step}");
    let shift = shifted.first().map_or(0.0, |name| got[*name] - expected[*name]);
    for (name, value) in expected {
        let moved = if shifted.contains(&name.as_str()) { shift } else { 0.0 };
        let tolerance = 1e-5 * value.abs().max(1.0);
        assert!((got[name] - moved - value).abs() <= tolerance, "step {step}, {name}: {} split vs {value} whole", got[name]);
    }
}

/// Test support: every parameter's value, in visiting order.
#[cfg(test)]
pub(crate) fn parameter_values<M: Module>(module: &M) -> Vec<f32> {
    flat_parameters(module).into_data().iter::<f32>().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::Gpt;
    use crate::engine::model::config::Preset;
    use crate::rng::Rng;

    #[test]
    fn shards_cover_the_rows_once_in_order() {
        for rows in [1, 2, 7, 16, 17] {
            for shards in 1..=rows.min(5) {
                let all: Vec<usize> = (0..shards).flat_map(|i| shard_rows(rows, shards, i)).collect();
                assert_eq!(all, (0..rows).collect::<Vec<_>>(), "{rows} rows in {shards} shards");
                let sizes: Vec<usize> = (0..shards).map(|i| shard_rows(rows, shards, i).len()).collect();
                assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "{sizes:?}");
            }
        }
    }

    #[test]
    fn flat_parameters_round_trip() {
        let device = Device::flex();
        let a = Gpt::new(&Preset::Micro.model(20), &mut Rng::new(1), &device);
        let b = Gpt::new(&Preset::Micro.model(20), &mut Rng::new(2), &device);
        let theta: Vec<f32> = flat_parameters(&a).into_data().iter::<f32>().collect();
        assert_eq!(theta.len(), a.num_params());
        let loaded = with_flat_parameters(b, &theta, &device).unwrap();
        let again: Vec<f32> = flat_parameters(&loaded).into_data().iter::<f32>().collect();
        assert_eq!(theta, again);
        let short = with_flat_parameters(loaded, &theta[1..], &device).err().unwrap();
        assert!(short.to_string().contains("parameters"), "{short}");
    }

    #[test]
    fn results_for_another_step_or_layout_are_refused() {
        let ok = ShardResult { step: 3, gradient: vec![1.0, 2.0], sums: vec![0.5], per_token: Vec::new() };
        let (g, s) = sum_results(&[ok.clone(), ok.clone()], 3, 2, 1).unwrap();
        assert_eq!((g, s), (vec![2.0, 4.0], vec![1.0]));
        assert!(sum_results(std::slice::from_ref(&ok), 4, 2, 1).unwrap_err().to_string().contains("step 4"));
        assert!(sum_results(&[ok], 3, 3, 1).unwrap_err().to_string().contains("3 and 1"));
    }
}
