//! Diagnostic for the reward model's gap to the agreement ceiling (README: "How close the reward
//! model gets"): the final hidden state of a checkpoint's trunk at the read position (the last
//! real token) of every completion in a labels file, with its gold terms and product, as JSON
//! lines. `scripts/probe-terms.py` then fits a probe per gold term: a term the probe cannot
//! recover is one the reward-model head cannot read.
//!
//! usage: cargo run --release --example probe -- <checkpoint.rlhf> <labels.jsonl> > hidden.jsonl
use burn::prelude::*;
use rlhf_lab::engine::model::{Gpt, ScalarModel};
use rlhf_lab::rlhf::task::{Tokenizer, SEQ_LEN};
use rlhf_lab::rng::Rng;

fn main() -> rlhf_lab::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, checkpoint, labels] = &args[..] else {
        eprintln!("usage: probe <checkpoint.rlhf> <labels.jsonl>");
        std::process::exit(2);
    };
    let read = |path: &str| std::fs::read(path).map_err(|e| rlhf_lab::LabError::InvalidInput(format!("{path}: {e}")));
    let device = Device::flex();
    let tokenizer = Tokenizer::new();
    let bytes = read(checkpoint)?;
    let (header, record) = rlhf_lab::engine::checkpoint::decode(&bytes)?;
    let fresh = Gpt::new(&header.model, &mut Rng::new(1), &device);
    let trunk = match header.architecture.as_str() {
        "scalar" => rlhf_lab::engine::checkpoint::load_record(ScalarModel::from_trunk(fresh, &device), record)?.trunk,
        _ => rlhf_lab::engine::checkpoint::load_record(fresh, record)?,
    };
    let text = String::from_utf8(read(labels)?).map_err(|_| rlhf_lab::LabError::InvalidInput(format!("{labels} is not UTF-8")))?;
    let pairs = rlhf_lab::rlhf::labels::parse_jsonl(&text, &tokenizer)?;
    let completions: Vec<_> = pairs.iter().flat_map(|p| [&p.first, &p.second]).collect();
    for chunk in completions.chunks(256) {
        let tokens: Vec<i32> = chunk.iter().flat_map(|c| c.sequence(&tokenizer)).map(|t| t as i32).collect();
        let tokens = Tensor::<2, Int>::from_data(burn::tensor::TensorData::new(tokens, [chunk.len(), SEQ_LEN]), &device);
        let hidden: Vec<f32> = trunk.hidden(tokens).into_data().iter::<f32>().collect();
        let width = hidden.len() / (chunk.len() * SEQ_LEN);
        for (row, c) in chunk.iter().enumerate() {
            let at = (row * SEQ_LEN + c.last_index()) * width;
            println!("{}", serde_json::json!({"hidden": &hidden[at..at + width], "gold": c.gold(&tokenizer), "product": c.product}));
        }
    }
    Ok(())
}
