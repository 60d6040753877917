//! The command line's argument parsing and subcommands (see `main.rs`).

use std::time::Instant;

use rlhf_lab::config::{LabConfig, Preset};
use rlhf_lab::device::{select, BackendChoice};
use rlhf_lab::metrics::Metrics;
use rlhf_lab::session::{Role, Session};
use rlhf_lab::{LabError, Result};
use serde_json::{json, Value};

/// Temperature of the before/after samples: greedy decoding of a distribution this flat repeats
/// its single most likely word ("is not …"), which says little about the model.
const SAMPLE_TEMPERATURE: f32 = 0.7;

struct Args {
    command: String,
    config: LabConfig,
    base: Option<String>,
    out: Option<String>,
    every: usize,
    backend: BackendChoice,
}

const USAGE: &str = "usage: rlhf <pretrain|sft> [--preset micro|tiny|small] [--seed N] [--set section.field=value]... [--config file.json] [--base file] [--out file] [--every N] [--backend cpu|auto]";

fn set_path(root: &mut Value, path: &str, raw: &str) -> Result<()> {
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

fn parse_args() -> Result<Args> {
    let mut argv = std::env::args().skip(1);
    let command = argv.next().ok_or_else(|| LabError::InvalidInput(USAGE.into()))?;
    let mut config = serde_json::to_value(LabConfig::default()).expect("configs serialize");
    let (mut base, mut out, mut every, mut backend) = (None, None, 1, BackendChoice::Cpu);
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
            "--out" => out = Some(value()?),
            "--every" => every = value()?.parse().map_err(|_| LabError::InvalidInput("--every wants a number".into()))?,
            "--backend" => backend = BackendChoice::parse(&value()?)?,
            other => return Err(LabError::InvalidInput(format!("unknown option {other}\n{USAGE}"))),
        }
    }
    for (k, v) in sets {
        set_path(&mut config, &k, &v)?;
    }
    let config: LabConfig = serde_json::from_value(config).map_err(|e| LabError::InvalidInput(format!("settings: {e}")))?;
    config.validate()?;
    Ok(Args { command, config, base, out, every: every.max(1), backend })
}

fn emit(stage: &str, metrics: &Metrics) {
    let mut object = serde_json::Map::new();
    object.insert("stage".into(), json!(stage));
    for (k, v) in metrics {
        object.insert(k.clone(), json!(v));
    }
    println!("{}", Value::Object(object));
}

fn write_checkpoint(path: &str, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| LabError::InvalidInput(format!("writing {path}: {e}")))?;
    eprintln!("wrote {path} ({} bytes)", bytes.len());
    Ok(())
}

async fn run(args: Args) -> Result<()> {
    let (device, info) = select(args.backend);
    eprintln!("backend: {} ({}) — {}", info.backend, info.adapter, info.reason);
    let mut session = Session::new(device, args.config.clone())?;
    match args.command.as_str() {
        "pretrain" => {
            session.base_from_scratch();
            session.pretrain_begin()?;
            let started = Instant::now();
            let total = args.config.pretrain.steps;
            for step in 1..=total {
                let metrics = session.pretrain_step().await?;
                if step % args.every == 0 || metrics.contains_key("loss/held_out") {
                    emit("pretrain", &metrics);
                }
            }
            eprintln!("pretrain: {total} steps in {:.1} s", started.elapsed().as_secs_f64());
            if let Some(out) = &args.out {
                write_checkpoint(out, &session.save(Role::Base).await?)?;
            }
        }
        "sft" => {
            match &args.base {
                Some(path) => {
                    let bytes = std::fs::read(path).map_err(|e| LabError::InvalidInput(format!("{path}: {e}")))?;
                    session.load(&bytes)?;
                }
                None => session.base_from_scratch(),
            }
            let before = session.samples(Role::Base, SAMPLE_TEMPERATURE, 1).await?;
            session.sft_begin()?;
            let started = Instant::now();
            let total = args.config.sft.steps;
            for step in 1..=total {
                let metrics = session.sft_step().await?;
                if step % args.every == 0 || metrics.contains_key("loss/held_out") {
                    emit("sft", &metrics);
                }
            }
            session.sft_finish()?;
            let seconds = started.elapsed().as_secs_f64();
            let after = session.samples(Role::Sft, SAMPLE_TEMPERATURE, 1).await?;
            let pairs: Vec<Value> = before
                .iter()
                .zip(&after)
                .map(|(b, a)| json!({"prompt": b.prompt, "before": b.completion, "after": a.completion, "gold_before": b.gold, "gold_after": a.gold}))
                .collect();
            println!("{}", json!({"stage": "sft", "summary": true, "seconds": seconds, "samples": pairs}));
            if let Some(out) = &args.out {
                write_checkpoint(out, &session.save(Role::Sft).await?)?;
            }
        }
        other => return Err(LabError::InvalidInput(format!("unknown command {other}\n{USAGE}"))),
    }
    Ok(())
}

pub fn main() {
    let result = parse_args().and_then(|args| pollster::block_on(run(args)));
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}
