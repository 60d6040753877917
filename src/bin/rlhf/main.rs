//! The native command line: every stage headless, metrics as JSON lines on stdout.
//!
//! ```text
//! rlhf pretrain [options] --out base.rlhf       train the base model on the task's free text
//! rlhf sft      [options] [--base base.rlhf] [--out sft.rlhf]
//! rlhf reward   [options] --sft sft.rlhf [--labels labels.jsonl] [--labels-out labels.jsonl] [--out rm.rlhf]
//! rlhf ppo      [options] --sft sft.rlhf --reward rm.rlhf [--out policy.rlhf]
//! rlhf dpo      [options] --sft sft.rlhf [--reward rm.rlhf] [--labels labels.jsonl] [--out dpo.rlhf]
//! rlhf sweep    [options] --sft sft.rlhf --reward rm.rlhf [--labels labels.jsonl]   PPO and DPO at several β
//! rlhf bench    [--presets micro,tiny,small] [--plan full|quick|counts]   ms per step / token / PPO iteration (JSON lines)
//! rlhf all      [options] [--base base.rlhf]    every stage, simulated labels
//! rlhf export   --from model.rlhf --hf DIR      a checkpoint as a Hugging Face folder (GPT-2)
//! rlhf export   --labels labels.jsonl --trl prefs.jsonl   labels in TRL's prompt/chosen/rejected format
//! rlhf import   --hf DIR [--as base|sft|reward] --out model.rlhf   a folder back into a checkpoint
//! rlhf import   --trl prefs.jsonl --labels-out labels.jsonl        a TRL preference file as the lab's labels
//! rlhf probe    --from model.rlhf --out probe.json   the lab's logits, scores and greedy tokens (tests/hf/check_hf.py)
//! options: --preset micro|tiny|small  --seed N  --set section.field=value (repeatable)
//!          --config file.json  --every N (print every Nth step; evaluations always print)
//! ```
//!
//! Each line is a JSON object: `{"stage": "sft", "step": 12, "loss/train": 2.31, ...}`; the last
//! line of a stage is its summary. Progress goes to stderr.

#[cfg(not(target_arch = "wasm32"))]
mod args;
#[cfg(not(target_arch = "wasm32"))]
mod cli;
#[cfg(not(target_arch = "wasm32"))]
mod interchange;
#[cfg(not(target_arch = "wasm32"))]
mod stages;

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    cli::main();
}

/// The command line is native-only; wasm test builds of the crate compile it as nothing.
#[cfg(target_arch = "wasm32")]
fn main() {}
