//! Test support: what every supervised stage must do with its shards and its faults, checked on
//! trainers a stage's tests make. Each stage's tests call these with its own trainer.

use std::future::ready;

use burn::prelude::*;
use pollster::block_on;

use super::{Objective, SupervisedTrainer};
use crate::engine::data_parallel::{answers, assert_same_metrics, compute, parameter_values, ShardResult};
use crate::error::LabError;

/// A vector's values, read back.
pub(crate) fn read(t: Tensor<1>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

/// Each helper's answer to `trainer`'s plan of a step in `shards`, each from a model of its own,
/// as the page's helper workers would give them.
pub(crate) fn helpers<O: Objective>(trainer: &SupervisedTrainer<O>, shards: usize) -> Vec<ShardResult> {
    answers(block_on(trainer.shard_plan(shards)).unwrap())
}

pub(crate) fn parameters<O: Objective>(trainer: &SupervisedTrainer<O>) -> Vec<f32> {
    parameter_values(&trainer.model())
}

/// Steps `whole` on one worker and `split` in 3 and 2 shards by turns until `whole` is done (a
/// batch of 7 rows makes unequal shards): each split step's metrics are the whole step's (the
/// names in `shifted` may all move by one amount: `assert_same_metrics`), and so is `view` of the
/// two trainers, within 1e-5 (relative above 1). Returns the steps taken.
pub(crate) fn split_steps_match<O: Objective>(mut whole: SupervisedTrainer<O>, mut split: SupervisedTrainer<O>, shifted: &[&str], view: impl Fn(&SupervisedTrainer<O>) -> Vec<f32>) -> usize {
    let mut steps = 0;
    while !whole.is_done() {
        steps += 1;
        let shards = 2 + steps % 2;
        let expected = block_on(whole.step()).unwrap();
        let results = helpers(&split, shards);
        assert_eq!(results.len(), shards - 1);
        let got = block_on(split.step_sharded(shards, ready(Ok(results)))).unwrap();
        assert_same_metrics(&got, &expected, shifted, steps);
        for (x, y) in view(&whole).iter().zip(&view(&split)) {
            assert!((x - y).abs() <= 1e-5 * x.abs().max(1.0), "step {steps}: {y} split, {x} whole");
        }
    }
    steps
}

/// A helper's failure, a shard that `corrupt` makes malformed (a helper refuses it with a message
/// containing `refusal`), answers planned for an earlier step and too few answers each leave the
/// trainer as it was, its batch put back: after them it takes a fresh run's third step, to the bit.
/// `make` makes a trainer of at least 3 steps.
pub(crate) fn refused_helpers_change_nothing<O: Objective>(make: impl Fn() -> SupervisedTrainer<O>, corrupt: impl FnOnce(&mut O::Shard), refusal: &str) {
    let (mut trainer, mut fresh) = (make(), make());
    block_on(trainer.step()).unwrap();
    block_on(fresh.step()).unwrap();
    let before = parameters(&trainer);
    let failed = block_on(trainer.step_sharded(2, ready(Err(LabError::InvalidInput("a helper worker failed: gone".into()))))).unwrap_err();
    assert!(failed.to_string().contains("gone"), "{failed}");
    let (theta, mut work) = block_on(trainer.shard_plan(2)).unwrap();
    corrupt(&mut work[0].objective);
    let malformed = block_on(compute(work[0].step, &work[0].model, &work[0].objective, &theta, None)).map(|_| ()).unwrap_err();
    assert!(malformed.to_string().contains(refusal), "{malformed}");
    assert_eq!(parameters(&trainer), before);

    let stale = helpers(&trainer, 2);
    block_on(trainer.step()).unwrap();
    block_on(fresh.step()).unwrap();
    let after = parameters(&trainer);
    let refused = block_on(trainer.step_sharded(2, ready(Ok(stale)))).unwrap_err();
    assert!(refused.to_string().contains("step 2, not step 3"), "{refused}");
    let missing = block_on(trainer.step_sharded(3, ready(Ok(helpers(&trainer, 2))))).unwrap_err();
    assert!(missing.to_string().contains("2 shards answered; the step has 3"), "{missing}");
    assert_eq!(trainer.step_count(), 2);
    assert_ne!(before, after);
    assert_eq!(parameters(&trainer), after);
    block_on(trainer.step()).unwrap();
    block_on(fresh.step()).unwrap();
    assert_eq!(parameters(&trainer), parameters(&fresh));
}

/// A NaN loss at step 3 (`poison_step`) is caught by the step's one readback and named; the model,
/// the optimizer and the batch are put back, and the retry is a clean run's third step, to the
/// bit. `make` makes a trainer of at least 3 steps.
pub(crate) fn a_poisoned_step_rolls_back<O: Objective>(make: impl Fn() -> SupervisedTrainer<O>) {
    let (mut trainer, mut fresh) = (make(), make());
    trainer.poison_step(3);
    for _ in 0..2 {
        block_on(trainer.step()).unwrap();
        block_on(fresh.step()).unwrap();
    }
    let before = parameters(&trainer);
    let fault = block_on(trainer.step()).unwrap_err();
    assert_eq!(fault, LabError::NumericalFault { stage: O::NAMES.fault.into(), step: 3, quantity: "loss".into() });
    assert!(fault.to_string().contains("step 3"), "{fault}");
    assert_eq!(trainer.step_count(), 2);
    assert_eq!(parameters(&trainer), before);
    block_on(trainer.step()).unwrap();
    block_on(fresh.step()).unwrap();
    assert_eq!(parameters(&trainer), parameters(&fresh));
}
