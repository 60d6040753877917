//! The GPT, from the smallest part to the whole (as nanoGPT's `model.py` reads):
//! causal self-attention → MLP → block → GPT → scalar head.
//!
//! GPT-2 in miniature: token and position embeddings, pre-LayerNorm blocks, a final LayerNorm,
//! an LM head tied to the token embedding (Radford et al., 2019). The same trunk with a scalar
//! head is the reward model and the value model.
//!
//! Weights are drawn on the host (`crate::rng`) and uploaded, so a seed gives the same model on
//! WebGPU and on the CPU backend.
//!
//! `parts.rs` holds the smallest parts (initialization, the dense layer, LayerNorm and their
//! one-kernel GPU forms), `attention.rs` the attention (and the KV cache generation runs with),
//! this file the rest, from the MLP up; `tests.rs` the checks.

use burn::module::Param;
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear};
use burn::prelude::*;
use burn::tensor::module::embedding;
use burn::tensor::TensorData;

use crate::engine::model::config::ModelConfig;
use crate::rng::Rng;

pub mod config;
mod attention;
mod parts;
#[cfg(test)]
mod tests;

pub use attention::{CausalSelfAttention, KvCache};
use parts::{dense, layer_norm, linear, linear_residual, norm_linear, norm_parameters, normal_tensor, INIT_STD};
pub use parts::LAYER_NORM_EPSILON;
use attention::{causal_bias, causal_bias_over, launches_dominate, CacheSlot, MASKED_SCORE};

/// Tokens a model never writes (they mark structure, not text).
const NEVER_WRITTEN: [u32; 3] = [crate::engine::tokens::PAD, crate::engine::tokens::BOS, crate::engine::tokens::UNK];

/// The position-wise MLP: d → 4d → GELU → d.
#[derive(Module, Debug)]
pub struct Mlp {
    fc: Linear,
    proj: Linear,
}

impl Mlp {
    fn new(config: &ModelConfig, rng: &mut Rng, device: &Device) -> Self {
        let d = config.d_model;
        let hidden = config.mlp_ratio * d;
        let residual_std = INIT_STD / (2.0 * config.n_layers as f32).sqrt();
        Self { fc: linear(d, hidden, INIT_STD, rng, device), proj: linear(hidden, d, residual_std, rng, device) }
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        dense(&self.proj, crate::engine::layers::gelu(dense(&self.fc, x)))
    }
}

/// A pre-LayerNorm transformer block: x + attn(ln1(x)), then + mlp(ln2(·)).
#[derive(Module, Debug)]
pub struct Block {
    ln_1: LayerNorm,
    attn: CausalSelfAttention,
    ln_2: LayerNorm,
    mlp: Mlp,
}

impl Block {
    fn new(config: &ModelConfig, rng: &mut Rng, device: &Device) -> Self {
        Self {
            ln_1: LayerNormConfig::new(config.d_model).init(device),
            attn: CausalSelfAttention::new(config, rng, device),
            ln_2: LayerNormConfig::new(config.d_model).init(device),
            mlp: Mlp::new(config, rng, device),
        }
    }

    fn forward(&self, x: Tensor<3>, bias: Option<Tensor<4>>, cache: Option<CacheSlot>) -> Tensor<3> {
        let x = x.clone() + self.attn.forward(layer_norm(&self.ln_1, x), bias, cache);
        x.clone() + self.mlp.forward(layer_norm(&self.ln_2, x))
    }

    /// One new position on a GPU, the block as five kernels and the cache write: LayerNorm and
    /// the QKV projection, the attention over the cache, the output projection with the
    /// residual, LayerNorm with the MLP's first layer and GELU, its second layer with the
    /// residual (`gpu_kernels`). A whole token of the tiny GPT (two blocks, the LM head, sampling)
    /// took 57.65 launches on burn-wgpu composed of burn's operations, and takes 21.95 so.
    fn forward_one_position(&self, x: Tensor<3>, slot: CacheSlot) -> Tensor<3> {
        let qkv = norm_linear(&self.ln_1, &self.attn.qkv, x.clone(), false);
        let x = linear_residual(&self.attn.proj, self.attn.attend_one_position(qkv, slot), x);
        let hidden = norm_linear(&self.ln_2, &self.mlp.fc, x.clone(), true);
        linear_residual(&self.mlp.proj, hidden, x)
    }
}

impl KvCache {
    /// An empty cache for `model`: one entry per block, buffers of its context length.
    pub fn new(model: &Gpt) -> Self {
        Self { layers: (0..model.n_layers()).map(|_| None).collect(), len: 0, capacity: model.context_length() }
    }
}

/// The decoder-only transformer. `wte`, `wpe`, `ln_f` as in GPT-2; the LM head is `wte`ᵀ.
#[derive(Module, Debug)]
pub struct Gpt {
    wte: Embedding,
    wpe: Embedding,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
}

impl Gpt {
    /// A freshly initialized GPT; the same `rng` state gives the same weights on every backend.
    pub fn new(config: &ModelConfig, rng: &mut Rng, device: &Device) -> Self {
        let wte = Embedding { weight: Param::from_tensor(normal_tensor([config.vocab_size, config.d_model], INIT_STD, rng, device)) };
        let wpe = Embedding { weight: Param::from_tensor(normal_tensor([config.context_length, config.d_model], 0.01, rng, device)) };
        let blocks = (0..config.n_layers).map(|_| Block::new(config, rng, device)).collect();
        Self { wte, wpe, blocks, ln_f: LayerNormConfig::new(config.d_model).init(device) }
    }

    /// The shape this model was made with, read from its parameters.
    pub fn config(&self) -> ModelConfig {
        let [vocab_size, d_model] = self.wte.weight.dims();
        let first = self.blocks.first();
        ModelConfig {
            vocab_size,
            context_length: self.context_length(),
            d_model,
            n_layers: self.blocks.len(),
            n_heads: first.map_or(1, |b| b.attn.n_heads),
            mlp_ratio: first.map_or(1, |b| b.mlp.fc.weight.dims()[1] / d_model),
        }
    }

    pub fn vocab_size(&self) -> usize {
        self.wte.weight.dims()[0]
    }

    pub fn context_length(&self) -> usize {
        self.wpe.weight.dims()[0]
    }

    pub fn n_layers(&self) -> usize {
        self.blocks.len()
    }

    /// The final hidden states.
    ///
    /// # Shapes
    /// - `tokens`: [batch, seq] — seq ≤ context_length
    /// - returns [batch, seq, d_model]
    pub fn hidden(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        let [_, seq] = tokens.dims();
        let device = tokens.device();
        let x = self.embed(tokens, 0, &device);
        let bias = causal_bias(0, seq, &device);
        let x = self.blocks.iter().fold(x, |x, block| block.forward(x, Some(bias.clone()), None));
        layer_norm(&self.ln_f, x)
    }

    /// Hidden states of `tokens`, the positions after the `cache.len` already cached; the cache
    /// grows by `seq`. Used by generation so each new token costs one position, not the whole
    /// context.
    pub fn hidden_cached(&self, tokens: Tensor<2, Int>, cache: &mut KvCache) -> Tensor<3> {
        let [_, seq] = tokens.dims();
        let device = tokens.device();
        let (past, capacity) = (cache.len, cache.capacity);
        assert!(past + seq <= capacity, "{past} cached + {seq} new positions exceed the context length {capacity}");
        let x = self.embed(tokens, past, &device);
        // Keys past `past + i` are either later positions or not written yet: both masked.
        let bias = causal_bias_over(past, seq, capacity, &device);
        let mut x = x;
        for (block, buffers) in self.blocks.iter().zip(cache.layers.iter_mut()) {
            x = block.forward(x, Some(bias.clone()), Some(CacheSlot { buffers, past, capacity }));
        }
        cache.len += seq;
        layer_norm(&self.ln_f, x)
    }

    /// The next token's logits after one new token per row, the cache growing by one: what
    /// generation runs for every token after the prompt. On a GPU each block is a handful of
    /// kernels (`Block::forward_one_position`) and the final LayerNorm with the LM head one
    /// more; elsewhere it is `logits(hidden_cached(tokens))`.
    ///
    /// # Shapes
    /// - `tokens`: [batch, 1] → [batch, vocab]
    pub fn next_token_logits(&self, tokens: Tensor<2, Int>, cache: &mut KvCache) -> Tensor<2> {
        let [batch, seq] = tokens.dims();
        assert_eq!(seq, 1, "one new token per row");
        let vocab = self.vocab_size();
        let device = tokens.device();
        if !launches_dominate(&device) {
            return self.logits(self.hidden_cached(tokens, cache)).reshape([batch, vocab]);
        }
        let (past, capacity) = (cache.len, cache.capacity);
        assert!(past < capacity, "{past} cached positions fill the context length {capacity}");
        let mut x = self.embed(tokens, past, &device);
        for (block, buffers) in self.blocks.iter().zip(cache.layers.iter_mut()) {
            x = block.forward_one_position(x, CacheSlot { buffers, past, capacity });
        }
        cache.len += 1;
        let (gamma, beta) = norm_parameters(&self.ln_f, &device);
        let head = self.wte.weight.val().transpose(); // [D, V], a view
        crate::engine::gpu_kernels::norm_linear_rows(x, gamma, beta, LAYER_NORM_EPSILON, head, self.never_written(&device), false).reshape([batch, vocab])
    }

    /// Added to every logit: far down for PAD, BOS and UNK (see `logits`). Made on the host.
    fn never_written(&self, device: &Device) -> Tensor<1> {
        let vocab = self.vocab_size();
        let mut never = vec![0.0f32; vocab];
        for id in NEVER_WRITTEN {
            if (id as usize) < vocab {
                never[id as usize] = MASKED_SCORE;
            }
        }
        Tensor::from_data(TensorData::new(never, [vocab]), device)
    }

    fn embed(&self, tokens: Tensor<2, Int>, start: usize, device: &Device) -> Tensor<3> {
        let [batch, seq] = tokens.dims();
        let positions: Vec<i32> = (start as i32..(start + seq) as i32).collect();
        let positions = Tensor::<2, Int>::from_data(TensorData::new(positions, [1, seq]), device);
        let tok_emb = embedding(self.wte.weight.val(), tokens); // [B, T, D]
        let pos_emb = embedding(self.wpe.weight.val(), positions); // [1, T, D]
        let _ = batch;
        tok_emb + pos_emb
    }

    /// Next-token logits from hidden states through the tied LM head.
    ///
    /// PAD, BOS and UNK are never a valid next token: their logits are pushed far down here, the
    /// one place every stage gets logits from, so sampling, the log-probs PPO and DPO train on,
    /// and SFT's cross-entropy all see the same distribution over the tokens a model may write.
    ///
    /// # Shapes
    /// - `hidden`: [batch, seq, d_model] → [batch, seq, vocab]
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let [batch, seq, d_model] = hidden.dims();
        let vocab = self.vocab_size();
        let weight = self.wte.weight.val(); // [V, D]
        let never = self.never_written(&hidden.device()).reshape([1, 1, vocab]);
        crate::engine::layers::matmul(hidden.reshape([batch * seq, d_model]), weight.transpose()).reshape([batch, seq, vocab]) + never
    }

    /// Logits for every position: [batch, seq] → [batch, seq, vocab].
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        self.logits(self.hidden(tokens))
    }
}

/// A GPT trunk with a scalar head: the reward model r_φ (read at the last real token) and the
/// value model V_ψ (read at every position). Initialized from another model's trunk.
#[derive(Module, Debug)]
pub struct ScalarModel {
    pub trunk: Gpt,
    head: Linear,
}

impl ScalarModel {
    /// A scalar head on `trunk`, starting at zero so the first scores are all 0.
    pub fn from_trunk(trunk: Gpt, device: &Device) -> Self {
        let d_model = trunk.ln_f.gamma.dims()[0];
        let head = Linear {
            weight: Param::from_tensor(Tensor::zeros([d_model, 1], device)),
            bias: Some(Param::from_tensor(Tensor::zeros([1], device))),
        };
        Self { trunk, head }
    }

    /// A scalar for every position: [batch, seq] → [batch, seq].
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<2> {
        let hidden = self.trunk.hidden(tokens);
        let [batch, seq, _] = hidden.dims();
        dense(&self.head, hidden).reshape([batch, seq])
    }

    /// Adds `delta` to the head's bias: shifting every score by a constant, which the
    /// Bradley–Terry likelihood cannot see (the page: r is identified up to a constant).
    pub fn shift_scores(self, delta: f32) -> Self {
        let device = self.head.weight.val().device();
        let bias = self.head.bias.as_ref().map(|b| b.val()).unwrap_or_else(|| Tensor::zeros([1], &device));
        let shifted = bias + delta;
        Self { trunk: self.trunk, head: Linear { weight: self.head.weight, bias: Some(Param::from_tensor(shifted)) } }
    }
}

/// The same module with a new identity for every parameter.
///
/// A copy made for another role (the reward model's trunk from π_ref, the value model from the
/// reward model, the policy from π_ref) must not share parameter ids with its source: optimizers
/// and gradients are keyed by id, so two roles trained together would otherwise mix their
/// gradients and Adam states.
pub fn with_fresh_ids<M: Module>(module: M) -> M {
    struct Fresh;
    impl burn::module::ModuleMapper for Fresh {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (_, value, mapper) = param.consume();
            Param::from_mapped_value(burn::module::ParamId::new(), value, mapper)
        }
    }
    module.map(&mut Fresh)
}
