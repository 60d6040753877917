//! A learner's own reward, typed in the page as a short expression and scored on each completion:
//!
//! ```text
//! 2*count("great") + sentiment - 0.1*length_over(12)
//! ```
//!
//! This module is the only interpreter of that text: it is never handed to JavaScript. The text
//! comes from a web page and from shared links, so everything outside the small language below is
//! refused, with one message naming the first problem: its 1-based column (in characters), the
//! offending text, and why. No input makes it panic, and every accepted expression has a finite
//! value, at most ±1e6, on every completion.
//!
//! ```text
//! expression := product (("+" | "-") product)*
//! product    := unary (("*" | "/") unary)*          a divisor must be a non-zero constant
//! unary      := "-"* primary
//! primary    := number | term | function "(" arguments ")" | "(" expression ")"
//! number     := digits ["." digits] | "." digits, then optionally ("e" | "E") ["+" | "-"] digits;
//!               finite and at most 1000 in size (no hex, inf or nan)
//! term       := sentiment | fluency | repetitions | ending | length_penalty | relevance | gold
//!             | words | ends
//! function   := count("word") | has("word") | length_over(n) | length_under(n)
//!             | min(expression, expression) | max(expression, expression)
//! ```
//!
//! - The first six terms are those of the gold utility (`length_penalty` is its `length` term),
//!   `gold` their total, `words` the number of words before `<eos>`, `ends` 1 when the completion
//!   ends with `<eos>` (0 when the length limit cut it).
//! - A word is written in double quotes, without escapes, and must be a word of the lab's
//!   vocabulary (lowercase; special tokens such as `<eos>` are not words). `n` is a whole number
//!   from 0 to 64.
//! - Only spaces separate tokens; any other character (tabs, control characters, non-ASCII, `<`,
//!   `;`, `=`, quotes other than `"`, …) is refused.
//! - Limits: at most 400 characters, parentheses and calls nested at most 16 deep, at most 64
//!   terms and calls, and no part of the expression may reach more than 1e6 in size.

use std::fmt;

mod language;
mod lex;
mod parse;
#[cfg(test)]
mod tests;

use self::language::{refuse, Facts, Node};
use self::lex::{lex, Kind};
use self::parse::Parser;
pub use self::language::{vocabulary, DEFAULT_EXPRESSION, MAX_CHARS, MAX_DEPTH, MAX_LITERAL, MAX_MAGNITUDE, MAX_TERMS};

use crate::error::Result;
use crate::rlhf::task::{Completion, Tokenizer, EOS};

/// A learner's reward expression, parsed and checked against the lab's vocabulary.
#[derive(Debug, Clone, PartialEq)]
pub struct RewardExpression {
    text: String,
    root: Node,
}

impl RewardExpression {
    /// Parses and checks `text` against the lab's vocabulary.
    pub fn parse(text: &str, tokenizer: &Tokenizer) -> Result<Self> {
        if text.chars().all(|c| c == ' ') {
            return Err(refuse(1, None, "the expression is empty; write one, e.g. sentiment + fluency"));
        }
        let length = text.chars().count();
        if length > MAX_CHARS {
            let at = text.chars().nth(MAX_CHARS).map(String::from);
            return Err(refuse(
                MAX_CHARS + 1,
                at.as_deref(),
                format!("the expression is {length} characters long; at most {MAX_CHARS} are accepted"),
            ));
        }
        let chars: Vec<char> = text.chars().collect();
        let (tokens, lex_error) = lex(&chars);
        let mut parser = Parser { chars: &chars, tokens, lex_error, pos: 0, terms: 0, tokenizer };
        let root = parser.expression(0)?;
        match parser.peek()? {
            None => Ok(Self { text: text.to_string(), root }),
            Some(t) if t.kind == Kind::Close => Err(parser.error(&t, "this ')' closes no '('")),
            Some(t) => {
                let hint = if matches!(t.kind, Kind::Name(_) | Kind::Number(_) | Kind::Word(_) | Kind::Open) {
                    " (is an operator missing?)"
                } else {
                    ""
                };
                Err(parser.error(&t, format!("expected an operator (+ - * /) or the end of the expression{hint}")))
            }
        }
    }

    /// The expression's value on one completion (finite for every completion: guaranteed by the
    /// checks; a completion longer than `MAX_COMPLETION` tokens is clamped to ±1e6).
    pub fn evaluate(&self, completion: &Completion, tokenizer: &Tokenizer) -> f32 {
        let end = completion.tokens.iter().position(|&t| t == EOS).unwrap_or(completion.tokens.len());
        let (gold, body, ends) = (completion.gold(tokenizer), &completion.tokens[..end], completion.ends());
        let facts = Facts { gold, body, ends };
        let value = self.root.value(&facts);
        if value.is_finite() {
            value.clamp(-MAX_MAGNITUDE, MAX_MAGNITUDE) as f32
        } else {
            0.0
        }
    }

    /// The source text as given.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for RewardExpression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
