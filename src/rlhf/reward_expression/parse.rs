//! The grammar of `mod.rs`'s doc comment, by recursive descent, with the limits checked as it goes.

use super::lex::{Kind, Token};
use std::fmt;

use super::language::*;
use crate::error::{LabError, Result};
use crate::rlhf::task::{vocab::SPECIALS, Tokenizer};

pub(super) struct Parser<'a> {
    pub(super) chars: &'a [char],
    pub(super) tokens: Vec<Token>,
    pub(super) lex_error: Option<LabError>,
    pub(super) pos: usize,
    pub(super) terms: usize,
    pub(super) tokenizer: &'a Tokenizer,
}

impl Parser<'_> {
    /// The next token; `None` at the end; the lexer's refusal where it stopped.
    pub(super) fn peek(&self) -> Result<Option<Token>> {
        match (self.tokens.get(self.pos), &self.lex_error) {
            (Some(t), _) => Ok(Some(t.clone())),
            (None, Some(e)) => Err(e.clone()),
            (None, None) => Ok(None),
        }
    }

    pub(super) fn next(&mut self) -> Result<Option<Token>> {
        let t = self.peek()?;
        if t.is_some() {
            self.pos += 1;
        }
        Ok(t)
    }

    pub(super) fn source(&self, from: usize, to: usize) -> String {
        self.chars[from.min(to)..to].iter().collect()
    }

    pub(super) fn error(&self, t: &Token, why: impl fmt::Display) -> LabError {
        refuse(t.start + 1, Some(&self.source(t.start, t.start + t.len)), why)
    }

    /// A refusal at `t`, or at the end of the expression.
    pub(super) fn error_at(&self, t: Option<&Token>, why: impl fmt::Display) -> LabError {
        match t {
            Some(t) => self.error(t, why),
            None => refuse(self.chars.len() + 1, None, format!("the expression ends too early: {why}")),
        }
    }

    /// Where the last consumed token ends.
    pub(super) fn end(&self) -> usize {
        self.pos.checked_sub(1).and_then(|p| self.tokens.get(p)).map_or(0, |t| t.start + t.len)
    }

    pub(super) fn checked(&self, node: Node, at: &Token) -> Result<Node> {
        let bound = node.bound();
        if bound > MAX_MAGNITUDE {
            return Err(self.error(at, format!("this could reach {bound:e} in size; rewards stay within ±1e6")));
        }
        Ok(node)
    }

    pub(super) fn expression(&mut self, depth: usize) -> Result<Node> {
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

    pub(super) fn product(&mut self, depth: usize) -> Result<Node> {
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

    pub(super) fn unary(&mut self, depth: usize) -> Result<Node> {
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

    pub(super) fn deeper(&self, t: &Token, depth: usize) -> Result<usize> {
        if depth >= MAX_DEPTH {
            return Err(self.error(t, format!("parentheses and calls are nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(depth + 1)
    }

    pub(super) fn close(&mut self, open: &Token, what: &str) -> Result<()> {
        match self.next()? {
            Some(Token { kind: Kind::Close, .. }) => Ok(()),
            t => {
                let why = format!("expected ')' to close the '(' at column {}{what}", open.start + 1);
                Err(self.error_at(t.as_ref(), why))
            }
        }
    }

    pub(super) fn primary(&mut self, depth: usize) -> Result<Node> {
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

    pub(super) fn count_term(&mut self, t: &Token) -> Result<()> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(self.error(t, format!("the expression has more than {MAX_TERMS} terms and calls")));
        }
        Ok(())
    }

    /// The arguments and ')' of a call whose '(' was just read.
    pub(super) fn call(&mut self, name: &str, usage: &str, open: &Token, depth: usize) -> Result<Node> {
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

    pub(super) fn word_id(&self, t: &Token, word: &str) -> Result<u32> {
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

