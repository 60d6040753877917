//! Numerical faults: a NaN in any stage's loss is caught within the step it appears in, named
//! (stage, step, quantity), and the trainer is rolled back to the last good step: its snapshot
//! after the failed step is byte-for-byte the one before it, and training then goes on.
#![cfg(not(target_arch = "wasm32"))]

use burn::prelude::*;
use pollster::block_on;
use rlhf_lab::LabError;
use rlhf_lab::app::session::{Session, Stage};
use rlhf_lab::engine::model::config::Preset;
use rlhf_lab::rlhf::config::{DpoConfig, LabConfig, PpoConfig, RewardConfig, SftConfig};

fn config() -> LabConfig {
    LabConfig {
        preset: Preset::Micro,
        seed: 11,
        sft: SftConfig { steps: 6, batch_size: 4, eval_every: 3, train_examples: 16, held_out_examples: 4, ..SftConfig::default() },
        reward: RewardConfig { batch_size: 8, epochs: 2, ..RewardConfig::default() },
        ppo: PpoConfig { iterations: 3, batch_size: 8, mini_batches: 2, epochs: 1, ..PpoConfig::default() },
        dpo: DpoConfig { batch_size: 8, epochs: 2, ..DpoConfig::default() },
        ..LabConfig::default()
    }
}

/// Poisons the next step of `stage`, checks the fault and the rollback, then takes a good step.
fn fault_rolls_back(lab: &mut Session, stage: Stage, next_step: usize, quantity: &str) {
    let before = block_on(lab.snapshot(stage)).unwrap();
    let poison = match stage {
        Stage::Sft => lab.sft_poison_step(next_step),
        Stage::Reward => lab.reward_poison_step(next_step),
        Stage::Ppo => lab.ppo_poison_update(next_step),
        Stage::Dpo => lab.dpo_poison_step(next_step),
        _ => unreachable!(),
    };
    poison.unwrap();
    let err = block_on(lab.step(stage)).expect_err("the poisoned step fails");
    match &err {
        LabError::NumericalFault { stage: s, step, quantity: q } => {
            assert!(s.to_lowercase().starts_with(stage.name()), "{err}");
            assert_eq!((*step, q.as_str()), (next_step, quantity), "{err}");
        }
        other => panic!("{stage:?}: expected a numerical fault, got {other}"),
    }
    assert!(err.to_string().contains("rolled back"), "{err}");
    let after = block_on(lab.snapshot(stage)).unwrap();
    assert!(before == after, "{stage:?}: the trainer after the fault differs from the last good step");
    let metrics = block_on(lab.step(stage)).expect("training goes on after the fault");
    assert!(metrics.values().all(|v| v.is_finite()), "{stage:?}: {metrics:?}");
}

#[test]
fn a_nan_in_any_stage_pauses_names_the_step_and_rolls_back() {
    let mut lab = Session::new(Device::flex(), config()).unwrap();
    lab.base_from_scratch();
    lab.sft_begin().unwrap();
    block_on(lab.step(Stage::Sft)).unwrap();
    fault_rolls_back(&mut lab, Stage::Sft, 2, "loss");
    while !lab.status().sft.unwrap().done {
        block_on(lab.step(Stage::Sft)).unwrap();
    }
    lab.sft_finish().unwrap();

    let simulated = block_on(lab.simulate_labels(48)).unwrap();
    let jsonl: String = simulated.iter().map(|s| serde_json::to_string(&s.label).unwrap() + "\n").collect();
    lab.reward_begin(&jsonl).unwrap();
    block_on(lab.step(Stage::Reward)).unwrap();
    fault_rolls_back(&mut lab, Stage::Reward, 2, "loss");
    while !lab.status().reward.unwrap().done {
        block_on(lab.step(Stage::Reward)).unwrap();
    }
    block_on(lab.reward_finish()).unwrap();

    lab.ppo_begin().unwrap();
    block_on(lab.step(Stage::Ppo)).unwrap(); // the rollout
    fault_rolls_back(&mut lab, Stage::Ppo, 1, "loss");

    block_on(lab.dpo_begin(&jsonl)).unwrap();
    fault_rolls_back(&mut lab, Stage::Dpo, 1, "loss");
}
