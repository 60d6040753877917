//! The "gold" utility: the hidden truth the simulated labeler judges by.
//!
//! RLHF never sees this function. The labeler (human or simulated) compares two completions;
//! the reward model learns from those comparisons; PPO optimizes the reward model. Keeping the
//! gold utility beside the reward model's score is what makes over-optimization visible: the RM
//! score can climb while the gold utility stalls or falls (Gao et al., 2022).
//!
//! It is transparent on purpose: a sum of six terms a learner can read off a completion.
//!
//! ```text
//! u = 1.2·sentiment + 1.5·(fluency − 1) − 0.5·repetitions + ending + length + relevance
//! ```

use serde::{Deserialize, Serialize};

use super::vocab::{class_of, may_follow, polarity, product_of_aspect, WordClass, ADVERBS};
use crate::rlhf::math::stats::sigmoid;
use crate::rng::Rng;

/// Completion lengths (in words, `<eos>` excluded) that cost nothing.
pub const IDEAL_LENGTH: std::ops::RangeInclusive<usize> = 5..=16;

/// Each term of the gold utility, and their sum.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GoldUtility {
    /// Net praise in [−1, 1]: polar words summed (an adverb scales the next one by 1.5, "not"
    /// flips it), divided by 2 and clipped.
    pub sentiment: f32,
    /// Share of word pairs the grammar allows, in [0, 1] (product→first word, …, last→`<eos>`).
    pub fluency: f32,
    /// Stutters ("great great") plus word pairs said before that carry content.
    pub repetitions: f32,
    /// 0 if the completion ends with `<eos>`, −1 if it was cut off by the length limit.
    pub ending: f32,
    /// −0.15 per word outside the ideal length range.
    pub length: f32,
    /// +0.3 per distinct aspect of this product (at most two), −0.5 per aspect of another.
    pub relevance: f32,
    pub total: f32,
}

/// Gold utility of a completion (`words` without `<eos>`) of a review of `product`.
pub fn gold_utility(product: &str, words: &[&str], ends: bool) -> GoldUtility {
    let sentiment = (net_polarity(words) / 2.0).clamp(-1.0, 1.0);
    let fluency = fluency(product, words, ends);
    let repetitions = repetitions(words) as f32;
    let ending = if ends { 0.0 } else { -1.0 };
    let n = words.len();
    let outside = if n < *IDEAL_LENGTH.start() {
        IDEAL_LENGTH.start() - n
    } else {
        n.saturating_sub(*IDEAL_LENGTH.end())
    };
    let length = -0.15 * outside as f32;
    let relevance = relevance(product, words);
    let total = 1.2 * sentiment + 1.5 * (fluency - 1.0) - 0.5 * repetitions.min(6.0)
        + ending
        + length
        + relevance;
    GoldUtility { sentiment, fluency, repetitions, ending, length, relevance, total }
}

/// Sum of the polarity of each word, with "not" flipping and an adverb scaling the next polar
/// word.
pub fn net_polarity(words: &[&str]) -> f32 {
    let mut total = 0.0;
    let mut negate = false;
    let mut scale = 1.0;
    for word in words {
        if *word == "not" {
            negate = true;
            continue;
        }
        if ADVERBS.contains(word) {
            scale = 1.5;
            continue;
        }
        let p = polarity(word);
        if p != 0.0 {
            total += if negate { -p } else { p } * scale;
        }
        if class_of(word) != WordClass::Adverb {
            negate = false;
            scale = 1.0;
        }
    }
    total
}

/// Share of adjacent word pairs that the grammar allows, counting the product before the first
/// word and `<eos>` after the last (when the completion ends).
pub fn fluency(product: &str, words: &[&str], ends: bool) -> f32 {
    let mut classes = vec![class_of(product)];
    classes.extend(words.iter().map(|w| class_of(w)));
    if ends {
        classes.push(WordClass::Eos);
    }
    let pairs = classes.len() - 1;
    if pairs == 0 {
        return 0.0;
    }
    let legal = classes.windows(2).filter(|pair| may_follow(pair[0], pair[1])).count();
    legal as f32 / pairs as f32
}

/// Stutters (a word said twice in a row) plus repeats of an earlier word pair in which at least
/// one word carries content (an aspect, an adjective, a verb): "the lens is sharp . the lens is
/// sharp" repeats four such pairs.
pub fn repetitions(words: &[&str]) -> usize {
    let carries_content = |w: &str| {
        matches!(
            class_of(w),
            WordClass::Aspect | WordClass::Adjective | WordClass::OpinionVerb | WordClass::Broke
                | WordClass::Well | WordClass::Working
        )
    };
    let mut seen: Vec<(&str, &str)> = Vec::new();
    let mut count = 0;
    for pair in words.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if a == b {
            count += 1;
        } else if (carries_content(a) || carries_content(b)) && seen.contains(&(a, b)) {
            count += 1;
        }
        seen.push((a, b));
    }
    count
}

fn relevance(product: &str, words: &[&str]) -> f32 {
    let mut own: Vec<&str> = Vec::new();
    let mut foreign: Vec<&str> = Vec::new();
    for word in words {
        match product_of_aspect(word) {
            Some(p) if p == product => {
                if !own.contains(word) {
                    own.push(word)
                }
            }
            Some(_) => {
                if !foreign.contains(word) {
                    foreign.push(word)
                }
            }
            None => {}
        }
    }
    0.3 * own.len().min(2) as f32 - 0.5 * foreign.len() as f32
}

/// The simulated labeler's verdict on a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preference {
    /// The first completion (shown on the left) is preferred.
    First,
    /// The second (right) is preferred.
    Second,
    /// Equally good: a Bradley–Terry target of ½.
    Tie,
}

/// Probability that a Bradley–Terry labeler with noise temperature τ prefers the first of two
/// completions of gold utilities `a` and `b`: σ((a − b)/τ). At τ → 0 the labeler always picks
/// the better one; as τ grows its labels approach coin flips.
pub fn labeler_probability(a: f32, b: f32, temperature: f32) -> f32 {
    sigmoid((a - b) / temperature)
}

/// Draws a label from the Bradley–Terry labeler.
pub fn simulated_label(a: f32, b: f32, temperature: f32, rng: &mut Rng) -> Preference {
    if rng.uniform() < labeler_probability(a, b, temperature) {
        Preference::First
    } else {
        Preference::Second
    }
}

/// The accuracy a perfect model could reach on labels drawn at this noise: for each pair, the
/// best guess is the more likely label, right with probability max(p, 1 − p).
pub fn agreement_ceiling(pairs: &[(f32, f32)], temperature: f32) -> f32 {
    if pairs.is_empty() {
        return 0.0;
    }
    let sum: f32 = pairs
        .iter()
        .map(|&(a, b)| {
            let p = labeler_probability(a, b, temperature);
            p.max(1.0 - p)
        })
        .sum();
    sum / pairs.len() as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rlhf::task::grammar::{sample_review, Quality, PRODUCTS_COUNT};

    fn words(text: &str) -> Vec<&str> {
        text.split_whitespace().collect()
    }

    #[test]
    fn the_grammar_s_repetitive_reviews_repeat_themselves() {
        let mut rng = crate::rng::Rng::new(12);
        for _ in 0..500 {
            let product = rng.below(PRODUCTS_COUNT);
            let repetitive = sample_review(&mut rng, product, Quality::Repetitive);
            assert!(repetitions(&repetitive.words) > 0, "{:?}", repetitive.words);
        }
    }

    #[test]
    fn a_fluent_positive_review_scores_each_term_as_documented() {
        let w = words("is great . the lens is very sharp and i love it .");
        let g = gold_utility("camera", &w, true);
        // great (+1) + very sharp (+1.5) + love (+1) = 3.5 → 1.75 → clipped to 1.
        assert_eq!(g.sentiment, 1.0);
        assert_eq!(g.fluency, 1.0);
        assert_eq!(g.repetitions, 0.0);
        assert_eq!(g.ending, 0.0);
        assert_eq!(g.length, 0.0);
        assert!((g.relevance - 0.3).abs() < 1e-6);
        assert!((g.total - (1.2 + 0.3)).abs() < 1e-6);
    }

    #[test]
    fn negation_flips_and_stutters_count() {
        assert_eq!(net_polarity(&words("is not bad")), 1.0);
        assert_eq!(net_polarity(&words("is not very great")), -1.5);
        assert_eq!(repetitions(&words("is great great great .")), 2);
        // (the,lens) (lens,is) (is,sharp) (sharp,.) each said twice; (., the) is glue.
        assert_eq!(repetitions(&words("the lens is sharp . the lens is sharp .")), 4);
        assert_eq!(repetitions(&words("the lens is sharp . the zoom is sharp .")), 2);
    }

    #[test]
    fn cut_off_rambling_and_off_topic_cost_what_the_doc_says() {
        let cut = gold_utility("camera", &words("is great and the"), true);
        // pairs: camera→is ✓, is→great ✓, great→and ✓, and→the ✓, the→<eos> ✗ : 4/5.
        assert!((cut.fluency - 0.8).abs() < 1e-6);
        assert!((cut.length - (-0.15)).abs() < 1e-6);
        let rambling = gold_utility("camera", &words("is great and the lens is sharp"), false);
        assert_eq!(rambling.ending, -1.0);
        let off = gold_utility("camera", &words("is great . the zipper is sharp ."), true);
        assert!((off.relevance - (-0.5)).abs() < 1e-6);
    }

    #[test]
    fn fluent_reviews_beat_flawed_ones_on_average() {
        let mut rng = Rng::new(5);
        let mut mean = |quality| {
            let n = 2_000;
            let mut sum = 0.0;
            for _ in 0..n {
                let product = rng.below(PRODUCTS_COUNT);
                let r = sample_review(&mut rng, product, quality);
                let name = crate::rlhf::task::vocab::PRODUCTS[product].0;
                sum += gold_utility(name, &r.words, r.ends).total;
            }
            sum / n as f32
        };
        let fluent = mean(Quality::Fluent);
        for flawed in [Quality::Repetitive, Quality::Rambling, Quality::CutOff, Quality::OffTopic] {
            let m = mean(flawed);
            assert!(m < fluent - 0.3, "{flawed:?}: {m} vs fluent {fluent}");
        }
    }

    #[test]
    fn labeler_follows_bradley_terry_and_the_ceiling_is_its_best_accuracy() {
        assert!((labeler_probability(1.0, 1.0, 0.5) - 0.5).abs() < 1e-6);
        let p = labeler_probability(1.0, 0.0, 0.5);
        assert!((p - sigmoid(2.0)).abs() < 1e-6);
        let mut rng = Rng::new(9);
        let n = 20_000;
        let firsts = (0..n).filter(|_| simulated_label(1.0, 0.0, 0.5, &mut rng) == Preference::First).count();
        assert!((firsts as f32 / n as f32 - p).abs() < 0.01);
        let ceiling = agreement_ceiling(&[(1.0, 0.0), (0.0, 0.0)], 0.5);
        assert!((ceiling - (p + 0.5) / 2.0).abs() < 1e-6);
    }
}
