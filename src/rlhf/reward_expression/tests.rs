//! The expression language's tests: hostile input refused by column, hand-worked values, no panic.

use super::language::{FIELD, FUNCTIONS, TERMS};
use super::*;
use crate::error::LabError;
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
