//! The math page (`shared/reference/rlhf-ppo-math.txt`) as pure functions on host `f32`s.
//!
//! No model, optimizer or DOM in here. Each function is tested with numbers worked by hand and,
//! where the page offers one, against a second formulation of the same quantity. These are the
//! exact numbers the rollout inspector, GAE stepper and clipping view show; the tensor twins that
//! autodiff differentiates live beside the stages and are tested against these.

pub mod bradley_terry;
pub mod dpo;
pub mod examples;
pub mod gae;
pub mod grpo;
pub mod kl;
pub mod ppo;
pub mod stats;
pub mod whiten;
