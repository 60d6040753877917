//! The language's parts: its limits, terms and functions, the tree an expression parses into, how
//! that tree is bounded and evaluated, and how a refusal is worded.

use std::fmt;

use crate::error::LabError;
use crate::rlhf::task::{GoldUtility, MAX_COMPLETION};

pub(super) const FIELD: &str = "reward.expression";
/// Longest expression accepted, in characters.
pub const MAX_CHARS: usize = 400;
/// Deepest nesting of parentheses and function calls.
pub const MAX_DEPTH: usize = 16;
/// Most terms and function calls in one expression.
pub const MAX_TERMS: usize = 64;
/// Largest number literal, in size.
pub const MAX_LITERAL: f64 = 1000.0;
/// Largest size any part of an expression may reach on a completion.
pub const MAX_MAGNITUDE: f64 = 1e6;
/// Largest argument of `length_over` / `length_under`.
pub(super) const MAX_LENGTH_ARGUMENT: f64 = 64.0;

/// The expression the lab suggests: it pays for the word "great" itself, a loophole that a policy
/// finds by saying "great" over and over.
pub const DEFAULT_EXPRESSION: &str = "2*count(\"great\") + sentiment - 0.1*length_over(12)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Term {
    Sentiment,
    Fluency,
    Repetitions,
    Ending,
    LengthPenalty,
    Relevance,
    Gold,
    Words,
    Ends,
}

/// The most words a completion holds.
pub(super) const LONGEST: f64 = MAX_COMPLETION as f64;
/// Each term: its name, its largest size on a completion of at most `MAX_COMPLETION` tokens
/// (a safe over-estimate), and its description.
pub(super) const TERMS: [(&str, Term, f64, &str); 9] = [
    ("sentiment", Term::Sentiment, 1.0, "gold's net praise, from −1 to 1"),
    ("fluency", Term::Fluency, 1.0, "gold's share of word pairs the grammar allows, from 0 to 1"),
    ("repetitions", Term::Repetitions, LONGEST, "gold's count of stutters and repeated word pairs"),
    ("ending", Term::Ending, 1.0, "gold's ending term: 0 if it ends with <eos>, −1 if cut off"),
    ("length_penalty", Term::LengthPenalty, 0.15 * LONGEST, "gold's length term: −0.15 a word outside 5–16"),
    ("relevance", Term::Relevance, 0.6 + 0.5 * LONGEST, "gold's relevance: +0.3 an own aspect, −0.5 a foreign one"),
    ("gold", Term::Gold, 30.0, "the gold utility: the weighted sum of the six terms above"),
    ("words", Term::Words, LONGEST, "the number of words, <eos> excluded"),
    ("ends", Term::Ends, 1.0, "1 if the completion ends with <eos>, 0 if the length limit cut it"),
];

pub(super) const FUNCTIONS: [(&str, &str, &str); 6] = [
    ("count", "count(\"word\")", "how many times the word appears"),
    ("has", "has(\"word\")", "1 if the word appears, else 0"),
    ("length_over", "length_over(n)", "words beyond n: max(0, words − n), n from 0 to 64"),
    ("length_under", "length_under(n)", "words short of n: max(0, n − words), n from 0 to 64"),
    ("min", "min(a, b)", "the smaller of two expressions"),
    ("max", "max(a, b)", "the larger of two expressions"),
];

/// The names and functions a learner may use, with one-line descriptions, for the page's help and
/// controls. Functions are shown as they are called (`count("word")`, `min(a, b)`).
pub fn vocabulary() -> Vec<(&'static str, &'static str)> {
    TERMS.iter().map(|t| (t.0, t.3)).chain(FUNCTIONS.iter().map(|f| (f.1, f.2))).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Min,
    Max,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
    Number(f64),
    Term(Term),
    Count(u32),
    Has(u32),
    LengthOver(f64),
    LengthUnder(f64),
    Neg(Box<Node>),
    Binary(Op, Box<Node>, Box<Node>),
}

/// What the terms and functions read off one completion.
pub(super) struct Facts<'a> {
    pub(super) gold: GoldUtility,
    pub(super) body: &'a [u32],
    pub(super) ends: bool,
}

impl Node {
    /// The value of a node that reads nothing off the completion; `None` for the others.
    pub(super) fn constant(&self) -> Option<f64> {
        match self {
            Node::Number(x) => Some(*x),
            Node::Neg(a) => Some(-a.constant()?),
            Node::Binary(op, a, b) => Some(apply(*op, a.constant()?, b.constant()?)),
            _ => None,
        }
    }

    /// The largest size this node can take on a completion of at most `MAX_COMPLETION` tokens.
    pub(super) fn bound(&self) -> f64 {
        match self {
            Node::Number(x) => x.abs(),
            Node::Term(t) => TERMS.iter().find(|e| e.1 == *t).map_or(MAX_MAGNITUDE, |e| e.2),
            Node::Count(_) | Node::LengthOver(_) => LONGEST,
            Node::Has(_) => 1.0,
            Node::LengthUnder(n) => *n,
            Node::Neg(a) => a.bound(),
            Node::Binary(op, a, b) => match op {
                Op::Add | Op::Sub => a.bound() + b.bound(),
                // Divisors are non-zero numbers (folded when parsed).
                Op::Mul => a.bound() * b.bound(),
                Op::Div => a.bound() / b.constant().map_or(0.0, f64::abs),
                Op::Min | Op::Max => a.bound().max(b.bound()),
            },
        }
    }

    pub(super) fn value(&self, f: &Facts) -> f64 {
        let words = f.body.len() as f64;
        match self {
            Node::Number(x) => *x,
            Node::Term(t) => match t {
                Term::Sentiment => f64::from(f.gold.sentiment),
                Term::Fluency => f64::from(f.gold.fluency),
                Term::Repetitions => f64::from(f.gold.repetitions),
                Term::Ending => f64::from(f.gold.ending),
                Term::LengthPenalty => f64::from(f.gold.length),
                Term::Relevance => f64::from(f.gold.relevance),
                Term::Gold => f64::from(f.gold.total),
                Term::Words => words,
                Term::Ends => f64::from(u8::from(f.ends)),
            },
            Node::Count(id) => f.body.iter().filter(|&&t| t == *id).count() as f64,
            Node::Has(id) => f64::from(u8::from(f.body.contains(id))),
            Node::LengthOver(n) => (words - n).max(0.0),
            Node::LengthUnder(n) => (n - words).max(0.0),
            Node::Neg(a) => -a.value(f),
            Node::Binary(op, a, b) => apply(*op, a.value(f), b.value(f)),
        }
    }
}

pub(super) fn apply(op: Op, a: f64, b: f64) -> f64 {
    match op {
        Op::Add => a + b,
        Op::Sub => a - b,
        Op::Mul => a * b,
        Op::Div => a / b,
        Op::Min => a.min(b),
        Op::Max => a.max(b),
    }
}

/// The refusal: where (column and offending text, if any) and why.
pub(super) fn refuse(column: usize, text: Option<&str>, why: impl fmt::Display) -> LabError {
    let place = match text {
        // A word keeps its own quotes.
        Some(text) if text.starts_with('"') => format!("at column {column} ({})", shown(text)),
        Some(text) => format!("at column {column} (\"{}\")", shown(text)),
        None => format!("at column {column} (the end)"),
    };
    LabError::setting(FIELD, format!("{place}: {why}"))
}

/// Text safe to show in a message: printable ASCII as it is, anything else (control characters,
/// direction overrides, emoji) as `\u{…}`; at most 32 characters.
pub(super) fn shown(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == 32 {
            out.push('…');
            break;
        }
        if c == ' ' || c.is_ascii_graphic() {
            out.push(c);
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    out
}
