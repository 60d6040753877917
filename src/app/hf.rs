//! A lab model as a Hugging Face model folder, and a folder back into the lab.
//!
//! Export starts from the lab's checkpoint bytes (what the page stores and the CLI writes), so
//! any model the learner kept can leave, and nothing is read from a GPU: the weights are loaded
//! on burn's CPU backend and written through burn-store (`engine::hf`). The folder:
//!
//! ```text
//! config.json              GPT-2's, plus `rlhf_lab` (role, vocabulary) and, for r_φ/V_ψ, `score_bias`
//! model.safetensors        the weights under GPT-2's names
//! tokenizer.json           the task's word-level tokenizer (`rlhf::hf`)
//! tokenizer_config.json    special_tokens_map.json
//! generation_config.json   language models: the tokens the lab never writes, suppressed
//! README.md                the model card: stage, settings, seed, metrics, what the format cannot say
//! ```
//!
//! Import reads such a folder (exported by the lab, or edited in Python and saved again), checks
//! everything — the config against this lab's preset, the tokenizer against its vocabulary, every
//! tensor's name, shape, type and finiteness — and only then returns the lab's checkpoint bytes
//! for the role, which the caller loads and stores as any checkpoint.

use std::io::{Cursor, Read, Write};

use burn::prelude::*;
use serde_json::{json, Value};

use crate::app::session::Role;
use crate::engine::checkpoint::{self, CheckpointHeader};
use crate::engine::hf::{self as gpt2, Gpt2Head};
use crate::engine::model::config::ModelConfig;
use crate::engine::model::{Gpt, ScalarModel};
use crate::engine::sample::{generate, SampleOptions};
use crate::error::{LabError, Result};
use crate::rlhf::hf::{check_tokenizer_json, generation_config_json, model_card, tokenizer_config_json, tokenizer_json, Card};
use crate::rlhf::task::{prompt_tokens, Demonstrations, Tokenizer, MAX_COMPLETION, PRODUCTS_COUNT, SEQ_LEN};
use crate::rng::Rng;

/// One file of a folder: its name (no directories) and bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct HfFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Most bytes a zipped folder may unpack to, and most files in it.
pub const MAX_FOLDER_BYTES: u64 = 80 << 20;
pub const MAX_FOLDER_FILES: usize = 64;

/// What each role is, for the card and for messages.
pub fn role_title(role: Role) -> &'static str {
    match role {
        Role::Base => "the base model (before SFT)",
        Role::Sft => "π_ref, the SFT model",
        Role::Reward => "r_φ, the reward model",
        Role::Policy => "π_θ, the PPO policy",
        Role::Value => "V_ψ, PPO's value model",
        Role::Dpo => "π_dpo, the DPO policy",
        Role::Grpo => "π_grpo, the GRPO/RLOO policy",
    }
}

/// The stage that made a role's model, for the card.
fn made_by(role: Role) -> &'static str {
    match role {
        Role::Base => "pretraining on the task's free text (or random initialization)",
        Role::Sft => "supervised fine-tuning (SFT) on demonstrations; frozen, it is π_ref",
        Role::Reward => "the reward-model stage: a Bradley–Terry loss on preference pairs, on π_ref's trunk",
        Role::Policy => "PPO against r_φ with a KL penalty to π_ref",
        Role::Value => "PPO, as its critic (value loss on the returns)",
        Role::Dpo => "DPO on the preference pairs, from π_ref, without a reward model",
        Role::Grpo => "GRPO or RLOO against r_φ (the group's rewards as the baseline), from π_ref",
    }
}

fn json_file(name: &str, value: &Value) -> HfFile {
    HfFile { name: name.into(), bytes: serde_json::to_vec_pretty(value).expect("JSON serializes") }
}

/// The Hugging Face folder of a lab checkpoint. `metrics` is what the stage reached, as the
/// caller kept it (the page's stored note); the settings come from the checkpoint itself.
pub async fn export_checkpoint(bytes: &[u8], tokenizer: &Tokenizer, metrics: &Value) -> Result<Vec<HfFile>> {
    let (header, record) = checkpoint::decode(bytes)?;
    let role = Role::parse(&header.role).map_err(|_| LabError::Checkpoint(format!("unknown role {:?}", header.role)))?;
    checkpoint::check_header(&header, role.architecture(), &header.model, &tokenizer.fingerprint())?;
    let device = Device::flex();
    let blank = Gpt::new(&header.model, &mut Rng::new(0), &device);
    let (weights, head, parameters) = if role.architecture() == "scalar" {
        let model = checkpoint::load_record(ScalarModel::from_trunk(blank, &device), record)?;
        let (weights, bias) = gpt2::scalar_safetensors(&model)?;
        (weights, Gpt2Head::Score { bias }, model.num_params())
    } else {
        let model = checkpoint::load_record(blank, record)?;
        (gpt2::lm_safetensors(&model)?, Gpt2Head::LanguageModel, model.num_params())
    };
    let settings = header.note.get("config").cloned().unwrap_or(Value::Null);
    let lab = json!({"rlhf_lab": {"role": role.name(), "vocab": tokenizer.fingerprint(), "settings": settings}});
    let card = model_card(&Card {
        role: role.name(),
        role_title: role_title(role),
        stage: made_by(role),
        architecture: head.architecture(),
        parameters,
        settings: &settings,
        metrics,
        score_bias: match head {
            Gpt2Head::Score { bias } => Some(bias),
            Gpt2Head::LanguageModel => None,
        },
    });
    let (tokenizer_config, special_tokens) = tokenizer_config_json();
    let mut files = vec![
        json_file("config.json", &gpt2::gpt2_config(&header.model, head, lab)),
        HfFile { name: "model.safetensors".into(), bytes: weights },
        json_file("tokenizer.json", &tokenizer_json(tokenizer)),
        json_file("tokenizer_config.json", &tokenizer_config),
        json_file("special_tokens_map.json", &special_tokens),
    ];
    if head == Gpt2Head::LanguageModel {
        files.push(json_file("generation_config.json", &generation_config_json()));
    }
    files.push(HfFile { name: "README.md".into(), bytes: card.into_bytes() });
    Ok(files)
}

fn file<'a>(files: &'a [HfFile], name: &str) -> Result<&'a [u8]> {
    files
        .iter()
        .find(|f| f.name == name)
        .map(|f| f.bytes.as_slice())
        .ok_or_else(|| LabError::Checkpoint(format!("the folder has no {name}")))
}

/// Reads a Hugging Face folder into the lab's checkpoint bytes for `role` (base, sft or reward:
/// the models the lab starts stages from), or for the role the folder itself names. Nothing is
/// returned unless every check passed.
pub async fn import_folder(files: &[HfFile], tokenizer: &Tokenizer, lab_model: &ModelConfig, role: Option<Role>) -> Result<Vec<u8>> {
    let (model, head) = gpt2::read_gpt2_config(file(files, "config.json")?)?;
    let config: Value = serde_json::from_slice(file(files, "config.json")?).unwrap_or(Value::Null);
    check_tokenizer_json(file(files, "tokenizer.json")?, tokenizer)?;
    let named = config["rlhf_lab"]["role"].as_str().and_then(|r| Role::parse(r).ok());
    let role = match (role, head) {
        (Some(role), _) => role,
        (None, _) if named.is_some_and(|r| matches!(r, Role::Base | Role::Sft | Role::Reward)) => named.expect("checked"),
        (None, Gpt2Head::LanguageModel) => Role::Sft,
        (None, Gpt2Head::Score { .. }) => Role::Reward,
    };
    if !matches!(role, Role::Base | Role::Sft | Role::Reward) {
        return Err(LabError::Checkpoint(format!(
            "a folder loads as the base model, π_ref (sft) or r_φ (reward): the models stages start from; not as {}",
            role.name()
        )));
    }
    let scoring = matches!(head, Gpt2Head::Score { .. });
    if scoring != (role.architecture() == "scalar") {
        return Err(LabError::Checkpoint(format!(
            "the folder holds a {} ({}), but {} is a {}",
            if scoring { "scoring model" } else { "language model" },
            head.architecture(),
            role_title(role),
            if scoring { "language model" } else { "scoring model" }
        )));
    }
    let header = CheckpointHeader {
        role: role.name().into(),
        architecture: role.architecture().into(),
        model: model.clone(),
        vocab: tokenizer.fingerprint(),
        note: json!({"imported": "Hugging Face folder", "config": config["rlhf_lab"]["settings"].clone()}),
        record_len: 0,
        record_checksum: String::new(),
        header_checksum: String::new(),
    };
    checkpoint::check_header(&header, role.architecture(), lab_model, &tokenizer.fingerprint())?;
    let weights = file(files, "model.safetensors")?;
    let record = match head {
        Gpt2Head::Score { bias } => checkpoint::record_bytes(&gpt2::scalar_from_safetensors(weights, &model, bias)?).await?,
        Gpt2Head::LanguageModel => checkpoint::record_bytes(&gpt2::lm_from_safetensors(weights, &model)?).await?,
    };
    Ok(checkpoint::encode(&header, &record))
}

/// A folder as one zip, its files under `dir/`.
pub fn zip_folder(dir: &str, files: &[HfFile]) -> Result<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let fail = |e: &dyn std::fmt::Display| LabError::InvalidInput(format!("writing the zip: {e}"));
    for f in files {
        zip.start_file(format!("{dir}/{}", f.name), options).map_err(|e| fail(&e))?;
        zip.write_all(&f.bytes).map_err(|e| fail(&e))?;
    }
    Ok(zip.finish().map_err(|e| fail(&e))?.into_inner())
}

/// The files of a zipped folder (directories inside it dropped from the names), refusing a
/// damaged zip, one too large, or one with two files of the same name.
pub fn unzip_folder(bytes: &[u8]) -> Result<Vec<HfFile>> {
    let refuse = |why: String| LabError::Checkpoint(format!("the zip {why}"));
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| refuse(format!("cannot be read: it is damaged, truncated or not a zip ({e})")))?;
    if archive.len() > MAX_FOLDER_FILES {
        return Err(refuse(format!("holds {} files; a model folder has at most {MAX_FOLDER_FILES}", archive.len())));
    }
    let mut files: Vec<HfFile> = Vec::new();
    let mut total = 0u64;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| refuse(format!("is damaged at its entry {i} ({e})")))?;
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().rsplit('/').next().unwrap_or_default().to_string();
        if name.is_empty() || name.starts_with("._") || entry.name().starts_with("__MACOSX/") {
            continue;
        }
        total += entry.size();
        if total > MAX_FOLDER_BYTES {
            return Err(refuse(format!("unpacks to more than {} MiB; a model folder of this lab is a few MiB", MAX_FOLDER_BYTES >> 20)));
        }
        if files.iter().any(|f| f.name == name) {
            return Err(refuse(format!("holds two files named {name}: zip one model folder")));
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        (&mut entry).take(MAX_FOLDER_BYTES).read_to_end(&mut bytes).map_err(|e| refuse(format!("is damaged in {name} ({e})")))?;
        files.push(HfFile { name, bytes });
    }
    Ok(files)
}

/// What the lab's own model computes, for the check with the real Hugging Face clients
/// (`tests/hf/check_hf.py`): 24 demonstration sequences (their text, the lab's token ids, and for a
/// language model the logits at every position, for a scoring model the score at the last real
/// token), and for a language model the greedy completion of every product prompt.
pub async fn probe(bytes: &[u8], tokenizer: &Tokenizer) -> Result<Value> {
    let (header, record) = checkpoint::decode(bytes)?;
    let role = Role::parse(&header.role)?;
    let device = Device::flex();
    let blank = Gpt::new(&header.model, &mut Rng::new(0), &device);
    let completions = Demonstrations::generate(tokenizer, 11, 24, 0).train;
    let padded: Vec<i32> = completions.iter().flat_map(|c| c.sequence(tokenizer)).map(|t| t as i32).collect();
    let batch = completions.len();
    let tokens = Tensor::<2, Int>::from_data(TensorData::new(padded, [batch, SEQ_LEN]), &device);
    let read = |t: Tensor<1>| async move { t.into_data_async().await.map_err(|e| LabError::Device(format!("{e:?}"))).map(|d| d.iter::<f32>().collect::<Vec<f32>>()) };
    let mut sequences = Vec::new();
    if role.architecture() == "scalar" {
        let model = checkpoint::load_record(ScalarModel::from_trunk(blank, &device), record)?;
        let scores = read(model.forward(tokens).reshape([batch * SEQ_LEN])).await?;
        for (i, c) in completions.iter().enumerate() {
            let ids = &c.sequence(tokenizer);
            sequences.push(json!({"text": tokenizer.decode(&ids[1..=c.last_index()]), "ids": ids, "last_index": c.last_index(), "score": scores[i * SEQ_LEN + c.last_index()]}));
        }
        return Ok(json!({"role": role.name(), "architecture": "scalar", "sequences": sequences}));
    }
    let model = checkpoint::load_record(blank, record)?;
    let vocab = model.vocab_size();
    let logits = read(model.forward(tokens).reshape([batch * SEQ_LEN * vocab])).await?;
    for (i, c) in completions.iter().enumerate() {
        let ids = c.sequence(tokenizer)[..=c.last_index()].to_vec();
        let rows: Vec<&[f32]> = (0..ids.len()).map(|t| &logits[(i * SEQ_LEN + t) * vocab..(i * SEQ_LEN + t + 1) * vocab]).collect();
        sequences.push(json!({"text": tokenizer.decode(&ids[1..]), "ids": ids, "logits": rows}));
    }
    let prompts: Vec<u32> = (0..PRODUCTS_COUNT).flat_map(|p| prompt_tokens(tokenizer, p)).collect();
    let options = SampleOptions { temperature: 0.0, top_k: 0, max_new_tokens: MAX_COMPLETION };
    let generated = generate(&model, &prompts, PRODUCTS_COUNT, options, &mut Rng::new(0), &device).await?;
    let greedy: Vec<Value> = (0..PRODUCTS_COUNT)
        .map(|p| {
            let row = generated.row(p);
            let end = row.iter().position(|&t| t == crate::rlhf::task::EOS).map_or(row.len(), |i| i + 1);
            json!({"prompt": prompt_tokens(tokenizer, p), "completion": &row[..end]})
        })
        .collect();
    Ok(json!({"role": role.name(), "architecture": "gpt", "sequences": sequences, "greedy": greedy, "suppressed": gpt2::SUPPRESSED_TOKENS}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::config::Preset;

    fn checkpoint_of(role: Role, config: &ModelConfig, tok: &Tokenizer) -> Vec<u8> {
        let device = Device::flex();
        let trunk = Gpt::new(config, &mut Rng::new(5), &device);
        let record = if role.architecture() == "scalar" {
            pollster::block_on(checkpoint::record_bytes(&ScalarModel::from_trunk(trunk, &device).shift_scores(0.3))).unwrap()
        } else {
            pollster::block_on(checkpoint::record_bytes(&trunk)).unwrap()
        };
        let header = CheckpointHeader { role: role.name().into(), architecture: role.architecture().into(), model: config.clone(), vocab: tok.fingerprint(), note: json!({"config": {"seed": 5}}), record_len: 0, record_checksum: String::new(), header_checksum: String::new() };
        checkpoint::encode(&header, &record)
    }

    /// Every parameter of a checkpoint by name, as floats (the record's bytes also hold parameter
    /// ids, which differ between two loads of the same weights).
    fn weights_of(bytes: &[u8]) -> Vec<(String, Vec<f32>)> {
        use burn_store::ModuleSnapshot;
        let (header, record) = checkpoint::decode(bytes).unwrap();
        let device = Device::flex();
        let blank = Gpt::new(&header.model, &mut Rng::new(0), &device);
        let tensors = if header.architecture == "scalar" {
            checkpoint::load_record(ScalarModel::from_trunk(blank, &device), record).unwrap().collect(None, None, false)
        } else {
            checkpoint::load_record(blank, record).unwrap().collect(None, None, false)
        };
        let mut named: Vec<(String, Vec<f32>)> = tensors.into_iter().map(|t| (t.name.clone(), burn_store::bridge::into_data(t).unwrap().iter::<f32>().collect())).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    }

    #[test]
    fn every_role_exports_and_imports_back_to_the_same_weights() {
        let tok = Tokenizer::new();
        let config = Preset::Micro.model(tok.vocab_size());
        for role in [Role::Sft, Role::Policy, Role::Reward, Role::Value] {
            let bytes = checkpoint_of(role, &config, &tok);
            let files = pollster::block_on(export_checkpoint(&bytes, &tok, &json!({"loss": 1.5}))).unwrap();
            let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
            assert!(names.contains(&"model.safetensors") && names.contains(&"tokenizer.json") && names.contains(&"README.md"), "{names:?}");
            assert_eq!(names.contains(&"generation_config.json"), role.architecture() == "gpt");
            // The same checkpoint makes the same folder, byte for byte.
            assert_eq!(pollster::block_on(export_checkpoint(&bytes, &tok, &json!({"loss": 1.5}))).unwrap(), files);
            let zipped = zip_folder("rlhf-x", &files).unwrap();
            let unzipped = unzip_folder(&zipped).unwrap();
            assert_eq!(unzipped, files);
            let target = match role {
                Role::Reward | Role::Value => Role::Reward,
                _ => Role::Sft,
            };
            let back = pollster::block_on(import_folder(&unzipped, &tok, &config, Some(target))).unwrap();
            assert!(weights_of(&bytes).len() >= 16);
            assert_eq!(weights_of(&back), weights_of(&bytes), "{role:?}");
            let (header, _) = checkpoint::decode(&back).unwrap();
            assert_eq!(header.role, target.name());
        }
    }

    #[test]
    fn broken_or_foreign_folders_are_refused_by_name() {
        let tok = Tokenizer::new();
        let config = Preset::Micro.model(tok.vocab_size());
        let files = pollster::block_on(export_checkpoint(&checkpoint_of(Role::Sft, &config, &tok), &tok, &Value::Null)).unwrap();
        let import = |files: &[HfFile], role: Option<Role>| pollster::block_on(import_folder(files, &tok, &config, role)).map(|_| ()).unwrap_err().to_string();
        let edit = |name: &str, f: &dyn Fn(&mut Value)| {
            files
                .iter()
                .map(|file| {
                    if file.name != name {
                        return file.clone();
                    }
                    let mut v: Value = serde_json::from_slice(&file.bytes).unwrap();
                    f(&mut v);
                    json_file(name, &v)
                })
                .collect::<Vec<_>>()
        };
        let without = |name: &str| files.iter().filter(|f| f.name != name).cloned().collect::<Vec<_>>();
        assert!(import(&without("model.safetensors"), None).contains("no model.safetensors"));
        assert!(import(&without("tokenizer.json"), None).contains("no tokenizer.json"));
        let err = import(&edit("config.json", &|v| v["n_embd"] = json!(64)), None);
        assert!(err.contains("d_model=64") && err.contains("d_model=32"), "{err}");
        let err = import(&edit("tokenizer.json", &|v| v["model"]["vocab"]["great"] = json!(9)), None);
        assert!(err.contains("tokenizer.json") && err.contains("another vocabulary"), "{err}");
        assert!(import(&files, Some(Role::Reward)).contains("language model"));
        assert!(import(&files, Some(Role::Policy)).contains("not as policy"));
        let mut truncated = files.clone();
        let st = truncated.iter_mut().find(|f| f.name == "model.safetensors").unwrap();
        st.bytes.truncate(st.bytes.len() / 2);
        assert!(import(&truncated, None).contains("model.safetensors"));
        let zipped = zip_folder("x", &files).unwrap();
        assert!(unzip_folder(&zipped[..zipped.len() - 30]).unwrap_err().to_string().contains("damaged, truncated or not a zip"));
        assert!(unzip_folder(b"PK\x03\x04 not really").is_err());
        let doubled: Vec<HfFile> = files.iter().chain(files.iter().take(1)).cloned().collect();
        let err = unzip_folder(&zip_folder_nested(&doubled)).unwrap_err().to_string();
        assert!(err.contains("two files named"), "{err}");
    }

    /// The same files under two directories, as a careless zip of two folders would hold them.
    fn zip_folder_nested(files: &[HfFile]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (i, f) in files.iter().enumerate() {
            zip.start_file(format!("d{i}/{}", f.name), zip::write::FileOptions::default()).unwrap();
            zip.write_all(&f.bytes).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }
}
