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
//!
//! On a GPU that update is the ~10 elementwise kernels above, which burn's fusion joins. On the
//! CPU backend each would be a pass over the whole of θ, with a new vector each: the update
//! and the gradient's norm took ~0.9 ms of a ~12 ms step of the tiny GPT in the page (profile,
//! 2026-12-04), on the split step's serial tail. There it is one pass (`adam_slices`).

use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;

use crate::engine::concat::concatenate;

/// One Adam step's scalars, the bias corrections folded into two scales:
/// lr·m̂ = m·`step_scale` with `step_scale` = lr/(1 − β₁ᵗ), and v̂ = v·`v_scale` with
/// `v_scale` = 1/(1 − β₂ᵗ).
#[derive(Debug, Clone, Copy)]
pub struct AdamScalars {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    pub step_scale: f32,
    pub v_scale: f32,
}

/// One Adam step on flat vectors of one length, in one pass: θ, m and v after it, written to the
/// outputs, and Σg², the squared norm of the gradient. Each value is rounded as the tensor
/// operations of `OptimizerOps::adam_update`'s default body round it, in the same order.
#[allow(clippy::too_many_arguments)]
pub fn adam_slices(theta: &[f32], gradient: &[f32], moment_1: &[f32], moment_2: &[f32], s: AdamScalars, theta_out: &mut [f32], moment_1_out: &mut [f32], moment_2_out: &mut [f32]) -> f32 {
    let n = theta.len();
    assert!(gradient.len() == n && moment_1.len() == n && moment_2.len() == n && theta_out.len() == n && moment_1_out.len() == n && moment_2_out.len() == n, "adam_slices: vectors of one length");
    let (keep_1, keep_2) = (1.0 - s.beta_1, 1.0 - s.beta_2);
    for i in 0..n {
        let g = gradient[i];
        let m = moment_1[i] * s.beta_1 + g * keep_1;
        let v = moment_2[i] * s.beta_2 + g * g * keep_2;
        theta_out[i] = theta[i] - m * s.step_scale / ((v * s.v_scale).sqrt() + s.epsilon);
        moment_1_out[i] = m;
        moment_2_out[i] = v;
    }
    crate::engine::cpu::math::lane_sum(gradient, gradient, gradient, |g, _, _| g * g)
}

/// θ, m and v after an Adam step, and ‖g‖ as a [1] tensor.
type Updated<B> = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

/// `adam_slices` in burn's tensor operations.
fn adam_in_operations<B: Backend>(theta: FloatTensor<B>, gradient: FloatTensor<B>, moment_1: FloatTensor<B>, moment_2: FloatTensor<B>, s: AdamScalars) -> Updated<B> {
    let squared = B::float_mul(gradient.clone(), gradient.clone());
    let norm = B::float_sqrt(B::float_sum(squared.clone()));
    let m = B::float_add(B::float_mul_scalar(moment_1, s.beta_1.into()), B::float_mul_scalar(gradient, (1.0 - s.beta_1).into()));
    let v = B::float_add(B::float_mul_scalar(moment_2, s.beta_2.into()), B::float_mul_scalar(squared, (1.0 - s.beta_2).into()));
    let denominator = B::float_add_scalar(B::float_sqrt(B::float_mul_scalar(v.clone(), s.v_scale.into())), s.epsilon.into());
    let update = B::float_div(B::float_mul_scalar(m.clone(), s.step_scale.into()), denominator);
    (B::float_sub(theta, update), m, v, norm)
}

/// Adam's update of flat vectors, per backend. The default body is burn's operations (GPUs,
/// where fusion joins them); the CPU backend runs `adam_slices`. Called on tensors without
/// autodiff: the optimizer works on the parameters' values.
#[backend_extension(Flex: cfg(all()), Cube: cfg(any(feature = "webgpu", feature = "gpu")))]
pub trait OptimizerOps: Backend {
    /// θ, m and v after one step, and ‖g‖ as a [1] tensor (`Updated`, spelt out for the macro).
    #[allow(clippy::type_complexity)]
    fn adam_update(theta: FloatTensor<Self>, gradient: FloatTensor<Self>, moment_1: FloatTensor<Self>, moment_2: FloatTensor<Self>, s: AdamScalars) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        adam_in_operations::<Self>(theta, gradient, moment_1, moment_2, s)
    }
}

impl OptimizerOps for burn::backend::Flex {
    fn adam_update(theta: FloatTensor<Self>, gradient: FloatTensor<Self>, moment_1: FloatTensor<Self>, moment_2: FloatTensor<Self>, s: AdamScalars) -> Updated<Self> {
        let mut squared_norm = 0.0;
        let fused = crate::engine::cpu::flex_f32::zip_map([theta, gradient, moment_1, moment_2], |[theta, g, m, v], [theta_out, m_out, v_out]| {
            squared_norm = adam_slices(theta, g, m, v, s, theta_out, m_out, v_out);
        });
        match fused {
            Ok([theta, m, v]) => (theta, m, v, crate::engine::cpu::flex_f32::f32_tensor(vec![squared_norm.sqrt()], burn::tensor::Shape::from(vec![1]))),
            Err([theta, g, m, v]) => adam_in_operations::<Self>(theta, g, m, v, s),
        }
    }
}

#[cfg(any(feature = "webgpu", feature = "gpu"))]
impl OptimizerOps for burn::backend::Cube {}

/// `OptimizerOps::adam_update` on the tensors' backend.
fn adam_update(theta: Tensor<1>, gradient: Tensor<1>, moment_1: Tensor<1>, moment_2: Tensor<1>, s: AdamScalars) -> (Tensor<1>, Tensor<1>, Tensor<1>, Tensor<1>) {
    let (theta, m, v, norm) = <Dispatch as OptimizerOps>::adam_update(theta.into_dispatch(), gradient.into_dispatch(), moment_1.into_dispatch(), moment_2.into_dispatch(), s);
    (Tensor::from_dispatch(theta), Tensor::from_dispatch(m), Tensor::from_dispatch(v), Tensor::from_dispatch(norm))
}

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
/// one). What a helper of a data-parallel step sends back (`engine::data_parallel`).
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
            blobs.push(crate::engine::snapshot::vector_bytes(m.clone()).await?);
            blobs.push(crate::engine::snapshot::vector_bytes(v.clone()).await?);
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
            self.moment_1 = Some(crate::engine::snapshot::vector_from_bytes(m, device)?);
            self.moment_2 = Some(crate::engine::snapshot::vector_from_bytes(v, device)?);
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
    /// shards of a data-parallel step (`engine::data_parallel`), in the layout `flat_gradient` gives.
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
        self.time += 1;
        // Zero moments before the first step give the same first step: 0·β + x = x exactly.
        let (m, v) = match (self.moment_1.take(), self.moment_2.take()) {
            (Some(m), Some(v)) => (m, v),
            _ => (g.zeros_like(), g.zeros_like()),
        };
        let scalars = AdamScalars {
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            step_scale: (lr / (1.0 - f64::from(self.beta_1).powi(self.time))) as f32,
            v_scale: (1.0 / (1.0 - f64::from(self.beta_2).powi(self.time))) as f32,
        };
        let (theta, m, v, norm) = adam_update(theta, g, m, v, scalars);
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
    use crate::engine::model::Gpt;
    use crate::engine::model::config::Preset;
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

    /// The CPU backend's one-pass update rounds as burn's operations do, value for value, from
    /// zero moments (the first step) and from moments of every size; the norm agrees to float
    /// summation order.
    #[test]
    fn one_pass_update_is_the_operations_update() {
        use burn::backend::flex::FlexTensor;
        let mut rng = Rng::new(7);
        let n = 1003; // not a multiple of 4: the norm's remainder too
        let mut vector = |scale: f32| -> Vec<f32> { (0..n).map(|_| scale * (rng.uniform() - 0.5) * 10f32.powi((rng.uniform() * 6.0) as i32 - 3)).collect() };
        let (theta, g, m) = (vector(1.0), vector(1.0), vector(0.1));
        let v: Vec<f32> = vector(0.01).iter().map(|x| x.abs()).collect();
        let flex = |values: &Vec<f32>| FlexTensor::from_data(TensorData::new(values.clone(), [n]));
        let read = |t: FlexTensor| t.as_slice::<f32>().unwrap().to_vec();
        for (time, moments) in [(1, (vec![0.0; n], vec![0.0; n])), (7, (m, v))] {
            let s = AdamScalars { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-8, step_scale: (3e-4 / (1.0 - 0.9f64.powi(time))) as f32, v_scale: (1.0 / (1.0 - 0.999f64.powi(time))) as f32 };
            let fused = <burn::backend::Flex as OptimizerOps>::adam_update(flex(&theta), flex(&g), flex(&moments.0), flex(&moments.1), s);
            let operations = adam_in_operations::<burn::backend::Flex>(flex(&theta), flex(&g), flex(&moments.0), flex(&moments.1), s);
            assert_eq!(read(fused.0), read(operations.0), "θ at step {time}");
            assert_eq!(read(fused.1), read(operations.1), "m at step {time}");
            assert_eq!(read(fused.2), read(operations.2), "v at step {time}");
            let (a, b) = (read(fused.3)[0], read(operations.3)[0]);
            assert!((a - b).abs() <= 1e-6 * b, "norm {a} vs {b}");
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
