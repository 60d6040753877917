//! The story the lab teaches: the task a small GPT learns, the math page as pure functions, and
//! one file per stage of the pipeline, each opening with the objective it optimizes.
//!
//! ```text
//! task/      the review grammar, tokenizer, gold utility and simulated labeler
//! math/      Bradley–Terry, KL estimators, GAE, whitening, the PPO and GRPO losses, DPO: pure f32
//! stages/    SFT → π_ref, the reward model r_φ, PPO, GRPO/RLOO, DPO and the β sweep
//! labels.rs  preference labels (JSON lines), config.rs every setting, metrics.rs every metric name
//! preference_dataset.rs  the labels in TRL's prompt/chosen/rejected format
//! hf.rs      the tokenizer, generation config and model card of a Hugging Face export
//! ```
//!
//! It builds on `engine` (the model, its layers, generation) and nothing above it.

pub mod config;
pub mod hf;
pub mod labels;
pub mod math;
pub mod metrics;
pub mod preference_dataset;
pub mod reward_expression;
pub mod stages;
pub mod task;
