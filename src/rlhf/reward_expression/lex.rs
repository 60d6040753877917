//! The expression's characters as tokens, each with its column; the first character outside the
//! language is refused here.


use super::language::*;
use crate::error::LabError;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind {
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
pub(super) struct Token {
    pub(super) kind: Kind,
    /// 0-based index of the first character, and the number of characters.
    pub(super) start: usize,
    pub(super) len: usize,
}

pub(super) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Splits the characters into tokens, stopping at the first one that no token can hold.
pub(super) fn lex(chars: &[char]) -> (Vec<Token>, Option<LabError>) {
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

pub(super) fn bad_character(index: usize, c: char) -> LabError {
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

