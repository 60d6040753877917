//! The command line's argument parsing and subcommands (see `main.rs`).

use std::time::Instant;

use rlhf_lab::app::session::{Role, Session, Stage};
use rlhf_lab::engine::device::{select, BackendChoice};
use rlhf_lab::engine::model::config::Preset;
use rlhf_lab::rlhf::config::LabConfig;
use rlhf_lab::rlhf::stages::grpo::GroupMethod;
use rlhf_lab::rlhf::stages::on_policy::recipe::RewardSource;
use rlhf_lab::rlhf::metrics::Metrics;
use rlhf_lab::{LabError, Result};
use serde_json::{json, Value};

/// Temperature of the before/after samples: greedy decoding of a distribution this flat repeats
/// its single most likely word ("is not …"), which says little about the model.
const SAMPLE_TEMPERATURE: f32 = 0.7;

struct Args {
    command: String,
    config: LabConfig,
    base: Option<String>,
    sft: Option<String>,
    reward: Option<String>,
    labels: Option<String>,
    labels_out: Option<String>,
    out: Option<String>,
    every: usize,
    /// Iterations between over-optimization measurements of a PPO/GRPO run (0: none): the
    /// policy evaluated on fresh prompts by the reward it trains against and by gold.
    eval_every: usize,
    backend: BackendChoice,
    presets: Option<String>,
    /// How much `bench` measures: full, quick, or counts (dispatch counts only; no PPO iteration).
    plan: String,
    /// `export`/`import`/`probe`: a lab checkpoint to read, a Hugging Face folder, a TRL
    /// preference file, the role a folder is loaded as.
    from: Option<String>,
    hf: Option<String>,
    trl: Option<String>,
    role: Option<String>,
}

const USAGE: &str = "usage: rlhf <pretrain|sft|reward|ppo|grpo|dpo|sweep|all|bench|export|import|probe> [--preset micro|tiny|small] [--seed N] [--set section.field=value]... [--config file.json] [--base file] [--sft file] [--reward file] [--labels file.jsonl] [--labels-out file.jsonl] [--out file] [--every N] [--eval-every N] [--method grpo|rloo|reinforce|gspo] [--backend cpu|auto] [--presets micro,tiny,small] [--plan full|quick|counts] [--from file.rlhf] [--hf dir] [--trl file.jsonl] [--as base|sft|reward]";

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

fn read_file(path: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| LabError::InvalidInput(format!("{path}: {e}")))
}

/// Runs `steps` of a stage, printing every `every`-th step and every evaluation.
async fn run_steps(session: &mut Session, stage: Stage, name: &str, steps: usize, every: usize) -> Result<(Metrics, f64)> {
    let started = Instant::now();
    let mut last = Metrics::new();
    for i in 1..=steps {
        last = session.step(stage).await?;
        if i % every == 0 || i == steps || last.keys().any(|k| k.contains("held_out")) {
            emit(name, &last);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("{name}: {steps} steps in {seconds:.1} s");
    Ok((last, seconds))
}

async fn stage_sft(session: &mut Session, args: &Args) -> Result<()> {
    match &args.base {
        Some(path) => {
            session.load(&read_file(path)?)?;
        }
        None => session.base_from_scratch(),
    }
    let before = session.samples(Role::Base, SAMPLE_TEMPERATURE, 1).await?;
    session.sft_begin()?;
    let steps = args.config.sft.steps;
    let (_, seconds) = run_steps(session, Stage::Sft, "sft", steps, args.every).await?;
    session.sft_finish()?;
    let after = session.samples(Role::Sft, SAMPLE_TEMPERATURE, 1).await?;
    let pairs: Vec<Value> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| json!({"prompt": b.prompt, "before": b.completion, "after": a.completion, "gold_before": b.gold, "gold_after": a.gold}))
        .collect();
    println!("{}", json!({"stage": "sft", "summary": true, "seconds": seconds, "samples": pairs}));
    Ok(())
}

async fn stage_reward(session: &mut Session, args: &Args) -> Result<()> {
    let jsonl = match &args.labels {
        Some(path) => String::from_utf8(read_file(path)?).map_err(|_| LabError::InvalidInput(format!("{path} is not UTF-8 text")))?,
        None => {
            let started = Instant::now();
            let wanted = args.config.reward.simulated_labels;
            let mut records = Vec::new();
            while records.len() < wanted {
                let batch = session.simulate_labels((wanted - records.len()).min(64)).await?;
                records.extend(batch.into_iter().map(|l| l.label));
            }
            eprintln!("labels: {} simulated in {:.1} s", records.len(), started.elapsed().as_secs_f64());
            rlhf_lab::rlhf::labels::to_jsonl(&records)
        }
    };
    if let Some(path) = &args.labels_out {
        std::fs::write(path, &jsonl).map_err(|e| LabError::InvalidInput(format!("{path}: {e}")))?;
    }
    let plan = session.reward_begin(&jsonl)?;
    eprintln!("reward: {} train / {} held-out labels, {} steps, ceiling {:?}", plan.train, plan.held_out, plan.steps, plan.ceiling);
    let (last, seconds) = run_steps(session, Stage::Reward, "reward", plan.steps, args.every).await?;
    if std::env::var_os("RLHF_INSPECT").is_some() {
        for pair in session.reward_inspect(10_000).await? {
            println!("{}", json!({"stage": "reward", "inspect": pair}));
        }
    }
    let shift = session.reward_finish().await?;
    println!(
        "{}",
        json!({"stage": "reward", "summary": true, "seconds": seconds, "labels": plan.train + plan.held_out,
               "held_out_accuracy": last.get("rm/held_out_accuracy"), "agreement_ceiling": plan.ceiling,
               "gold_correlation": last.get("rm/gold_correlation"), "score_shift": shift})
    );
    Ok(())
}

/// PPO (`Stage::Ppo`) or GRPO/RLOO (`Stage::Grpo`) from π_ref against r_φ: one JSON line per
/// iteration (the rollout's metrics and the means of its updates' as `*_avg`), then a summary
/// with π_ref and the trained policy evaluated the same way.
async fn stage_online(session: &mut Session, args: &Args, stage: Stage) -> Result<()> {
    let name = stage.name();
    let eval_count = 256;
    let before = session.evaluate(Role::Sft, eval_count, 99).await?;
    println!("{}", json!({"stage": name, "evaluation": "reference", "result": before}));
    let (iterations, steps_per_iteration, role) = match stage {
        Stage::Ppo => {
            session.ppo_begin()?;
            (args.config.ppo.iterations, 1 + args.config.ppo.epochs * args.config.ppo.mini_batches, Role::Policy)
        }
        Stage::Grpo => {
            session.grpo_begin()?;
            (args.config.grpo.iterations, 1 + args.config.grpo.epochs * args.config.grpo.mini_batches, Role::Grpo)
        }
        other => return Err(LabError::InvalidInput(format!("{} is not an online RL stage", other.name()))),
    };
    let started = Instant::now();
    let mut iteration = Metrics::new();
    if args.eval_every > 0 {
        overoptimization(session, stage, 0).await?;
    }
    while !session.status().of(stage).is_some_and(|p| p.done) {
        let m = session.step(stage).await?;
        if m["phase"] == 0.0 {
            iteration = m;
        } else if m.contains_key("iteration_done") {
            iteration.extend(m.into_iter().filter(|(k, _)| k.ends_with("_avg")));
            iteration.insert("seconds".into(), started.elapsed().as_secs_f64());
            let done = iteration["iteration"] as usize;
            if done.is_multiple_of(args.every) || done == iterations {
                emit(name, &iteration);
            }
            if args.eval_every > 0 && (done.is_multiple_of(args.eval_every) || done == iterations) {
                overoptimization(session, stage, done).await?;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("{name}: {iterations} iterations ({steps_per_iteration} steps each) in {seconds:.1} s");
    let after = session.evaluate(role, eval_count, 99).await?;
    let reference = session.samples(Role::Sft, SAMPLE_TEMPERATURE, 2).await?;
    let policy = session.samples(role, SAMPLE_TEMPERATURE, 2).await?;
    let samples: Vec<Value> = reference.iter().zip(&policy).map(|(r, p)| json!({"prompt": r.prompt, "reference": r.completion, "policy": p.completion, "gold_reference": r.gold, "gold_policy": p.gold})).collect();
    println!("{}", json!({"stage": name, "summary": true, "seconds": seconds, "seconds_per_iteration": seconds / iterations as f64, "reference": before, "policy": after, "samples": samples}));
    Ok(())
}

/// One point of the over-optimization picture (Gao et al. 2022): the policy now, on 128 fresh
/// prompts, scored by the reward it trains against (the proxy) and by gold, against √KL(π‖π_ref).
async fn overoptimization(session: &Session, stage: Stage, iteration: usize) -> Result<()> {
    let e = session.evaluate_run(stage, 128, 99).await?;
    println!("{}", json!({"stage": stage.name(), "overoptimization": true, "iteration": iteration, "kl": e.kl, "sqrt_kl": e.kl.max(0.0).sqrt(), "proxy": e.score, "gold": e.gold, "mean_length": e.mean_length, "eos_fraction": e.eos_fraction}));
    Ok(())
}

/// The labels the reward stage wrote (`--labels-out`) or were given (`--labels`), or fresh
/// simulated ones.
async fn labels_jsonl(session: &mut Session, args: &Args) -> Result<String> {
    if let Some(path) = args.labels.as_ref().or(args.labels_out.as_ref()).filter(|p| std::path::Path::new(p).exists()) {
        return String::from_utf8(read_file(path)?).map_err(|_| LabError::InvalidInput(format!("{path} is not UTF-8 text")));
    }
    let wanted = args.config.reward.simulated_labels;
    let mut records = Vec::new();
    while records.len() < wanted {
        let batch = session.simulate_labels((wanted - records.len()).min(64)).await?;
        records.extend(batch.into_iter().map(|l| l.label));
    }
    Ok(rlhf_lab::rlhf::labels::to_jsonl(&records))
}

async fn stage_dpo(session: &mut Session, args: &Args) -> Result<()> {
    let jsonl = labels_jsonl(session, args).await?;
    let started = Instant::now();
    let plan = session.dpo_begin(&jsonl).await?;
    eprintln!("dpo: {} train / {} held-out pairs ({} ties skipped), {} steps", plan.train, plan.held_out, plan.ties_skipped, plan.steps);
    let (last, _) = run_steps(session, Stage::Dpo, "dpo", plan.steps, args.every).await?;
    let seconds = started.elapsed().as_secs_f64();
    let evaluation = if session.status().has_reward_model { Some(session.evaluate(Role::Dpo, 256, 99).await?) } else { None };
    println!(
        "{}",
        json!({"stage": "dpo", "summary": true, "seconds": seconds, "steps": plan.steps,
               "held_out_accuracy": last.get("dpo/held_out_accuracy"), "policy": evaluation})
    );
    Ok(())
}

/// PPO, GRPO, RLOO and DPO at several β, each point evaluated the same way: the reward–KL frontier.
async fn sweep(session: &mut Session, args: &Args) -> Result<()> {
    use rlhf_lab::rlhf::stages::sweep::{Method, SweepRun, EVALUATION_COMPLETIONS, EVALUATION_SEED};
    let jsonl = labels_jsonl(session, args).await?;
    let reference = session.evaluate(Role::Sft, EVALUATION_COMPLETIONS, EVALUATION_SEED).await?;
    println!("{}", json!({"stage": "frontier", "method": "reference", "beta": null, "evaluation": reference}));
    let mut runs: Vec<SweepRun> = [0.0, 0.02, 0.05, 0.2].into_iter().map(|beta| SweepRun { method: Method::Ppo, beta }).collect();
    runs.extend([0.0, 0.04].into_iter().map(|beta| SweepRun { method: Method::Grpo, beta }));
    runs.extend([Method::Rloo, Method::Reinforce, Method::Gspo].map(|method| SweepRun { method, beta: 0.04 }));
    runs.extend([0.05, 0.1, 0.5].into_iter().map(|beta| SweepRun { method: Method::Dpo, beta }));
    session.sweep_begin(&jsonl, runs)?;
    let mut printed = 0;
    while !session.status().sweep.as_ref().is_some_and(|p| p.done) {
        session.step(Stage::Sweep).await?;
        for point in session.sweep_points().iter().skip(printed) {
            println!("{}", json!({"stage": "frontier", "point": point}));
            printed += 1;
        }
    }
    Ok(())
}

/// `rlhf bench`: each preset on the native backend(s), as JSON lines (see `scripts/bench.sh`).
async fn bench(args: &Args) -> Result<()> {
    let started = Instant::now();
    let now_ms = move || started.elapsed().as_secs_f64() * 1e3;
    let presets: Vec<Preset> = match &args.presets {
        Some(list) => list.split(',').map(Preset::from_name).collect::<Result<_>>()?,
        None => Preset::ALL.to_vec(),
    };
    let plan = match args.plan.as_str() {
        "full" => rlhf_lab::app::bench::BenchPlan::full(),
        "quick" => rlhf_lab::app::bench::BenchPlan::quick(),
        "counts" => rlhf_lab::app::bench::BenchPlan::counts(),
        other => return Err(LabError::InvalidInput(format!("--plan wants full, quick or counts, got {other}"))),
    };
    let mut backends = vec![("native-cpu", BackendChoice::Cpu)];
    if cfg!(feature = "gpu") {
        backends.push(("native-wgpu", BackendChoice::WebGpu));
    }
    for (name, choice) in backends {
        let (device, info) = select(choice);
        if name == "native-wgpu" && info.backend != "wgpu" {
            eprintln!("bench: no native GPU ({})", info.reason);
            continue;
        }
        for &preset in &presets {
            let row = rlhf_lab::app::bench::measure(preset, name, &device, plan, now_ms, || 0).await?;
            println!("{}", serde_json::to_string(&row).expect("rows serialize"));
        }
    }
    Ok(())
}

async fn save(session: &Session, role: Role, path: &Option<String>) -> Result<()> {
    if let Some(path) = path {
        write_checkpoint(path, &session.save(role).await?)?;
    }
    Ok(())
}

async fn run(args: Args) -> Result<()> {
    match args.command.as_str() {
        "bench" => return bench(&args).await,
        "export" => return crate::interchange::export(&args.interchange()).await,
        "import" => return crate::interchange::import(&args.interchange()).await,
        "probe" => return crate::interchange::probe(&args.interchange()).await,
        _ => {}
    }
    let (device, info) = select(args.backend);
    eprintln!("backend: {} ({}) — {}", info.backend, info.adapter, info.reason);
    let mut session = Session::new(device, args.config.clone())?;
    match args.command.as_str() {
        "bench" => bench(&args).await?,
        "pretrain" => {
            session.base_from_scratch();
            session.pretrain_begin()?;
            run_steps(&mut session, Stage::Pretrain, "pretrain", args.config.pretrain.steps, args.every).await?;
            save(&session, Role::Base, &args.out).await?;
        }
        "sft" => {
            stage_sft(&mut session, &args).await?;
            save(&session, Role::Sft, &args.out).await?;
        }
        "reward" => {
            let path = args.sft.as_ref().ok_or_else(|| LabError::InvalidInput("reward needs --sft <π_ref checkpoint>".into()))?;
            session.load(&read_file(path)?)?;
            stage_reward(&mut session, &args).await?;
            save(&session, Role::Reward, &args.out).await?;
        }
        "ppo" | "grpo" => {
            let command = &args.command;
            let sft = args.sft.as_ref().ok_or_else(|| LabError::InvalidInput(format!("{command} needs --sft <π_ref checkpoint>")))?;
            let source = if command == "ppo" { args.config.ppo.reward } else { args.config.grpo.reward };
            session.load(&read_file(sft)?)?;
            // r_φ only when the run trains against it (`--set ppo.reward=gold|custom`: a program).
            match (&args.reward, source) {
                (Some(rm), _) => drop(session.load(&read_file(rm)?)?),
                (None, RewardSource::RewardModel) => return Err(LabError::InvalidInput(format!("{command} needs --reward <r_φ checkpoint> (or --set {command}.reward=gold|custom)"))),
                (None, _) => {}
            }
            let (stage, role) = if command == "ppo" { (Stage::Ppo, Role::Policy) } else { (Stage::Grpo, Role::Grpo) };
            stage_online(&mut session, &args, stage).await?;
            save(&session, role, &args.out).await?;
        }
        "dpo" | "sweep" => {
            let sft = args.sft.as_ref().ok_or_else(|| LabError::InvalidInput(format!("{} needs --sft <π_ref checkpoint>", args.command)))?;
            session.load(&read_file(sft)?)?;
            if let Some(rm) = &args.reward {
                session.load(&read_file(rm)?)?;
            }
            if args.command == "dpo" {
                stage_dpo(&mut session, &args).await?;
                save(&session, Role::Dpo, &args.out).await?;
            } else {
                if args.reward.is_none() {
                    return Err(LabError::InvalidInput("sweep needs --reward <r_φ checkpoint> too (PPO, GRPO and RLOO train against it)".into()));
                }
                sweep(&mut session, &args).await?;
            }
        }
        "all" => {
            stage_sft(&mut session, &args).await?;
            stage_reward(&mut session, &args).await?;
            stage_online(&mut session, &args, Stage::Ppo).await?;
            stage_online(&mut session, &args, Stage::Grpo).await?;
            stage_dpo(&mut session, &args).await?;
        }
        other => return Err(LabError::InvalidInput(format!("unknown command {other}\n{USAGE}"))),
    }
    Ok(())
}

impl Args {
    fn interchange(&self) -> crate::interchange::Paths {
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

pub fn main() {
    let result = parse_args().and_then(|args| pollster::block_on(run(args)));
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}
