//! The benchmark's measurements, shared by the native command (`rlhf bench`) and the page
//! (`bench.html`): milliseconds per training step, per generated token and per PPO iteration,
//! and — on cubecl backends (WebGPU, native wgpu) — kernel dispatches per step and per token,
//! counted with cubecl's launch observer. Readbacks are counted by the crate itself
//! (`engine::readback::readbacks()`), at every place it reads the device.
//!
//! Timings on shared machines are noisy: compare ratios measured in one run.

use burn::prelude::*;
use serde::Serialize;

use crate::engine::model::config::Preset;
use crate::engine::model::{Gpt, ScalarModel};
use crate::engine::readback::readbacks;
use crate::engine::sample::{generate, SampleOptions};
use crate::error::Result;
use crate::rlhf::config::{PpoConfig, SftConfig};
use crate::rlhf::stages::ppo::PpoTrainer;
use crate::rlhf::stages::sft::SftTrainer;
use crate::rlhf::task::{prompt_tokens, Tokenizer, MAX_COMPLETION};
use crate::rng::Rng;

/// Counts kernel launches while alive (cubecl backends only; zero elsewhere).
#[cfg(any(feature = "webgpu", feature = "gpu"))]
mod dispatches {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use std::collections::HashMap;
    use std::sync::Mutex;

    use burn::cubecl::logging::{LaunchObservation, LaunchObserver};

    /// Launches in total and by kernel name (what to fuse or remove next).
    #[derive(Default)]
    struct Count(AtomicUsize, Mutex<HashMap<&'static str, usize>>);

    impl LaunchObserver for Count {
        fn launched(&self, kernel: &'static str) {
            self.0.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut by_name) = self.1.lock() {
                *by_name.entry(kernel).or_default() += 1;
            }
        }
    }

    pub struct Counter {
        count: Arc<Count>,
        _guard: LaunchObservation,
    }

    impl Counter {
        pub fn start() -> Self {
            let count = Arc::new(Count::default());
            let guard = LaunchObservation::new(count.clone());
            Self { count, _guard: guard }
        }

        pub fn count(&self) -> usize {
            self.count.0.load(Ordering::Relaxed)
        }

        /// The `limit` most launched kernels, most first.
        pub fn by_kernel(&self, limit: usize) -> Vec<(String, usize)> {
            let by_name = self.count.1.lock().map(|m| m.clone()).unwrap_or_default();
            let mut rows: Vec<(String, usize)> = by_name.into_iter().map(|(k, n)| (k.to_string(), n)).collect();
            rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            rows.truncate(limit);
            rows
        }
    }
}

#[cfg(not(any(feature = "webgpu", feature = "gpu")))]
mod dispatches {
    /// The CPU backend launches no kernels: nothing to count.
    pub struct Counter;

    impl Counter {
        pub fn start() -> Self {
            Self
        }

        pub fn count(&self) -> usize {
            0
        }

        pub fn by_kernel(&self, _limit: usize) -> Vec<(String, usize)> {
            Vec::new()
        }
    }
}

/// Counts kernel launches while alive: what `examples/dispatches.rs` attributes to each part of
/// a step.
pub use dispatches::Counter as DispatchCounter;

/// How many of the most launched kernels a row lists (the table prints fewer).
const KERNELS_LISTED: usize = 40;

/// One preset on one backend.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    pub preset: String,
    pub backend: String,
    pub parameters: usize,
    pub train_step_ms: f64,
    pub token_ms: f64,
    pub ppo_iteration_ms: f64,
    /// Kernel dispatches per training step and per generated token (0 on the CPU backend).
    pub dispatches_per_step: f64,
    pub dispatches_per_token: f64,
    pub readbacks_per_step: f64,
    pub readbacks_per_rollout: f64,
    /// GPU queue submissions per training step and per generated token (WebGPU in the page).
    pub submissions_per_step: f64,
    pub submissions_per_token: f64,
    /// The most launched kernels of a training step: (cubecl's kernel name, launches per step).
    pub step_kernels: Vec<(String, f64)>,
    /// The same for generation: (kernel name, launches per generated token).
    pub token_kernels: Vec<(String, f64)>,
    pub train_steps: usize,
    pub generated_tokens: usize,
    pub ppo_iterations: usize,
}

/// How much to measure: a GPU emulated on the CPU needs far fewer repetitions.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BenchPlan {
    pub warmup_steps: usize,
    pub train_steps: usize,
    pub generations: usize,
    pub ppo_iterations: usize,
}

impl BenchPlan {
    /// Forty warm-up steps: in the page, V8 compiles hot wasm functions again with its optimizing
    /// tier while they run, in the background. Measured in Node (2026-11-30, tiny preset, CPU
    /// backend): 20 steps after 3 warm-up ones averaged 31–39 ms, after 8 or more 24–29 ms, and
    /// the plan warmed up 10. In headless Chromium 156 (2026-12-04, `--cpu-presets tiny,tiny,tiny`,
    /// three rows of this plan in one worker, two runs) 10 were too few: the first row took
    /// 14.2 and 15.4 ms per step, the later ones 11.6–13.7; after 40 warm-up steps the first
    /// row took 11.9 and 12.0 (later rows 12.6 and 16.1, the machine's noise), after 100, 13.1
    /// and 11.7 (later 12.1 and 11.6).
    pub fn full() -> Self {
        Self { warmup_steps: 40, train_steps: 20, generations: 5, ppo_iterations: 2 }
    }

    pub fn quick() -> Self {
        Self { warmup_steps: 1, train_steps: 3, generations: 1, ppo_iterations: 1 }
    }

    /// Enough to count dispatches, no PPO iteration.
    pub fn counts() -> Self {
        Self { warmup_steps: 1, train_steps: 2, generations: 1, ppo_iterations: 0 }
    }
}

/// Measures `preset` on `device`. Batch 16 for training and generation (the table);
/// the PPO iteration is the default one (32 completions, 4 epochs × 2 minibatches).
/// `submissions` reads a count of GPU queue submissions (the page counts them in JS; natively 0).
pub async fn measure(preset: Preset, backend: &str, device: &Device, plan: BenchPlan, now_ms: impl Fn() -> f64, submissions: impl Fn() -> usize) -> Result<BenchRow> {
    let tokenizer = Tokenizer::new();
    let model_config = preset.model(tokenizer.vocab_size());
    let base = Gpt::new(&model_config, &mut Rng::new(1), device);

    // Training steps (SFT: forward, backward, Adam, the step's one readback). A trainer
    // evaluates on held-out data at its first and last step: one step more than measured keeps
    // that evaluation out of the measured steps (until 2026-11-29 the last measured step
    // evaluated, which added half a held-out forward to each step of the `counts` plan).
    let sft = SftConfig { batch_size: 16, steps: plan.warmup_steps + plan.train_steps + 1, eval_every: 100_000, train_examples: 512, held_out_examples: 16, ..SftConfig::default() };
    let mut trainer = SftTrainer::sft(base.clone(), &sft, &tokenizer, 1, device)?;
    for _ in 0..plan.warmup_steps {
        trainer.step().await?;
    }
    let (readbacks_before, submissions_before, counter) = (readbacks(), submissions(), dispatches::Counter::start());
    let started = now_ms();
    for _ in 0..plan.train_steps {
        trainer.step().await?;
    }
    let train_step_ms = (now_ms() - started) / plan.train_steps as f64;
    let submissions_per_step = (submissions() - submissions_before) as f64 / plan.train_steps as f64;
    let dispatches_per_step = counter.count() as f64 / plan.train_steps as f64;
    let step_kernels = counter.by_kernel(KERNELS_LISTED).into_iter().map(|(k, n)| (k, n as f64 / plan.train_steps as f64)).collect();
    drop(counter);
    let readbacks_per_step = (readbacks() - readbacks_before) as f64 / plan.train_steps as f64;

    // Generation: 16 rows, 20 new tokens each, KV cache, one readback per call.
    let prompts: Vec<u32> = (0..16).flat_map(|i| prompt_tokens(&tokenizer, i % 10)).collect();
    let options = SampleOptions { temperature: 1.0, top_k: 0, max_new_tokens: MAX_COMPLETION };
    let mut rng = Rng::new(2);
    generate(&base, &prompts, 16, options, &mut rng, device).await?;
    let (counter, submissions_before) = (dispatches::Counter::start(), submissions());
    let started = now_ms();
    for _ in 0..plan.generations {
        generate(&base, &prompts, 16, options, &mut rng, device).await?;
    }
    let tokens = plan.generations * MAX_COMPLETION;
    let token_ms = (now_ms() - started) / tokens as f64;
    let dispatches_per_token = counter.count() as f64 / tokens as f64;
    let submissions_per_token = (submissions() - submissions_before) as f64 / tokens as f64;
    let token_kernels = counter.by_kernel(KERNELS_LISTED).into_iter().map(|(k, n)| (k, n as f64 / tokens as f64)).collect();
    drop(counter);

    // PPO iterations with the default settings (value model and reward model on the same trunk).
    if plan.ppo_iterations == 0 {
        return Ok(BenchRow {
            preset: preset.name().into(),
            backend: backend.into(),
            parameters: model_config.num_params(),
            train_step_ms,
            token_ms,
            ppo_iteration_ms: f64::NAN,
            dispatches_per_step,
            dispatches_per_token,
            readbacks_per_step,
            readbacks_per_rollout: f64::NAN,
            submissions_per_step,
            submissions_per_token,
            step_kernels,
            token_kernels,
            train_steps: plan.train_steps,
            generated_tokens: tokens,
            ppo_iterations: 0,
        });
    }
    let reward = ScalarModel::from_trunk(base.clone(), device);
    let ppo = PpoConfig { iterations: plan.ppo_iterations + 1, ..PpoConfig::default() };
    let steps_per_iteration = 1 + ppo.epochs * ppo.mini_batches;
    let mut trainer = PpoTrainer::new(&base, &reward, &ppo, 1, &tokenizer, device)?;
    for _ in 0..steps_per_iteration {
        trainer.step().await?;
    }
    let before = readbacks();
    let started = now_ms();
    trainer.step().await?; // a rollout
    let readbacks_per_rollout = (readbacks() - before) as f64;
    for _ in 1..plan.ppo_iterations * steps_per_iteration {
        trainer.step().await?;
    }
    let ppo_iteration_ms = (now_ms() - started) / plan.ppo_iterations as f64;

    Ok(BenchRow {
        preset: preset.name().into(),
        backend: backend.into(),
        parameters: model_config.num_params(),
        train_step_ms,
        token_ms,
        ppo_iteration_ms,
        dispatches_per_step,
        dispatches_per_token,
        readbacks_per_step,
        readbacks_per_rollout,
        submissions_per_step,
        submissions_per_token,
        step_kernels,
        token_kernels,
        train_steps: plan.train_steps,
        generated_tokens: tokens,
        ppo_iterations: plan.ppo_iterations,
    })
}
