//! Browser tests, run by `wasm-bindgen-test-runner` in a dedicated Web Worker (where the page
//! trains). In headless Chromium `--enable-unsafe-webgpu` gives a real WebGPU adapter
//! (SwiftShader, a GPU emulated on the CPU, ~6 ms per dispatch): these tests prove correctness on
//! a few steps there, and compare every number with the CPU backend from the same weights and the
//! same host-made data.
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;

use burn::prelude::*;
use rlhf_lab::app::session::{Role, Session};
use rlhf_lab::engine::device::{select, BackendChoice, BackendInfo};
use rlhf_lab::engine::model::config::Preset;
use rlhf_lab::rlhf::config::{LabConfig, SftConfig};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_dedicated_worker);

thread_local! {
    // WebGPU can be initialized once per worker: every test shares the first selection.
    static AUTO: RefCell<Option<(Device, BackendInfo)>> = const { RefCell::new(None) };
}

async fn auto_device() -> (Device, BackendInfo) {
    if let Some(found) = AUTO.with(|d| d.borrow().clone()) {
        return found;
    }
    let found = select(BackendChoice::Auto).await;
    AUTO.with(|d| *d.borrow_mut() = Some(found.clone()));
    found
}

fn has_webgpu() -> bool {
    let global = js_sys::global();
    let navigator = js_sys::Reflect::get(&global, &"navigator".into()).unwrap();
    js_sys::Reflect::get(&navigator, &"gpu".into()).map(|g| !g.is_undefined()).unwrap_or(false)
}

fn micro_config(steps: usize) -> LabConfig {
    LabConfig {
        preset: Preset::Micro,
        sft: SftConfig { steps, batch_size: 8, eval_every: 1_000, train_examples: 64, held_out_examples: 16, learning_rate: 3e-3, ..SftConfig::default() },
        ..LabConfig::default()
    }
}

async fn sft_losses(device: Device, steps: usize) -> Vec<f64> {
    let mut session = Session::new(device, micro_config(steps)).unwrap();
    session.base_from_scratch();
    session.sft_begin().unwrap();
    let mut losses = Vec::new();
    for _ in 0..steps {
        losses.push(session.sft_step().await.unwrap()["loss/train"]);
    }
    losses
}

#[wasm_bindgen_test]
async fn the_backend_is_chosen_on_its_own_and_says_why() {
    let (_, info) = auto_device().await;
    web_sys::console::log_1(&format!("auto backend: {info:?}").into());
    if has_webgpu() && info.backend == "cpu" {
        // WebGPU is exposed but not usable: the fallback must say why.
        assert!(info.fallback && !info.reason.is_empty(), "{info:?}");
    }
    if !has_webgpu() {
        assert_eq!(info.backend, "cpu");
        assert!(info.reason.contains("does not expose WebGPU"), "{info:?}");
    }
}

#[wasm_bindgen_test]
async fn the_cpu_backend_trains_in_the_page() {
    let losses = sft_losses(Device::flex(), 12).await;
    web_sys::console::log_1(&format!("flex SFT losses: {losses:?}").into());
    assert!(losses[11] < losses[0] - 0.5, "{losses:?}");
}

#[wasm_bindgen_test]
async fn webgpu_trains_and_matches_the_cpu_backend() {
    if !has_webgpu() {
        web_sys::console::log_1(&"no navigator.gpu in this browser: the WebGPU comparison does not apply".into());
        return;
    }
    let (device, info) = auto_device().await;
    assert_eq!(info.backend, "webgpu", "Chromium here exposes WebGPU; it must be used: {info:?}");
    let steps = 3;
    let gpu = sft_losses(device.clone(), steps).await;
    let cpu = sft_losses(Device::flex(), steps).await;
    web_sys::console::log_1(&format!("SFT losses webgpu {gpu:?} flex {cpu:?}").into());
    assert!(gpu[steps - 1] < gpu[0], "WebGPU loss did not fall: {gpu:?}");
    for (g, c) in gpu.iter().zip(&cpu) {
        assert!((g - c).abs() < 2e-3 * c.abs().max(1.0), "WebGPU {g} vs CPU {c}");
    }
    // Sampling and checkpoints work on WebGPU without a synchronous read.
    let mut session = Session::new(device, micro_config(1)).unwrap();
    session.base_from_scratch();
    let samples = session.samples(Role::Base, 1.0, 3).await.unwrap();
    assert_eq!(samples.len(), 10);
    let bytes = session.save(Role::Base).await.unwrap();
    session.load(&bytes).unwrap();
}

/// Labels made on the host (grammar pairs, simulated labeler), so both backends train on the
/// same data.
fn host_labels(n: usize) -> String {
    use rlhf_lab::rlhf::labels::{grammar_pairs, simulate, to_jsonl};
    let tok = rlhf_lab::rlhf::task::Tokenizer::new();
    let mut rng = rlhf_lab::rng::Rng::new(17);
    let pairs = grammar_pairs(&tok, n, &mut rng);
    let records: Vec<_> = simulate(&pairs, &tok, 0.5, &mut rng).into_iter().map(|(l, _)| l.record(&tok)).collect();
    to_jsonl(&records)
}

/// Every stage, a few steps each, on one device; returns the numbers to compare.
async fn pipeline_numbers(device: Device) -> Vec<(String, f64)> {
    use rlhf_lab::rlhf::config::{DpoConfig, GrpoConfig, PpoConfig, RewardConfig};
    let config = LabConfig {
        reward: RewardConfig { batch_size: 4, epochs: 1, held_out_fraction: 0.25, ..RewardConfig::default() },
        ppo: PpoConfig { iterations: 1, batch_size: 4, mini_batches: 2, epochs: 1, ..PpoConfig::default() },
        grpo: GrpoConfig { iterations: 1, prompts: 2, group_size: 2, mini_batches: 2, epochs: 1, ..GrpoConfig::default() },
        dpo: DpoConfig { batch_size: 4, epochs: 1, ..DpoConfig::default() },
        ..micro_config(2)
    };
    let mut session = Session::new(device, config).unwrap();
    let mut out = Vec::new();
    let mut keep = |stage: &str, m: &rlhf_lab::rlhf::metrics::Metrics, keys: &[&str]| {
        for k in keys {
            if let Some(v) = m.get(*k) {
                out.push((format!("{stage} {k}"), *v));
            }
        }
    };
    session.base_from_scratch();
    session.sft_begin().unwrap();
    for _ in 0..2 {
        let m = session.sft_step().await.unwrap();
        keep("sft", &m, &["loss/train"]);
    }
    session.sft_finish().unwrap();
    let labels = host_labels(16);
    session.reward_begin(&labels).unwrap();
    for _ in 0..2 {
        let m = session.reward_step().await.unwrap();
        keep("reward", &m, &["rm/loss", "rewards/chosen", "rewards/rejected"]);
    }
    session.reward_finish().await.unwrap();
    session.ppo_begin().unwrap();
    for _ in 0..3 {
        let m = session.ppo_step().await.unwrap();
        keep("ppo", &m, &["objective/scores", "objective/kl", "objective/gold", "val/mean_length", "loss/policy", "loss/value", "val/ratio", "policy/approxkl"]);
    }
    session.grpo_begin().unwrap();
    for _ in 0..3 {
        let m = session.step(rlhf_lab::app::session::Stage::Grpo).await.unwrap();
        keep("grpo", &m, &["reward", "reward_std", "gold", "kl", "completions/mean_length", "loss", "entropy", "kl/update", "grad_norm"]);
    }
    session.dpo_begin(&labels).await.unwrap();
    for _ in 0..2 {
        let m = session.dpo_step().await.unwrap();
        keep("dpo", &m, &["dpo/loss", "rewards/chosen", "logps/chosen"]);
    }
    out
}

#[wasm_bindgen_test]
async fn every_stage_on_webgpu_matches_the_cpu_backend() {
    if !has_webgpu() {
        web_sys::console::log_1(&"no navigator.gpu in this browser: the WebGPU comparison does not apply".into());
        return;
    }
    let (device, info) = auto_device().await;
    assert_eq!(info.backend, "webgpu", "{info:?}");
    let started = js_sys::Date::now();
    let gpu = pipeline_numbers(device).await;
    let gpu_ms = js_sys::Date::now() - started;
    let cpu = pipeline_numbers(Device::flex()).await;
    web_sys::console::log_1(&format!("WebGPU pipeline took {gpu_ms:.0} ms").into());
    assert_eq!(gpu.len(), cpu.len());
    for ((name, g), (_, c)) in gpu.iter().zip(&cpu) {
        web_sys::console::log_1(&format!("{name}: webgpu {g:.6} flex {c:.6}").into());
        assert!((g - c).abs() <= 2e-3 * c.abs().max(1.0), "{name}: WebGPU {g} vs CPU {c}");
    }
}

/// Generation's kernels (`rlhf_lab::engine::gpu_kernels`) on WebGPU: each against the host references, then
/// the next-token logits through the KV cache against the full forward on the CPU backend, from
/// the same weights.
#[wasm_bindgen_test]
async fn generation_kernels_on_webgpu_match_the_host_and_the_cpu_backend() {
    use burn::tensor::TensorData;
    use rlhf_lab::engine::model::{Gpt, KvCache};
    use rlhf_lab::rng::Rng;
    if !has_webgpu() {
        web_sys::console::log_1(&"no navigator.gpu in this browser: the WebGPU comparison does not apply".into());
        return;
    }
    let (device, info) = auto_device().await;
    assert_eq!(info.backend, "webgpu", "{info:?}");
    rlhf_lab::engine::gpu_kernels::check::operations(&device).await.unwrap();

    let vocab = 40;
    let rows: [[i32; 7]; 2] = [[1, 5, 7, 9, 11, 13, 2], [1, 8, 3, 30, 4, 6, 12]];
    let tokens = |range: std::ops::Range<usize>, device: &Device| {
        let ids: Vec<i32> = rows.iter().flat_map(|row| row[range.clone()].to_vec()).collect();
        Tensor::<2, Int>::from_data(TensorData::new(ids, [2, range.len()]), device)
    };
    async fn read<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data_async().await.unwrap().iter::<f32>().collect()
    }
    let cpu = Device::flex();
    let reference = Gpt::new(&Preset::Micro.model(vocab), &mut Rng::new(3), &cpu);
    let full = read(reference.forward(tokens(0..7, &cpu))).await; // [2, 7, V]
    let model = Gpt::new(&Preset::Micro.model(vocab), &mut Rng::new(3), &device);
    let mut cache = KvCache::new(&model);
    let _ = model.hidden_cached(tokens(0..4, &device), &mut cache);
    for position in 4..7 {
        let next = read(model.next_token_logits(tokens(position..position + 1, &device), &mut cache)).await; // [2, V]
        for b in 0..2 {
            let expected = &full[(b * 7 + position) * vocab..(b * 7 + position + 1) * vocab];
            for (g, c) in next[b * vocab..(b + 1) * vocab].iter().zip(expected) {
                assert!((g - c).abs() <= 1e-4 * c.abs().max(1.0), "row {b}, position {position}: WebGPU {g} vs CPU {c}");
            }
        }
    }
}

#[path = "common/bad_inputs.rs"]
mod bad_inputs_cases;

#[wasm_bindgen_test]
async fn every_generated_bad_input_is_refused_in_the_page_without_a_panic() {
    // A panic in wasm aborts the module: reaching the end is the "0 panicked".
    async fn ready(preset: Preset) -> Session {
        let mut session = Session::new(Device::flex(), LabConfig { preset, ..micro_config(1) }).unwrap();
        session.base_from_scratch();
        session.sft_begin().unwrap();
        session.sft_step().await.unwrap();
        session.sft_finish().unwrap();
        session
    }
    let other = ready(Preset::Tiny).await.save(Role::Sft).await.unwrap();
    let mut session = ready(Preset::Micro).await;
    let report = bad_inputs_cases::drive(&mut session, &other).await;
    web_sys::console::log_1(&format!("bad inputs in the page: {} tried, {} refused, 0 panicked", report.tried, report.refused).into());
    assert!(report.accepted.is_empty(), "accepted: {:#?}", report.accepted);
    assert!(report.settings_unchanged && report.stages_unchanged && report.reference_unchanged, "{report:?}");
    assert!(report.tried >= 200);
}

/// A step split between the session and a `GradientWorker`, through the JS boundary the page's
/// workers use (`Lab.shardPlan`, `GradientWorker.gradient`, `Lab.stepSharded` with a promise),
/// is the whole step; a rejected promise (a failed helper) refuses the step and changes nothing.
#[wasm_bindgen_test]
async fn a_step_split_through_the_js_boundary_is_the_whole_step() {
    use rlhf_lab::app::web::{GradientWorker, Lab};
    use wasm_bindgen::{JsCast, JsValue};
    let field = |v: &JsValue, key: &str| js_sys::Reflect::get(v, &key.into()).unwrap();
    let number = |v: &JsValue, key: &str| field(v, key).as_f64().unwrap_or_else(|| panic!("no {key}"));
    let config = serde_json::to_string(&micro_config(5)).unwrap();
    let mut whole = Lab::create("cpu".into(), config.clone()).await.unwrap();
    let mut split = Lab::create("cpu".into(), config).await.unwrap();
    for lab in [&mut whole, &mut split] {
        lab.base_from_scratch();
        lab.sft_begin().unwrap();
    }
    let mut helper = GradientWorker::new();
    let close = |got: f64, expected: f64| (got - expected).abs() <= 1e-5 * expected.abs().max(1.0);
    // The array the gradient came back in, which the next plan refills with θ.
    let mut returned: Option<js_sys::Float32Array> = None;
    for step in 1..=3 {
        let expected = whole.step("sft".into()).await.unwrap();
        let plan = split.shard_plan("sft".into(), 2, returned.clone()).await.unwrap();
        let theta = field(&plan, "theta").dyn_into::<js_sys::Float32Array>().expect("θ is a Float32Array");
        if let Some(array) = returned.take() {
            assert_eq!(theta.buffer(), array.buffer(), "step {step}: θ is written into the array the gradient came back in");
        }
        let work = js_sys::Array::from(&field(&plan, "work"));
        assert_eq!(work.length(), 1, "one helper's work for two shards");
        let answer = helper.gradient(theta.clone().into(), work.get(0)).await.unwrap();
        let gradient = field(&answer, "gradient").dyn_into::<js_sys::Float32Array>().unwrap();
        assert_eq!(gradient.buffer(), theta.buffer(), "step {step}: the gradient comes back in θ's array");
        returned = Some(js_sys::Float32Array::new(&gradient.buffer()));
        let answers: JsValue = js_sys::Array::of1(&answer).into();
        let got = split.step_sharded("sft".into(), 2, js_sys::Promise::resolve(&answers)).await.unwrap();
        for name in ["loss/train", "accuracy/train", "grad_norm"] {
            let (g, e) = (number(&got, name), number(&expected, name));
            assert!(close(g, e), "step {step}, {name}: {g} split against {e} whole");
        }
    }
    let failed = js_sys::Promise::reject(&js_sys::Error::new("the helper crashed").into());
    let error = split.step_sharded("sft".into(), 2, failed).await.unwrap_err();
    let message = field(&error, "message").as_string().unwrap();
    assert!(message.contains("the helper crashed"), "{message}");
    // Nothing changed: the next whole step is the fourth step of the other session.
    let (e, g) = (whole.step("sft".into()).await.unwrap(), split.step("sft".into()).await.unwrap());
    assert!(close(number(&g, "loss/train"), number(&e, "loss/train")), "after the refused step");
    // The β sweep's runs are taken whole, which the plan says with null; a stage that has not
    // begun says so.
    assert!(split.shard_plan("sweep".into(), 2, None).await.unwrap().is_null());
    let error = split.shard_plan("ppo".into(), 2, None).await.unwrap_err();
    let message = field(&error, "message").as_string().unwrap();
    assert!(message.contains("PPO has not begun"), "{message}");
}

/// A model trained on the page's backend (WebGPU in Chromium, the CPU backend in Firefox) leaves
/// as a zipped Hugging Face folder and comes back: the folder's weights are the checkpoint's, the
/// zip made in the page reads back, and the imported π_ref loads into the session again.
#[wasm_bindgen_test]
async fn a_model_leaves_as_a_hugging_face_folder_and_comes_back_in_the_page() {
    use rlhf_lab::app::hf::{export_checkpoint, import_folder, unzip_folder, zip_folder};
    let (device, info) = auto_device().await;
    let mut session = Session::new(device, micro_config(2)).unwrap();
    session.base_from_scratch();
    session.sft_begin().unwrap();
    for _ in 0..2 {
        session.sft_step().await.unwrap();
    }
    session.sft_finish().unwrap();
    let saved = session.save(Role::Sft).await.unwrap();
    let metrics = serde_json::json!({"loss/train": 1.0});
    let files = export_checkpoint(&saved, session.tokenizer(), &metrics).await.unwrap();
    let zip = zip_folder("rlhf-lab-sft-micro", &files).unwrap();
    let unzipped = unzip_folder(&zip).unwrap();
    assert_eq!(unzipped, files);
    let back = import_folder(&unzipped, session.tokenizer(), &session.model_config(), None).await.unwrap();
    let again = export_checkpoint(&back, session.tokenizer(), &metrics).await.unwrap();
    let weights = |files: &[rlhf_lab::app::hf::HfFile]| files.iter().find(|f| f.name == "model.safetensors").unwrap().bytes.clone();
    assert_eq!(weights(&again), weights(&files), "the imported model's weights are the exported ones ({})", info.backend);
    assert_eq!(session.load(&back).unwrap().role, "sft");
    let card = String::from_utf8(files.iter().find(|f| f.name == "README.md").unwrap().bytes.clone()).unwrap();
    assert!(card.contains("loss/train") && card.contains("`preset`: `\"micro\"`"), "{card}");
}
