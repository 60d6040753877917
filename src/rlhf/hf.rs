//! What the Hugging Face stack needs besides the weights: the task's word-level tokenizer as
//! `tokenizer.json` (the `tokenizers` library's format), its `tokenizer_config.json`, the
//! `generation_config.json` that keeps GPT-2 from writing what the lab's model never writes, and
//! the model card.
//!
//! The tokenizer is the lab's own (`task::Tokenizer`): lowercase, split on whitespace, `.`, `,`,
//! `:`, `!` and `?` split off as tokens of their own, one id per word, `<unk>` for any other word;
//! `<bos>` is put in front of every encoded text, as every sequence the lab trains on begins.

use serde_json::{json, Value};

use crate::engine::hf::SUPPRESSED_TOKENS;
use crate::error::{LabError, Result};
use crate::rlhf::task::vocab::SPECIALS;
use crate::rlhf::task::{Tokenizer, BOS, EOS, MAX_COMPLETION, PAD, SEQ_LEN, UNK};

/// `tokenizer.json`: a WordLevel model over the lab's vocabulary, in the lab's id order.
pub fn tokenizer_json(tokenizer: &Tokenizer) -> Value {
    let vocab: serde_json::Map<String, Value> = (0..tokenizer.vocab_size() as u32).map(|id| (tokenizer.word(id).to_string(), json!(id))).collect();
    let added: Vec<Value> = SPECIALS
        .iter()
        .enumerate()
        .map(|(id, content)| json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}))
        .collect();
    let bos = SPECIALS[BOS as usize];
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"},
            {"type": "Split", "pattern": {"Regex": "[.,:!?]"}, "behavior": "Isolated", "invert": false},
        ]},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [BOS], "tokens": [bos]}},
        },
        // No decoder: `tokenizers` then joins tokens with single spaces, as the lab's decode does.
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": SPECIALS[UNK as usize]},
    })
}

/// `tokenizer_config.json` and `special_tokens_map.json`: which tokens are special, for
/// `AutoTokenizer`.
pub fn tokenizer_config_json() -> (Value, Value) {
    let [pad, bos, eos, unk] = SPECIALS;
    let specials = json!({"bos_token": bos, "eos_token": eos, "pad_token": pad, "unk_token": unk});
    let mut config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": SEQ_LEN,
        "padding_side": "right",
        "clean_up_tokenization_spaces": false,
        "add_bos_token": true,
        "add_eos_token": false,
    });
    config.as_object_mut().expect("an object").extend(specials.as_object().expect("an object").clone());
    (config, specials)
}

/// `generation_config.json`: the lab's sampling (temperature 1 over the whole vocabulary) and the
/// tokens it never writes, suppressed.
pub fn generation_config_json() -> Value {
    json!({
        "bos_token_id": BOS,
        "eos_token_id": EOS,
        "pad_token_id": PAD,
        "suppress_tokens": SUPPRESSED_TOKENS,
        "do_sample": true,
        "temperature": 1.0,
        "top_k": 0,
        "top_p": 1.0,
        "max_new_tokens": MAX_COMPLETION,
    })
}

/// Checks that a `tokenizer.json` is this lab's vocabulary, id for id (the model's embedding rows
/// mean nothing under another), naming the first difference.
pub fn check_tokenizer_json(bytes: &[u8], tokenizer: &Tokenizer) -> Result<()> {
    let refuse = |why: String| Err(LabError::Checkpoint(format!("tokenizer.json: {why}")));
    let json: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return refuse(format!("is not valid JSON ({e})")),
    };
    let model = &json["model"];
    if model["type"] != "WordLevel" {
        return refuse(format!("its model is {}, the lab's tokenizer is WordLevel", model["type"]));
    }
    let Some(vocab) = model["vocab"].as_object() else {
        return refuse("has no vocabulary (model.vocab)".into());
    };
    if vocab.len() != tokenizer.vocab_size() {
        return refuse(format!("a vocabulary of {} words; this lab's has {} (another vocabulary)", vocab.len(), tokenizer.vocab_size()));
    }
    for id in 0..tokenizer.vocab_size() as u32 {
        let word = tokenizer.word(id);
        match vocab.get(word).and_then(Value::as_u64) {
            Some(theirs) if theirs == u64::from(id) => {}
            Some(theirs) => return refuse(format!("{word:?} has id {theirs}, the lab's is {id} (another vocabulary)")),
            None => return refuse(format!("the lab's word {word:?} (id {id}) is not in it (another vocabulary)")),
        }
    }
    Ok(())
}

/// What the model card says about one exported model.
pub struct Card<'a> {
    /// The lab's role name (`sft`, `reward`, `policy` …) and what it is.
    pub role: &'a str,
    pub role_title: &'a str,
    /// The stage that made it, in words.
    pub stage: &'a str,
    /// `GPT2LMHeadModel` or `GPT2ForSequenceClassification`.
    pub architecture: &'a str,
    pub parameters: usize,
    /// The lab's settings when the model was saved (seed included), if the checkpoint recorded them.
    pub settings: &'a Value,
    /// The metrics the stage reached, as the page stored them (may be empty).
    pub metrics: &'a Value,
    /// The scoring head's bias, for r_φ and V_ψ.
    pub score_bias: Option<f32>,
}

fn setting_lines(settings: &Value) -> String {
    match settings.as_object() {
        Some(map) if !map.is_empty() => {
            let mut lines = String::new();
            for (section, value) in map {
                lines.push_str(&format!("- `{section}`: `{}`\n", value));
            }
            lines
        }
        _ => "- not recorded in this checkpoint (it was saved before the lab recorded its settings)\n".into(),
    }
}

/// `README.md`: a model card with the YAML header the Hub reads.
pub fn model_card(card: &Card) -> String {
    let scoring = card.score_bias.is_some();
    let (pipeline, load) = if scoring {
        ("text-classification", "AutoModelForSequenceClassification")
    } else {
        ("text-generation", "AutoModelForCausalLM")
    };
    let metrics = match card.metrics.as_object() {
        Some(map) if !map.is_empty() => map.iter().map(|(k, v)| format!("- `{k}`: {v}\n")).collect::<String>(),
        _ => "- none recorded with this checkpoint\n".into(),
    };
    let mut text = format!(
        "---\nlibrary_name: transformers\npipeline_tag: {pipeline}\ntags:\n- rlhf-lab\n- gpt2\n- rlhf\n---\n\n\
# {title} ({role}) from the RLHF lab\n\n\
A {params}-parameter GPT-2 ({arch}) trained in the RLHF lab, a page that trains a small transformer \
through supervised fine-tuning, a reward model and PPO/GRPO/DPO in the browser. The task: short \
product reviews (`<bos> review : the camera is great . <eos>`) over a closed vocabulary of \
{vocab} words; a hidden gold utility (six readable terms) judges them.\n\n\
Made by: {stage}.\n\n\
## Load it\n\n```python\nfrom transformers import AutoTokenizer, {load}\ntokenizer = AutoTokenizer.from_pretrained(\"path/to/this/folder\")\nmodel = {load}.from_pretrained(\"path/to/this/folder\")\n```\n\n\
## The lab's settings when it was saved\n\n{settings}\n## Metrics the stage reached\n\n{metrics}\n\
## What GPT-2's format cannot say, and how it is carried\n\n\
- The tokenizer is word-level: one id per word or punctuation mark, lowercase, `<unk>` for any word \
outside the vocabulary. Encoding puts `<bos>` in front, as every sequence the lab trains on begins.\n\
- The activation is the exact GELU (`activation_function: gelu`), not GPT-2's tanh approximation.\n",
        pipeline = pipeline,
        title = card.role_title,
        stage = card.stage,
        role = card.role,
        params = card.parameters,
        arch = card.architecture,
        vocab = Tokenizer::new().vocab_size(),
        load = load,
        settings = setting_lines(card.settings),
        metrics = metrics,
    );
    if scoring {
        text.push_str(&format!(
            "- The lab's score is read at the last real token (`<eos>`, or the last word of a completion cut at \
the length limit); sequences are right-padded with `<pad>` (id {PAD}), so GPT2ForSequenceClassification, which \
reads the last token that is not `pad_token_id`, reads the same position.\n\
- GPT-2's score layer has no bias; the lab's head has one. It is in `config.json` as `score_bias` \
({bias}): **the lab's score = this model's logit + score_bias**. Bradley–Terry cannot see a constant, \
so comparisons between completions are the same either way.\n\
- A value model V_ψ is read at every position in the lab; this format reads only the last.\n",
            bias = card.score_bias.unwrap_or(0.0)
        ));
    } else {
        text.push_str(&format!(
            "- The lab's model never writes `<pad>`, `<bos>` or `<unk>`: it adds −1e9 to their logits. GPT-2 has no \
LM-head bias, so `generation_config.json` suppresses them (`suppress_tokens: {SUPPRESSED_TOKENS:?}`) and \
`generate` behaves as the lab; the raw logits of those three tokens differ, all others agree.\n\
- The lab samples at temperature 1 over the whole vocabulary (`top_k: 0` here; transformers' default is 50).\n"
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tokenizer_json_is_the_lab_vocabulary_and_another_is_refused() {
        let tok = Tokenizer::new();
        let json = tokenizer_json(&tok);
        let bytes = serde_json::to_vec(&json).unwrap();
        check_tokenizer_json(&bytes, &tok).unwrap();
        assert_eq!(json["model"]["vocab"]["<eos>"], json!(EOS));
        assert_eq!(json["model"]["vocab"].as_object().unwrap().len(), tok.vocab_size());
        let mut swapped = json.clone();
        swapped["model"]["vocab"]["great"] = json!(5);
        let err = check_tokenizer_json(&serde_json::to_vec(&swapped).unwrap(), &tok).unwrap_err().to_string();
        assert!(err.contains("\"great\" has id 5"), "{err}");
        let mut fewer = json.clone();
        fewer["model"]["vocab"].as_object_mut().unwrap().remove("lamp");
        assert!(check_tokenizer_json(&serde_json::to_vec(&fewer).unwrap(), &tok).unwrap_err().to_string().contains("another vocabulary"));
        let mut bpe = json;
        bpe["model"]["type"] = json!("BPE");
        assert!(check_tokenizer_json(&serde_json::to_vec(&bpe).unwrap(), &tok).unwrap_err().to_string().contains("WordLevel"));
        assert!(check_tokenizer_json(b"nope", &tok).is_err());
    }

    #[test]
    fn the_card_says_what_the_format_cannot() {
        let settings = json!({"seed": 3, "sft": {"steps": 300}});
        let metrics = json!({"held_out_accuracy": 0.71});
        let card = model_card(&Card { role: "reward", role_title: "r_φ, the reward model", stage: "the reward-model stage", architecture: "GPT2ForSequenceClassification", parameters: 1000, settings: &settings, metrics: &metrics, score_bias: Some(-0.25) });
        assert!(card.contains("score_bias` (-0.25)") && card.contains("Made by: the reward-model stage."), "{card}");
        assert!(card.contains("`seed`: `3`") && card.contains("held_out_accuracy"), "{card}");
        assert!(card.contains(&format!("vocabulary of {} words", Tokenizer::new().vocab_size())));
        let lm = model_card(&Card { role: "sft", role_title: "π_ref", stage: "SFT", architecture: "GPT2LMHeadModel", parameters: 1000, settings: &Value::Null, metrics: &Value::Null, score_bias: None });
        assert!(lm.contains("suppress_tokens: [0, 1, 3]") && lm.contains("not recorded"), "{lm}");
    }
}
