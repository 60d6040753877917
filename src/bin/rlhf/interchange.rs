//! `rlhf export`, `rlhf import` and `rlhf probe`: what the learner made, in and out of the
//! formats the Hugging Face stack reads (`app::hf`, `rlhf::preference_dataset`).

use std::path::Path;

use rlhf_lab::app::hf::{export_checkpoint, import_folder, probe as lab_probe, HfFile};
use rlhf_lab::app::session::Role;
use rlhf_lab::engine::checkpoint;
use rlhf_lab::rlhf::config::LabConfig;
use rlhf_lab::rlhf::labels::{parse_jsonl, to_jsonl, LabelRecord};
use rlhf_lab::rlhf::preference_dataset::{parse_preference_jsonl, to_preference_jsonl};
use rlhf_lab::rlhf::task::Tokenizer;
use rlhf_lab::{LabError, Result};

/// The paths and choices these commands take.
pub struct Paths {
    pub from: Option<String>,
    pub hf: Option<String>,
    pub trl: Option<String>,
    pub labels: Option<String>,
    pub labels_out: Option<String>,
    pub out: Option<String>,
    pub role: Option<String>,
    pub config: LabConfig,
}

fn read(path: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| LabError::InvalidInput(format!("{path}: {e}")))
}

fn read_text(path: &str) -> Result<String> {
    String::from_utf8(read(path)?).map_err(|_| LabError::InvalidInput(format!("{path} is not UTF-8 text")))
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| LabError::InvalidInput(format!("writing {}: {e}", path.display())))
}

/// `--from X.rlhf --hf DIR`, or `--labels L.jsonl --trl OUT.jsonl`.
pub async fn export(paths: &Paths) -> Result<()> {
    let tokenizer = Tokenizer::new();
    match (&paths.from, &paths.hf, &paths.labels, &paths.trl) {
        (Some(from), Some(dir), _, _) => {
            let files = export_checkpoint(&read(from)?, &tokenizer, &serde_json::Value::Null).await?;
            let dir = Path::new(dir);
            std::fs::create_dir_all(dir).map_err(|e| LabError::InvalidInput(format!("{}: {e}", dir.display())))?;
            for f in &files {
                write(&dir.join(&f.name), &f.bytes)?;
            }
            let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
            eprintln!("wrote {} ({})", dir.display(), names.join(", "));
            Ok(())
        }
        (_, _, Some(labels), Some(trl)) => {
            let text = read_text(labels)?;
            let pairs = parse_jsonl(&text, &tokenizer)?;
            let records: Vec<LabelRecord> = text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("checked by parse_jsonl")).collect();
            debug_assert_eq!(records.len(), pairs.len());
            let export = to_preference_jsonl(&records);
            write(Path::new(trl), export.text.as_bytes())?;
            eprintln!(
                "wrote {trl}: {} preference rows (prompt, chosen, rejected); {} tie{} left out (TRL's format has no tie)",
                export.rows,
                export.ties_left_out,
                if export.ties_left_out == 1 { "" } else { "s" }
            );
            Ok(())
        }
        _ => Err(LabError::InvalidInput("export wants --from model.rlhf --hf DIR, or --labels labels.jsonl --trl prefs.jsonl".into())),
    }
}

/// `--hf DIR [--as ROLE] --out X.rlhf`, or `--trl IN.jsonl --labels-out L.jsonl`.
pub async fn import(paths: &Paths) -> Result<()> {
    let tokenizer = Tokenizer::new();
    match (&paths.hf, &paths.out, &paths.trl, &paths.labels_out) {
        (Some(dir), Some(out), _, _) => {
            let mut files = Vec::new();
            let entries = std::fs::read_dir(dir).map_err(|e| LabError::InvalidInput(format!("{dir}: {e}")))?;
            for entry in entries {
                let entry = entry.map_err(|e| LabError::InvalidInput(format!("{dir}: {e}")))?;
                if entry.path().is_file() {
                    files.push(HfFile { name: entry.file_name().to_string_lossy().into_owned(), bytes: read(&entry.path().to_string_lossy())? });
                }
            }
            let role = paths.role.as_deref().map(Role::parse).transpose()?;
            let lab_model = paths.config.preset.model(tokenizer.vocab_size());
            let bytes = import_folder(&files, &tokenizer, &lab_model, role).await?;
            let (header, _) = checkpoint::decode(&bytes)?;
            write(Path::new(out), &bytes)?;
            eprintln!("wrote {out}: {} ({} bytes)", header.role, bytes.len());
            Ok(())
        }
        (_, _, Some(trl), Some(labels_out)) => {
            let records = parse_preference_jsonl(&read_text(trl)?, &tokenizer)?;
            write(Path::new(labels_out), to_jsonl(&records).as_bytes())?;
            eprintln!("wrote {labels_out}: {} labels (chosen first)", records.len());
            Ok(())
        }
        _ => Err(LabError::InvalidInput("import wants --hf DIR --out model.rlhf [--as base|sft|reward], or --trl prefs.jsonl --labels-out labels.jsonl".into())),
    }
}

/// `--from X.rlhf --out probe.json`: what the lab's model computes, for tests/hf/check_hf.py.
pub async fn probe(paths: &Paths) -> Result<()> {
    let (Some(from), Some(out)) = (&paths.from, &paths.out) else {
        return Err(LabError::InvalidInput("probe wants --from model.rlhf --out probe.json".into()));
    };
    let value = lab_probe(&read(from)?, &Tokenizer::new()).await?;
    write(Path::new(out), serde_json::to_string(&value).expect("JSON serializes").as_bytes())?;
    eprintln!("wrote {out}");
    Ok(())
}
