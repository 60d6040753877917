//! Adam over one flat vector: every parameter's gradient and value are concatenated, updated by a
//! handful of elementwise kernels, and split back into the parameters.
//!
//! burn's optimizer runs Adam parameter by parameter — ~14 kernels for each of the tiny GPT's 36
//! parameter tensors, about 500 of a training step's ~900 dispatches. On WebGPU each dispatch
//! costs a fixed price (tens of µs on a real GPU, ~6 ms on SwiftShader), so the count is the
//! step's cost: here the update is two concatenations and ~10 kernels, whatever the model. The
//! gradient's global norm falls out of the same flat vector.
//!
//! The parameters a step returns are views into its flat θ, which the optimizer keeps. The next
//! step starts from that θ instead of concatenating the parameters again, which on WebGPU in the
//! page costs about one slice-assign per parameter tensor (a tiny GPT's step: 452 → 429
//! dispatches; natively, burn's fusion writes the concatenation without them). It does so only
//! when the module brings the same parameters (ids and sizes) with gradients; `import`, which
//! always comes with a restored model, forgets it.
//!
//! Adam (Kingma & Ba, 2015), without weight decay, as `burn::optim::AdamW` with decay 0:
//! m ← β₁m + (1 − β₁)g,  v ← β₂v + (1 − β₂)g²,  θ ← θ − lr·m̂/(√v̂ + ε).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;

use crate::concat::concatenate;

#[derive(Debug, Clone)]
pub struct FlatAdam {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    moment_1: Option<Tensor<1>>,
    moment_2: Option<Tensor<1>>,
    time: i32,
    /// The last step's θ and which parameter each stretch of it is: what the module's
    /// parameters are views of, while the module is the one the last step returned.
    theta: Option<(Tensor<1>, Vec<(ParamId, usize)>)>,
}

impl Default for FlatAdam {
    fn default() -> Self {
        Self { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-8, moment_1: None, moment_2: None, time: 0, theta: None }
    }
}

/// One parameter's place in the flat vector.
struct Slot {
    id: ParamId,
    start: usize,
    len: usize,
}

/// Every parameter of a module that has a gradient, in the module's visiting order: the layout
/// of the flat vectors (θ, gradient, moments).
struct Gather<'a> {
    grads: &'a GradientsParams,
    slots: Vec<Slot>,
    values: Vec<Tensor<1>>,
    gradients: Vec<Tensor<1>>,
    offset: usize,
}

impl<'a> Gather<'a> {
    fn new<M: Module>(module: &M, grads: &'a GradientsParams) -> Self {
        let mut gather = Gather { grads, slots: Vec::new(), values: Vec::new(), gradients: Vec::new(), offset: 0 };
        module.visit(&mut gather);
        gather
    }
}

impl ModuleVisitor for Gather<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(grad) = self.grads.get::<D>(param.id) else { return };
        let len = param.shape().num_elements();
        self.values.push(param.val().inner().reshape([len]));
        self.gradients.push(grad.reshape([len]));
        self.slots.push(Slot { id: param.id, start: self.offset, len });
        self.offset += len;
    }
}

/// The gradient as one flat vector, in the layout `FlatAdam` updates (`None`: no parameter has
/// one). What a helper of a data-parallel step sends back (`shard.rs`).
pub fn flat_gradient<M: Module>(module: &M, grads: &GradientsParams) -> Option<Tensor<1>> {
    let gather = Gather::new(module, grads);
    (!gather.gradients.is_empty()).then(|| concatenate(gather.gradients, 0))
}

/// How many values `flat_gradient` would give.
pub fn flat_gradient_len<M: Module>(module: &M, grads: &GradientsParams) -> usize {
    Gather::new(module, grads).offset
}

/// The optimizer's state as plain data: the step count and the two moment vectors (f32 bytes).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AdamCounters {
    pub time: i32,
    pub has_moments: bool,
}

impl FlatAdam {
    /// Reads the moments (one readback each) for a snapshot.
    pub async fn export(&self) -> crate::Result<(AdamCounters, Vec<Vec<u8>>)> {
        let mut blobs = Vec::new();
        if let (Some(m), Some(v)) = (&self.moment_1, &self.moment_2) {
            blobs.push(crate::snapshot::vector_bytes(m.clone()).await?);
            blobs.push(crate::snapshot::vector_bytes(v.clone()).await?);
        }
        Ok((AdamCounters { time: self.time, has_moments: !blobs.is_empty() }, blobs))
    }

    /// Restores what `export` wrote; `blobs` are the two moment vectors when it had them.
    /// The model restored with it is new to the optimizer: its kept θ is forgotten.
    pub fn import(&mut self, counters: &AdamCounters, blobs: &[Vec<u8>], device: &Device) -> crate::Result<()> {
        self.time = counters.time;
        self.theta = None;
        if counters.has_moments {
            let [m, v] = blobs else { return Err(crate::LabError::Checkpoint("the optimizer state is incomplete".into())) };
            self.moment_1 = Some(crate::snapshot::vector_from_bytes(m, device)?);
            self.moment_2 = Some(crate::snapshot::vector_from_bytes(v, device)?);
        } else {
            self.moment_1 = None;
            self.moment_2 = None;
        }
        Ok(())
    }

    /// Updates every parameter of `module` that has a gradient; returns the module and the
    /// gradients' global L2 norm (a [1]-tensor on the device, not read).
    ///
    /// `module` is the one the previous step returned, or one with other parameter ids, or one
    /// restored together with this optimizer (`import`): parameters changed behind the
    /// optimizer's back under the same ids would be overwritten by its kept θ.
    pub fn step<M: Module>(&mut self, lr: f64, module: M, grads: &GradientsParams) -> (M, Tensor<1>) {
        self.step_with(lr, module, grads, None)
    }

    /// `step` with `extra` added to the flat gradient first: the summed gradients of the other
    /// shards of a data-parallel step (`shard.rs`), in the layout `flat_gradient` gives.
    pub fn step_with<M: Module>(&mut self, lr: f64, module: M, grads: &GradientsParams, extra: Option<Tensor<1>>) -> (M, Tensor<1>) {
        let gather = Gather::new(&module, grads);
        if gather.slots.is_empty() {
            let device = Device::flex();
            return (module, Tensor::zeros([1], &device));
        }
        let layout: Vec<(ParamId, usize)> = gather.slots.iter().map(|s| (s.id, s.len)).collect();
        let theta = match self.theta.take() {
            Some((theta, kept)) if kept == layout => theta,
            _ => concatenate(gather.values, 0),
        };
        let g = concatenate(gather.gradients, 0);
        let g = match extra {
            Some(extra) => g + extra,
            None => g,
        };
        let norm = g.clone().square().sum().sqrt();

        self.time += 1;
        let m = match self.moment_1.take() {
            Some(m) => m.mul_scalar(self.beta_1) + g.clone().mul_scalar(1.0 - self.beta_1),
            None => g.clone().mul_scalar(1.0 - self.beta_1),
        };
        let v = match self.moment_2.take() {
            Some(v) => v.mul_scalar(self.beta_2) + g.square().mul_scalar(1.0 - self.beta_2),
            None => g.square().mul_scalar(1.0 - self.beta_2),
        };
        // θ − lr·m̂/(√v̂ + ε), with the bias corrections folded into scalars.
        let m_scale = lr / (1.0 - f64::from(self.beta_1).powi(self.time));
        let v_scale = 1.0 / (1.0 - f64::from(self.beta_2).powi(self.time));
        let update = m.clone().mul_scalar(m_scale).div(v.clone().mul_scalar(v_scale).sqrt().add_scalar(self.epsilon));
        let theta = theta - update;
        self.moment_1 = Some(m);
        self.moment_2 = Some(v);
        self.theta = Some((theta.clone(), layout));

        struct Scatter {
            theta: Tensor<1>,
            slots: std::vec::IntoIter<Slot>,
            next: Option<Slot>,
        }
        impl ModuleMapper for Scatter {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                if self.next.as_ref().is_none_or(|s| s.id != param.id) {
                    return param; // no gradient: unchanged
                }
                let slot = self.next.take().expect("checked above");
                self.next = self.slots.next();
                let (id, value, mapper) = param.consume();
                let require_grad = value.is_require_grad();
                let updated = self.theta.clone().slice([slot.start..slot.start + slot.len]).reshape(value.shape());
                let mut updated = Tensor::from_inner(updated);
                if require_grad {
                    updated = updated.require_grad();
                }
                Param::from_mapped_value(id, updated, mapper)
            }
        }
        let mut slots = gather.slots.into_iter();
        let next = slots.next();
        let module = module.map(&mut Scatter { theta, slots, next });
        (module, norm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Preset;
    use crate::model::Gpt;
    use crate::rng::Rng;
    use burn::optim::AdamWConfig;
    use burn::tensor::TensorData;

    fn loss(model: &Gpt, device: &Device) -> Tensor<1> {
        let tokens = Tensor::<2, Int>::from_data(TensorData::new(vec![1i32, 5, 7, 9, 11, 13, 2, 4], [2, 4]), device);
        model.forward(tokens).square().mean()
    }

    fn logits(model: &Gpt) -> Vec<f32> {
        let tokens = Tensor::<2, Int>::from_data(TensorData::new(vec![1i32, 5, 7, 9], [1, 4]), &Device::flex());
        model.valid().forward(tokens).into_data().iter::<f32>().collect()
    }

    #[test]
    fn matches_burns_adam_step_for_step() {
        let device = Device::flex().autodiff();
        let start = Gpt::new(&Preset::Micro.model(20), &mut Rng::new(1), &Device::flex()).train();
        let (mut ours, mut theirs) = (start.clone(), start);
        let mut flat = FlatAdam::default();
        let mut burns = AdamWConfig::new().with_weight_decay(0.0).with_epsilon(1e-8).init();
        for step in 0..5 {
            let grads = GradientsParams::from_grads(loss(&ours, &device).backward(), &ours);
            let (next, norm) = flat.step(1e-2, ours, &grads);
            ours = next;
            let grads = GradientsParams::from_grads(loss(&theirs, &device).backward(), &theirs);
            theirs = burns.step(1e-2, theirs, grads);
            let (a, b) = (logits(&ours), logits(&theirs));
            let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-4, "step {step}: logits differ by {worst}");
            assert!(norm.into_data().iter::<f32>().next().unwrap() > 0.0);
        }
    }

    /// A model restored with the optimizer's state (a rollback or a resumed snapshot) shares its
    /// parameter ids with the θ the optimizer kept; `import` must make the next step start from
    /// the restored values, not from that θ.
    #[test]
    fn import_forgets_the_kept_theta() {
        let device = Device::flex().autodiff();
        let start = Gpt::new(&Preset::Micro.model(20), &mut Rng::new(1), &Device::flex()).train();
        let step = |optim: &mut FlatAdam, model: Gpt| {
            let grads = GradientsParams::from_grads(loss(&model, &device).backward(), &model);
            optim.step(1e-2, model, &grads).0
        };
        let mut optim = FlatAdam::default();
        let first = step(&mut optim, start);
        let (counters, moments) = pollster::block_on(optim.export()).unwrap();
        let _second = step(&mut optim, first.clone()); // the kept θ is now the second step's

        optim.import(&counters, &moments, &Device::flex()).unwrap();
        let resumed = step(&mut optim, first.clone());
        let mut fresh = FlatAdam::default();
        fresh.import(&counters, &moments, &Device::flex()).unwrap();
        let expected = step(&mut fresh, first);
        assert_eq!(logits(&resumed), logits(&expected));
    }
}
