//! Inputs for the property ("fuzz") tests of every parser fed by outsiders, shared by the
//! crates' `tests/fuzz.rs` through `#[path]` so that no test support is compiled into the
//! product. Each target draws from three kinds of input, because each finds different bugs:
//!
//! - mutations of valid samples (truncated, spans deleted or repeated, grammar tokens
//!   inserted): they get past the first checks and reach deep code paths;
//! - random text;
//! - random bytes (as lossy UTF-8 where the parser takes text).
//!
//! The number of cases per target comes from `PROPTEST_CASES` (proptest reads it): a few
//! hundred in the test command, as many as time allows in `scripts/fuzz.sh`.
#![allow(dead_code)]

use proptest::prelude::*;

/// One edit of a sample, positions as fractions of its length.
#[derive(Debug, Clone)]
enum Edit {
    Truncate(f64),
    Delete(f64, f64),
    Repeat(f64, f64, u8),
    Insert(f64, String),
}

fn edit(tokens: &'static [&'static str]) -> impl Strategy<Value = Edit> {
    let fraction = 0.0..=1.0f64;
    prop_oneof![
        fraction.clone().prop_map(Edit::Truncate),
        (fraction.clone(), fraction.clone()).prop_map(|(a, b)| Edit::Delete(a, b)),
        (fraction.clone(), fraction.clone(), 1u8..50).prop_map(|(a, b, n)| Edit::Repeat(a, b, n)),
        (fraction.clone(), proptest::sample::select(tokens).prop_map(str::to_string))
            .prop_map(|(at, t)| Edit::Insert(at, t)),
        (fraction, any::<String>()).prop_map(|(at, t)| Edit::Insert(at, t)),
    ]
}

/// The byte index at `fraction` of `text`, moved back to a character boundary.
fn at(text: &str, fraction: f64) -> usize {
    let mut index = ((text.len() as f64) * fraction) as usize;
    while index > 0 && !text.is_char_boundary(index) {
        index -= 1;
    }
    index.min(text.len())
}

fn apply(mut text: String, edits: Vec<Edit>) -> String {
    for edit in edits {
        match edit {
            Edit::Truncate(f) => text.truncate(at(&text, f)),
            Edit::Delete(a, b) => {
                let (start, end) = (at(&text, a.min(b)), at(&text, a.max(b)));
                text.replace_range(start..end, "");
            }
            Edit::Repeat(a, b, n) => {
                let (start, end) = (at(&text, a.min(b)), at(&text, a.max(b)));
                let span = text[start..end].repeat(usize::from(n));
                // Bounded: a repeat never grows a case past 64 KiB.
                if text.len() + span.len() <= 64 << 10 {
                    text.insert_str(end, &span);
                }
            }
            Edit::Insert(f, token) => {
                let index = at(&text, f);
                text.insert_str(index, &token);
            }
        }
    }
    text
}

/// Text for a parser: a mutated sample (most cases), random text or random bytes.
pub fn text(samples: Vec<String>, tokens: &'static [&'static str]) -> impl Strategy<Value = String> {
    let mutated = (proptest::sample::select(samples), proptest::collection::vec(edit(tokens), 0..6))
        .prop_map(|(sample, edits)| apply(sample, edits));
    prop_oneof![
        6 => mutated,
        1 => any::<String>(),
        1 => proptest::collection::vec(any::<u8>(), 0..512).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

/// Bytes for a binary decoder: a mutated encoding of a valid message, or random bytes.
pub fn bytes(samples: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let mutated = (proptest::sample::select(samples), proptest::collection::vec((any::<u16>(), any::<u8>()), 0..8))
        .prop_map(|(mut sample, flips)| {
            for (position, value) in flips {
                if !sample.is_empty() {
                    let index = usize::from(position) % sample.len();
                    sample[index] = value;
                }
            }
            sample
        });
    prop_oneof![3 => mutated, 1 => proptest::collection::vec(any::<u8>(), 0..2048)]
}

/// Tokens that matter to YAML.
pub const YAML_TOKENS: &[&str] = &[
    "\n",
    "  ",
    "- ",
    ": ",
    "&a ",
    "*a",
    "<<: *a",
    "[",
    "]",
    "{",
    "}",
    ",",
    "'",
    "\"",
    "|",
    ">",
    "#",
    "!!str ",
    "!!int ",
    "~",
    "null",
    "yes",
    "0x",
    "1e400",
    "-1",
    "18446744073709551616",
    "...",
    "---",
    "\t",
    "%YAML 1.2\n",
    "? ",
];

/// Tokens that matter to JSON.
pub const JSON_TOKENS: &[&str] =
    &["{", "}", "[", "]", ",", ":", "\"", "\\u0000", "\\ud800", "null", "true", "-0", "1e999", "18446744073709551616"];
