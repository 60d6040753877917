//! The machinery that runs the story: the GPT and its autodiff layers, the CPU backend's and the
//! GPU's own kernels, Adam over one flat vector, generation with a KV cache, reading the device
//! (the one async sync point of a step), and models to bytes (the lab's checkpoints, and GPT-2
//! safetensors for the Hugging Face stack). Nothing here knows the task or
//! the stages: it sees token ids, tensors and parameters.

pub mod checkpoint;
pub mod concat;
pub mod cpu;
pub mod data_parallel;
pub mod device;
pub mod gpu_kernels;
pub mod hf;
pub mod layers;
pub mod model;
pub mod optim;
pub mod readback;
pub mod sample;
pub mod snapshot;
pub mod tokens;
