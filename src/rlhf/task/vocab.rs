//! The review task's words, grouped by the role each plays in the grammar.
//!
//! Every word belongs to exactly one class; the classes drive the generator (`grammar.rs`), the
//! fluency part of the gold utility (which word may follow which) and the sentiment part (which
//! words carry polarity). The vocabulary is the concatenation of these lists, in this order, after
//! the special tokens, so a token id means the same thing in every build.

pub use crate::engine::tokens::{BOS, EOS, PAD, SPECIALS, UNK};

/// The products a review can be about; each has four aspects of its own.
pub const PRODUCTS: [(&str, [&str; 4]); 10] = [
    ("camera", ["lens", "zoom", "flash", "grip"]),
    ("phone", ["screen", "battery", "charger", "case"]),
    ("laptop", ["keyboard", "trackpad", "fan", "hinge"]),
    ("headset", ["sound", "bass", "padding", "cable"]),
    ("blender", ["motor", "blade", "jar", "lid"]),
    ("kettle", ["handle", "spout", "switch", "base"]),
    ("backpack", ["zipper", "pocket", "fabric", "buckle"]),
    ("watch", ["strap", "display", "clasp", "alarm"]),
    ("speaker", ["volume", "pairing", "grille", "remote"]),
    ("lamp", ["bulb", "shade", "cord", "dimmer"]),
];

pub const POSITIVE_ADJECTIVES: [&str; 16] = [
    "great", "excellent", "wonderful", "fantastic", "solid", "reliable", "lovely", "perfect",
    "superb", "sturdy", "sharp", "bright", "crisp", "smooth", "quiet", "comfortable",
];
pub const NEGATIVE_ADJECTIVES: [&str; 16] = [
    "terrible", "awful", "poor", "flimsy", "useless", "disappointing", "bad", "cheap", "broken",
    "horrible", "weak", "blurry", "noisy", "slow", "loose", "dull",
];
pub const NEUTRAL_ADJECTIVES: [&str; 6] = ["okay", "fine", "average", "decent", "acceptable", "ordinary"];
/// Intensifiers: they scale the polarity of the adjective that follows.
pub const ADVERBS: [&str; 6] = ["very", "really", "quite", "so", "pretty", "extremely"];
/// Verbs of "i ... it": (word, polarity).
pub const OPINION_VERBS: [(&str, f32); 6] = [
    ("love", 1.0), ("like", 0.6), ("recommend", 1.0), ("hate", -1.0), ("returned", -1.0),
    ("regret", -0.8),
];
/// Sentence openers that add nothing but length: rambling reviews lean on them.
pub const FILLERS: [&str; 4] = ["overall", "honestly", "also", "then"];
/// Glue words, each its own class.
pub const GLUE: [&str; 14] = [
    "review", ":", "the", "is", "not", "and", "but", ".", "i", "it", "works", "well", "stopped",
    "working",
];
/// "broke": an aspect verb with negative polarity; kept apart from the glue because it carries
/// sentiment.
pub const BROKE: &str = "broke";

/// The role a word plays; fluency is defined on pairs of roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WordClass {
    Pad,
    Bos,
    Eos,
    Unk,
    Review,
    Colon,
    The,
    Product,
    Aspect,
    Is,
    Not,
    Adverb,
    Adjective,
    Conjunction,
    Period,
    I,
    It,
    OpinionVerb,
    Works,
    Well,
    Broke,
    Stopped,
    Working,
    Filler,
}

/// Every word of the task, in token-id order.
pub fn all_words() -> Vec<&'static str> {
    let mut words: Vec<&'static str> = SPECIALS.to_vec();
    words.extend(GLUE);
    words.push(BROKE);
    words.extend(PRODUCTS.iter().map(|(product, _)| *product));
    words.extend(PRODUCTS.iter().flat_map(|(_, aspects)| aspects.iter().copied()));
    words.extend(POSITIVE_ADJECTIVES);
    words.extend(NEGATIVE_ADJECTIVES);
    words.extend(NEUTRAL_ADJECTIVES);
    words.extend(ADVERBS);
    words.extend(OPINION_VERBS.iter().map(|(verb, _)| *verb));
    words.extend(FILLERS);
    words
}

/// The class of a word (by text).
pub fn class_of(word: &str) -> WordClass {
    use WordClass::*;
    match word {
        "<pad>" => Pad,
        "<bos>" => Bos,
        "<eos>" => Eos,
        "review" => Review,
        ":" => Colon,
        "the" => The,
        "is" => Is,
        "not" => Not,
        "and" | "but" => Conjunction,
        "." => Period,
        "i" => I,
        "it" => It,
        "works" => Works,
        "well" => Well,
        "stopped" => Stopped,
        "working" => Working,
        w if w == BROKE => Broke,
        w if PRODUCTS.iter().any(|(p, _)| *p == w) => Product,
        w if PRODUCTS.iter().any(|(_, a)| a.contains(&w)) => Aspect,
        w if POSITIVE_ADJECTIVES.contains(&w)
            || NEGATIVE_ADJECTIVES.contains(&w)
            || NEUTRAL_ADJECTIVES.contains(&w) =>
        {
            Adjective
        }
        w if ADVERBS.contains(&w) => Adverb,
        w if OPINION_VERBS.iter().any(|(v, _)| *v == w) => OpinionVerb,
        w if FILLERS.contains(&w) => Filler,
        _ => Unk,
    }
}

/// May a word of class `next` follow one of class `prev` in a fluent review?
///
/// This table *is* the grammar of fluent completions (see `grammar.rs` for the productions it
/// comes from); the gold utility's fluency term is the share of a completion's word pairs it
/// allows.
pub fn may_follow(prev: WordClass, next: WordClass) -> bool {
    use WordClass::*;
    matches!(
        (prev, next),
        (Bos, Review | The)
            | (Review, Colon)
            | (Colon, The)
            | (The, Product | Aspect)
            | (Product | Aspect, Is | Works | Broke | Stopped)
            | (It, Is)
            | (Is, Adjective | Adverb | Not)
            | (Not, Adjective | Adverb)
            | (Adverb, Adjective)
            | (Adjective | Well | Broke | Working, Period | Conjunction)
            | (It, Period | Conjunction)
            | (Works, Well)
            | (Stopped, Working)
            | (I, OpinionVerb)
            | (OpinionVerb, It)
            | (Conjunction, The | I | It | Filler)
            | (Period, The | I | It | Filler | Eos)
            | (Filler, The | I | It)
    )
}

/// Polarity of a single word in isolation: +1 praise, −1 complaint, 0 otherwise.
pub fn polarity(word: &str) -> f32 {
    if POSITIVE_ADJECTIVES.contains(&word) {
        1.0
    } else if NEGATIVE_ADJECTIVES.contains(&word) || word == BROKE {
        -1.0
    } else if let Some((_, p)) = OPINION_VERBS.iter().find(|(v, _)| *v == word) {
        *p
    } else if word == "well" {
        0.6
    } else if word == "working" {
        -1.0
    } else {
        0.0
    }
}

/// The product whose aspect this is, if it is an aspect.
pub fn product_of_aspect(word: &str) -> Option<&'static str> {
    PRODUCTS.iter().find(|(_, aspects)| aspects.contains(&word)).map(|(p, _)| *p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_is_unique_and_classified() {
        let words = all_words();
        let mut sorted = words.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), words.len(), "duplicate words in the vocabulary");
        for word in &words[SPECIALS.len()..] {
            assert_ne!(class_of(word), WordClass::Unk, "{word} has no class");
        }
        assert_eq!(words[PAD as usize], "<pad>");
        assert_eq!(words[EOS as usize], "<eos>");
    }
}
