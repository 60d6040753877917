//! # rlhf-lab
//!
//! An RLHF lab that runs in a browser tab. A small GPT is trained through the three stages of
//! RLHF — supervised fine-tuning, a Bradley–Terry reward model learned from pairwise preferences,
//! and PPO against the KL-regularized objective — with GRPO/RLOO and DPO beside PPO, on burn's
//! WebGPU backend (or its CPU backend where WebGPU is missing). The same core builds natively,
//! where a command-line tool runs every stage headless.
//!
//! The crate is three layers, and imports point one way, down this list
//! (`scripts/check-imports.mjs` checks it):
//!
//! ```text
//! app/     the app around it: the session, the helper workers, the JS boundary, the benchmark
//! rlhf/    the story the lab teaches: the task, the math page as pure functions, one file per stage
//! engine/  the machinery that runs it: the GPT, its autodiff layers, the CPU and GPU kernels,
//!          Adam, generation, reading the device, models to bytes
//! error.rs, rng.rs, clock.rs: foundations every layer uses
//! ```
//!
//! Reading order: `rlhf::task` (what the model learns), `rlhf::math` (the math page),
//! `rlhf::stages` (one file per stage), then `engine::model` and `engine::sample` (the GPT and
//! generation), and `app::web` (the only file that talks to JavaScript).

pub mod app;
pub mod clock;
pub mod engine;
pub mod error;
pub mod rlhf;
pub mod rng;

pub use error::{LabError, Result};
