//! The machine's tests, run for every recipe: what the trainer owns (sharded updates, helper
//! failures, rollback, snapshots) holds whichever choices it is given. `ppo.rs` and `grpo.rs` test
//! what their choices compute; their fixtures are here.

use burn::prelude::*;

use super::loss::{PolicyAndValue, Trained};
use super::recipe::RatioLevel;
use super::reward::Reward;
use super::OnPolicyTrainer;
use crate::engine::data_parallel::{answers, assert_same_metrics, parameter_values, ShardResult};
use crate::engine::model::config::{ModelConfig, Preset};
use crate::engine::model::{Gpt, ScalarModel};
use crate::error::LabError;
use crate::rlhf::config::{GrpoConfig, PpoConfig};
use crate::rlhf::stages::Phase;
use crate::rlhf::task::Tokenizer;
use crate::rng::Rng;

// The trainers by their models (`ppo.rs` and `grpo.rs` name them PpoTrainer and GrpoTrainer and
// test with these fixtures: this file does not import them back).
type PpoTrainer = OnPolicyTrainer<PolicyAndValue>;
type GrpoTrainer = OnPolicyTrainer<Gpt>;

/// The micro model's shape, and π_ref drawn from seed 1.
pub(crate) fn micro() -> (Device, Tokenizer, ModelConfig, Gpt) {
    let device = Device::flex();
    let tokenizer = Tokenizer::new();
    let config = Preset::Micro.model(tokenizer.vocab_size());
    let reference = Gpt::new(&config, &mut Rng::new(1), &device);
    (device, tokenizer, config, reference)
}

/// A reward model that tells completions apart: `from_trunk`'s head is zero (every score equal),
/// so the head (the last parameters visited) gets weights of ±1 here.
pub(crate) fn varied_reward(config: &ModelConfig, device: &Device) -> ScalarModel {
    let blank = ScalarModel::from_trunk(Gpt::new(config, &mut Rng::new(2), device), device);
    let mut theta = parameter_values(&blank);
    let head = config.d_model + 1;
    let len = theta.len();
    let mut rng = Rng::new(4);
    for v in &mut theta[len - head..] {
        *v = if rng.below(2) == 0 { 1.0 } else { -1.0 };
    }
    crate::engine::data_parallel::with_flat_parameters(blank, &theta, device).unwrap()
}

pub(crate) fn small_ppo() -> PpoConfig {
    PpoConfig { iterations: 2, batch_size: 8, mini_batches: 2, epochs: 2, learning_rate: 1e-3, ..PpoConfig::default() }
}

pub(crate) fn small_grpo() -> GrpoConfig {
    GrpoConfig { iterations: 2, prompts: 2, group_size: 4, mini_batches: 2, epochs: 2, learning_rate: 1e-3, ..GrpoConfig::default() }
}

/// PPO on the micro model; r_φ scores every completion 0.3 (and V_ψ, its copy, predicts it).
pub(crate) fn ppo(config: PpoConfig) -> PpoTrainer {
    let (device, tokenizer, model, reference) = micro();
    let reward = ScalarModel::from_trunk(Gpt::new(&model, &mut Rng::new(2), &device), &device).shift_scores(0.3);
    PpoTrainer::new(&reference, &reward, &config, 3, &tokenizer, &device).unwrap()
}

/// GRPO (or another critic-free recipe) on the micro model against `varied_reward`.
pub(crate) fn grpo(config: GrpoConfig) -> GrpoTrainer {
    let (device, tokenizer, model, reference) = micro();
    GrpoTrainer::new(&reference, &varied_reward(&model, &device), &config, 3, &tokenizer, &device).unwrap()
}

pub(crate) fn parameters<M: Trained>(t: &OnPolicyTrainer<M>) -> Vec<f32> {
    parameter_values(&t.model.valid())
}

fn helpers<M: Trained>(t: &OnPolicyTrainer<M>, shards: usize) -> Vec<ShardResult> {
    answers(pollster::block_on(t.shard_plan(shards)).unwrap().expect("an update is next"))
}

/// Every recipe under test, twice from the same settings (and its settings as JSON).
fn recipes() -> Vec<(&'static str, Box<dyn Fn() -> Trainer>, serde_json::Value)> {
    // An entropy bonus so that PPO's first updates (whose advantages are all 0) move the policy too.
    let ppo_config = PpoConfig { ent_coef: 0.01, ..small_ppo() };
    // GSPO as `GroupMethod::Gspo` sets it.
    let gspo = GrpoConfig { importance_sampling_level: RatioLevel::Sequence, epsilon_low: 3e-4, epsilon_high: 4e-4, ..small_grpo() };
    let gspo_settings = serde_json::to_value(&gspo).unwrap();
    vec![
        ("ppo", Box::new(move || Trainer::Ppo(ppo(ppo_config.clone()))), serde_json::to_value(small_ppo()).unwrap()),
        ("grpo", Box::new(|| Trainer::Grpo(grpo(small_grpo()))), serde_json::to_value(small_grpo()).unwrap()),
        ("gspo", Box::new(move || Trainer::Grpo(grpo(gspo.clone()))), gspo_settings),
    ]
}

enum Trainer {
    Ppo(PpoTrainer),
    Grpo(GrpoTrainer),
}

fn split_is_whole<M: Trained>(mut whole: OnPolicyTrainer<M>, mut split: OnPolicyTrainer<M>, name: &str) {
    // Minibatches of 4 split in 2 and 3 shards (unequal) by turns.
    let mut split_updates = 0;
    while !whole.is_done() {
        let expected = pollster::block_on(whole.step()).unwrap();
        let got = match split.phase {
            Phase::Rollout => {
                assert!(pollster::block_on(split.shard_plan(2)).unwrap().is_none(), "a rollout is not split");
                pollster::block_on(split.step()).unwrap()
            }
            Phase::Update { .. } => {
                split_updates += 1;
                let shards = 2 + split_updates % 2;
                let results = helpers(&split, shards);
                assert_eq!(results.len(), shards - 1);
                pollster::block_on(split.step_sharded(shards, std::future::ready(Ok(results)))).unwrap()
            }
        };
        assert_same_metrics(&got, &expected, &[], split_updates);
        let worst = parameters(&whole).iter().zip(parameters(&split)).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "{name}, update {split_updates}: parameters differ by {worst}");
        let (a, b) = (whole.rollout().unwrap(), split.rollout().unwrap());
        assert!(a.ratio.iter().zip(&b.ratio).all(|(x, y)| (x - y).abs() < 1e-5), "{name}: the views' ρ differ");
        assert_eq!(a.clipped, b.clipped);
    }
    assert_eq!(split_updates, 8, "{name}");
}

#[test]
fn an_update_split_across_workers_is_the_whole_update_for_every_recipe() {
    for (name, make, _) in recipes() {
        match (make(), make()) {
            (Trainer::Ppo(a), Trainer::Ppo(b)) => split_is_whole(a, b, name),
            (Trainer::Grpo(a), Trainer::Grpo(b)) => split_is_whole(a, b, name),
            _ => unreachable!(),
        }
    }
    // PPO's policy did move: its last update's ρ is not 1 everywhere (the views read it).
    let mut t = ppo(PpoConfig { ent_coef: 0.01, ..small_ppo() });
    while !t.is_done() {
        pollster::block_on(t.step()).unwrap();
    }
    assert!(t.rollout().unwrap().ratio.iter().any(|r| (r - 1.0).abs() > 1e-4));
}

fn failed_helpers_change_nothing<M: Trained>(mut t: OnPolicyTrainer<M>, per_token: bool, name: &str) {
    let refused = pollster::block_on(t.step_sharded(2, std::future::ready(Ok(Vec::new())))).unwrap_err();
    assert!(refused.to_string().contains("taken whole"), "{name}: {refused}");
    pollster::block_on(t.step()).unwrap(); // rollout
    let stale = helpers(&t, 2);
    pollster::block_on(t.step()).unwrap(); // update 1
    let before = parameters(&t);
    let failed = pollster::block_on(t.step_sharded(2, std::future::ready(Err(LabError::InvalidInput("a helper worker failed: gone".into()))))).unwrap_err();
    assert!(failed.to_string().contains("gone"), "{failed}");
    let refused = pollster::block_on(t.step_sharded(2, std::future::ready(Ok(stale)))).unwrap_err();
    assert!(refused.to_string().contains("step 1, not step 2"), "{refused}");
    if per_token {
        let mut short = helpers(&t, 2);
        short[0].per_token.pop();
        let refused = pollster::block_on(t.step_sharded(2, std::future::ready(Ok(short)))).unwrap_err();
        assert!(refused.to_string().contains("per-token values"), "{refused}");
    }
    assert_eq!(parameters(&t), before, "{name}");
    assert_eq!(t.updates, 1);
    let results = helpers(&t, 2);
    pollster::block_on(t.step_sharded(2, std::future::ready(Ok(results)))).unwrap();
    assert_eq!(t.updates, 2);
}

#[test]
fn a_failed_stale_or_malformed_helper_changes_nothing_for_every_recipe() {
    for (name, make, _) in recipes() {
        match make() {
            Trainer::Ppo(t) => {
                // A helper refuses rows that do not fit the model.
                let mut probe = ppo(small_ppo());
                pollster::block_on(probe.step()).unwrap();
                let (theta, mut work) = pollster::block_on(probe.shard_plan(2)).unwrap().unwrap();
                work[0].objective.0.advantages.pop();
                let err = pollster::block_on(crate::engine::data_parallel::compute(work[0].step, &work[0].model, &work[0].objective, &theta, None)).map(|_| ()).unwrap_err();
                assert!(err.to_string().contains("advantages"), "{err}");
                failed_helpers_change_nothing(t, true, name);
            }
            Trainer::Grpo(t) => failed_helpers_change_nothing(t, false, name),
        }
    }
}

fn rollback_and_resume<M: Trained>(mut t: OnPolicyTrainer<M>, mut resumed: OnPolicyTrainer<M>, settings: &serde_json::Value, name: &str) {
    t.poison_update(2);
    pollster::block_on(t.step()).unwrap(); // rollout
    pollster::block_on(t.step()).unwrap(); // update 1
    let before = parameters(&t);
    let err = pollster::block_on(t.step()).unwrap_err();
    assert!(matches!(err, LabError::NumericalFault { ref quantity, step: 2, .. } if quantity == "loss"), "{name}: {err}");
    assert_eq!(parameters(&t), before, "{name}: rolled back");
    // A snapshot now, restored into a fresh trainer, continues exactly as this one does.
    let bytes = pollster::block_on(t.snapshot(settings.clone())).unwrap();
    let mut other = settings.clone();
    other["iterations"] = serde_json::json!(99);
    assert!(resumed.restore(&bytes, &other).is_err(), "{name}: other settings are refused");
    resumed.restore(&bytes, settings).unwrap();
    while !t.is_done() {
        let (a, b) = (pollster::block_on(t.step()).unwrap(), pollster::block_on(resumed.step()).unwrap());
        assert_eq!(a, b, "{name}");
    }
    assert_eq!(parameters(&t), parameters(&resumed), "{name}");
}

#[test]
fn a_non_finite_update_rolls_back_and_a_snapshot_resumes_mid_iteration_for_every_recipe() {
    for (name, make, settings) in recipes() {
        match (make(), make()) {
            (Trainer::Ppo(a), Trainer::Ppo(b)) => rollback_and_resume(a, b, &settings, name),
            (Trainer::Grpo(a), Trainer::Grpo(b)) => rollback_and_resume(a, b, &settings, name),
            _ => unreachable!(),
        }
    }
}

#[test]
fn a_program_s_reward_needs_no_reward_model() {
    let (device, tokenizer, _, reference) = micro();
    let mut t = GrpoTrainer::against(&reference, Reward::Gold, &small_grpo(), 3, &tokenizer, &device).unwrap();
    let m = pollster::block_on(t.step()).unwrap();
    assert_eq!(m["reward"], m["gold"]);
}
