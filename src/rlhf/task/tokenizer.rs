//! A word-level tokenizer for the review task: one token per word or punctuation mark.
//!
//! Word-level tokens keep the per-token views readable (a rollout inspector column is a word),
//! and the task's vocabulary is small and closed, so nothing is lost by not using subwords.

use std::collections::HashMap;

use super::vocab::{self, BOS, EOS, PAD, UNK};

#[derive(Debug, Clone)]
pub struct Tokenizer {
    words: Vec<&'static str>,
    ids: HashMap<&'static str, u32>,
}

impl Default for Tokenizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Tokenizer {
    pub fn new() -> Self {
        let words = vocab::all_words();
        let ids = words.iter().enumerate().map(|(id, word)| (*word, id as u32)).collect();
        Self { words, ids }
    }

    pub fn vocab_size(&self) -> usize {
        self.words.len()
    }

    /// A short name that changes whenever the vocabulary does: labels and checkpoints carry it,
    /// and an import made for another vocabulary is refused by comparing it.
    pub fn fingerprint(&self) -> String {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for word in &self.words {
            for byte in word.bytes().chain(std::iter::once(0)) {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
            }
        }
        format!("reviews-{}-{:08x}", self.words.len(), hash as u32)
    }

    /// Splits text into words: lowercase, whitespace-separated, with `.`, `,`, `:`, `!` and `?`
    /// split off as tokens of their own. Special tokens written as `<eos>` etc. are recognised.
    pub fn words_of(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for chunk in text.split_whitespace() {
            let lower = chunk.to_lowercase();
            if lower.starts_with('<') && lower.ends_with('>') {
                out.push(lower);
                continue;
            }
            let mut current = String::new();
            for ch in lower.chars() {
                if matches!(ch, '.' | ',' | ':' | '!' | '?') {
                    if !current.is_empty() {
                        out.push(std::mem::take(&mut current));
                    }
                    out.push(ch.to_string());
                } else {
                    current.push(ch);
                }
            }
            if !current.is_empty() {
                out.push(current);
            }
        }
        out
    }

    /// Token ids of `text`; a word outside the vocabulary becomes `<unk>`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        Self::words_of(text).iter().map(|w| self.id(w).unwrap_or(UNK)).collect()
    }

    /// Like `encode`, but refuses text with words outside the vocabulary, naming them.
    pub fn encode_strict(&self, text: &str) -> Result<Vec<u32>, String> {
        let words = Self::words_of(text);
        let unknown: Vec<&String> = words.iter().filter(|w| self.id(w).is_none()).collect();
        if !unknown.is_empty() {
            let shown: Vec<&str> = unknown.iter().take(5).map(|s| s.as_str()).collect();
            return Err(format!("words not in the vocabulary: {}", shown.join(", ")));
        }
        Ok(words.iter().map(|w| self.id(w).unwrap()).collect())
    }

    pub fn id(&self, word: &str) -> Option<u32> {
        self.ids.get(word).copied()
    }

    pub fn word(&self, id: u32) -> &'static str {
        self.words.get(id as usize).copied().unwrap_or("<unk>")
    }

    /// Text of the ids, words joined by single spaces; PAD is skipped, other specials shown.
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter().filter(|&&id| id != PAD).map(|&id| self.word(id)).collect::<Vec<_>>().join(" ")
    }

    /// Text of a completion: stops at EOS and leaves out BOS, EOS and PAD.
    pub fn decode_completion(&self, ids: &[u32]) -> String {
        ids.iter()
            .take_while(|&&id| id != EOS)
            .filter(|&&id| id != PAD && id != BOS)
            .map(|&id| self.word(id))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_word_and_sentence() {
        let tok = Tokenizer::new();
        for id in 1..tok.vocab_size() as u32 {
            assert_eq!(tok.encode(&tok.decode(&[id])), vec![id]);
        }
        let text = "<bos> review : the camera is great . the lens is very sharp <eos>";
        let ids = tok.encode(text);
        assert!(!ids.contains(&UNK));
        assert_eq!(tok.decode(&ids), text);
    }

    #[test]
    fn splits_punctuation_and_case_and_marks_unknown_words() {
        let tok = Tokenizer::new();
        assert_eq!(Tokenizer::words_of("Great. The LENS:sharp"), ["great", ".", "the", "lens", ":", "sharp"]);
        let ids = tok.encode("the lens is gorgeous");
        assert_eq!(ids[3], UNK);
        assert_eq!(tok.decode(&ids), "the lens is <unk>");
        let err = tok.encode_strict("the lens is gorgeous").unwrap_err();
        assert!(err.contains("gorgeous"), "{err}");
    }

    #[test]
    fn completion_decoding_stops_at_eos_and_fingerprint_is_stable() {
        let tok = Tokenizer::new();
        let ids = tok.encode("is great . <eos> <pad> <pad>");
        assert_eq!(tok.decode_completion(&ids), "is great .");
        assert_eq!(tok.fingerprint(), Tokenizer::new().fingerprint());
        assert!(tok.fingerprint().starts_with("reviews-"));
    }
}
