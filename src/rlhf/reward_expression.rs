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

use crate::error::{LabError, Result};
use crate::rlhf::task::{vocab::SPECIALS, Completion, GoldUtility, Tokenizer, EOS, MAX_COMPLETION};

const FIELD: &str = "reward.expression";
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
const MAX_LENGTH_ARGUMENT: f64 = 64.0;

/// The expression the lab suggests: it pays for the word "great" itself, a loophole that a policy
/// finds by saying "great" over and over.
pub const DEFAULT_EXPRESSION: &str = "2*count(\"great\") + sentiment - 0.1*length_over(12)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Term {
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
const LONGEST: f64 = MAX_COMPLETION as f64;
/// Each term: its name, its largest size on a completion of at most `MAX_COMPLETION` tokens
/// (a safe over-estimate), and its description.
const TERMS: [(&str, Term, f64, &str); 9] = [
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

const FUNCTIONS: [(&str, &str, &str); 6] = [
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
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Min,
    Max,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
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
struct Facts<'a> {
    gold: GoldUtility,
    body: &'a [u32],
    ends: bool,
}

impl Node {
    /// The value of a node that reads nothing off the completion; `None` for the others.
    fn constant(&self) -> Option<f64> {
        match self {
            Node::Number(x) => Some(*x),
            Node::Neg(a) => Some(-a.constant()?),
            Node::Binary(op, a, b) => Some(apply(*op, a.constant()?, b.constant()?)),
            _ => None,
        }
    }

    /// The largest size this node can take on a completion of at most `MAX_COMPLETION` tokens.
    fn bound(&self) -> f64 {
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

    fn value(&self, f: &Facts) -> f64 {
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

fn apply(op: Op, a: f64, b: f64) -> f64 {
    match op {
        Op::Add => a + b,
        Op::Sub => a - b,
        Op::Mul => a * b,
        Op::Div => a / b,
        Op::Min => a.min(b),
        Op::Max => a.max(b),
    }
}

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

/// The refusal: where (column and offending text, if any) and why.
fn refuse(column: usize, text: Option<&str>, why: impl fmt::Display) -> LabError {
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
fn shown(text: &str) -> String {
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

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Number(f64),
    Name(String),
    Word(String),
    Plus,
    Minus,
    Star,
    Slash,
    Open,
    Close,
    Comma,
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    /// 0-based index of the first character, and the number of characters.
    start: usize,
    len: usize,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Splits the characters into tokens, stopping at the first one that no token can hold.
fn lex(chars: &[char]) -> (Vec<Token>, Option<LabError>) {
    let mut tokens = Vec::new();
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let kind = match c {
            ' ' => {
                i += 1;
                continue;
            }
            '0'..='9' | '.' => {
                let digits = |i: &mut usize| {
                    let from = *i;
                    while at(*i).is_ascii_digit() {
                        *i += 1;
                    }
                    *i > from
                };
                let mut ok = digits(&mut i);
                if at(i) == '.' {
                    i += 1;
                    ok = digits(&mut i);
                }
                if ok && matches!(at(i), 'e' | 'E') {
                    let mark = i;
                    i += 1;
                    if matches!(at(i), '+' | '-') {
                        i += 1;
                    }
                    if !digits(&mut i) {
                        i = mark;
                    }
                }
                if !ok || is_name_char(at(i)) || at(i) == '.' {
                    while i < chars.len() && (is_name_char(chars[i]) || chars[i] == '.') {
                        i += 1;
                    }
                    let text: String = chars[start..i].iter().collect();
                    let why = "is not a number: numbers are decimals such as 2, 0.5, .5 or 1e-2";
                    return (tokens, Some(refuse(start + 1, Some(&text), why)));
                }
                let text: String = chars[start..i].iter().collect();
                match text.parse::<f64>() {
                    Ok(x) if x.is_finite() && x.abs() <= MAX_LITERAL => Kind::Number(x),
                    _ => {
                        let why = format!("numbers must be finite and at most {MAX_LITERAL} in size");
                        return (tokens, Some(refuse(start + 1, Some(&text), why)));
                    }
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                // Letters outside ASCII are read into the name, then refused where they stand.
                while at(i).is_alphanumeric() || at(i) == '_' {
                    i += 1;
                }
                if let Some(k) = (start..i).find(|&k| !chars[k].is_ascii()) {
                    return (tokens, Some(bad_character(k, chars[k])));
                }
                Kind::Name(chars[start..i].iter().collect())
            }
            '"' => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if !(chars[i] == ' ' || chars[i].is_ascii_graphic()) {
                        return (tokens, Some(bad_character(i, chars[i])));
                    }
                    i += 1;
                }
                if i == chars.len() {
                    let text: String = chars[start..].iter().collect();
                    let why = "this word's quotes are never closed: write it as \"word\"";
                    return (tokens, Some(refuse(start + 1, Some(&text), why)));
                }
                i += 1;
                Kind::Word(chars[start + 1..i - 1].iter().collect())
            }
            '+' => Kind::Plus,
            '-' => Kind::Minus,
            '*' => Kind::Star,
            '/' => Kind::Slash,
            '(' => Kind::Open,
            ')' => Kind::Close,
            ',' => Kind::Comma,
            c => return (tokens, Some(bad_character(i, c))),
        };
        if i == start {
            i += 1;
        }
        tokens.push(Token { kind, start, len: i - start });
    }
    (tokens, None)
}

fn bad_character(index: usize, c: char) -> LabError {
    let name = match c {
        '\'' => "' (a single quote)".to_string(),
        c if c.is_ascii_graphic() => format!("'{c}'"),
        c => format!("U+{:04X}", c as u32),
    };
    let hint = match c {
        '\'' => "; write words in double quotes, like count(\"great\")",
        '^' => "; there is no power operator: multiply instead",
        _ => "",
    };
    let why = format!(
        "the character {name} is not part of the expression language (numbers, names, \"words\", \
         spaces and + - * / ( ) , only){hint}"
    );
    refuse(index + 1, Some(&c.to_string()), why)
}

struct Parser<'a> {
    chars: &'a [char],
    tokens: Vec<Token>,
    lex_error: Option<LabError>,
    pos: usize,
    terms: usize,
    tokenizer: &'a Tokenizer,
}

impl Parser<'_> {
    /// The next token; `None` at the end; the lexer's refusal where it stopped.
    fn peek(&self) -> Result<Option<Token>> {
        match (self.tokens.get(self.pos), &self.lex_error) {
            (Some(t), _) => Ok(Some(t.clone())),
            (None, Some(e)) => Err(e.clone()),
            (None, None) => Ok(None),
        }
    }

    fn next(&mut self) -> Result<Option<Token>> {
        let t = self.peek()?;
        if t.is_some() {
            self.pos += 1;
        }
        Ok(t)
    }

    fn source(&self, from: usize, to: usize) -> String {
        self.chars[from.min(to)..to].iter().collect()
    }

    fn error(&self, t: &Token, why: impl fmt::Display) -> LabError {
        refuse(t.start + 1, Some(&self.source(t.start, t.start + t.len)), why)
    }

    /// A refusal at `t`, or at the end of the expression.
    fn error_at(&self, t: Option<&Token>, why: impl fmt::Display) -> LabError {
        match t {
            Some(t) => self.error(t, why),
            None => refuse(self.chars.len() + 1, None, format!("the expression ends too early: {why}")),
        }
    }

    /// Where the last consumed token ends.
    fn end(&self) -> usize {
        self.pos.checked_sub(1).and_then(|p| self.tokens.get(p)).map_or(0, |t| t.start + t.len)
    }

    fn checked(&self, node: Node, at: &Token) -> Result<Node> {
        let bound = node.bound();
        if bound > MAX_MAGNITUDE {
            return Err(self.error(at, format!("this could reach {bound:e} in size; rewards stay within ±1e6")));
        }
        Ok(node)
    }

    fn expression(&mut self, depth: usize) -> Result<Node> {
        let mut node = self.product(depth)?;
        while let Some(t) = self.peek()? {
            let op = match t.kind {
                Kind::Plus => Op::Add,
                Kind::Minus => Op::Sub,
                _ => break,
            };
            self.pos += 1;
            let rhs = self.product(depth)?;
            node = self.checked(Node::Binary(op, Box::new(node), Box::new(rhs)), &t)?;
        }
        Ok(node)
    }

    fn product(&mut self, depth: usize) -> Result<Node> {
        let mut node = self.unary(depth)?;
        while let Some(t) = self.peek()? {
            let op = match t.kind {
                Kind::Star => Op::Mul,
                Kind::Slash => Op::Div,
                _ => break,
            };
            self.pos += 1;
            let from = self.peek()?.map_or(self.chars.len(), |n| n.start);
            if op == Op::Mul && matches!(self.peek()?, Some(Token { kind: Kind::Star, .. })) {
                let star = self.peek()?;
                return Err(self.error_at(star.as_ref(), "there is no power operator (**): multiply instead"));
            }
            let mut rhs = self.unary(depth)?;
            if op == Op::Div {
                match rhs.constant() {
                    Some(c) if c != 0.0 => rhs = Node::Number(c),
                    c => {
                        let why = if c.is_some() {
                            "this divisor is zero, and nothing can be divided by zero"
                        } else {
                            "you can only divide by a number: this divisor depends on the completion and could \
                             be zero (multiply by a fraction instead, e.g. 0.5*words)"
                        };
                        return Err(refuse(from + 1, Some(&self.source(from, self.end())), why));
                    }
                }
            }
            node = self.checked(Node::Binary(op, Box::new(node), Box::new(rhs)), &t)?;
        }
        Ok(node)
    }

    fn unary(&mut self, depth: usize) -> Result<Node> {
        let mut negate = false;
        while let Some(t) = self.peek()? {
            if t.kind != Kind::Minus {
                break;
            }
            self.pos += 1;
            negate = !negate;
        }
        let node = self.primary(depth)?;
        Ok(if negate { Node::Neg(Box::new(node)) } else { node })
    }

    fn deeper(&self, t: &Token, depth: usize) -> Result<usize> {
        if depth >= MAX_DEPTH {
            return Err(self.error(t, format!("parentheses and calls are nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(depth + 1)
    }

    fn close(&mut self, open: &Token, what: &str) -> Result<()> {
        match self.next()? {
            Some(Token { kind: Kind::Close, .. }) => Ok(()),
            t => {
                let why = format!("expected ')' to close the '(' at column {}{what}", open.start + 1);
                Err(self.error_at(t.as_ref(), why))
            }
        }
    }

    fn primary(&mut self, depth: usize) -> Result<Node> {
        const EXPECTED: &str = "expected a number, a term, a function call or '('";
        let Some(t) = self.next()? else {
            return Err(self.error_at(None, EXPECTED));
        };
        match &t.kind {
            Kind::Number(x) => Ok(Node::Number(*x)),
            Kind::Open => {
                let depth = self.deeper(&t, depth)?;
                let node = self.expression(depth)?;
                self.close(&t, " (or an operator)")?;
                Ok(node)
            }
            Kind::Name(name) => {
                // A refusal after the name waits: the name's own problem comes first.
                let open = self.peek().ok().flatten().filter(|n| n.kind == Kind::Open);
                let function = FUNCTIONS.iter().find(|f| f.0 == name);
                let term = TERMS.iter().find(|e| e.0 == name);
                match (open, function, term) {
                    (Some(open), Some(f), _) => {
                        self.count_term(&t)?;
                        let depth = self.deeper(&t, depth)?;
                        self.pos += 1;
                        self.call(f.0, f.1, &open, depth)
                    }
                    (None, None, Some(e)) => {
                        self.count_term(&t)?;
                        Ok(Node::Term(e.1))
                    }
                    (None, Some(f), _) => Err(self.error(&t, format!("{} is a function: call it as {}", f.0, f.1))),
                    (Some(_), None, Some(e)) => {
                        Err(self.error(&t, format!("{} is a term, not a function: write it without '('", e.0)))
                    }
                    (Some(_), None, None) => {
                        let names: Vec<&str> = FUNCTIONS.iter().map(|f| f.0).collect();
                        let why = format!("no function named \"{}\" (functions: {})", shown(name), names.join(", "));
                        Err(self.error(&t, why))
                    }
                    (None, None, None) => {
                        let names: Vec<&str> = TERMS.iter().map(|e| e.0).collect();
                        Err(self.error(&t, format!("no term named \"{}\" (terms: {})", shown(name), names.join(", "))))
                    }
                }
            }
            Kind::Word(_) => Err(self.error(&t, "a word in quotes can only be the argument of count or has")),
            Kind::Close => Err(self.error(&t, format!("{EXPECTED}, not ')'"))),
            _ => Err(self.error(&t, EXPECTED)),
        }
    }

    fn count_term(&mut self, t: &Token) -> Result<()> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(self.error(t, format!("the expression has more than {MAX_TERMS} terms and calls")));
        }
        Ok(())
    }

    /// The arguments and ')' of a call whose '(' was just read.
    fn call(&mut self, name: &str, usage: &str, open: &Token, depth: usize) -> Result<Node> {
        let node = match name {
            "count" | "has" => {
                let t = self.next()?;
                let id = match &t {
                    Some(word @ Token { kind: Kind::Word(w), .. }) => self.word_id(word, w)?,
                    _ => {
                        return Err(self.error_at(t.as_ref(), format!("{name} takes a word in double quotes: {usage}")));
                    }
                };
                if name == "count" { Node::Count(id) } else { Node::Has(id) }
            }
            "length_over" | "length_under" => {
                let t = self.next()?;
                let n = match t.as_ref().map(|t| &t.kind) {
                    Some(Kind::Number(n)) if n.fract() == 0.0 && *n <= MAX_LENGTH_ARGUMENT => *n,
                    _ => {
                        let why = format!("{name} takes a whole number of words from 0 to 64: {usage}");
                        return Err(self.error_at(t.as_ref(), why));
                    }
                };
                if name == "length_over" { Node::LengthOver(n) } else { Node::LengthUnder(n) }
            }
            _ => {
                let a = self.expression(depth)?;
                match self.next()? {
                    Some(Token { kind: Kind::Comma, .. }) => {}
                    t => {
                        let why = format!("expected ',': {name} takes two expressions, {usage}");
                        return Err(self.error_at(t.as_ref(), why));
                    }
                }
                let b = self.expression(depth)?;
                let op = if name == "min" { Op::Min } else { Op::Max };
                self.checked(Node::Binary(op, Box::new(a), Box::new(b)), open)?
            }
        };
        if let Some(t) = self.peek()?.filter(|t| t.kind == Kind::Comma) {
            let n = if matches!(name, "min" | "max") { "two arguments" } else { "one argument" };
            return Err(self.error(&t, format!("{name} takes {n}: {usage}")));
        }
        self.close(open, &format!(" of {name}"))?;
        Ok(node)
    }

    fn word_id(&self, t: &Token, word: &str) -> Result<u32> {
        let at = |why: String| refuse(t.start + 2, Some(word), why);
        if word.is_empty() {
            return Err(refuse(t.start + 1, Some("\"\""), "the word is empty: write one, like \"great\""));
        }
        if SPECIALS.contains(&word) {
            return Err(at(format!("\"{}\" is a special token, not a word (use `ends` for <eos>)", shown(word))));
        }
        match self.tokenizer.id(word) {
            Some(id) => Ok(id),
            None => {
                let lower = if word.chars().any(|c| c.is_ascii_uppercase()) { " (words are lowercase)" } else { "" };
                Err(at(format!("\"{}\" is not a word of the lab's vocabulary{lower}", shown(word))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rlhf::task::{gold_utility, Demonstrations};
    use crate::rng::Rng;

    fn tok() -> Tokenizer {
        Tokenizer::new()
    }

    /// A completion of a camera review from its words; `ends` appends `<eos>`.
    fn completion(tok: &Tokenizer, text: &str, ends: bool) -> Completion {
        let mut tokens = tok.encode_strict(text).unwrap();
        if ends {
            tokens.push(EOS);
        }
        Completion { product: 0, tokens }
    }

    fn value(text: &str, c: &Completion) -> f32 {
        let tok = tok();
        let e = RewardExpression::parse(text, &tok).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(e.text(), text);
        e.evaluate(c, &tok)
    }

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-5
    }

    #[test]
    fn hostile_and_malformed_expressions_are_refused_naming_column_and_reason() {
        let deep = |n: usize| format!("{}1{}", "(".repeat(n), ")".repeat(n));
        let terms = vec!["ends"; 65].join("+");
        let cases: Vec<(String, usize, &str)> = vec![
            ("cuont(\"great\")".into(), 1, "no function named \"cuont\""),
            ("cuont".into(), 1, "no term named \"cuont\" (terms: sentiment, fluency"),
            ("sentimnet + 1".into(), 1, "no term named"),
            ("Sentiment".into(), 1, "no term named"),
            ("2*count(\"gret\")".into(), 10, "\"gret\" is not a word of the lab's vocabulary"),
            ("count(\"Great\")".into(), 8, "lowercase"),
            ("count(\"<eos>\")".into(), 8, "special token"),
            ("count(\"great \")".into(), 8, "not a word"),
            ("(sentiment".into(), 11, "expected ')' to close the '(' at column 1"),
            ("((sentiment)".into(), 13, "expected ')'"),
            ("sentiment)".into(), 10, "closes no '('"),
            ("sentiment + fluency ) * 2".into(), 21, "closes no '('"),
            ("count(\"great\"".into(), 14, "expected ')'"),
            ("length_over(12".into(), 15, "expected ')'"),
            ("".into(), 1, "is empty"),
            ("    ".into(), 1, "is empty"),
            ("1e309".into(), 1, "finite"),
            ("-1e309".into(), 2, "finite"),
            ("1e999".into(), 1, "finite"),
            ("1001".into(), 1, "at most 1000"),
            ("1000000".into(), 1, "at most 1000"),
            ("nan".into(), 1, "no term named \"nan\""),
            ("inf".into(), 1, "no term named \"inf\""),
            ("-inf".into(), 2, "no term named \"inf\""),
            ("0x10".into(), 1, "\"0x10\"): is not a number"),
            ("1..2".into(), 1, "is not a number"),
            ("1e".into(), 1, "is not a number"),
            (".".into(), 1, "is not a number"),
            ("2.".into(), 1, "is not a number"),
            ("2**3".into(), 3, "no power operator"),
            ("2^3".into(), 2, "no power operator"),
            ("/0".into(), 1, "expected a number, a term"),
            ("1/0".into(), 3, "divisor is zero"),
            ("sentiment / (1-1)".into(), 13, "divisor is zero"),
            ("words / 1e-400".into(), 9, "divisor is zero"),
            ("sentiment / count(\"great\")".into(), 13, "only divide by a number"),
            ("sentiment / words".into(), 13, "only divide by a number"),
            ("words/(words-words)".into(), 7, "could be zero"),
            ("count(great)".into(), 7, "takes a word in double quotes"),
            ("has()".into(), 5, "takes a word in double quotes"),
            ("count(\"\")".into(), 7, "the word is empty"),
            ("count(\"great\", \"bad\")".into(), 14, "takes one argument"),
            ("length_over(-1)".into(), 13, "whole number of words from 0 to 64"),
            ("length_over(1.5)".into(), 13, "whole number"),
            ("length_over(65)".into(), 13, "whole number"),
            ("length_under()".into(), 14, "whole number"),
            ("min(1)".into(), 6, "expected ','"),
            ("max(1, 2, 3)".into(), 9, "takes two arguments"),
            (deep(17), 17, "nested deeper than 16"),
            (format!("{}1{}", "min(1,".repeat(17), ")".repeat(17)), 97, "nested deeper than 16"),
            (deep(10_000), 401, "at most 400"),
            (format!("{}1", "1+".repeat(200)), 401, "401 characters long; at most 400"),
            ("a".repeat(1 << 20), 401, "1048576 characters long"),
            (terms, 321, "more than 64 terms"),
            ("1000*1000*2".into(), 10, "within ±1e6"),
            ("<script>alert(1)</script>".into(), 1, "the character '<' is not part"),
            ("javascript:alert(1)".into(), 1, "no term named \"javascript\""),
            ("alert(1)".into(), 1, "no function named \"alert\""),
            ("${x}".into(), 1, "'$'"),
            ("`sentiment`".into(), 1, "'`'"),
            ("{sentiment}".into(), 1, "'{'"),
            ("constructor".into(), 1, "no term named \"constructor\""),
            ("__proto__".into(), 1, "no term named \"__proto__\""),
            ("eval(\"x\")".into(), 1, "no function named \"eval\""),
            ("sentiment; drop".into(), 10, "';'"),
            ("sentiment = 1".into(), 11, "'='"),
            ("sentiment\0".into(), 10, "U+0000"),
            ("sentiment\t+ 1".into(), 10, "U+0009"),
            ("sentiment\r\n".into(), 10, "U+000D"),
            ("\u{1b}[31m".into(), 1, "U+001B"),
            ("count(\"great\nbad\")".into(), 13, "U+000A"),
            ("séntiment".into(), 2, "U+00E9"),
            ("sentiment + 😀".into(), 13, "U+1F600"),
            ("\u{202e}sentiment".into(), 1, "U+202E"),
            ("\u{feff}sentiment".into(), 1, "U+FEFF"),
            ("'great'".into(), 1, "double quotes"),
            ("\"great\"".into(), 1, "only be the argument of count or has"),
            ("sentiment +".into(), 12, "ends too early"),
            ("-".into(), 2, "ends too early"),
            ("* 2".into(), 1, "expected a number, a term"),
            ("1 +  + 2".into(), 6, "expected a number"),
            ("()".into(), 2, "not ')'"),
            ("sentiment sentiment".into(), 11, "operator missing"),
            ("1,2".into(), 2, "expected an operator"),
            ("count(\"great\")(1)".into(), 15, "operator missing"),
            ("count(\"great".into(), 7, "never closed"),
            ("sentiment(1)".into(), 1, "is a term, not a function"),
            ("count".into(), 1, "is a function: call it as count(\"word\")"),
        ];
        assert!(cases.len() >= 55, "{}", cases.len());
        let tok = tok();
        for (text, column, reason) in &cases {
            let shown_text: String = text.chars().take(40).collect();
            match RewardExpression::parse(text, &tok) {
                Ok(_) => panic!("{shown_text:?} was accepted"),
                Err(LabError::InvalidSetting { field, message }) => {
                    assert_eq!(field, FIELD);
                    assert!(message.starts_with(&format!("at column {column} (")), "{shown_text:?}: {message}");
                    assert!(message.contains(reason), "{shown_text:?}: {message}");
                    assert!(!message.chars().any(|c| c.is_control() || c == '\u{202e}'), "{message:?}");
                    assert!(message.chars().count() < 400, "{message}");
                }
                Err(other) => panic!("{shown_text:?}: {other}"),
            }
        }
    }

    #[test]
    fn valid_expressions_have_hand_worked_values() {
        let tok = tok();
        // Camera review "is great great ." <eos>: 4 words, "great" twice.
        let a = completion(&tok, "is great great .", true);
        let ga = gold_utility("camera", &["is", "great", "great", "."], true);
        assert_eq!(value("1 + 2*3", &a), 7.0);
        assert_eq!(value("(1 + 2)*3", &a), 9.0);
        assert_eq!(value("-2 + 3", &a), 1.0);
        assert_eq!(value("-(1 + 2) * 2", &a), -6.0);
        assert_eq!(value("2 - -3", &a), 5.0);
        assert_eq!(value("2*-3", &a), -6.0);
        assert_eq!(value("8 - 2 - 1", &a), 5.0);
        assert_eq!(value("min(1, 2) + max(3, -4)", &a), 4.0);
        assert_eq!(value("max(words, 10)", &a), 10.0);
        assert_eq!(value("min(count(\"great\"), 1)", &a), 1.0);
        assert_eq!(value("count(\"great\")", &a), 2.0);
        assert_eq!(value("2*count(\"great\") + 1", &a), 5.0);
        assert_eq!(value("count(\".\") + count(\"lens\")", &a), 1.0);
        assert_eq!(value("has(\"great\") + has(\"lens\")", &a), 1.0);
        assert_eq!(value("words", &a), 4.0);
        assert_eq!(value("length_over(2)", &a), 2.0);
        assert_eq!(value("length_over(12)", &a), 0.0);
        assert_eq!(value("length_under(10)", &a), 6.0);
        assert_eq!(value("length_under(0)", &a), 0.0);
        assert_eq!(value("10 / 4", &a), 2.5);
        assert_eq!(value("words / (2*2)", &a), 1.0);
        assert_eq!(value("words/-2", &a), -2.0);
        assert!(close(value("1e-2*100 + .5", &a), 1.5));
        assert_eq!(value("1000*1000", &a), 1e6);
        assert_eq!(value("ends", &a), 1.0);
        // great + great = 2 → 1; one stutter; 4 words is one short of 5.
        assert_eq!(value("sentiment", &a), 1.0);
        assert_eq!(value("sentiment", &a), ga.sentiment);
        assert_eq!(value("repetitions", &a), 1.0);
        assert!(close(value("length_penalty", &a), -0.15));
        assert_eq!(value("length_penalty", &a), ga.length);
        // The default rewards the word "great": 2·2 + 1 − 0.1·0.
        assert!(close(value(DEFAULT_EXPRESSION, &a), 5.0));

        // Cut off by the length limit: no <eos>.
        let b = completion(&tok, "is great and the", false);
        assert_eq!(value("ends", &b), 0.0);
        assert_eq!(value("ending", &b), -1.0);
        assert_eq!(value("10*ends + ending + words", &b), 3.0);

        // The fluent review of the gold tests: sentiment 1, fluency 1, relevance 0.3, total 1.5.
        let text = "is great . the lens is very sharp and i love it .";
        let c = completion(&tok, text, true);
        let g = gold_utility("camera", &text.split(' ').collect::<Vec<_>>(), true);
        assert_eq!(value("words", &c), 13.0);
        assert_eq!(value("sentiment + fluency", &c), 2.0);
        assert!(close(value("gold - relevance", &c), 1.2));
        assert!(close(value("gold - relevance", &c), g.total - g.relevance));
        assert!(close(value("relevance", &c), g.relevance));
        assert_eq!(value("fluency", &c), g.fluency);
        assert!(close(value("gold", &c), 1.5));
        assert!(close(value("sentiment / 4 + has(\"lens\")", &c), 1.25));

        // The loophole: "is" and thirteen "great"s: 2·13 + 1 − 0.1·(14 − 12) = 26.8.
        let d = completion(&tok, &format!("is{}", " great".repeat(13)), true);
        assert!(close(value(DEFAULT_EXPRESSION, &d), 26.8), "{}", value(DEFAULT_EXPRESSION, &d));
        assert!(value("gold", &d) < 0.0);
    }

    #[test]
    fn vocabulary_lists_every_term_and_function_and_each_parses() {
        let tok = tok();
        let names = vocabulary();
        assert_eq!(names.len(), TERMS.len() + FUNCTIONS.len());
        for (name, description) in names {
            assert!(!description.is_empty());
            let usage = name.replace("\"word\"", "\"great\"").replace("(n)", "(3)").replace("a, b", "1, words");
            RewardExpression::parse(&usage, &tok).unwrap_or_else(|e| panic!("{usage}: {e}"));
        }
        let e = RewardExpression::parse(DEFAULT_EXPRESSION, &tok).unwrap();
        assert_eq!(e.to_string(), DEFAULT_EXPRESSION);
        assert_eq!(e, RewardExpression::parse(DEFAULT_EXPRESSION, &tok).unwrap());
    }

    #[test]
    fn accepted_expressions_stay_finite_and_bounded_on_every_completion() {
        let tok = tok();
        let demos = Demonstrations::generate(&tok, 7, 300, 0).train;
        let exprs = [
            "words*words*words*words",
            "500*1000 - 1000*500",
            "gold*relevance*repetitions*length_penalty",
            "min(1000*length_under(64), max(-1000, words/0.001))",
            "length_penalty/0.001*fluency - 1000*count(\"great\")",
        ];
        for text in exprs {
            let e = RewardExpression::parse(text, &tok).unwrap_or_else(|e| panic!("{text}: {e}"));
            for c in &demos {
                let v = e.evaluate(c, &tok);
                assert!(v.is_finite() && v.abs() <= 1e6, "{text}: {v}");
            }
        }
        // Outside the contract (far longer than MAX_COMPLETION): still finite.
        let huge = Completion { product: 0, tokens: vec![tok.id("great").unwrap(); 10_000] };
        let e = RewardExpression::parse("words*words*words*words", &tok).unwrap();
        assert_eq!(e.evaluate(&huge, &tok), 1e6);
    }

    #[test]
    fn no_input_makes_it_panic() {
        const PIECES: [&str; 44] = [
            "sentiment", "gold", "words", "ends", "fluency", "count(", "has(", "length_over(",
            "length_under(", "min(", "max(", "\"great\"", "\"lens\"", "\"\"", "\"<eos>\"", "(", ")",
            ")", "+", "-", "*", "/", ",", " ", "  ", "0", "1", "64", ".5", "1e3", "1e-400", "1000",
            "0.001", "1e309", "\"", ".", "e", "x", "é", "\u{202e}", "\0", "<", "😀", "__proto__",
        ];
        let tok = tok();
        let completions = [
            completion(&tok, "is great great .", true),
            completion(&tok, "is great and the", false),
            Completion { product: 3, tokens: vec![] },
            Completion { product: 9, tokens: vec![EOS] },
        ];
        let mut rng = Rng::new(2024);
        let (mut accepted, mut refused) = (0, 0);
        for round in 0..3_000 {
            let text = match round % 3 {
                0 => (0..rng.below(40)).map(|_| *rng.pick(&PIECES)).collect::<String>(),
                1 => {
                    let bytes: Vec<u8> = (0..rng.below(60)).map(|_| rng.below(256) as u8).collect();
                    String::from_utf8_lossy(&bytes).into_owned()
                }
                _ => {
                    // A valid expression with a few characters inserted, deleted or replaced.
                    let base = [DEFAULT_EXPRESSION, "min(words, 10) / 2 - -ends*(gold + 1e-2)", "has(\"lens\")*3"];
                    let mut chars: Vec<char> = rng.pick(&base).chars().collect();
                    for _ in 0..rng.below(3) {
                        let at = rng.below(chars.len() + 1);
                        let c = char::from_u32(rng.below(0x80) as u32).unwrap_or('?');
                        match rng.below(3) {
                            0 => chars.insert(at, c),
                            1 if at < chars.len() => drop(chars.remove(at)),
                            _ if at < chars.len() => chars[at] = c,
                            _ => {}
                        }
                    }
                    chars.into_iter().collect()
                }
            };
            match RewardExpression::parse(&text, &tok) {
                Ok(e) => {
                    accepted += 1;
                    for c in &completions {
                        let v = e.evaluate(c, &tok);
                        assert!(v.is_finite() && v.abs() <= 1e6, "{text:?}: {v}");
                    }
                }
                Err(err) => {
                    refused += 1;
                    assert!(err.to_string().contains("reward.expression: at column "), "{text:?}: {err}");
                }
            }
        }
        assert!(accepted > 50 && refused > 1_000, "accepted {accepted}, refused {refused}");
    }
}
