//! Limits every stage's settings share.

/// Largest batch the lab accepts (sequences per step): beyond it a step on the CPU fallback takes
/// seconds and a WebGPU buffer of activations can exceed small adapters' limits.
pub const MAX_BATCH: usize = 256;
