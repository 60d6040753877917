//! Resuming after a reload: a stage snapshotted mid-way and resumed in a fresh session takes
//! exactly the steps it would have taken, for every resumable stage; damaged or mismatched
//! snapshots are refused and change nothing.
#![cfg(not(target_arch = "wasm32"))]

use burn::prelude::*;
use pollster::block_on;
use rlhf_lab::app::session::{Session, Stage};
use rlhf_lab::engine::model::config::Preset;
use rlhf_lab::rlhf::config::{DpoConfig, LabConfig, PpoConfig, RewardConfig, SftConfig};
use rlhf_lab::rlhf::metrics::Metrics;

fn config() -> LabConfig {
    LabConfig {
        preset: Preset::Micro,
        seed: 7,
        sft: SftConfig { steps: 4, batch_size: 4, eval_every: 2, train_examples: 16, held_out_examples: 4, ..SftConfig::default() },
        reward: RewardConfig { batch_size: 8, epochs: 1, ..RewardConfig::default() },
        ppo: PpoConfig { iterations: 2, batch_size: 8, mini_batches: 2, epochs: 1, ..PpoConfig::default() },
        dpo: DpoConfig { batch_size: 8, epochs: 1, ..DpoConfig::default() },
        ..LabConfig::default()
    }
}

fn labels(session: &mut Session, count: usize) -> String {
    let simulated = block_on(session.simulate_labels(count)).unwrap();
    simulated.iter().map(|s| serde_json::to_string(&s.label).unwrap() + "\n").collect()
}

fn steps(session: &mut Session, stage: Stage, n: usize) -> Vec<Metrics> {
    (0..n).map(|_| block_on(session.step(stage)).unwrap()).collect()
}

/// Runs `n` more steps in `session` and in a fresh session resumed from a snapshot taken now
/// (`prepare` gives the fresh session what the stage needs); both must agree exactly.
fn resumes_exactly(session: &mut Session, stage: Stage, n: usize, prepare: impl FnOnce(&mut Session)) -> Session {
    let snapshot = block_on(session.snapshot(stage)).unwrap();
    let status = serde_json::to_value(session.status().of(stage)).unwrap();
    let expected = steps(session, stage, n);
    let mut fresh = Session::new(Device::flex(), config()).unwrap();
    prepare(&mut fresh);
    let progress = block_on(fresh.resume(stage, &snapshot)).unwrap();
    assert_eq!(serde_json::to_value(Some(progress.progress)).unwrap(), status, "{stage:?} resumed elsewhere");
    let got = steps(&mut fresh, stage, n);
    assert_eq!(got, expected, "{stage:?} diverged after resuming");
    fresh
}

#[test]
fn every_stage_resumes_where_it_was() {
    let mut lab = Session::new(Device::flex(), config()).unwrap();
    lab.base_from_scratch();
    lab.sft_begin().unwrap();
    steps(&mut lab, Stage::Sft, 2);
    resumes_exactly(&mut lab, Stage::Sft, 2, |fresh| fresh.base_from_scratch());
    assert!(lab.status().sft.unwrap().done);
    let sft_done = block_on(lab.snapshot(Stage::Sft)).unwrap();
    lab.sft_finish().unwrap();

    // A fresh session brought to π_ref by resuming the finished SFT snapshot.
    let with_reference = |fresh: &mut Session| {
        fresh.base_from_scratch();
        block_on(fresh.resume(Stage::Sft, &sft_done)).unwrap();
    };

    let jsonl = labels(&mut lab, 48);
    lab.reward_begin(&jsonl).unwrap();
    steps(&mut lab, Stage::Reward, 2);
    resumes_exactly(&mut lab, Stage::Reward, 2, with_reference);
    while !lab.status().reward.unwrap().done {
        steps(&mut lab, Stage::Reward, 1);
    }
    let reward_done = block_on(lab.snapshot(Stage::Reward)).unwrap();
    block_on(lab.reward_finish()).unwrap();

    lab.ppo_begin().unwrap();
    steps(&mut lab, Stage::Ppo, 2); // a rollout and an update: the next step uses the rollout in hand
    resumes_exactly(&mut lab, Stage::Ppo, 3, |fresh| {
        with_reference(fresh);
        block_on(fresh.resume(Stage::Reward, &reward_done)).unwrap();
        block_on(fresh.reward_finish()).unwrap();
    });

    block_on(lab.dpo_begin(&jsonl)).unwrap();
    steps(&mut lab, Stage::Dpo, 1);
    resumes_exactly(&mut lab, Stage::Dpo, 2, with_reference);
}

#[test]
fn bad_snapshots_are_refused_and_change_nothing() {
    let mut lab = Session::new(Device::flex(), config()).unwrap();
    lab.base_from_scratch();
    lab.sft_begin().unwrap();
    steps(&mut lab, Stage::Sft, 1);
    let good = block_on(lab.snapshot(Stage::Sft)).unwrap();
    steps(&mut lab, Stage::Sft, 1);
    let status = serde_json::to_string(&lab.status()).unwrap();

    let mut damaged = good.clone();
    damaged[good.len() / 2] ^= 0x40;
    let mut other_settings = config();
    other_settings.sft.learning_rate *= 2.0;
    let mut other_seed = config();
    other_seed.seed += 1;
    let cases: Vec<(&str, Vec<u8>, Stage)> = vec![
        ("damaged", damaged, Stage::Sft),
        ("truncated", good[..good.len() - 100].to_vec(), Stage::Sft),
        ("empty", Vec::new(), Stage::Sft),
        ("another stage", good.clone(), Stage::Ppo),
        ("not resumable", good.clone(), Stage::Sweep),
    ];
    for (what, bytes, stage) in cases {
        let err = block_on(lab.resume(stage, &bytes)).expect_err(what);
        assert!(!err.to_string().is_empty());
        assert_eq!(serde_json::to_string(&lab.status()).unwrap(), status, "{what} changed the session");
    }
    for (what, config) in [("other stage settings", other_settings), ("other seed", other_seed)] {
        let mut other = Session::new(Device::flex(), config).unwrap();
        other.base_from_scratch();
        let err = block_on(other.resume(Stage::Sft, &good)).expect_err(what);
        assert!(err.to_string().contains("other settings"), "{what}: {err}");
        assert!(other.status().sft.is_none(), "{what} left a trainer behind");
    }
}
