//! The app around the story: the session that holds the models by role and each stage's
//! trainer behind bounded calls, the helper workers of data-parallel steps, the only file that
//! talks to JavaScript, the benchmark, the counting allocator of the soak, and models as Hugging
//! Face folders (and back).

pub mod bench;
pub mod heap;
pub mod hf;
pub mod session;
pub mod shard;
#[cfg(target_arch = "wasm32")]
pub mod web;
