//! A template grammar of short product reviews, with varied sentiment *and* quality.
//!
//! The prompt is always `<bos> review : the <product>` and the completion continues it, e.g.
//! `is great . the lens is very sharp and i love it . <eos>`. Fluent completions follow the
//! productions below (the table `vocab::may_follow` is their word-pair form):
//!
//! ```text
//! completion := opening { "." sentence } "." <eos>
//! opening    := "is" adjp [ conj clause ]
//! sentence   := [filler] clause [ conj clause ] | [filler] "it" "is" adjp
//! clause     := "the" aspect "is" adjp | "the" aspect ("works" "well" | "broke" | "stopped" "working")
//!             | "i" verb "it"
//! adjp       := adjective | adverb adjective | "not" adjective
//! ```
//!
//! A demonstration set that held only fluent, glowing reviews would leave RLHF nothing to change,
//! so the generator also writes the failure modes RLHF is known for fixing (and, pushed too far,
//! for producing): repetition, rambling past the length limit, answers cut off mid-sentence, and
//! reviews of the wrong product.

use serde::{Deserialize, Serialize};

use super::vocab::{
    ADVERBS, BROKE, FILLERS, NEGATIVE_ADJECTIVES, NEUTRAL_ADJECTIVES, OPINION_VERBS,
    POSITIVE_ADJECTIVES, PRODUCTS,
};
use crate::rng::Rng;

/// Tokens of every prompt: `<bos> review : the <product>`.
pub const PROMPT_LEN: usize = 5;
/// Most tokens a completion may have, its `<eos>` included. Longer text is cut here.
pub const MAX_COMPLETION: usize = 20;
/// Prompt plus the longest completion: the context every stage works in.
pub const SEQ_LEN: usize = PROMPT_LEN + MAX_COMPLETION;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    Fluent,
    Repetitive,
    Rambling,
    CutOff,
    OffTopic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tone {
    Positive,
    Negative,
    Mixed,
}

/// One generated review: the product index and the completion's words (without `<eos>`).
#[derive(Debug, Clone)]
pub struct Review {
    pub product: usize,
    pub words: Vec<&'static str>,
    /// Whether the completion ends with `<eos>` (rambling text is cut off without one).
    pub ends: bool,
    pub quality: Quality,
    pub tone: Tone,
}

/// Number of products a prompt can name.
pub const PRODUCTS_COUNT: usize = PRODUCTS.len();

/// The mix of qualities in the demonstrations (and in the base model's corpus).
pub const QUALITY_MIX: [(Quality, f32); 5] = [
    (Quality::Fluent, 0.55),
    (Quality::Repetitive, 0.12),
    (Quality::Rambling, 0.12),
    (Quality::CutOff, 0.11),
    (Quality::OffTopic, 0.10),
];

pub fn prompt_words(product: usize) -> [&'static str; 4] {
    ["review", ":", "the", PRODUCTS[product].0]
}

pub fn sample_quality(rng: &mut Rng) -> Quality {
    let mut u = rng.uniform();
    for (quality, p) in QUALITY_MIX {
        if u < p {
            return quality;
        }
        u -= p;
    }
    Quality::Fluent
}

pub fn sample_tone(rng: &mut Rng) -> Tone {
    match rng.below(10) {
        0..=3 => Tone::Positive,
        4..=7 => Tone::Negative,
        _ => Tone::Mixed,
    }
}

/// A review of `product` of the given quality, with a random tone.
pub fn sample_review(rng: &mut Rng, product: usize, quality: Quality) -> Review {
    let tone = sample_tone(rng);
    let max_words = MAX_COMPLETION - 1;
    let (words, ends) = match quality {
        Quality::Fluent => (fluent(rng, product, tone, max_words), true),
        Quality::OffTopic => {
            let other = (product + 1 + rng.below(PRODUCTS.len() - 1)) % PRODUCTS.len();
            (fluent_about(rng, other, tone, max_words, 1), true)
        }
        Quality::Repetitive => repetitive(rng, product, tone, max_words),
        Quality::Rambling => (rambling(rng, product, tone, MAX_COMPLETION), false),
        Quality::CutOff => {
            let full = fluent_about(rng, product, tone, max_words, 2);
            // Cut strictly inside the text, never right after a period.
            let mut cut = 1 + rng.below(full.len().saturating_sub(2).max(1));
            while cut > 1 && full[cut - 1] == "." {
                cut -= 1;
            }
            (full[..cut].to_vec(), true)
        }
    };
    Review { product, words, ends, quality, tone }
}

/// A fluent review of `product`, trimmed to whole sentences within `max_words`.
fn fluent(rng: &mut Rng, product: usize, tone: Tone, max_words: usize) -> Vec<&'static str> {
    let min_sentences = rng.below(3);
    fluent_about(rng, product, tone, max_words, min_sentences)
}

fn fluent_about(
    rng: &mut Rng,
    product: usize,
    tone: Tone,
    max_words: usize,
    extra_sentences: usize,
) -> Vec<&'static str> {
    let aspects = &PRODUCTS[product].1;
    let mut words = vec!["is"];
    // In a mixed review the opening and the rest disagree.
    let (first, rest) = match tone {
        Tone::Mixed if rng.chance(0.5) => (Tone::Positive, Tone::Negative),
        Tone::Mixed => (Tone::Negative, Tone::Positive),
        t => (t, t),
    };
    adjp(rng, first, &mut words);
    if rng.chance(0.3) {
        let conj = if first == rest { "and" } else { "but" };
        words.push(conj);
        clause(rng, aspects, rest, &mut words);
    }
    words.push(".");
    for _ in 0..extra_sentences {
        let mut sentence = Vec::new();
        if rng.chance(0.1) {
            sentence.push(*rng.pick(&FILLERS[..2]));
        }
        if rng.chance(0.15) {
            sentence.extend(["it", "is"]);
            adjp(rng, rest, &mut sentence);
        } else {
            clause(rng, aspects, rest, &mut sentence);
            if rng.chance(0.25) {
                sentence.push("and");
                clause(rng, aspects, rest, &mut sentence);
            }
        }
        sentence.push(".");
        if words.len() + sentence.len() > max_words {
            break;
        }
        words.extend(sentence);
    }
    words
}

fn adjective(rng: &mut Rng, tone: Tone) -> &'static str {
    match tone {
        Tone::Positive if rng.chance(0.9) => *rng.pick(&POSITIVE_ADJECTIVES),
        Tone::Negative if rng.chance(0.9) => *rng.pick(&NEGATIVE_ADJECTIVES),
        _ => *rng.pick(&NEUTRAL_ADJECTIVES),
    }
}

fn adjp(rng: &mut Rng, tone: Tone, out: &mut Vec<&'static str>) {
    match rng.below(20) {
        0..=12 => out.push(adjective(rng, tone)),
        13..=17 => {
            out.push(*rng.pick(&ADVERBS));
            out.push(adjective(rng, tone));
        }
        _ => {
            // "not bad" praises, "not great" complains.
            out.push("not");
            let flipped = match tone {
                Tone::Positive => Tone::Negative,
                Tone::Negative => Tone::Positive,
                Tone::Mixed => Tone::Mixed,
            };
            out.push(adjective(rng, flipped));
        }
    }
}

fn clause(rng: &mut Rng, aspects: &[&'static str; 4], tone: Tone, out: &mut Vec<&'static str>) {
    match rng.below(10) {
        0..=5 => {
            out.extend(["the", *rng.pick(aspects), "is"]);
            adjp(rng, tone, out);
        }
        6..=7 => {
            out.extend(["the", *rng.pick(aspects)]);
            match tone {
                Tone::Negative if rng.chance(0.5) => out.push(BROKE),
                Tone::Negative => out.extend(["stopped", "working"]),
                _ => out.extend(["works", "well"]),
            }
        }
        _ => {
            let verbs: Vec<&'static str> = OPINION_VERBS
                .iter()
                .filter(|(_, p)| if tone == Tone::Negative { *p < 0.0 } else { *p > 0.0 })
                .map(|(v, _)| *v)
                .collect();
            out.extend(["i", *rng.pick(&verbs), "it"]);
        }
    }
}

/// Stutters on one adjective, or says the same sentence again and again.
fn repetitive(rng: &mut Rng, product: usize, tone: Tone, max_words: usize) -> (Vec<&'static str>, bool) {
    let tone = if tone == Tone::Mixed { Tone::Positive } else { tone };
    if rng.chance(0.5) {
        let word = adjective(rng, tone);
        let times = 3 + rng.below(5);
        let mut words = vec!["is"];
        words.extend(std::iter::repeat_n(word, times));
        words.push(".");
        (words, true)
    } else {
        let mut words = vec!["is"];
        adjp(rng, tone, &mut words);
        words.push(".");
        let mut sentence = Vec::new();
        clause(rng, &PRODUCTS[product].1, tone, &mut sentence);
        sentence.push(".");
        let times = 2 + rng.below(3);
        for _ in 0..times {
            if words.len() + sentence.len() > max_words {
                return (words, false);
            }
            words.extend(sentence.iter().copied());
        }
        (words, true)
    }
}

/// Clause after clause joined by "and then" / "also", until the length limit cuts it.
fn rambling(rng: &mut Rng, product: usize, tone: Tone, limit: usize) -> Vec<&'static str> {
    let aspects = &PRODUCTS[product].1;
    let tone = if tone == Tone::Mixed { Tone::Positive } else { tone };
    let mut words = vec!["is"];
    adjp(rng, tone, &mut words);
    while words.len() < limit {
        words.push("and");
        if rng.chance(0.5) {
            words.push(*rng.pick(&FILLERS[2..]));
        }
        clause(rng, aspects, tone, &mut words);
    }
    words.truncate(limit);
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rlhf::task::vocab::{class_of, may_follow, WordClass};

    fn fluent_pairs_ok(product: usize, words: &[&str]) -> bool {
        let mut prev = class_of(PRODUCTS[product].0);
        for w in words {
            let next = class_of(w);
            if !may_follow(prev, next) {
                return false;
            }
            prev = next;
        }
        may_follow(prev, WordClass::Eos)
    }

    #[test]
    fn fluent_reviews_obey_the_word_pair_grammar_and_fit() {
        let mut rng = Rng::new(11);
        for _ in 0..2_000 {
            let product = rng.below(PRODUCTS.len());
            let review = sample_review(&mut rng, product, Quality::Fluent);
            assert!(fluent_pairs_ok(product, &review.words), "{:?}", review.words);
            assert!(review.words.len() < MAX_COMPLETION);
        }
    }

    #[test]
    fn each_flaw_shows_in_the_text() {
        let mut rng = Rng::new(12);
        for _ in 0..500 {
            let product = rng.below(PRODUCTS.len());
            let rambling = sample_review(&mut rng, product, Quality::Rambling);
            assert!(!rambling.ends && rambling.words.len() == MAX_COMPLETION);
            let cut = sample_review(&mut rng, product, Quality::CutOff);
            assert!(!fluent_pairs_ok(product, &cut.words), "{:?}", cut.words);
            // A repetitive review's repeated pairs are counted where they are scored (`gold.rs`).
            let off = sample_review(&mut rng, product, Quality::OffTopic);
            assert!(off.words.iter().any(|w| crate::rlhf::task::vocab::product_of_aspect(w).is_some_and(|p| p != PRODUCTS[product].0))
                || !off.words.iter().any(|w| class_of(w) == WordClass::Aspect), "{:?}", off.words);
        }
    }
}
