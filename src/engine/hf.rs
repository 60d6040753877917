//! The lab's GPT as the Hugging Face stack's GPT-2: `config.json` and `model.safetensors`,
//! written and read through burn's own store crate (`burn-store`'s safetensors support).
//!
//! The lab's model is GPT-2 in miniature, so nearly everything maps one to one:
//!
//! ```text
//! lab (burn module path)            GPT-2 (transformers)                 note
//! wte.weight [V, D]                 transformer.wte.weight [V, D]        the LM head is its transpose (tied)
//! wpe.weight [C, D]                 transformer.wpe.weight [C, D]
//! blocks.i.ln_1.gamma / .beta       transformer.h.i.ln_1.weight / .bias
//! blocks.i.attn.qkv.weight [D, 3D]  transformer.h.i.attn.c_attn.weight   GPT-2's Conv1D stores [in, out], as burn's Linear
//! blocks.i.attn.proj                transformer.h.i.attn.c_proj
//! blocks.i.mlp.fc / .proj           transformer.h.i.mlp.c_fc / .c_proj
//! ln_f.gamma / .beta                transformer.ln_f.weight / .bias
//! head.weight [D, 1]                score.weight [1, D]                  r_φ and V_ψ (GPT2ForSequenceClassification)
//! head.bias [1]                     —                                    GPT-2's score layer has no bias: config.json's `score_bias`
//! ```
//!
//! What the formats cannot say is said by the caller's model card: the logits the lab pushes to
//! −1e9 (PAD, BOS, UNK; `Gpt::logits`), the scoring head's bias, and that V_ψ is read at every
//! position while GPT2ForSequenceClassification reads the last non-padding one.
//!
//! Everything here runs on burn's CPU backend (`Device::flex()`): a model is loaded from the
//! lab's checkpoint bytes first, so no GPU readback is ever made.

use burn::prelude::*;
use burn::tensor::{DType, TensorData};
use burn_store::burn_pack::Tensor as PackTensor;
use burn_store::{bridge, KeyRemapper, ModuleAdapter, ModuleContext, ModuleSnapshot, ModuleStore, PathFilter, SafetensorsStore};
use serde_json::{json, Value};

use crate::engine::model::config::ModelConfig;
use crate::engine::model::{Gpt, ScalarModel};
use crate::engine::tokens::{BOS, EOS, PAD, UNK};
use crate::error::{LabError, Result};
use crate::rng::Rng;

/// Largest `model.safetensors` accepted (the `small` preset's is ~3.4 MB).
pub const MAX_SAFETENSORS_BYTES: usize = 64 << 20;

/// Which GPT-2 head a folder holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gpt2Head {
    /// `GPT2LMHeadModel`: π_ref and the policies.
    LanguageModel,
    /// `GPT2ForSequenceClassification` with one label: r_φ and V_ψ. GPT-2's score layer has no
    /// bias, so the lab's head bias travels in config.json as `score_bias`.
    Score { bias: f32 },
}

impl Gpt2Head {
    pub fn architecture(self) -> &'static str {
        match self {
            Self::LanguageModel => "GPT2LMHeadModel",
            Self::Score { .. } => "GPT2ForSequenceClassification",
        }
    }
}

/// Lab module paths → GPT-2 names, applied in order on save (`KeyRemapper` applies every
/// matching pattern in turn).
const TO_GPT2: [(&str, &str); 11] = [
    (r"^head\.weight$", "score.weight"),
    (r"^(trunk\.)?wte\.", "transformer.wte."),
    (r"^(trunk\.)?wpe\.", "transformer.wpe."),
    (r"^(trunk\.)?ln_f\.", "transformer.ln_f."),
    (r"^(trunk\.)?blocks\.([0-9]+)\.", "transformer.h.$2."),
    (r"\.attn\.qkv\.", ".attn.c_attn."),
    (r"\.attn\.proj\.", ".attn.c_proj."),
    (r"\.mlp\.fc\.", ".mlp.c_fc."),
    (r"\.mlp\.proj\.", ".mlp.c_proj."),
    (r"\.gamma$", ".weight"),
    (r"\.beta$", ".bias"),
];

/// GPT-2 names → lab module paths, on load; `trunk.` is prefixed for a scoring model.
fn from_gpt2(scoring: bool) -> Vec<(String, String)> {
    let trunk = if scoring { "trunk." } else { "" };
    vec![
        (r"^transformer\.h\.([0-9]+)\.".into(), format!("{trunk}blocks.$1.")),
        (r"^transformer\.".into(), trunk.into()),
        (r"\.attn\.c_attn\.".into(), ".attn.qkv.".into()),
        (r"\.attn\.c_proj\.".into(), ".attn.proj.".into()),
        (r"\.mlp\.c_fc\.".into(), ".mlp.fc.".into()),
        (r"\.mlp\.c_proj\.".into(), ".mlp.proj.".into()),
        (r"(ln_1|ln_2|ln_f)\.weight$".into(), "$1.gamma".into()),
        (r"(ln_1|ln_2|ln_f)\.bias$".into(), "$1.beta".into()),
        (r"^score\.weight$".into(), "head.weight".into()),
    ]
}

/// A lab module path as GPT-2 names it, for messages.
fn gpt2_name(path: &str) -> String {
    if path == "head.weight" {
        return "score.weight".into();
    }
    if path == "head.bias" {
        return "config.json's score_bias".into();
    }
    let remapper = KeyRemapper::from_patterns(TO_GPT2.to_vec()).expect("the name patterns are valid");
    let probe = PackTensor::new(path.to_string(), DType::F32, [0usize], None, burn_store::burn_pack::Bytes::from_bytes_vec(vec![]));
    remapper.remap(vec![probe]).0.remove(0).name
}

/// The scoring head's weight is [D, 1] in burn's Linear and [1, D] in torch's: the same bytes,
/// another shape. Keyed on the module path, which adapters see before any renaming.
#[derive(Clone)]
struct ScoreHeadShape;

impl ModuleAdapter for ScoreHeadShape {
    fn adapt(&self, tensor: PackTensor, _ctx: ModuleContext<'_>) -> PackTensor {
        if tensor.name != "head.weight" || tensor.shape.num_dims() != 2 {
            return tensor;
        }
        let [rows, cols] = [tensor.shape[0], tensor.shape[1]];
        let (name, dtype) = (tensor.name.clone(), tensor.dtype);
        // A [n, 1] or [1, n] matrix and its transpose have the same row-major bytes.
        bridge::map_data(tensor, name, dtype, [cols, rows].into(), move |data| {
            let (bytes, _, dtype) = data.into_parts();
            TensorData::from_bytes(bytes, [cols, rows], dtype)
        })
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(self.clone())
    }
}

fn store_error(e: impl std::fmt::Display) -> LabError {
    LabError::Checkpoint(format!("model.safetensors: {e}"))
}

/// GPT-2's `config.json` for a lab model. `extra` (e.g. what the lab knows about the model) is
/// merged in: transformers keeps unknown keys as attributes and writes them back on save.
pub fn gpt2_config(model: &ModelConfig, head: Gpt2Head, extra: Value) -> Value {
    let mut config = json!({
        "architectures": [head.architecture()],
        "model_type": "gpt2",
        "vocab_size": model.vocab_size,
        "n_positions": model.context_length,
        "n_ctx": model.context_length,
        "n_embd": model.d_model,
        "n_layer": model.n_layers,
        "n_head": model.n_heads,
        "n_inner": model.mlp_ratio * model.d_model,
        // The lab's GELU is the exact one (erf), not GPT-2's tanh approximation ("gelu_new").
        "activation_function": "gelu",
        "layer_norm_epsilon": crate::engine::model::LAYER_NORM_EPSILON,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "summary_first_dropout": 0.0,
        "scale_attn_weights": true,
        "scale_attn_by_inverse_layer_idx": false,
        "reorder_and_upcast_attn": false,
        "initializer_range": 0.02,
        "tie_word_embeddings": true,
        "use_cache": true,
        "bos_token_id": BOS,
        "eos_token_id": EOS,
        "pad_token_id": PAD,
        "torch_dtype": "float32",
        "dtype": "float32",
    });
    if let Gpt2Head::Score { bias } = head {
        config["num_labels"] = json!(1);
        config["id2label"] = json!({"0": "LABEL_0"});
        config["label2id"] = json!({"LABEL_0": 0});
        config["score_bias"] = json!(bias);
    }
    if let (Some(config), Value::Object(extra)) = (config.as_object_mut(), extra) {
        config.extend(extra);
    }
    config
}

/// Reads a GPT-2 `config.json` back into the lab's model shape and head, refusing what the lab's
/// model cannot be (another activation, ε, head count …) with the field and the reason.
pub fn read_gpt2_config(text: &[u8]) -> Result<(ModelConfig, Gpt2Head)> {
    let refuse = |why: String| Err(LabError::Checkpoint(format!("config.json: {why}")));
    let config: Value = match serde_json::from_slice(text) {
        Ok(Value::Object(map)) => Value::Object(map),
        Ok(_) => return refuse("is not a JSON object".into()),
        Err(e) => return refuse(format!("is not valid JSON ({e})")),
    };
    if config["model_type"] != "gpt2" {
        return refuse(format!("model_type is {}, this lab reads gpt2 only", config["model_type"]));
    }
    let count = |key: &str| -> Result<usize> {
        config[key].as_u64().map(|n| n as usize).ok_or_else(|| LabError::Checkpoint(format!("config.json: {key} is missing or not a whole number")))
    };
    let (d_model, n_layers, n_heads, vocab_size, context_length) = (count("n_embd")?, count("n_layer")?, count("n_head")?, count("vocab_size")?, count("n_positions")?);
    let n_inner = match &config["n_inner"] {
        Value::Null => 4 * d_model,
        v => v.as_u64().ok_or_else(|| LabError::Checkpoint("config.json: n_inner is not a whole number".into()))? as usize,
    };
    if d_model == 0 || n_inner % d_model != 0 {
        return refuse(format!("n_inner = {n_inner} is not a multiple of n_embd = {d_model}"));
    }
    let activation = config["activation_function"].as_str().unwrap_or("gelu_new");
    if activation != "gelu" {
        return refuse(format!("activation_function is {activation:?}; the lab's GELU is the exact one, \"gelu\""));
    }
    let epsilon = config["layer_norm_epsilon"].as_f64().unwrap_or(1e-5);
    if (epsilon - f64::from(crate::engine::model::LAYER_NORM_EPSILON)).abs() > 1e-12 {
        return refuse(format!("layer_norm_epsilon is {epsilon}; the lab's LayerNorm uses 1e-5"));
    }
    for (key, lab) in [("scale_attn_by_inverse_layer_idx", false), ("reorder_and_upcast_attn", false), ("scale_attn_weights", true)] {
        if let Some(value) = config[key].as_bool()
            && value != lab
        {
            return refuse(format!("{key} is {value}; the lab's attention has {lab}"));
        }
    }
    if config["tie_word_embeddings"].as_bool() == Some(false) {
        return refuse("tie_word_embeddings is false; the lab's LM head is the token embedding".into());
    }
    let architecture = config["architectures"].get(0).and_then(Value::as_str).unwrap_or("GPT2LMHeadModel");
    let head = match architecture {
        "GPT2LMHeadModel" | "GPT2Model" => Gpt2Head::LanguageModel,
        "GPT2ForSequenceClassification" => {
            let labels = config["num_labels"].as_u64().or_else(|| config["id2label"].as_object().map(|m| m.len() as u64)).unwrap_or(2);
            if labels != 1 {
                return refuse(format!("a scoring model here has one output; this one has num_labels = {labels}"));
            }
            let bias = match &config["score_bias"] {
                Value::Null => 0.0,
                v => v.as_f64().filter(|b| b.is_finite()).ok_or_else(|| LabError::Checkpoint("config.json: score_bias is not a finite number".into()))? as f32,
            };
            Gpt2Head::Score { bias }
        }
        other => return refuse(format!("architectures names {other}; the lab reads GPT2LMHeadModel or GPT2ForSequenceClassification")),
    };
    let model = ModelConfig { vocab_size, context_length, d_model, n_layers, n_heads, mlp_ratio: n_inner / d_model };
    Ok((model, head))
}

/// `model.safetensors` of a language model.
pub fn lm_safetensors(model: &Gpt) -> Result<Vec<u8>> {
    write_safetensors(model)
}

/// `model.safetensors` of a scoring model, and its head's bias (which GPT-2 has no place for).
pub fn scalar_safetensors(model: &ScalarModel) -> Result<(Vec<u8>, f32)> {
    let bias = model
        .collect(Some(PathFilter::new().with_full_path("head.bias")), None, false)
        .into_iter()
        .next()
        .map(|t| bridge::into_data(t).map_err(store_error).map(|d| d.iter::<f32>().next().unwrap_or(0.0)))
        .transpose()?
        .unwrap_or(0.0);
    Ok((write_safetensors(model)?, bias))
}

fn write_safetensors<M: ModuleSnapshot>(model: &M) -> Result<Vec<u8>> {
    let remapper = KeyRemapper::from_patterns(TO_GPT2.to_vec()).expect("the name patterns are valid");
    let mut store = SafetensorsStore::from_bytes(None)
        // GPT-2's score layer has no bias: it travels in config.json.
        .filter(PathFilter::new().with_predicate(|path, _| path != "head.bias"))
        .remap(remapper)
        .with_to_adapter(ScoreHeadShape)
        // One key: the metadata is a hash map, written in a random order when it has several,
        // and the same weights should make the same file. `pt` is what transformers expects.
        .clear_metadata()
        .metadata("format", "pt");
    store.collect_from(model).map_err(store_error)?;
    store.get_bytes().map_err(store_error)
}

/// Names that may be in a GPT-2 file without being parameters of the lab's model: the attention
/// mask buffers older transformers saved, and an explicit copy of the tied LM head (checked).
fn ignorable(name: &str) -> bool {
    name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias") || name == "lm_head.weight"
}

/// Reads `model.safetensors` into a model of `config`'s shape on `device`, refusing a truncated
/// file, a missing or unexpected tensor, a wrong shape or type, or a non-finite weight — each
/// named. Nothing is returned unless every check passed.
fn read_safetensors<M: ModuleSnapshot + Module>(bytes: &[u8], mut blank: M, scoring: bool) -> Result<M> {
    if bytes.len() > MAX_SAFETENSORS_BYTES {
        return Err(store_error(format!("{} bytes; at most {MAX_SAFETENSORS_BYTES} are accepted", bytes.len())));
    }
    let remapper = KeyRemapper::from_patterns(from_gpt2(scoring)).expect("the name patterns are valid");
    let mut store = SafetensorsStore::from_bytes(Some(bytes.to_vec())).allow_partial(true).validate(false).with_from_adapter(ScoreHeadShape);
    // Checked on the file's own names, before remapping: what a learner sees in Python.
    let names = store.keys().map_err(|e| store_error(format!("not a readable safetensors file ({e})")))?;
    let tensors = store.get_all_tensors().map_err(store_error)?.clone();
    let mut wte: Option<Vec<f32>> = None;
    let mut lm_head: Option<Vec<f32>> = None;
    for name in &names {
        let tensor = &tensors[name];
        if name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias") {
            continue;
        }
        if tensor.dtype != DType::F32 {
            return Err(store_error(format!("{name} is {:?}; the lab loads float32 weights (save with torch_dtype=torch.float32)", tensor.dtype)));
        }
        let values: Vec<f32> = bridge::to_data(tensor).map_err(|e| store_error(format!("{name}: {e}")))?.iter::<f32>().collect();
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(store_error(format!("{name} holds a non-finite weight ({} at index {i})", values[i])));
        }
        match name.as_str() {
            "transformer.wte.weight" => wte = Some(values),
            "lm_head.weight" => lm_head = Some(values),
            _ => {}
        }
    }
    if let (Some(head), Some(wte)) = (&lm_head, &wte)
        && head != wte
    {
        return Err(store_error("lm_head.weight differs from transformer.wte.weight; the lab's LM head is tied to the token embedding"));
    }
    let mut store = store.remap(remapper);
    let result = blank.load_from(&mut store).map_err(store_error)?;
    if let Some(error) = result.errors.first() {
        return Err(store_error(match error {
            burn_store::ApplyError::ShapeMismatch { path, expected, found } => {
                format!("{} has shape {:?}, this lab's model needs {:?}", gpt2_name(path), found.as_slice(), expected.as_slice())
            }
            other => other.to_string(),
        }));
    }
    let missing: Vec<String> = result.missing.iter().map(|(path, _)| path).filter(|p| *p != "head.bias").map(|p| gpt2_name(p)).collect();
    if !missing.is_empty() {
        return Err(store_error(format!("missing tensor{} {}", if missing.len() == 1 { "" } else { "s" }, missing.join(", "))));
    }
    let unused: Vec<&String> = result.unused.iter().filter(|n| !ignorable(n) && !ignorable(&gpt2_name(n))).collect();
    if !unused.is_empty() {
        let shown: Vec<String> = unused.iter().take(5).map(|n| gpt2_name(n)).collect();
        return Err(store_error(format!("tensors this lab's model does not have: {}", shown.join(", "))));
    }
    Ok(blank)
}

/// A language model from `model.safetensors`, on the CPU backend.
pub fn lm_from_safetensors(bytes: &[u8], config: &ModelConfig) -> Result<Gpt> {
    let device = Device::flex();
    read_safetensors(bytes, Gpt::new(config, &mut Rng::new(0), &device), false)
}

/// A scoring model from `model.safetensors` and config.json's `score_bias`, on the CPU backend.
pub fn scalar_from_safetensors(bytes: &[u8], config: &ModelConfig, bias: f32) -> Result<ScalarModel> {
    let device = Device::flex();
    let blank = ScalarModel::from_trunk(Gpt::new(config, &mut Rng::new(0), &device), &device);
    Ok(read_safetensors(bytes, blank, true)?.shift_scores(bias))
}

/// The token ids a lab model never writes, which GPT-2 must be told to suppress
/// (`generation_config.json`'s `suppress_tokens`; `Gpt::logits` pushes them to −1e9).
pub const SUPPRESSED_TOKENS: [u32; 3] = [PAD, BOS, UNK];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::config::Preset;

    fn logits(model: &Gpt, tokens: &[i32]) -> Vec<f32> {
        let t = Tensor::<2, Int>::from_data(TensorData::new(tokens.to_vec(), [1, tokens.len()]), &Device::flex());
        model.forward(t).into_data().iter::<f32>().collect()
    }

    #[test]
    fn a_language_model_round_trips_through_gpt2_names_exactly() {
        let config = Preset::Micro.model(40);
        let model = Gpt::new(&config, &mut Rng::new(7), &Device::flex());
        let bytes = lm_safetensors(&model).unwrap();
        let mut store = SafetensorsStore::from_bytes(Some(bytes.clone()));
        let mut names = store.keys().unwrap();
        names.sort();
        assert!(names.contains(&"transformer.h.0.attn.c_attn.weight".to_string()), "{names:?}");
        assert!(names.contains(&"transformer.ln_f.weight".to_string()), "{names:?}");
        assert!(names.iter().all(|n| n.starts_with("transformer.")), "{names:?}");
        let shape = store.get_tensor("transformer.h.0.attn.c_attn.weight").unwrap().unwrap().shape.clone();
        assert_eq!(shape.as_slice(), &[32, 96]);
        let loaded = lm_from_safetensors(&bytes, &config).unwrap();
        assert_eq!(logits(&loaded, &[1, 5, 7, 9]), logits(&model, &[1, 5, 7, 9]));
    }

    #[test]
    fn a_scoring_model_keeps_its_bias_in_the_config() {
        let config = Preset::Micro.model(40);
        let device = Device::flex();
        let trunk = Gpt::new(&config, &mut Rng::new(3), &device);
        let model = ScalarModel::from_trunk(trunk, &device).shift_scores(0.75);
        let (bytes, bias) = scalar_safetensors(&model).unwrap();
        assert_eq!(bias, 0.75);
        let mut store = SafetensorsStore::from_bytes(Some(bytes.clone()));
        assert_eq!(store.get_tensor("score.weight").unwrap().unwrap().shape.as_slice(), &[1, 32]);
        assert!(store.get_tensor("head.bias").unwrap().is_none());
        let loaded = scalar_from_safetensors(&bytes, &config, bias).unwrap();
        let tokens = Tensor::<2, Int>::from_data(TensorData::new(vec![1i32, 5, 7], [1, 3]), &device);
        let a: Vec<f32> = loaded.forward(tokens.clone()).into_data().iter::<f32>().collect();
        let b: Vec<f32> = model.forward(tokens).into_data().iter::<f32>().collect();
        assert_eq!(a, b);
        assert!(a.iter().all(|s| (s - 0.75).abs() < 1e-6), "a zero head scores its bias: {a:?}");
    }

    #[test]
    fn configs_round_trip_and_foreign_ones_are_refused_by_field() {
        let model = Preset::Tiny.model(123);
        let config = gpt2_config(&model, Gpt2Head::Score { bias: -0.5 }, json!({"rlhf_lab": {"role": "reward"}}));
        let (read, head) = read_gpt2_config(config.to_string().as_bytes()).unwrap();
        assert_eq!((read, head), (model.clone(), Gpt2Head::Score { bias: -0.5 }));
        let lm = gpt2_config(&model, Gpt2Head::LanguageModel, Value::Null);
        let change = |key: &str, value: Value| {
            let mut c = lm.clone();
            c[key] = value;
            read_gpt2_config(c.to_string().as_bytes()).unwrap_err().to_string()
        };
        assert!(change("activation_function", json!("gelu_new")).contains("activation_function"));
        assert!(change("model_type", json!("llama")).contains("model_type"));
        assert!(change("layer_norm_epsilon", json!(1e-6)).contains("layer_norm_epsilon"));
        assert!(change("n_embd", json!("wide")).contains("n_embd"));
        assert!(change("n_inner", json!(100)).contains("n_inner"));
        assert!(change("tie_word_embeddings", json!(false)).contains("tie_word_embeddings"));
        assert!(read_gpt2_config(b"{not json").unwrap_err().to_string().contains("not valid JSON"));
    }

    #[test]
    fn broken_weights_are_refused_with_the_tensor_named() {
        let config = Preset::Micro.model(40);
        let device = Device::flex();
        let model = Gpt::new(&config, &mut Rng::new(7), &device);
        let bytes = lm_safetensors(&model).unwrap();
        // Truncated.
        let err = lm_from_safetensors(&bytes[..bytes.len() - 10], &config).unwrap_err().to_string();
        assert!(err.contains("not a readable safetensors file"), "{err}");
        assert!(lm_from_safetensors(b"garbage", &config).is_err());
        // Another shape: a wider model's file into this one.
        let wide = Gpt::new(&Preset::Tiny.model(40), &mut Rng::new(7), &device);
        let err = lm_from_safetensors(&lm_safetensors(&wide).unwrap(), &config).unwrap_err().to_string();
        assert!(err.contains("has shape") && err.contains("transformer."), "{err}");
        // Missing tensors: a file of the scoring model's trunk without ln_f.
        let rewrite = |keep: fn(&str) -> bool, poison: bool| {
            let mut store = SafetensorsStore::from_bytes(Some(bytes.clone()));
            let tensors: Vec<PackTensor> = store.get_all_tensors().unwrap().values().cloned().filter(|t| keep(&t.name)).collect();
            let tensors: Vec<PackTensor> = tensors
                .into_iter()
                .map(|t| {
                    if poison && t.name == "transformer.h.0.mlp.c_fc.weight" {
                        let mut v: Vec<f32> = bridge::to_data(&t).unwrap().iter::<f32>().collect();
                        v[5] = f32::NAN;
                        bridge::from_data(TensorData::new(v, t.shape.clone()), t.name.clone(), None)
                    } else {
                        t
                    }
                })
                .collect();
            let views: Vec<(String, Vec<u8>, Vec<usize>)> = tensors.iter().map(|t| (t.name.clone(), t.to_bytes().unwrap().to_vec(), t.shape.as_slice().to_vec())).collect();
            let views: Vec<(String, safetensors::tensor::TensorView)> = views.iter().map(|(n, b, s)| (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap())).collect();
            safetensors::serialize(views, None).unwrap()
        };
        let err = lm_from_safetensors(&rewrite(|n| !n.starts_with("transformer.ln_f"), false), &config).unwrap_err().to_string();
        assert!(err.contains("missing tensors transformer.ln_f.weight, transformer.ln_f.bias") || err.contains("missing tensors transformer.ln_f.bias, transformer.ln_f.weight"), "{err}");
        let err = lm_from_safetensors(&rewrite(|_| true, true), &config).unwrap_err().to_string();
        assert!(err.contains("transformer.h.0.mlp.c_fc.weight holds a non-finite weight (NaN at index 5)"), "{err}");
    }
}
