//! # rlhf-lab
//!
//! An RLHF lab that runs in a browser tab. A small GPT is trained through the three stages of
//! RLHF — supervised fine-tuning, a Bradley–Terry reward model learned from pairwise preferences,
//! and PPO against the KL-regularized objective — plus DPO on the same preferences, with burn on
//! WebGPU (or burn's CPU backend where WebGPU is missing). The same core builds natively, where
//! a command-line tool runs every stage headless.
//!
//! Reading order: `task` (what the model learns), `model` and `sample` (the GPT and generation),
//! `math` (the math page as pure functions), `stages` (one file per stage), `web` (the only file
//! that talks to JavaScript).

pub mod bench;
pub mod checkpoint;
pub mod clock;
pub mod concat;
pub mod config;
pub mod cpu_attention;
pub mod cpu_math;
pub mod cpu_matmul;
pub mod device;
pub mod error;
pub mod flex_f32;
pub mod heap;
pub mod kernels;
pub mod labels;
pub mod layers;
pub mod metrics;
pub mod math;
pub mod matmul_kernel;
pub mod model;
pub mod optim;
pub mod rng;
pub mod sample;
pub mod session;
pub mod shard;
pub mod snapshot;
pub mod stages;
pub mod task;

pub use error::{LabError, Result};

#[cfg(target_arch = "wasm32")]
pub mod web;
