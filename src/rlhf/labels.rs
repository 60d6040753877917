//! Preference labels: what the learner (or the simulated labeler) says about pairs of completions,
//! and their exchange format.
//!
//! A label file is JSON lines, one label per line, each carrying the vocabulary it was made for:
//!
//! ```text
//! {"vocab":"reviews-150-1a2b3c4d","prompt":"review : the camera","first":"is great . <eos>","second":"is bad . <eos>","preference":"first","source":"human"}
//! ```
//!
//! An import is checked whole before anything is kept: one malformed line, one label for another
//! vocabulary or an unknown word refuses the file with the line and the reason.

use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};
use crate::rlhf::math::stats::sigmoid;
use crate::rlhf::task::gold::{agreement_ceiling, simulated_label};
use crate::rlhf::task::{grammar, prompt_tokens, Completion, Preference, Tokenizer, EOS, MAX_COMPLETION, PRODUCTS_COUNT};
use crate::rng::Rng;

/// Largest label file accepted, and most labels in one.
pub const MAX_LABEL_FILE_BYTES: usize = 16 << 20;
pub const MAX_LABELS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelSource {
    Human,
    Simulated,
}

/// One label as stored in the browser and written to files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelRecord {
    pub vocab: String,
    pub prompt: String,
    pub first: String,
    pub second: String,
    pub preference: Preference,
    pub source: LabelSource,
    /// When it was made (ms since the epoch), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<f64>,
}

/// A label in token form, ready for training.
#[derive(Debug, Clone, PartialEq)]
pub struct LabeledPair {
    pub first: Completion,
    pub second: Completion,
    pub preference: Preference,
    pub source: LabelSource,
}

impl LabeledPair {
    /// The Bradley–Terry target: probability that `first` is preferred.
    pub fn target(&self) -> f32 {
        match self.preference {
            Preference::First => 1.0,
            Preference::Second => 0.0,
            Preference::Tie => 0.5,
        }
    }

    /// (chosen, rejected) for a strict preference; None for a tie.
    pub fn chosen_rejected(&self) -> Option<(&Completion, &Completion)> {
        match self.preference {
            Preference::First => Some((&self.first, &self.second)),
            Preference::Second => Some((&self.second, &self.first)),
            Preference::Tie => None,
        }
    }

    pub fn record(&self, tokenizer: &Tokenizer) -> LabelRecord {
        let text = |c: &Completion| tokenizer.decode(&c.tokens);
        LabelRecord {
            vocab: tokenizer.fingerprint(),
            prompt: prompt_text(tokenizer, self.first.product),
            first: text(&self.first),
            second: text(&self.second),
            preference: self.preference,
            source: self.source,
            time: None,
        }
    }
}

/// The prompt as shown: `review : the camera`.
pub fn prompt_text(tokenizer: &Tokenizer, product: usize) -> String {
    tokenizer.decode(&prompt_tokens(tokenizer, product)[1..])
}

fn product_of_prompt(tokenizer: &Tokenizer, prompt: &str) -> Option<usize> {
    (0..PRODUCTS_COUNT).find(|&p| prompt_text(tokenizer, p) == prompt.trim().to_lowercase())
}

/// Tokens of a completion's text, refusing anything the model could not have written.
fn completion_tokens(tokenizer: &Tokenizer, text: &str) -> std::result::Result<Vec<u32>, String> {
    let tokens = tokenizer.encode_strict(text)?;
    if tokens.is_empty() {
        return Err("is empty".into());
    }
    if tokens.len() > MAX_COMPLETION {
        return Err(format!("has {} tokens; a completion has at most {MAX_COMPLETION}", tokens.len()));
    }
    if let Some(i) = tokens.iter().position(|&t| t == EOS) {
        if i + 1 != tokens.len() {
            return Err("has words after <eos>".into());
        }
    }
    if tokens.iter().any(|&t| t < 4 && t != EOS) {
        return Err("contains a special token other than <eos>".into());
    }
    Ok(tokens)
}

impl LabelRecord {
    /// Checks the record against this lab and converts it to tokens.
    pub fn to_pair(&self, tokenizer: &Tokenizer) -> std::result::Result<LabeledPair, String> {
        let vocab = tokenizer.fingerprint();
        if self.vocab != vocab {
            return Err(format!("made for vocabulary {}, this lab uses {vocab}", self.vocab));
        }
        let product = product_of_prompt(tokenizer, &self.prompt).ok_or_else(|| format!("prompt {:?} is not one of this task's prompts", self.prompt))?;
        let first = completion_tokens(tokenizer, &self.first).map_err(|e| format!("first completion {e}"))?;
        let second = completion_tokens(tokenizer, &self.second).map_err(|e| format!("second completion {e}"))?;
        Ok(LabeledPair { first: Completion { product, tokens: first }, second: Completion { product, tokens: second }, preference: self.preference, source: self.source })
    }
}

/// Reads a file of JSON lines (blank lines ignored), one item per line, all or nothing: the first
/// line `read` refuses refuses the file, with its number. `file` and `items` name the file and
/// what it holds in messages ("label file", "labels").
pub fn read_lines<T>(text: &str, file: &str, items: &str, read: impl Fn(&str) -> std::result::Result<T, String>) -> Result<Vec<T>> {
    if text.len() > MAX_LABEL_FILE_BYTES {
        return Err(LabError::InvalidInput(format!("the {file} is {} bytes; at most {MAX_LABEL_FILE_BYTES} are accepted", text.len())));
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if out.len() == MAX_LABELS {
            return Err(LabError::InvalidInput(format!("more than {MAX_LABELS} {items} in one file")));
        }
        out.push(read(line).map_err(|e| LabError::InvalidInput(format!("line {}: {e}", i + 1)))?);
    }
    if out.is_empty() {
        return Err(LabError::InvalidInput(format!("the file holds no {items}")));
    }
    Ok(out)
}

/// Parses a label file (JSON lines; blank lines ignored). All or nothing: the first bad line
/// refuses the file.
pub fn parse_jsonl(text: &str, tokenizer: &Tokenizer) -> Result<Vec<LabeledPair>> {
    read_lines(text, "label file", "labels", |line| {
        let record: LabelRecord = serde_json::from_str(line).map_err(|e| format!("not a label: {e}"))?;
        record.to_pair(tokenizer)
    })
}

/// Splits labels into (train, held-out) the same way for every stage that trains on them — the
/// reward model and DPO are compared on the same held-out pairs.
pub fn split(mut labels: Vec<LabeledPair>, seed: u64, held_out_fraction: f64) -> (Vec<LabeledPair>, Vec<LabeledPair>) {
    Rng::derive(seed, "labels/split").shuffle(&mut labels);
    let held = ((labels.len() as f64 * held_out_fraction).round() as usize).min(labels.len().saturating_sub(1));
    let held_out: Vec<LabeledPair> = labels.drain(..held).collect();
    (labels, held_out)
}

/// Writes labels as JSON lines.
pub fn to_jsonl(records: &[LabelRecord]) -> String {
    records.iter().map(|r| serde_json::to_string(r).expect("labels serialize") + "\n").collect()
}

/// A pair of completions to judge, as the page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairToJudge {
    pub prompt: String,
    pub first: String,
    pub second: String,
}

/// Labels pairs with the simulated Bradley–Terry labeler at noise temperature τ; returns the
/// labels and, per pair, the probability p it preferred the first.
pub fn simulate(pairs: &[(Completion, Completion)], tokenizer: &Tokenizer, temperature: f32, rng: &mut Rng) -> Vec<(LabeledPair, f32)> {
    pairs
        .iter()
        .map(|(a, b)| {
            let (ga, gb) = (a.gold(tokenizer).total, b.gold(tokenizer).total);
            let preference = simulated_label(ga, gb, temperature, rng);
            let p = sigmoid((ga - gb) / temperature);
            (LabeledPair { first: a.clone(), second: b.clone(), preference, source: LabelSource::Simulated }, p)
        })
        .collect()
}

/// The agreement ceiling of the simulated labeler on these pairs (see `gold::agreement_ceiling`).
pub fn ceiling(pairs: &[LabeledPair], tokenizer: &Tokenizer, temperature: f32) -> f32 {
    let golds: Vec<(f32, f32)> = pairs.iter().map(|p| (p.first.gold(tokenizer).total, p.second.gold(tokenizer).total)).collect();
    agreement_ceiling(&golds, temperature)
}

/// Pairs written by the grammar (no model needed): for tests and for a lab without π_ref yet.
pub fn grammar_pairs(tokenizer: &Tokenizer, n: usize, rng: &mut Rng) -> Vec<(Completion, Completion)> {
    (0..n)
        .map(|_| {
            let product = rng.below(PRODUCTS_COUNT);
            let mut one = || {
                let quality = grammar::sample_quality(rng);
                Completion::from_review(tokenizer, &grammar::sample_review(rng, product, quality))
            };
            (one(), one())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(tok: &Tokenizer) -> LabelRecord {
        LabelRecord {
            vocab: tok.fingerprint(),
            prompt: "review : the camera".into(),
            first: "is great . <eos>".into(),
            second: "is bad .".into(),
            preference: Preference::First,
            source: LabelSource::Human,
            time: Some(1.0),
        }
    }

    #[test]
    fn a_label_file_round_trips() {
        let tok = Tokenizer::new();
        let text = to_jsonl(&[record(&tok), LabelRecord { preference: Preference::Tie, ..record(&tok) }]);
        let pairs = parse_jsonl(&text, &tok).unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[0].first.product, 0);
        assert!(pairs[0].first.ends() && !pairs[0].second.ends());
        assert_eq!(pairs[1].target(), 0.5);
        assert_eq!(pairs[0].record(&tok).first, "is great . <eos>");
    }

    #[test]
    fn malformed_files_are_refused_whole_with_the_line() {
        let tok = Tokenizer::new();
        let good = serde_json::to_string(&record(&tok)).unwrap();
        let cases: Vec<(String, &str)> = vec![
            (format!("{good}\n{{not json"), "line 2: not a label"),
            (format!("{good}\n{}", good.replace(&tok.fingerprint(), "reviews-9-00000000")), "line 2: made for vocabulary"),
            (good.replace("is bad .", "is gorgeous ."), "gorgeous"),
            (good.replace("review : the camera", "review : the car"), "not one of this task's prompts"),
            (good.replace("is great . <eos>", "is great <eos> great"), "after <eos>"),
            (good.replace("is great . <eos>", "<pad> great"), "special token"),
            (good.replace("\"first\",", "\"best\","), "line 1: not a label"),
            (good.replace("\"source\"", "\"origin\""), "line 1: not a label"),
            (String::new(), "no labels"),
            (good.replace("is great . <eos>", &"great ".repeat(30)), "at most 20"),
        ];
        for (text, expected) in cases {
            let err = parse_jsonl(&text, &tok).unwrap_err().to_string();
            assert!(err.contains(expected), "{expected:?} not in {err:?}");
        }
    }

    #[test]
    fn simulated_labels_prefer_higher_gold_and_the_ceiling_is_below_one() {
        let tok = Tokenizer::new();
        let mut rng = Rng::new(3);
        let pairs = grammar_pairs(&tok, 2_000, &mut rng);
        let labeled = simulate(&pairs, &tok, 0.5, &mut rng);
        let agree = labeled
            .iter()
            .filter(|(l, _)| {
                let (a, b) = (l.first.gold(&tok).total, l.second.gold(&tok).total);
                (a > b) == (l.preference == Preference::First)
            })
            .count() as f32
            / labeled.len() as f32;
        let pairs: Vec<LabeledPair> = labeled.into_iter().map(|(l, _)| l).collect();
        let ceiling = ceiling(&pairs, &tok, 0.5);
        assert!(ceiling > 0.6 && ceiling < 1.0, "{ceiling}");
        // The labeler agrees with the gold order about as often as the ceiling says.
        assert!((agree - ceiling).abs() < 0.03, "{agree} vs {ceiling}");
    }
}
