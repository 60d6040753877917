//! Labels as a preference dataset in TRL's explicit-prompt format: JSON lines with `prompt`,
//! `chosen` and `rejected`, the columns TRL's DPO and reward trainers read
//! (`datasets.load_dataset("json", data_files=…)`).
//!
//! ```text
//! {"prompt":"review : the camera","chosen":"is great .","rejected":"is bad","chosen_ended":true,"rejected_ended":false,"source":"human"}
//! ```
//!
//! - Texts are written without special tokens, as TRL expects: the exported tokenizer puts
//!   `<bos>` before the prompt, and TRL appends `<eos>` to each completion. `chosen_ended` and
//!   `rejected_ended` say whether the lab's completion really ended with `<eos>` (one cut at the
//!   length limit did not); a file without them is read as if every completion ended.
//! - A tie has no chosen and rejected: ties are left out of the export and counted, so the caller
//!   can say so. (Skipped pairs are never stored as labels.)
//! - An import is checked whole, like the lab's own format: the first bad line refuses the file,
//!   with the line and the reason.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;
use crate::rlhf::labels::{read_lines, LabelRecord, LabelSource};
use crate::rlhf::task::{Preference, Tokenizer};

const EOS_TEXT: &str = "<eos>";

/// One row of TRL's explicit-prompt preference format, with the lab's three extra columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreferenceRow {
    pub prompt: String,
    pub chosen: String,
    pub rejected: String,
    pub chosen_ended: bool,
    pub rejected_ended: bool,
    pub source: LabelSource,
}

/// A preference file and what it left out.
#[derive(Debug, Clone, Serialize)]
pub struct PreferenceExport {
    pub text: String,
    pub rows: usize,
    pub ties_left_out: usize,
}

/// A completion's text without `<eos>`, and whether it had one.
fn split_eos(text: &str) -> (String, bool) {
    let trimmed = text.trim_end();
    match trimmed.strip_suffix(EOS_TEXT) {
        Some(body) => (body.trim_end().to_string(), true),
        None => (trimmed.to_string(), false),
    }
}

/// The lab's labels (its own records) as TRL preference rows; ties are counted, not written.
pub fn to_preference_jsonl(records: &[LabelRecord]) -> PreferenceExport {
    let mut text = String::new();
    let (mut rows, mut ties) = (0, 0);
    for record in records {
        let (chosen, rejected) = match record.preference {
            Preference::First => (&record.first, &record.second),
            Preference::Second => (&record.second, &record.first),
            Preference::Tie => {
                ties += 1;
                continue;
            }
        };
        let ((chosen, chosen_ended), (rejected, rejected_ended)) = (split_eos(chosen), split_eos(rejected));
        let row = PreferenceRow { prompt: record.prompt.clone(), chosen, rejected, chosen_ended, rejected_ended, source: record.source };
        text.push_str(&serde_json::to_string(&row).expect("rows serialize"));
        text.push('\n');
        rows += 1;
    }
    PreferenceExport { text, rows, ties_left_out: ties }
}

/// Reads one line of a preference file into the lab's record (chosen first), or says why not.
fn record_of_line(line: &str, tokenizer: &Tokenizer) -> std::result::Result<LabelRecord, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    let Value::Object(row) = value else {
        return Err("not a JSON object".into());
    };
    let text = |key: &str| -> std::result::Result<String, String> {
        match row.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Array(_)) => Err(format!("{key} is a list of messages (TRL's conversational format); the lab's model has no chat template, so only plain text is read")),
            Some(other) => Err(format!("{key} is not text ({other})")),
            None => Err(format!("no {key:?} column (TRL's explicit-prompt format has prompt, chosen and rejected)")),
        }
    };
    let ended = |key: &str| -> std::result::Result<bool, String> {
        match row.get(key) {
            None | Some(Value::Null) => Ok(true),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(format!("{key} is not true or false ({other})")),
        }
    };
    let source = match row.get("source") {
        None | Some(Value::Null) => LabelSource::Human,
        Some(v) => serde_json::from_value(v.clone()).map_err(|_| format!("source is {v}; it is \"human\" or \"simulated\""))?,
    };
    let completion = |key: &str, ended_key: &str| -> std::result::Result<String, String> {
        let (body, had_eos) = split_eos(&text(key)?);
        Ok(if had_eos || ended(ended_key)? { format!("{body} {EOS_TEXT}").trim_start().to_string() } else { body })
    };
    let record = LabelRecord {
        vocab: tokenizer.fingerprint(),
        prompt: text("prompt")?,
        first: completion("chosen", "chosen_ended")?,
        second: completion("rejected", "rejected_ended")?,
        preference: Preference::First,
        source,
        time: None,
    };
    // The same checks as the lab's own format: the prompt, every word, the length, <eos> last.
    record.to_pair(tokenizer)?;
    Ok(record)
}

/// Reads a TRL preference file into the lab's label records, all or nothing.
pub fn parse_preference_jsonl(text: &str, tokenizer: &Tokenizer) -> Result<Vec<LabelRecord>> {
    read_lines(text, "preference file", "preference rows", |line| record_of_line(line, tokenizer))
}

/// Whether a label file's first line looks like TRL's format rather than the lab's own.
pub fn is_preference_format(text: &str) -> bool {
    text.lines().find(|l| !l.trim().is_empty()).and_then(|l| serde_json::from_str::<Value>(l).ok()).is_some_and(|v| v.get("chosen").is_some() && v.get("first").is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rlhf::labels::parse_jsonl;

    fn record(tok: &Tokenizer, first: &str, second: &str, preference: Preference) -> LabelRecord {
        LabelRecord { vocab: tok.fingerprint(), prompt: "review : the camera".into(), first: first.into(), second: second.into(), preference, source: LabelSource::Simulated, time: None }
    }

    #[test]
    fn labels_round_trip_through_trl_rows_and_ties_are_counted() {
        let tok = Tokenizer::new();
        let records = vec![
            record(&tok, "is great . <eos>", "is bad .", Preference::First),
            record(&tok, "is bad . <eos>", "is great . <eos>", Preference::Second),
            record(&tok, "is okay . <eos>", "is fine . <eos>", Preference::Tie),
        ];
        let export = to_preference_jsonl(&records);
        assert_eq!((export.rows, export.ties_left_out), (2, 1));
        let first: Value = serde_json::from_str(export.text.lines().next().unwrap()).unwrap();
        assert_eq!(first["prompt"], "review : the camera");
        assert_eq!(first["chosen"], "is great .");
        assert_eq!(first["rejected"], "is bad .");
        assert_eq!((first["chosen_ended"].as_bool(), first["rejected_ended"].as_bool()), (Some(true), Some(false)));
        assert!(is_preference_format(&export.text));
        let back = parse_preference_jsonl(&export.text, &tok).unwrap();
        assert_eq!(back[0].first, "is great . <eos>");
        assert_eq!(back[0].second, "is bad .");
        assert_eq!(back[1].first, "is great . <eos>");
        assert_eq!(back[1].preference, Preference::First);
        // The lab's own format reads what the import made: the same pairs, chosen first.
        let lab = crate::rlhf::labels::to_jsonl(&back);
        assert!(!is_preference_format(&lab));
        let pairs = parse_jsonl(&lab, &tok).unwrap();
        assert_eq!(pairs.len(), 2);
        assert!(pairs[0].first.ends() && !pairs[0].second.ends());
    }

    #[test]
    fn a_plain_trl_file_is_read_with_every_completion_ended() {
        let tok = Tokenizer::new();
        let text = "{\"prompt\": \"Review : the lamp\", \"chosen\": \"is bright .\", \"rejected\": \"is dull .\"}\n\n";
        let records = parse_preference_jsonl(text, &tok).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!((records[0].first.as_str(), records[0].second.as_str()), ("is bright . <eos>", "is dull . <eos>"));
        assert_eq!(records[0].source, LabelSource::Human);
    }

    #[test]
    fn malformed_rows_are_refused_whole_with_the_line() {
        let tok = Tokenizer::new();
        let good = "{\"prompt\":\"review : the camera\",\"chosen\":\"is great .\",\"rejected\":\"is bad .\"}";
        let cases: Vec<(String, &str)> = vec![
            (format!("{good}\n{{oops"), "line 2: not JSON"),
            (format!("{good}\n[1, 2]"), "line 2: not a JSON object"),
            (good.replace("\"chosen\"", "\"better\""), "no \"chosen\" column"),
            (good.replace("\"is great .\"", "[{\"role\":\"assistant\",\"content\":\"is great .\"}]"), "conversational format"),
            (good.replace("\"is great .\"", "3"), "chosen is not text"),
            (good.replace("is bad .", "is gorgeous ."), "gorgeous"),
            (good.replace("the camera", "the car"), "not one of this task's prompts"),
            (good.replace("}", ",\"chosen_ended\":\"yes\"}"), "chosen_ended is not true or false"),
            (good.replace("}", ",\"source\":\"robot\"}"), "source is \"robot\""),
            (good.replace("is great .", &"great ".repeat(30)), "at most 20"),
            (String::from("\n \n"), "no preference rows"),
        ];
        for (text, expected) in cases {
            let err = parse_preference_jsonl(&text, &tok).unwrap_err().to_string();
            assert!(err.contains(expected), "{expected:?} not in {err:?}");
        }
    }
}
