//! Each stage of the pipeline run headless, its metrics as JSON lines (`cli.rs` chooses which).

use std::time::Instant;
use rlhf_lab::app::session::{Role, Session, Stage};
use rlhf_lab::rlhf::metrics::Metrics;
use rlhf_lab::{LabError, Result};
use serde_json::{json, Value};
use crate::args::Args;

/// Temperature of the before/after samples: greedy decoding of a distribution this flat repeats
/// its single most likely word ("is not …"), which says little about the model.
pub(crate) const SAMPLE_TEMPERATURE: f32 = 0.7;

pub(crate) fn emit(stage: &str, metrics: &Metrics) {
    let mut object = serde_json::Map::new();
    object.insert("stage".into(), json!(stage));
    for (k, v) in metrics {
        object.insert(k.clone(), json!(v));
    }
    println!("{}", Value::Object(object));
}

pub(crate) fn write_checkpoint(path: &str, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| LabError::InvalidInput(format!("writing {path}: {e}")))?;
    eprintln!("wrote {path} ({} bytes)", bytes.len());
    Ok(())
}

pub(crate) fn read_file(path: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| LabError::InvalidInput(format!("{path}: {e}")))
}

/// Runs `steps` of a stage, printing every `every`-th step and every evaluation.
pub(crate) async fn run_steps(session: &mut Session, stage: Stage, name: &str, steps: usize, every: usize) -> Result<(Metrics, f64)> {
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

pub(crate) async fn stage_sft(session: &mut Session, args: &Args) -> Result<()> {
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

pub(crate) async fn stage_reward(session: &mut Session, args: &Args) -> Result<()> {
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
pub(crate) async fn stage_online(session: &mut Session, args: &Args, stage: Stage) -> Result<()> {
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
pub(crate) async fn overoptimization(session: &Session, stage: Stage, iteration: usize) -> Result<()> {
    let e = session.evaluate_run(stage, 128, 99).await?;
    println!("{}", json!({"stage": stage.name(), "overoptimization": true, "iteration": iteration, "kl": e.kl, "sqrt_kl": e.kl.max(0.0).sqrt(), "proxy": e.score, "gold": e.gold, "mean_length": e.mean_length, "eos_fraction": e.eos_fraction}));
    Ok(())
}

/// The labels the reward stage wrote (`--labels-out`) or were given (`--labels`), or fresh
/// simulated ones.
pub(crate) async fn labels_jsonl(session: &mut Session, args: &Args) -> Result<String> {
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

pub(crate) async fn stage_dpo(session: &mut Session, args: &Args) -> Result<()> {
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
pub(crate) async fn sweep(session: &mut Session, args: &Args) -> Result<()> {
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
