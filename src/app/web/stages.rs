//! `Lab`'s stage calls: each stage's begin, inspections and records, evaluations, samples, the
//! reward the learner writes, the sweep.

use wasm_bindgen::prelude::*;
use crate::app::session::{Role, Stage};
use crate::error::LabError;

use super::convert::{js_error, to_js};
use super::Lab;

#[wasm_bindgen]
impl Lab {
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
}
