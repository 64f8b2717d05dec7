//! The CEL environment: the standard library (without the optional syntax and without the
//! crate's own `matches`, which compiles its pattern on every call), and our two functions,
//! whose literal argument is compiled once at load:
//!
//! - `text.matches('regex')` (or `matches(text, 'regex')`): the `regex` crate's syntax and
//!   linear-time matching, unanchored like CEL's own `matches`;
//! - `ip.inCidr('10.0.0.0/8')`: whether an IP address (text, as `source.client`) is in an IPv4
//!   or IPv6 CIDR block, parsed as the rules' address lists are (`cidr::parse_cidr`: a single
//!   address is a /32 or /128, host bits set are refused); an IPv4 address mapped into IPv6
//!   (`::ffff:10.1.2.3`) counts as IPv4.
//!
//! The literal is replaced in the syntax tree by a reference to its compiled form (an opaque
//! value bound per expression, see `Expression::evaluate`), so nothing is parsed per request.

use std::any::Any;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};

use cel::common::types::{CelBool, CelString, Kind, Type, DYN_TYPE, STRING_TYPE};
use cel::common::value::{CowVal, StaticVal, Val};
use cel::{Env, ExecutionError};
use ipnet::IpNet;
use regex::{Regex, RegexBuilder};

use super::bounds::{MAX_PATTERN_BYTES, MAX_REGEX_SIZE};
use super::built;

// Constants for the declarations (a `Type` is not `Clone`), statics for `Val::get_type`.
const REGEX: Type = Type::simple_type(Kind::Opaque, "gatehouse.regex");
const CIDR: Type = Type::simple_type(Kind::Opaque, "gatehouse.cidr");
static REGEX_TYPE: Type = REGEX;
static CIDR_TYPE: Type = CIDR;

static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(build_env()));

/// The environment every expression is parsed and evaluated in.
pub fn env() -> &'static Arc<Env> {
    &ENV
}

fn build_env() -> Env {
    let mut env = Env::stdlib().with_optional_support(false);
    // The registrations cannot clash: the crate's `matches` needs its `regex` feature (off), and
    // `inCidr` and `@+` (what `+` is renamed to, see `built`) are ours alone.
    let declared = [
        env.add_member_overload("matches", "gatehouse_string_matches", STRING_TYPE, vec![REGEX], matches),
        env.add_overload("matches", "gatehouse_matches", vec![STRING_TYPE, REGEX], matches),
        env.add_member_overload("inCidr", "gatehouse_string_in_cidr", STRING_TYPE, vec![CIDR], in_cidr),
        env.add_overload(built::ADD, "gatehouse_bounded_add", vec![DYN_TYPE, DYN_TYPE], built::add),
    ];
    for result in declared {
        if let Err(e) = result {
            unreachable!("the CEL environment's own declarations clash: {e}");
        }
    }
    env
}

/// A compiled literal argument, bound as an opaque value.
#[derive(Debug, Clone)]
pub enum Literal {
    Regex(Arc<Regex>),
    Cidr(IpNet),
}

impl Val for Literal {
    fn get_type(&self) -> &Type {
        match self {
            Literal::Regex(_) => &REGEX_TYPE,
            Literal::Cidr(_) => &CIDR_TYPE,
        }
    }

    fn cel_type() -> &'static Type {
        // Its type varies per value; the overload macros never name it.
        &REGEX_TYPE
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }
}

impl StaticVal for Literal {}

/// A `matches` pattern, compiled with bounded size (the `regex` crate matches in linear time).
pub fn compile_regex(pattern: &str) -> Result<Regex, String> {
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(format!("the pattern is {} bytes, over the bound of {MAX_PATTERN_BYTES}", pattern.len()));
    }
    RegexBuilder::new(pattern)
        .size_limit(MAX_REGEX_SIZE)
        .dfa_size_limit(MAX_REGEX_SIZE)
        .build()
        // The crate's text spans several lines (the pattern, a caret); its last one says what.
        .map_err(|e| {
            let text = e.to_string();
            let what = text.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or("").trim();
            format!("invalid regular expression: {}", what.trim_start_matches("error: "))
        })
}

fn matches<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (text, literal) = two(&args, "matches")?;
    match literal {
        Literal::Regex(regex) => Ok(CowVal::owned(CelBool::from(regex.is_match(text)))),
        Literal::Cidr(_) => Err(ExecutionError::function_error("matches", "not a pattern")),
    }
}

fn in_cidr<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (text, literal) = two(&args, "inCidr")?;
    let Literal::Cidr(net) = literal else {
        return Err(ExecutionError::function_error("inCidr", "not a CIDR block"));
    };
    // The text is a request's (an address, maybe a header): the error never repeats it.
    let ip = text
        .parse::<IpAddr>()
        .map_err(|_| ExecutionError::function_error("inCidr", "the value is not an IP address"))?;
    Ok(CowVal::owned(CelBool::from(net.contains(&ip.to_canonical()))))
}

fn two<'a>(args: &'a [CowVal<'_, '_>], function: &str) -> Result<(&'a str, &'a Literal), ExecutionError> {
    let [text, literal] = args else {
        return Err(ExecutionError::invalid_argument_count(2, args.len()));
    };
    let text = text
        .downcast_ref::<CelString>()
        .ok_or_else(|| ExecutionError::function_error(function, "the value is not a string"))?;
    let literal = literal
        .downcast_ref::<Literal>()
        .ok_or_else(|| ExecutionError::function_error(function, "the argument is not a literal"))?;
    Ok((text.inner(), literal))
}
