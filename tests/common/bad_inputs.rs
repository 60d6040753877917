//! Generated bad inputs for every way data enters the lab — settings, label files, checkpoints,
//! sampling and stage calls — shared by the native test (`tests/bad_inputs.rs`) and the browser
//! test (`tests/web.rs`), which drives the same cases through the same session in a worker, where
//! a panic would abort the module. Every case must be refused with a message and change nothing.

use rlhf_lab::app::session::{Role, Session, Stage};
use rlhf_lab::rlhf::config::LabConfig;
use rlhf_lab::rlhf::labels::{to_jsonl, LabelRecord, LabelSource};
use rlhf_lab::rlhf::task::{Preference, Tokenizer};
use serde_json::{json, Value};

/// Every leaf of a JSON object, as (dotted path, value).
fn leaves(value: &Value, prefix: &str, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                leaves(v, &path, out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

fn with(path: &str, value: Value) -> String {
    let mut config = serde_json::to_value(LabConfig::default()).unwrap();
    let mut node = &mut config;
    let parts: Vec<&str> = path.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        node = node.get_mut(*part).unwrap();
    }
    node[parts[parts.len() - 1]] = value;
    config.to_string()
}

/// Settings that must be refused: every field given values of the wrong type or out of any
/// range, truncated documents, unknown fields and non-objects.
pub fn config_cases() -> Vec<String> {
    let default = serde_json::to_value(LabConfig::default()).unwrap();
    let mut fields = Vec::new();
    leaves(&default, "", &mut fields);
    let mut cases = Vec::new();
    for (path, value) in &fields {
        let bad: Vec<Value> = match value {
            Value::Number(_) if path == "seed" => vec![json!(-1), json!(1.5), json!("7"), json!(null), json!(1e300)],
            Value::Number(n) if n.is_u64() => vec![json!(-1), json!(1.5), json!(1e30), json!("12"), json!(null), json!([]), json!(true)],
            Value::Number(_) => vec![json!(1e30), json!(-1e30), json!("0.1"), json!(null), json!({}), json!(false)],
            Value::Bool(_) => vec![json!("yes"), json!(1), json!(null)],
            Value::String(_) => vec![json!("huge"), json!(3), json!(null), json!("")],
            _ => vec![],
        };
        cases.extend(bad.into_iter().map(|v| with(path, v)));
    }
    let valid = default.to_string();
    for cut in (1..valid.len()).step_by(valid.len() / 12) {
        cases.push(valid[..cut].to_string());
    }
    cases.extend([
        String::new(),
        "[]".into(),
        "42".into(),
        "\"tiny\"".into(),
        "null".into(),
        r#"{"sft": {"lerning_rate": 0.1}}"#.into(),
        r#"{"optimizer": "sgd"}"#.into(),
        r#"{"sft": []}"#.into(),
        r#"{"sft": {"steps": 0}}"#.into(),
        r#"{"ppo": {"mini_batches": 64, "batch_size": 8}}"#.into(),
        r#"{"preset": "tiny", "preset": "huge"}"#.into(),
        format!("{{\"sft\": {{\"steps\": {}}}}}", "9".repeat(400)),
        format!("{}{}", "[".repeat(2000), "]".repeat(2000)),
    ]);
    cases
}

fn record(tokenizer: &Tokenizer) -> LabelRecord {
    LabelRecord {
        vocab: tokenizer.fingerprint(),
        prompt: "review : the camera".into(),
        first: "is great . <eos>".into(),
        second: "is bad . <eos>".into(),
        preference: Preference::First,
        source: LabelSource::Human,
        time: None,
    }
}

/// Label files that must be refused whole.
pub fn label_cases(tokenizer: &Tokenizer) -> Vec<String> {
    let good = serde_json::to_string(&record(tokenizer)).unwrap();
    let valid_file = to_jsonl(&vec![record(tokenizer); 3]);
    let mut cases = vec![
        String::new(),
        "\n\n\n".into(),
        "not json".into(),
        "{}".into(),
        "[]".into(),
        "null".into(),
        format!("{good}\n{{"),
        format!("{valid_file}garbage\n"),
        good.replace(&tokenizer.fingerprint(), "reviews-999-deadbeef"),
        good.replace(&tokenizer.fingerprint(), ""),
        good.replace("review : the camera", "review : the spaceship"),
        good.replace("review : the camera", ""),
        good.replace("review : the camera", "the camera"),
        good.replace("is great . <eos>", "is gorgeous . <eos>"),
        good.replace("is great . <eos>", ""),
        good.replace("is great . <eos>", "<eos> is great"),
        good.replace("is great . <eos>", "<pad>"),
        good.replace("is great . <eos>", "<bos> is great"),
        good.replace("is great . <eos>", "<unk>"),
        good.replace("is great . <eos>", &"great ".repeat(21)),
        good.replace("is great . <eos>", &"great ".repeat(100_000)),
        good.replace("\"first\",", "\"both\","),
        good.replace("\"human\"", "\"robot\""),
        good.replace("\"preference\"", "\"preferred\""),
        good.replace("\"vocab\"", "\"vocabulary\""),
        good.replace('}', ",\"extra\":1}"),
        good.replace("\"is bad . <eos>\"", "42"),
        good.replace("\"is bad . <eos>\"", "null"),
        good.replace("\"is bad . <eos>\"", "[\"is\", \"bad\"]"),
        good[..good.len() / 2].to_string(),
        good.replace('"', "'"),
        "\u{0}\u{1}\u{2}binary".into(),
        format!("{good}\n").repeat(100_001),
    ];
    for cut in (1..good.len()).step_by(good.len() / 10) {
        cases.push(good[..cut].to_string());
    }
    cases
}

/// Checkpoint bytes that must be refused (given a valid checkpoint of this lab).
pub fn checkpoint_cases(valid: &[u8], other_preset: &[u8]) -> Vec<Vec<u8>> {
    let mut cases = vec![Vec::new(), b"RLHFLAB".to_vec(), b"hello world".to_vec(), vec![0u8; 1000], other_preset.to_vec()];
    for cut in [1, 8, 11, 12, 13, 40, 200, valid.len() / 2, valid.len() - 1] {
        cases.push(valid[..cut].to_vec());
    }
    for at in [0, 3, 9, 14, 60, 300, valid.len() / 3, valid.len() / 2, valid.len() - 2] {
        let mut flipped = valid.to_vec();
        flipped[at] ^= 0x55;
        cases.push(flipped);
    }
    let mut longer = valid.to_vec();
    longer.extend_from_slice(b"trailing");
    cases.push(longer);
    let mut big_header = valid.to_vec();
    big_header[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    cases.push(big_header);
    // A header that is valid JSON but names another role or architecture.
    let len = u32::from_le_bytes(valid[8..12].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&valid[12..12 + len]).unwrap();
    for (from, to) in [("\"sft\"", "\"reward\""), ("\"gpt\"", "\"scalar\""), ("\"sft\"", "\"alien\"")] {
        let changed = header.replacen(from, to, 1);
        let mut bytes = valid[..8].to_vec();
        bytes.extend_from_slice(&(changed.len() as u32).to_le_bytes());
        bytes.extend_from_slice(changed.as_bytes());
        bytes.extend_from_slice(&valid[12 + len..]);
        cases.push(bytes);
    }
    cases
}

/// What the driver saw.
#[derive(Debug, Default)]
pub struct Report {
    pub tried: usize,
    pub refused: usize,
    pub accepted: Vec<String>,
    pub settings_unchanged: bool,
    pub stages_unchanged: bool,
    pub reference_unchanged: bool,
}

impl Report {
    fn expect_err<T>(&mut self, what: &str, result: Result<T, rlhf_lab::LabError>) {
        self.tried += 1;
        match result {
            Err(e) => {
                assert!(!e.to_string().is_empty(), "{what}: refused without a message");
                self.refused += 1;
            }
            Ok(_) => self.accepted.push(what.chars().take(120).collect()),
        }
    }
}

/// Drives every case through `session` (which must hold a base model and π_ref, and no other
/// stage) and checks that nothing it holds changed.
pub async fn drive(session: &mut Session, other_preset_checkpoint: &[u8]) -> Report {
    let mut report = Report::default();
    let tokenizer = session.tokenizer().clone();
    let config_before = session.config().clone();
    let reference_before = session.save(Role::Sft).await.unwrap();
    let status_before = serde_json::to_string(&session.status()).unwrap();

    for case in config_cases() {
        let parsed = LabConfig::from_json(&case);
        let applied = parsed.and_then(|c| session.set_config(c));
        report.expect_err(&format!("config {case}"), applied);
    }
    for case in label_cases(&tokenizer) {
        report.expect_err(&format!("labels {}", &case[..case.len().min(80)]), session.check_labels(&case).map(|_| ()));
        report.expect_err("reward_begin with bad labels", session.reward_begin(&case).map(|_| ()));
        report.expect_err("dpo_begin with bad labels", session.dpo_begin(&case).await.map(|_| ()));
    }
    for (i, case) in checkpoint_cases(&reference_before, other_preset_checkpoint).iter().enumerate() {
        report.expect_err(&format!("checkpoint case {i}"), session.load(case).map(|_| ()));
    }
    for temperature in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -1.0, 5.5, 1e9] {
        report.expect_err(&format!("samples at temperature {temperature}"), session.samples(Role::Sft, temperature, 1).await.map(|_| ()));
    }
    for role in [Role::Reward, Role::Value, Role::Policy, Role::Dpo] {
        report.expect_err(&format!("samples from {role:?}"), session.samples(role, 1.0, 1).await.map(|_| ()));
        report.expect_err(&format!("save {role:?} before it exists"), session.save(role).await.map(|_| ()));
    }
    for count in [0, 129, 10_000, usize::MAX] {
        report.expect_err(&format!("{count} pairs"), session.sample_pairs(count).await.map(|_| ()));
        report.expect_err(&format!("{count} simulated labels"), session.simulate_labels(count).await.map(|_| ()));
    }
    for name in ["", "SFT", "ppo ", "rlhf", "🤖", "base"] {
        report.expect_err(&format!("stage {name:?}"), Stage::parse(name).map(|_| ()));
        report.expect_err(&format!("role {name:?}"), Role::parse(&format!("{name}x")).map(|_| ()));
    }
    for stage in [Stage::Reward, Stage::Ppo, Stage::Dpo, Stage::Pretrain] {
        report.expect_err(&format!("{stage:?} step before it begins"), session.step(stage).await.map(|_| ()));
    }
    report.expect_err("ppo before a reward model", session.ppo_begin());
    report.expect_err("ppo record before ppo", session.ppo_record(0).map(|_| ()));
    report.expect_err("reward inspect before training", session.reward_inspect(10).await.map(|_| ()));
    report.expect_err("dpo inspect before training", session.dpo_inspect(0).await.map(|_| ()));
    for count in [0, 4097] {
        report.expect_err(&format!("evaluate {count}"), session.evaluate(Role::Sft, count, 1).await.map(|_| ()));
    }

    report.settings_unchanged = session.config() == &config_before;
    report.stages_unchanged = serde_json::to_string(&session.status()).unwrap() == status_before;
    report.reference_unchanged = session.save(Role::Sft).await.unwrap() == reference_before;
    report
}
