//! The command line's argument parsing and subcommands (see `main.rs`).

use std::time::Instant;
use rlhf_lab::app::session::{Role, Session, Stage};
use rlhf_lab::engine::device::{select, BackendChoice};
use rlhf_lab::engine::model::config::Preset;
use rlhf_lab::rlhf::stages::on_policy::recipe::RewardSource;
use rlhf_lab::{LabError, Result};
use crate::args::{parse_args, Args, USAGE};
use crate::stages::{read_file, run_steps, stage_dpo, stage_online, stage_reward, stage_sft, sweep, write_checkpoint};

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

pub fn main() {
    let result = parse_args().and_then(|args| pollster::block_on(run(args)));
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}
