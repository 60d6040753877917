//! Generated bad inputs, natively: every one refused with a message, none panics, nothing
//! changes (the same cases run in the browser in `tests/web.rs`).
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/bad_inputs.rs"]
mod bad_inputs_cases;

use burn::prelude::*;
use rlhf_lab::app::session::{Role, Session};
use rlhf_lab::engine::model::config::Preset;
use rlhf_lab::rlhf::config::{LabConfig, SftConfig};

fn session(preset: Preset) -> Session {
    let config = LabConfig {
        preset,
        sft: SftConfig { steps: 1, batch_size: 4, eval_every: 100, train_examples: 8, held_out_examples: 4, ..SftConfig::default() },
        ..LabConfig::default()
    };
    let mut session = Session::new(Device::flex(), config).unwrap();
    session.base_from_scratch();
    session.sft_begin().unwrap();
    pollster::block_on(session.sft_step()).unwrap();
    session.sft_finish().unwrap();
    session
}

#[test]
fn every_generated_bad_input_is_refused_without_a_panic_and_changes_nothing() {
    let other = pollster::block_on(session(Preset::Tiny).save(Role::Sft)).unwrap();
    let mut lab = session(Preset::Micro);
    let report = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pollster::block_on(bad_inputs_cases::drive(&mut lab, &other))))
        .expect("a bad input panicked");
    println!("bad inputs: {} tried, {} refused, 0 panicked", report.tried, report.refused);
    assert!(report.accepted.is_empty(), "accepted: {:#?}", report.accepted);
    assert!(report.settings_unchanged && report.stages_unchanged && report.reference_unchanged, "{report:?}");
    assert!(report.tried >= 200, "only {} cases", report.tried);
}
