//! The embedded task: short product reviews from a template grammar, its word-level tokenizer,
//! and the gold utility that the simulated labeler judges by. Nothing is downloaded: the task is
//! generated from a seed.

pub mod gold;
pub mod grammar;
pub mod tokenizer;
pub mod vocab;

use serde::{Deserialize, Serialize};

pub use gold::{gold_utility, GoldUtility, Preference};
pub use grammar::{Quality, Review, MAX_COMPLETION, PRODUCTS_COUNT, PROMPT_LEN, SEQ_LEN};
pub use tokenizer::Tokenizer;
pub use vocab::{BOS, EOS, PAD, UNK};

use crate::rng::Rng;

/// A prompt's tokens: `<bos> review : the <product>`.
pub fn prompt_tokens(tokenizer: &Tokenizer, product: usize) -> [u32; PROMPT_LEN] {
    let words = grammar::prompt_words(product);
    let id = |w: &str| tokenizer.id(w).expect("prompt words are in the vocabulary");
    [BOS, id(words[0]), id(words[1]), id(words[2]), id(words[3])]
}

/// A completion as the later stages see it: the product it answers and its tokens (at most
/// `MAX_COMPLETION`, ending with `<eos>` unless the length limit cut it; no PAD).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    pub product: usize,
    pub tokens: Vec<u32>,
}

impl Completion {
    /// Takes a generated row up to and including its first `<eos>`; PAD after it is dropped.
    pub fn from_generated(product: usize, row: &[u32]) -> Self {
        let end = row.iter().position(|&t| t == EOS).map_or(row.len(), |i| i + 1);
        let tokens = row[..end].iter().copied().filter(|&t| t != PAD).collect();
        Self { product, tokens }
    }

    pub fn from_review(tokenizer: &Tokenizer, review: &Review) -> Self {
        let mut tokens: Vec<u32> =
            review.words.iter().map(|w| tokenizer.id(w).expect("grammar words are in the vocabulary")).collect();
        if review.ends {
            tokens.push(EOS);
        }
        tokens.truncate(MAX_COMPLETION);
        Self { product: review.product, tokens }
    }

    pub fn ends(&self) -> bool {
        self.tokens.last() == Some(&EOS)
    }

    /// Tokens before `<eos>`.
    pub fn body(&self) -> &[u32] {
        if self.ends() { &self.tokens[..self.tokens.len() - 1] } else { &self.tokens }
    }

    pub fn text(&self, tokenizer: &Tokenizer) -> String {
        tokenizer.decode_completion(&self.tokens)
    }

    pub fn gold(&self, tokenizer: &Tokenizer) -> GoldUtility {
        let words: Vec<&str> = self.body().iter().map(|&t| tokenizer.word(t)).collect();
        gold_utility(vocab::PRODUCTS[self.product].0, &words, self.ends())
    }

    /// Prompt and completion, right-padded with PAD to `SEQ_LEN`.
    pub fn sequence(&self, tokenizer: &Tokenizer) -> Vec<u32> {
        let mut seq = prompt_tokens(tokenizer, self.product).to_vec();
        seq.extend(&self.tokens);
        seq.resize(SEQ_LEN, PAD);
        seq
    }

    /// Index in `sequence()` of the last real token: `<eos>` when the completion ends, else its
    /// last token. The reward model reads its score here.
    pub fn last_index(&self) -> usize {
        PROMPT_LEN + self.tokens.len().max(1) - 1
    }
}

/// The base model's corpus: reviews of every quality written as free text,
/// `<bos> the <product> <completion> <eos>`, without the `review :` prompt format that SFT teaches.
pub fn pretraining_sequence(tokenizer: &Tokenizer, review: &Review) -> Vec<u32> {
    let id = |w: &str| tokenizer.id(w).expect("grammar words are in the vocabulary");
    let mut seq = vec![BOS, id("the"), id(vocab::PRODUCTS[review.product].0)];
    seq.extend(review.words.iter().map(|w| id(w)));
    if review.ends {
        seq.push(EOS);
    }
    seq.truncate(SEQ_LEN);
    seq.resize(SEQ_LEN, PAD);
    seq
}

/// Demonstrations for SFT: prompts with completions of mixed quality (see `grammar::QUALITY_MIX`),
/// split into a training set and a held-out set from disjoint random streams.
#[derive(Debug, Clone)]
pub struct Demonstrations {
    pub train: Vec<Completion>,
    pub held_out: Vec<Completion>,
}

impl Demonstrations {
    pub fn generate(tokenizer: &Tokenizer, seed: u64, train: usize, held_out: usize) -> Self {
        let make = |stream: &str, n: usize| {
            let mut rng = Rng::derive(seed, stream);
            (0..n)
                .map(|_| {
                    let product = rng.below(PRODUCTS_COUNT);
                    let quality = grammar::sample_quality(&mut rng);
                    Completion::from_review(tokenizer, &grammar::sample_review(&mut rng, product, quality))
                })
                .collect()
        };
        Self { train: make("demonstrations/train", train), held_out: make("demonstrations/held-out", held_out) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_put_the_completion_after_a_five_token_prompt() {
        let tok = Tokenizer::new();
        let c = Completion { product: 0, tokens: tok.encode("is great . <eos>") };
        let seq = c.sequence(&tok);
        assert_eq!(seq.len(), SEQ_LEN);
        assert_eq!(tok.decode(&seq), "<bos> review : the camera is great . <eos>");
        assert_eq!(seq[c.last_index()], EOS);
        assert_eq!(c.last_index(), 8);
        let generated = [tok.id("is").unwrap(), tok.id("great").unwrap(), EOS, PAD, PAD];
        assert_eq!(Completion::from_generated(0, &generated).tokens.len(), 3);
        let cut = Completion::from_generated(0, &[tok.id("is").unwrap(); 4]);
        assert!(!cut.ends());
        assert_eq!(cut.last_index(), PROMPT_LEN + 3);
    }

    #[test]
    fn demonstrations_are_reproducible_and_mixed() {
        let tok = Tokenizer::new();
        let a = Demonstrations::generate(&tok, 3, 300, 50);
        let b = Demonstrations::generate(&tok, 3, 300, 50);
        assert_eq!(a.train, b.train);
        assert_ne!(a.train[..50], a.held_out[..]);
        let unfinished = a.train.iter().filter(|c| !c.ends()).count();
        assert!(unfinished > 10 && unfinished < 100, "{unfinished}");
    }
}
