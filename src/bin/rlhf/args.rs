//! The command line's arguments: the flags, the settings they set, and the usage line.

use rlhf_lab::engine::device::BackendChoice;
use rlhf_lab::engine::model::config::Preset;
use rlhf_lab::rlhf::config::LabConfig;
use rlhf_lab::rlhf::stages::grpo::GroupMethod;
use rlhf_lab::{LabError, Result};
use serde_json::{json, Value};

pub(crate) struct Args {
    pub(crate) command: String,
    pub(crate) config: LabConfig,
    pub(crate) base: Option<String>,
    pub(crate) sft: Option<String>,
    pub(crate) reward: Option<String>,
    pub(crate) labels: Option<String>,
    pub(crate) labels_out: Option<String>,
    pub(crate) out: Option<String>,
    pub(crate) every: usize,
    /// Iterations between over-optimization measurements of a PPO/GRPO run (0: none): the
    /// policy evaluated on fresh prompts by the reward it trains against and by gold.
    pub(crate) eval_every: usize,
    pub(crate) backend: BackendChoice,
    pub(crate) presets: Option<String>,
    /// How much `bench` measures: full, quick, or counts (dispatch counts only; no PPO iteration).
    pub(crate) plan: String,
    /// `export`/`import`/`probe`: a lab checkpoint to read, a Hugging Face folder, a TRL
    /// preference file, the role a folder is loaded as.
    pub(crate) from: Option<String>,
    pub(crate) hf: Option<String>,
    pub(crate) trl: Option<String>,
    pub(crate) role: Option<String>,
}

pub(crate) const USAGE: &str = "usage: rlhf <pretrain|sft|reward|ppo|grpo|dpo|sweep|all|bench|export|import|probe> [--preset micro|tiny|small] [--seed N] [--set section.field=value]... [--config file.json] [--base file] [--sft file] [--reward file] [--labels file.jsonl] [--labels-out file.jsonl] [--out file] [--every N] [--eval-every N] [--method grpo|rloo|reinforce|gspo] [--backend cpu|auto] [--presets micro,tiny,small] [--plan full|quick|counts] [--from file.rlhf] [--hf dir] [--trl file.jsonl] [--as base|sft|reward]";

pub(crate) fn set_path(root: &mut Value, path: &str, raw: &str) -> Result<()> {
    let value: Value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
    let mut node = root;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let object = node.as_object_mut().ok_or_else(|| LabError::setting(path, "is not a section"))?;
        if i + 1 == parts.len() {
            if !object.contains_key(*part) {
                return Err(LabError::setting(path, "no such setting"));
            }
            object.insert(part.to_string(), value);
            return Ok(());
        }
        node = object.get_mut(*part).ok_or_else(|| LabError::setting(path, "no such section"))?;
    }
    Ok(())
}

pub(crate) fn parse_args() -> Result<Args> {
    let mut argv = std::env::args().skip(1);
    let command = argv.next().ok_or_else(|| LabError::InvalidInput(USAGE.into()))?;
    let mut config = serde_json::to_value(LabConfig::default()).expect("configs serialize");
    let (mut base, mut sft, mut reward, mut labels, mut labels_out, mut out) = (None, None, None, None, None, None);
    let (mut every, mut backend, mut presets, mut plan) = (1, BackendChoice::Cpu, None, "full".to_string());
    let (mut eval_every, mut method) = (0usize, None);
    let (mut from, mut hf, mut trl, mut role) = (None, None, None, None);
    let mut sets = Vec::new();
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().ok_or_else(|| LabError::InvalidInput(format!("{flag} needs a value\n{USAGE}")));
        match flag.as_str() {
            "--preset" => sets.push(("preset".to_string(), json!(Preset::from_name(&value()?)?).to_string())),
            "--seed" => sets.push(("seed".to_string(), value()?)),
            "--set" => {
                let kv = value()?;
                let (k, v) = kv.split_once('=').ok_or_else(|| LabError::InvalidInput(format!("--set wants section.field=value, got {kv}")))?;
                sets.push((k.to_string(), v.to_string()));
            }
            "--config" => {
                let path = value()?;
                let text = std::fs::read_to_string(&path).map_err(|e| LabError::InvalidInput(format!("{path}: {e}")))?;
                config = serde_json::to_value(LabConfig::from_json(&text)?).expect("configs serialize");
            }
            "--base" => base = Some(value()?),
            "--sft" => sft = Some(value()?),
            "--reward" => reward = Some(value()?),
            "--labels" => labels = Some(value()?),
            "--labels-out" => labels_out = Some(value()?),
            "--out" => out = Some(value()?),
            "--every" => every = value()?.parse().map_err(|_| LabError::InvalidInput("--every wants a number".into()))?,
            "--eval-every" => eval_every = value()?.parse().map_err(|_| LabError::InvalidInput("--eval-every wants a number".into()))?,
            "--method" => {
                let name = value()?;
                method = Some(serde_json::from_value::<GroupMethod>(json!(name)).map_err(|_| LabError::InvalidInput(format!("--method wants grpo, rloo, reinforce or gspo, got {name}")))?);
            }
            "--backend" => backend = BackendChoice::parse(&value()?)?,
            "--presets" => presets = Some(value()?),
            "--plan" => plan = value()?,
            "--from" => from = Some(value()?),
            "--hf" => hf = Some(value()?),
            "--trl" => trl = Some(value()?),
            "--as" => role = Some(value()?),
            other => return Err(LabError::InvalidInput(format!("unknown option {other}\n{USAGE}"))),
        }
    }
    for (k, v) in sets {
        set_path(&mut config, &k, &v)?;
    }
    let mut config: LabConfig = serde_json::from_value(config).map_err(|e| LabError::InvalidInput(format!("settings: {e}")))?;
    if let Some(method) = method {
        // The method's choices over the GRPO settings given (`GroupMethod::settings`).
        config.grpo = method.settings(&config.grpo);
    }
    config.validate()?;
    Ok(Args { command, config, base, sft, reward, labels, labels_out, out, every: every.max(1), eval_every, backend, presets, plan, from, hf, trl, role })
}

impl Args {
    pub(crate) fn interchange(&self) -> crate::interchange::Paths {
        crate::interchange::Paths {
            from: self.from.clone(),
            hf: self.hf.clone(),
            trl: self.trl.clone(),
            labels: self.labels.clone(),
            labels_out: self.labels_out.clone(),
            out: self.out.clone(),
            role: self.role.clone(),
            config: self.config.clone(),
        }
    }
}
