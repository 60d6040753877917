//! The shape of the GPT and its named sizes (presets), with the bound that keeps every buffer
//! within what any WebGPU adapter guarantees.

use serde::{Deserialize, Serialize};

use crate::error::{count_in, LabError, Result};

/// The shape of the GPT (GPT-2 style: token + position embeddings, pre-LayerNorm blocks of causal
/// self-attention and MLP, a final LayerNorm, an LM head tied to the token embedding).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Tokens the model knows: the task's vocabulary.
    pub vocab_size: usize,
    /// Longest sequence (prompt + completion) the position embedding covers.
    pub context_length: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Transformer blocks.
    pub n_layers: usize,
    /// Attention heads per block; must divide `d_model`.
    pub n_heads: usize,
    /// Hidden width of each MLP as a multiple of `d_model` (GPT-2: 4).
    pub mlp_ratio: usize,
}

impl ModelConfig {
    /// Refuses a shape the engine cannot build, or whose context holds fewer than `min_context`
    /// positions (the task's sequences need `rlhf::task::SEQ_LEN`).
    pub fn validate(&self, min_context: usize) -> Result<()> {
        count_in("model.vocab_size", self.vocab_size, 8, 65_536)?;
        count_in("model.context_length", self.context_length, min_context, 1_024)?;
        count_in("model.d_model", self.d_model, 8, 1_024)?;
        count_in("model.n_layers", self.n_layers, 1, 24)?;
        count_in("model.n_heads", self.n_heads, 1, 32)?;
        count_in("model.mlp_ratio", self.mlp_ratio, 1, 8)?;
        if self.d_model % self.n_heads != 0 {
            return Err(LabError::setting(
                "model.n_heads",
                format!("must divide d_model = {} (got {})", self.d_model, self.n_heads),
            ));
        }
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_heads
    }

    /// Parameters of the language model (the LM head is tied to the token embedding).
    pub fn num_params(&self) -> usize {
        let d = self.d_model;
        let embeddings = self.vocab_size * d + self.context_length * d;
        let block = 2 * 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * self.mlp_ratio * d + self.mlp_ratio * d)
            + (self.mlp_ratio * d * d + d);
        embeddings + self.n_layers * block + 2 * d
    }

    /// Bytes of the largest single tensor a step over `batch` sequences makes: the MLP's hidden
    /// activations, the attention scores, the logits, or the optimizer's flat vector of all
    /// parameters. WebGPU guarantees every adapter at least 128 MiB per storage binding
    /// (`maxStorageBufferBindingSize`), so a configuration under that runs on any adapter.
    pub fn largest_tensor_bytes(&self, batch: usize) -> usize {
        let rows = batch * self.context_length;
        let hidden = rows * self.mlp_ratio * self.d_model;
        let scores = batch * self.n_heads * self.context_length * self.context_length;
        let logits = rows * self.vocab_size;
        4 * hidden.max(scores).max(logits).max(self.num_params())
    }
}

/// WebGPU's guaranteed minimum of `maxStorageBufferBindingSize`, in bytes.
pub const WEBGPU_MIN_BINDING_BYTES: usize = 128 << 20;

/// Named model sizes. The default, `tiny`, is the 110k-parameter GPT the benchmarks measure: a
/// training step is milliseconds on a laptop GPU and ~100 ms on the CPU fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// d=32, 1 layer, 2 heads: for tests and slow machines.
    Micro,
    /// d=64, 2 layers, 4 heads, context 32 (~110k parameters).
    #[default]
    Tiny,
    /// d=128, 4 layers, 4 heads (~0.8M parameters): for real GPUs.
    Small,
}

impl Preset {
    pub const ALL: [Preset; 3] = [Preset::Micro, Preset::Tiny, Preset::Small];

    pub fn model(self, vocab_size: usize) -> ModelConfig {
        let (d_model, n_layers, n_heads) = match self {
            Preset::Micro => (32, 1, 2),
            Preset::Tiny => (64, 2, 4),
            Preset::Small => (128, 4, 4),
        };
        ModelConfig { vocab_size, context_length: 32, d_model, n_layers, n_heads, mlp_ratio: 4 }
    }

    pub fn name(self) -> &'static str {
        match self {
            Preset::Micro => "micro",
            Preset::Tiny => "tiny",
            Preset::Small => "small",
        }
    }

    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| LabError::setting("preset", format!("must be one of micro, tiny, small (got {name:?})")))
    }
}
