//! The JS/Rust boundary: the only `#[wasm_bindgen]` file.
//!
//! One session object, `Lab`, created asynchronously (device set-up inside) and then called for
//! bounded work: "take one SFT step → metrics", "sample → completions". The page's worker owns the
//! clock. Arguments arrive as JSON strings or plain values and are validated before they touch
//! state; results leave as plain JS objects; every error leaves as a JS `Error` whose `name` is
//! the kind of failure (`InvalidSetting`, `Checkpoint`, `NumericalFault`, …) and whose message a
//! learner can read.

use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::app::session::{Role, Session, Stage};
use crate::engine::device::{self, BackendChoice, BackendInfo};
use crate::error::LabError;
use crate::rlhf::config::LabConfig;
use crate::rlhf::metrics::CATALOG;

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    device::run_static_constructors();
}

fn js_error(error: LabError) -> JsValue {
    let name = match &error {
        LabError::InvalidSetting { .. } => "InvalidSetting",
        LabError::InvalidInput(_) => "InvalidInput",
        LabError::Checkpoint(_) => "Checkpoint",
        LabError::Device(_) => "Device",
        LabError::NumericalFault { .. } => "NumericalFault",
        LabError::NotReady(_) => "NotReady",
    };
    let js = js_sys::Error::new(&error.to_string());
    js.set_name(name);
    js.into()
}

fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsValue> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| js_error(LabError::InvalidInput(format!("could not convert a result for JavaScript: {e}"))))
}

fn parse_config(json: &str) -> Result<LabConfig, JsValue> {
    LabConfig::from_json(json).map_err(js_error)
}

/// A learner's session: the device, the models by role and each stage's trainer.
#[wasm_bindgen]
pub struct Lab {
    session: Session,
    backend: BackendInfo,
}

#[wasm_bindgen]
impl Lab {
    /// Picks the backend (`auto`, `webgpu` or `cpu`; WebGPU problems fall back to the CPU backend
    /// with the reason in `backendInfo()`) and validates the settings (JSON; missing fields take
    /// their defaults).
    pub async fn create(backend: String, config_json: String) -> Result<Lab, JsValue> {
        let choice = BackendChoice::parse(&backend).map_err(js_error)?;
        let config = parse_config(&config_json)?;
        let (device, backend) = device::select(choice).await;
        let session = Session::new(device, config).map_err(js_error)?;
        Ok(Lab { session, backend })
    }

    /// `{backend, adapter, reason, fallback}`.
    #[wasm_bindgen(js_name = backendInfo)]
    pub fn backend_info(&self) -> Result<JsValue, JsValue> {
        to_js(&self.backend)
    }

    /// Where each stage stands.
    pub fn status(&self) -> Result<JsValue, JsValue> {
        to_js(&self.session.status())
    }

    /// The current settings as JSON.
    pub fn config(&self) -> String {
        serde_json::to_string(self.session.config()).expect("configs serialize")
    }

    /// The default settings as JSON.
    #[wasm_bindgen(js_name = defaultConfig)]
    pub fn default_config() -> String {
        serde_json::to_string(&LabConfig::default()).expect("configs serialize")
    }

    /// Validates settings without applying them: the page checks a control's value with it.
    #[wasm_bindgen(js_name = validateConfig)]
    pub fn validate_config(json: String) -> Result<(), JsValue> {
        parse_config(&json).map(|_| ())
    }

    /// Replaces the settings (validated first; nothing changes if they are refused).
    #[wasm_bindgen(js_name = setConfig)]
    pub fn set_config(&mut self, json: String) -> Result<(), JsValue> {
        let config = parse_config(&json)?;
        self.session.set_config(config).map_err(js_error)
    }

    /// Every metric name with a one-line explanation and its equation's anchor.
    #[wasm_bindgen(js_name = metricCatalog)]
    pub fn metric_catalog() -> Result<JsValue, JsValue> {
        to_js(&CATALOG)
    }

    /// The tokenizer's fingerprint: labels and checkpoints carry it.
    pub fn vocabulary(&self) -> String {
        self.session.tokenizer().fingerprint()
    }

    #[wasm_bindgen(js_name = baseFromScratch)]
    pub fn base_from_scratch(&mut self) {
        self.session.base_from_scratch();
    }

    /// One bounded step of `stage` (`pretrain`, `sft`, `reward`, `ppo`, `grpo`, `dpo`) → its metrics.
    pub async fn step(&mut self, stage: String) -> Result<JsValue, JsValue> {
        let stage = Stage::parse(&stage).map_err(js_error)?;
        let metrics = self.session.step(stage).await.map_err(js_error)?;
        to_js(&metrics)
    }

    /// For a data-parallel step (`engine::data_parallel`, driven by `www/shards.js`): `{theta, work}` —
    /// every parameter as a `Float32Array`, and what each of the other `shards − 1` workers
    /// computes — or `null` when `stage` takes whole steps. Changes nothing.
    ///
    /// θ is written into `into` when it is a `Float32Array` of θ's length (a helper's last
    /// answer, `GradientWorker.gradient`'s, comes back in such an array), else into a new one.
    #[wasm_bindgen(js_name = shardPlan)]
    pub async fn shard_plan(&self, stage: String, shards: usize, into: Option<js_sys::Float32Array>) -> Result<JsValue, JsValue> {
        let stage = Stage::parse(&stage).map_err(js_error)?;
        let Some((theta, work)) = self.session.shard_plan(stage, shards).await.map_err(js_error)? else { return Ok(JsValue::NULL) };
        let plan = js_sys::Object::new();
        set(&plan, "theta", &floats_into(&theta, into).into())?;
        set(&plan, "work", &to_js(&work)?)?;
        Ok(plan.into())
    }

    /// One data-parallel step of `stage` → its metrics: this worker computes shard 0 of
    /// `shards` while `results` (a promise) brings the other shards' `GradientWorker.gradient`
    /// answers, in shard order.
    #[wasm_bindgen(js_name = stepSharded)]
    pub async fn step_sharded(&mut self, stage: String, shards: usize, results: js_sys::Promise) -> Result<JsValue, JsValue> {
        let stage = Stage::parse(&stage).map_err(js_error)?;
        let helpers = async move {
            let results = wasm_bindgen_futures::JsFuture::from(results).await.map_err(|e| LabError::InvalidInput(format!("a helper worker failed: {}", describe(&e))))?;
            js_sys::Array::from(&results).iter().map(|r| shard_result(&r)).collect::<Result<Vec<_>, LabError>>()
        };
        let metrics = self.session.step_sharded(stage, shards, helpers).await.map_err(js_error)?;
        to_js(&metrics)
    }

    /// Fault injection for tests: step `step` of `stage` (a PPO update, for `ppo`) computes a
    /// NaN loss, as a diverging run would.
    pub fn poison(&mut self, stage: String, step: usize) -> Result<(), JsValue> {
        let result = match Stage::parse(&stage).map_err(js_error)? {
            Stage::Sft => self.session.sft_poison_step(step),
            Stage::Reward => self.session.reward_poison_step(step),
            Stage::Ppo => self.session.ppo_poison_update(step),
            Stage::Grpo => self.session.grpo_poison_update(step),
            Stage::Dpo => self.session.dpo_poison_step(step),
            Stage::Pretrain | Stage::Sweep => Err(LabError::InvalidInput("pretraining and the sweep have no fault injection".into())),
        };
        result.map_err(js_error)
    }

    #[wasm_bindgen(js_name = pretrainBegin)]
    pub fn pretrain_begin(&mut self) -> Result<(), JsValue> {
        self.session.pretrain_begin().map_err(js_error)
    }

    #[wasm_bindgen(js_name = sftBegin)]
    pub fn sft_begin(&mut self) -> Result<(), JsValue> {
        self.session.sft_begin().map_err(js_error)
    }

    /// Ends SFT: a frozen copy becomes π_ref.
    #[wasm_bindgen(js_name = sftFinish)]
    pub fn sft_finish(&mut self) -> Result<(), JsValue> {
        self.session.sft_finish().map_err(js_error)
    }

    /// `count` (1–128) new pairs from π_ref to judge: `[{prompt, first, second}]`.
    #[wasm_bindgen(js_name = samplePairs)]
    pub async fn sample_pairs(&mut self, count: usize) -> Result<JsValue, JsValue> {
        let pairs = self.session.sample_pairs(count).await.map_err(js_error)?;
        to_js(&pairs)
    }

    /// `count` (1–128) pairs from π_ref labeled by the simulated labeler:
    /// `[{label, p_first, gold_first, gold_second}]`.
    #[wasm_bindgen(js_name = simulateLabels)]
    pub async fn simulate_labels(&mut self, count: usize) -> Result<JsValue, JsValue> {
        let labels = self.session.simulate_labels(count).await.map_err(js_error)?;
        to_js(&labels)
    }

    /// Validates a label file (JSON lines) without keeping anything; returns the label count or
    /// throws with the first bad line and why.
    #[wasm_bindgen(js_name = checkLabels)]
    pub fn check_labels(&self, jsonl: String) -> Result<usize, JsValue> {
        self.session.check_labels(&jsonl).map_err(js_error)
    }

    /// Begins training the reward model on `jsonl` labels: `{train, held_out, steps, ceiling}`.
    #[wasm_bindgen(js_name = rewardBegin)]
    pub fn reward_begin(&mut self, jsonl: String) -> Result<JsValue, JsValue> {
        let plan = self.session.reward_begin(&jsonl).map_err(js_error)?;
        to_js(&plan)
    }

    /// Held-out pairs as the reward model sees them now (for the scatter and pair inspector).
    #[wasm_bindgen(js_name = rewardInspect)]
    pub async fn reward_inspect(&mut self, limit: usize) -> Result<JsValue, JsValue> {
        let pairs = self.session.reward_inspect(limit).await.map_err(js_error)?;
        to_js(&pairs)
    }

    /// Freezes the reward model (scores shifted to zero mean); returns the shift.
    #[wasm_bindgen(js_name = rewardFinish)]
    pub async fn reward_finish(&mut self) -> Result<f32, JsValue> {
        self.session.reward_finish().await.map_err(js_error)
    }

    /// π_θ ← π_ref, V_ψ ← r_φ with the current PPO settings.
    #[wasm_bindgen(js_name = ppoBegin)]
    pub fn ppo_begin(&mut self) -> Result<(), JsValue> {
        self.session.ppo_begin().map_err(js_error)
    }

    /// Completion `index` of the current rollout, token by token, with the batch's (ρ, Â) points.
    #[wasm_bindgen(js_name = ppoRecord)]
    pub fn ppo_record(&mut self, index: usize) -> Result<JsValue, JsValue> {
        let record = self.session.ppo_record(index).map_err(js_error)?;
        to_js(&record)
    }

    /// π_grpo ← π_ref with the current GRPO settings (`grpo.estimator` picks GRPO or RLOO).
    #[wasm_bindgen(js_name = grpoBegin)]
    pub fn grpo_begin(&mut self) -> Result<(), JsValue> {
        self.session.grpo_begin().map_err(js_error)
    }

    /// Group `index` of the current GRPO rollout: `{prompt, product, mean, std, zero_std,
    /// members: [{tokens, score, gold, baseline, advantage, ends}], …}`.
    #[wasm_bindgen(js_name = grpoRecord)]
    pub fn grpo_record(&mut self, index: usize) -> Result<JsValue, JsValue> {
        let record = self.session.grpo_record(index).map_err(js_error)?;
        to_js(&record)
    }

    /// PPO's rollout record for a completion of `product`'s prompt, or `null` when PPO's current
    /// rollout has none: the per-token GAE advantages beside a GRPO group's Â_i.
    #[wasm_bindgen(js_name = ppoRecordFor)]
    pub fn ppo_record_for(&mut self, product: usize) -> Result<JsValue, JsValue> {
        match self.session.ppo_record_for(product).map_err(js_error)? {
            Some(record) => to_js(&record),
            None => Ok(JsValue::NULL),
        }
    }

    /// Begins DPO from π_ref on `jsonl` labels: `{train, held_out, steps, ties_skipped}`.
    #[wasm_bindgen(js_name = dpoBegin)]
    pub async fn dpo_begin(&mut self, jsonl: String) -> Result<JsValue, JsValue> {
        let plan = self.session.dpo_begin(&jsonl).await.map_err(js_error)?;
        to_js(&plan)
    }

    /// A held-out pair token by token with the implicit reward β·(log π_θ − log π_ref).
    #[wasm_bindgen(js_name = dpoInspect)]
    pub async fn dpo_inspect(&mut self, index: usize) -> Result<JsValue, JsValue> {
        let inspection = self.session.dpo_inspect(index).await.map_err(js_error)?;
        to_js(&inspection)
    }

    /// Evaluates the model in `role` (`sft`, `policy`, `grpo`, `dpo`) on `count` fresh prompts, the same
    /// way for every method: `{score, gold, kl, kl_std_error, mean_length, eos_fraction}`.
    pub async fn evaluate(&self, role: String, count: usize, seed: u32) -> Result<JsValue, JsValue> {
        let role = Role::parse(&role).map_err(js_error)?;
        let evaluation = self.session.evaluate(role, count, u64::from(seed)).await.map_err(js_error)?;
        to_js(&evaluation)
    }

    /// Evaluates the policy `stage` (`ppo`, `grpo`) is training on `count` fresh prompts, its
    /// `score` the reward it trains against (r_φ, gold or the learner's expression): with `gold`
    /// and `kl`, one point of the over-optimization picture.
    #[wasm_bindgen(js_name = evaluateRun)]
    pub async fn evaluate_run(&self, stage: String, count: usize, seed: u32) -> Result<JsValue, JsValue> {
        let stage = Stage::parse(&stage).map_err(js_error)?;
        let evaluation = self.session.evaluate_run(stage, count, u64::from(seed)).await.map_err(js_error)?;
        to_js(&evaluation)
    }

    /// Checks a reward `expression` (refused with the column and the reason) and scores it on one
    /// completion per product prompt from the model in `role`: `[{prompt, completion, ends, gold, reward}]`.
    #[wasm_bindgen(js_name = rewardPreview)]
    pub async fn reward_preview(&self, expression: String, role: String, temperature: f32, seed: u32) -> Result<JsValue, JsValue> {
        let role = Role::parse(&role).map_err(js_error)?;
        let samples = self.session.reward_preview(&expression, role, temperature, u64::from(seed)).await.map_err(js_error)?;
        to_js(&samples)
    }

    /// One worked number per formula the trainers compute (`math::examples`): the equations panel
    /// evaluates its typeset formula at the same inputs and shows both.
    #[wasm_bindgen(js_name = lossExamples)]
    pub fn loss_examples(&self) -> Result<JsValue, JsValue> {
        to_js(&crate::rlhf::math::examples::examples())
    }

    /// The names and functions a reward expression may use: `[[name, description], …]`.
    #[wasm_bindgen(js_name = rewardVocabulary)]
    pub fn reward_vocabulary(&self) -> Result<JsValue, JsValue> {
        to_js(&crate::rlhf::reward_expression::vocabulary())
    }

    /// One completion per product prompt from the model in `role` (`base`, `sft`, `policy`, `dpo`):
    /// `[{prompt, completion, gold}]`. Temperature 0 is greedy.
    pub async fn samples(&self, role: String, temperature: f32, seed: u32) -> Result<JsValue, JsValue> {
        let role = Role::parse(&role).map_err(js_error)?;
        let samples = self.session.samples(role, temperature, u64::from(seed)).await.map_err(js_error)?;
        to_js(&samples)
    }

    /// Begins the β sweep: `runs` is JSON `[{"method": "ppo"|"grpo"|"rloo"|"dpo", "beta": 0.05}, …]`; DPO runs
    /// train on `jsonl` labels. Its own trainers: the PPO and DPO stages are untouched. Loop it with
    /// `step('sweep')`; returns the number of runs.
    #[wasm_bindgen(js_name = sweepBegin)]
    pub fn sweep_begin(&mut self, jsonl: String, runs: String) -> Result<usize, JsValue> {
        let runs: Vec<crate::rlhf::stages::sweep::SweepRun> =
            serde_json::from_str(&runs).map_err(|e| js_error(LabError::InvalidInput(format!("sweep runs: {e}"))))?;
        self.session.sweep_begin(&jsonl, runs).map_err(js_error)
    }

    /// The frontier points the sweep has measured so far:
    /// `[{method, beta, evaluation: {score, gold, kl, …}, gradient_steps, seconds}]`.
    #[wasm_bindgen(js_name = sweepPoints)]
    pub fn sweep_points(&self) -> Result<JsValue, JsValue> {
        to_js(&self.session.sweep_points())
    }

    /// The trainer of `stage` as snapshot bytes, to resume it after a reload.
    pub async fn snapshot(&self, stage: String) -> Result<Vec<u8>, JsValue> {
        let stage = Stage::parse(&stage).map_err(js_error)?;
        self.session.snapshot(stage).await.map_err(js_error)
    }

    /// Begins `stage` again from a snapshot → its progress. Refused (nothing changes) when the
    /// snapshot is damaged or was taken under other settings.
    pub async fn resume(&mut self, stage: String, bytes: Vec<u8>) -> Result<JsValue, JsValue> {
        let stage = Stage::parse(&stage).map_err(js_error)?;
        let progress = self.session.resume(stage, &bytes).await.map_err(js_error)?;
        to_js(&progress)
    }

    /// The model in `role` as checkpoint bytes (burn's record format behind a header).
    pub async fn save(&self, role: String) -> Result<Vec<u8>, JsValue> {
        let role = Role::parse(&role).map_err(js_error)?;
        self.session.save(role).await.map_err(js_error)
    }

    /// Loads checkpoint bytes into the role their header names; returns the header. A checkpoint
    /// for another model or vocabulary is refused and nothing changes.
    pub fn load(&mut self, bytes: Vec<u8>) -> Result<JsValue, JsValue> {
        let header = self.session.load(&bytes).map_err(js_error)?;
        to_js(&header)
    }

    /// Checkpoint bytes as a zipped Hugging Face folder (`app::hf`): GPT-2's config.json,
    /// model.safetensors, the tokenizer, the generation config and a model card that quotes
    /// `metrics_json` (what the stage reached, as the page stored it). Read on the CPU backend: no
    /// GPU readback.
    #[wasm_bindgen(js_name = exportHf)]
    pub async fn export_hf(&self, bytes: Vec<u8>, metrics_json: String) -> Result<Vec<u8>, JsValue> {
        let metrics: serde_json::Value = serde_json::from_str(&metrics_json).unwrap_or(serde_json::Value::Null);
        let files = crate::app::hf::export_checkpoint(&bytes, self.session.tokenizer(), &metrics).await.map_err(js_error)?;
        let (header, _) = crate::engine::checkpoint::decode(&bytes).map_err(js_error)?;
        let dir = format!("rlhf-lab-{}-{}", header.role, self.session.config().preset.name());
        crate::app::hf::zip_folder(&dir, &files).map_err(js_error)
    }

    /// A zipped Hugging Face folder → the lab's checkpoint bytes for `role` (`base`, `sft` or
    /// `reward`; empty: the role the folder names), checked whole first. Nothing is loaded or
    /// stored here: the page loads the bytes (`load`) and stores them, as with any upload.
    #[wasm_bindgen(js_name = importHf)]
    pub async fn import_hf(&self, zip: Vec<u8>, role: String) -> Result<Vec<u8>, JsValue> {
        let role = if role.is_empty() { None } else { Some(Role::parse(&role).map_err(js_error)?) };
        let files = crate::app::hf::unzip_folder(&zip).map_err(js_error)?;
        crate::app::hf::import_folder(&files, self.session.tokenizer(), &self.session.model_config(), role).await.map_err(js_error)
    }

    /// Labels (the lab's JSON lines, checked) → TRL's preference format:
    /// `{text, rows, ties_left_out}`.
    #[wasm_bindgen(js_name = labelsToPreferences)]
    pub fn labels_to_preferences(&self, jsonl: String) -> Result<JsValue, JsValue> {
        self.session.check_labels(&jsonl).map_err(js_error)?;
        let records: Vec<crate::rlhf::labels::LabelRecord> = jsonl
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(|e| js_error(LabError::InvalidInput(e.to_string()))))
            .collect::<Result<_, _>>()?;
        to_js(&crate::rlhf::preference_dataset::to_preference_jsonl(&records))
    }

    /// A TRL preference file (prompt, chosen, rejected) → the lab's label records, chosen first;
    /// all or nothing, with the line and the reason of the first bad row.
    #[wasm_bindgen(js_name = labelsFromPreferences)]
    pub fn labels_from_preferences(&self, text: String) -> Result<JsValue, JsValue> {
        to_js(&crate::rlhf::preference_dataset::parse_preference_jsonl(&text, self.session.tokenizer()).map_err(js_error)?)
    }
}

/// A helper of data-parallel steps, in a Web Worker of its own (`www/shard-worker.js`).
#[wasm_bindgen]
pub struct GradientWorker {
    inner: crate::app::shard::GradientWorker,
}

#[wasm_bindgen]
impl GradientWorker {
    #[wasm_bindgen(constructor)]
    pub fn new() -> GradientWorker {
        GradientWorker { inner: crate::app::shard::GradientWorker::new() }
    }

    /// The gradient of one shard (`work`, from `Lab.shardPlan`) at parameters `theta` (a
    /// `Float32Array`) → `{step, gradient: Float32Array, sums: Float32Array, perToken:
    /// Float32Array}`. The gradient comes back in θ's array (its first values) where it fits:
    /// the page sends that array back and the next plan refills it (`Lab.shardPlan`).
    pub async fn gradient(&mut self, theta: JsValue, work: JsValue) -> Result<JsValue, JsValue> {
        let theta: js_sys::Float32Array = theta.dyn_into().map_err(|_| js_error(LabError::InvalidInput("θ must be a Float32Array".into())))?;
        let work: crate::engine::data_parallel::ShardWork<crate::app::shard::ShardObjective> = serde_wasm_bindgen::from_value(work).map_err(|e| js_error(LabError::InvalidInput(format!("not a shard's work: {e}"))))?;
        let result = self.inner.gradient(&theta.to_vec(), &work).await.map_err(js_error)?;
        let out = js_sys::Object::new();
        set(&out, "step", &JsValue::from(result.step as f64))?;
        let room = (result.gradient.len() <= theta.length() as usize).then(|| theta.subarray(0, result.gradient.len() as u32));
        set(&out, "gradient", &floats_into(&result.gradient, room).into())?;
        set(&out, "sums", &js_sys::Float32Array::from(result.sums.as_slice()).into())?;
        set(&out, "perToken", &js_sys::Float32Array::from(result.per_token.as_slice()).into())?;
        Ok(out.into())
    }
}

impl Default for GradientWorker {
    fn default() -> Self {
        Self::new()
    }
}

/// `values` in `into` when it has their length, else in a new `Float32Array`.
///
/// Refilling an array is one copy (~0.01 ms for a tiny GPT's 440 KB in Chromium). A new one costs
/// ~0.3 ms more, the first touch of its pages, and `Float32Array::from` (`new Float32Array(view)`)
/// is as slow (Chromium 156, 2026-12-04): once for θ on its way to a helper and once for the
/// helper's gradient on its way back, both on a split step's critical path.
fn floats_into(values: &[f32], into: Option<js_sys::Float32Array>) -> js_sys::Float32Array {
    let array = into.filter(|a| a.length() as usize == values.len()).unwrap_or_else(|| js_sys::Float32Array::new_with_length(values.len() as u32));
    array.copy_from(values);
    array
}

fn set(object: &js_sys::Object, key: &str, value: &JsValue) -> Result<(), JsValue> {
    js_sys::Reflect::set(object, &key.into(), value).map(|_| ())
}

fn describe(error: &JsValue) -> String {
    error.as_string().or_else(|| js_sys::Reflect::get(error, &"message".into()).ok().and_then(|m| m.as_string())).unwrap_or_else(|| format!("{error:?}"))
}

/// One `GradientWorker.gradient` answer, as it came back through the page.
fn shard_result(value: &JsValue) -> Result<crate::engine::data_parallel::ShardResult, LabError> {
    let field = |key: &str| js_sys::Reflect::get(value, &key.into()).map_err(|_| LabError::InvalidInput(format!("a shard's result has no {key}")));
    let step = field("step")?.as_f64().filter(|s| *s >= 0.0 && s.fract() == 0.0).ok_or_else(|| LabError::InvalidInput("a shard's result has no step number".into()))? as usize;
    let floats = |key: &str| -> Result<Vec<f32>, LabError> {
        let v = field(key)?;
        if !v.is_instance_of::<js_sys::Float32Array>() {
            return Err(LabError::InvalidInput(format!("a shard's {key} must be a Float32Array")));
        }
        Ok(js_sys::Float32Array::from(v).to_vec())
    };
    Ok(crate::engine::data_parallel::ShardResult { step, gradient: floats("gradient")?, sums: floats("sums")?, per_token: floats("perToken")? })
}

/// The benchmark in the page: each preset on the backend chosen by `backend` (`webgpu` or `cpu`),
/// measured with `plan` (`full`, or `quick` for a GPU emulated on the CPU). Returns
/// `{backend: {...}, plan: {...}, rows: [...]}`; see `app::bench`.
#[wasm_bindgen]
pub async fn benchmark(backend: String, presets: String, plan: String) -> Result<JsValue, JsValue> {
    let choice = BackendChoice::parse(&backend).map_err(js_error)?;
    let (device, info) = device::select(choice).await;
    let plan = match plan.as_str() {
        "quick" => crate::app::bench::BenchPlan::quick(),
        "counts" => crate::app::bench::BenchPlan::counts(),
        _ => crate::app::bench::BenchPlan::full(),
    };
    let name = if info.backend == "webgpu" { "browser-webgpu" } else { "browser-cpu" };
    let performance = js_sys::Reflect::get(&js_sys::global(), &"performance".into()).map_err(|_| js_error(LabError::Device("no performance clock".into())))?;
    let performance: web_sys::Performance = performance.unchecked_into();
    let mut rows = Vec::new();
    for name_of_preset in presets.split(',') {
        let preset = crate::engine::model::config::Preset::from_name(name_of_preset).map_err(js_error)?;
        // The page's worker counts GPUQueue.submit calls in `self.__submissions`.
        let submissions = || {
            js_sys::Reflect::get(&js_sys::global(), &"__submissions".into()).ok().and_then(|v| v.as_f64()).unwrap_or(0.0) as usize
        };
        let row = crate::app::bench::measure(preset, name, &device, plan, || performance.now(), submissions).await.map_err(js_error)?;
        rows.push(row);
    }
    to_js(&serde_json::json!({"backend": info, "plan": plan, "rows": rows}))
}

/// The core's heap: `{live_bytes, peak_bytes}` from the counting allocator (`app::heap`). The soak
/// command reads it beside the wasm memory's size, which only grows.
#[wasm_bindgen(js_name = heapUsage)]
pub fn heap_usage() -> Result<JsValue, JsValue> {
    to_js(&crate::app::heap::usage())
}

// The relaxed-SIMD matrix product (`kernels/fma`, why: src/engine/cpu/matmul_kernel.rs). The
// page instantiates that module on this module's memory and hands its `matmul` export over; the
// core calls it through this small JS shim (one call per product, not per block).
#[wasm_bindgen(inline_js = "let kernel = null;
export function set_fma_kernel(f) { kernel = f; }
export function call_fma_kernel(batch, m, n, k, a, aBatch, aRow, aCol, b, bBatch, bRow, c, cBatch, cRow) {
  kernel(batch, m, n, k, a, aBatch, aRow, aCol, b, bBatch, bRow, c, cBatch, cRow);
}")]
extern "C" {
    fn set_fma_kernel(kernel: &JsValue);
    #[allow(clippy::too_many_arguments)]
    fn call_fma_kernel(batch: usize, m: usize, n: usize, k: usize, a: *const f32, a_batch: usize, a_row: usize, a_col: usize, b: *const f32, b_batch: usize, b_row: usize, c: *mut f32, c_batch: usize, c_row: usize);
}

/// `engine::cpu::matmul::Kernel` through the relaxed-SIMD module.
///
/// # Safety
/// As `matmul_kernel::matmul`.
#[allow(clippy::too_many_arguments)]
unsafe fn fma_matmul(batch: usize, m: usize, n: usize, k: usize, a: *const f32, a_batch: usize, a_row: usize, a_col: usize, b: *const f32, b_batch: usize, b_row: usize, c: *mut f32, c_batch: usize, c_row: usize) {
    call_fma_kernel(batch, m, n, k, a, a_batch, a_row, a_col, b, b_batch, b_row, c, c_batch, c_row);
}

/// Hands the CPU backend's matrix products to `kernel`, the `matmul` export of
/// `fma_kernel.wasm` instantiated on this module's memory, if it computes what the core's own
/// kernel does (a check on products of every blocking edge, within 1e-4:
/// `engine::cpu::matmul::use_fma_kernel`). `false` if it does not, or is not a function
/// (`null`, say): the core's own kernel runs from then on.
#[wasm_bindgen(js_name = useFmaMatmul)]
pub fn use_fma_matmul(kernel: JsValue) -> bool {
    set_fma_kernel(&kernel);
    crate::engine::cpu::matmul::use_fma_kernel(kernel.is_function().then_some(fma_matmul as crate::engine::cpu::matmul::Kernel))
}

/// The CPU backend's matrix product: `relaxed-simd fma`, `simd128` or `flex gemm`.
#[wasm_bindgen(js_name = matmulKernel)]
pub fn matmul_kernel() -> String {
    crate::engine::cpu::matmul::active_name().to_string()
}

/// Which matrix product the CPU backend runs: `fastest` (the default: the FMA kernel where it
/// was handed over, else the core's), `simd128` (the core's kernel) or `flex` (burn's own
/// product, what the page ran before these kernels: for the benchmark and the tests). Returns
/// `matmulKernel()`.
#[wasm_bindgen(js_name = preferMatmul)]
pub fn prefer_matmul(name: &str) -> Result<String, JsValue> {
    use crate::engine::cpu::matmul::Preference;
    let preference = match name {
        "fastest" => Preference::Fastest,
        "simd128" => Preference::Simd128,
        "flex" => Preference::Flex,
        other => return Err(js_error(LabError::InvalidInput(format!("matrix product {other:?}: must be fastest, simd128 or flex")))),
    };
    crate::engine::cpu::matmul::prefer(preference);
    Ok(matmul_kernel())
}
