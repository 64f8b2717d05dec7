//! A direct evaluator for the common conditions: compiled at load from the parsed tree into a
//! small tree of our own (compile.rs) that reads the request's facts where they are (read.rs),
//! with no CEL values built and no variable looked up by name. It covers literals, fields and
//! literal keys of the activation, comparisons, `&&`/`||`/`!`, `in`, `has()`, the string tests,
//! `size()`, `matches` and `inCidr`, with the interpreter's semantics (a differential test,
//! tests/direct.rs, holds it to them). An expression outside that subset, and any evaluation that
//! meets a case the subset leaves to the interpreter (a comparison of mixed types, a list
//! compared whole, ...), is evaluated by the interpreter instead, unchanged.
//!
//! The value bounds are checked first, on what the expression reads (bounds.rs), as the
//! interpreter's activation checks them when it converts the values.

mod bounds;
mod compile;
mod read;

use std::borrow::Cow;
use std::cmp::Ordering;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use regex::Regex;

use super::needs::Needs;
use super::schema::Var;
use super::{EvalError, Facts};
pub use compile::compile;
use read::{Map, V};

/// A compiled condition of the subset.
#[derive(Debug)]
pub struct Program {
    root: Node,
}

#[derive(Debug)]
enum Node {
    Lit(Lit),
    /// The value at a path of the activation (`request.headers['x']`, `identity.claims.a.b`).
    Read(Path),
    /// `has(a.b)`: whether the map at the path's parent holds its last step.
    Has(Path),
    /// A literal in the list or map at a path (a map: that key alone is looked at).
    In(Lit, Path),
    /// A value in a literal list.
    InList(Box<Node>, Vec<Lit>),
    Not(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Cmp(Op, Box<Node>, Box<Node>),
    Text(TextTest, Box<Node>, String),
    Size(Box<Node>),
    Matches(Box<Node>, Arc<Regex>),
    InCidr(Box<Node>, IpNet),
}

#[derive(Debug)]
enum Lit {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    Str(String),
}

#[derive(Debug)]
struct Path {
    var: Var,
    steps: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy)]
enum TextTest {
    StartsWith,
    EndsWith,
    Contains,
}

/// Why the direct evaluation stopped: an evaluation error (the answer), or a case it leaves to
/// the interpreter.
enum Stop {
    Error(EvalError),
    Interpreter,
}

impl From<EvalError> for Stop {
    fn from(error: EvalError) -> Stop {
        Stop::Error(error)
    }
}

type Out<'a> = Result<V<'a>, Stop>;

impl Program {
    /// The answer, or `None` when the interpreter must give it.
    pub fn evaluate(&self, facts: &Facts<'_>, needs: &Needs, source: &str) -> Option<Result<bool, EvalError>> {
        let result = bounds::check(facts, needs).and_then(|()| Eval { facts, source }.node(&self.root));
        match result {
            Ok(V::Bool(holds)) => Some(Ok(holds)),
            Err(Stop::Error(error)) => Some(Err(error)),
            Ok(_) | Err(Stop::Interpreter) => None,
        }
    }
}

struct Eval<'f, 'a> {
    facts: &'f Facts<'a>,
    source: &'f str,
}

impl<'f, 'a> Eval<'f, 'a> {
    fn node<'n>(&self, node: &'n Node) -> Result<V<'n>, Stop>
    where
        'a: 'n,
        'f: 'n,
    {
        Ok(match node {
            Node::Lit(lit) => lit.value(),
            Node::Read(path) => self.read(path)?,
            Node::Has(path) => {
                let (key, parent) = path.steps.split_last().ok_or(Stop::Interpreter)?;
                match self.read_steps(path.var, parent)? {
                    V::Map(map) if !map.is_record() => V::Bool(read::get(self.facts, &map, key).is_some()),
                    _ => return Err(Stop::Interpreter),
                }
            }
            Node::In(lit, path) => match (lit, self.read(path)?) {
                (Lit::Str(key), V::Map(map)) if !map.is_record() => V::Bool(read::get(self.facts, &map, key).is_some()),
                (_, V::Map(_)) => return Err(Stop::Interpreter),
                (lit, V::Scopes(scopes)) => {
                    V::Bool(matches!(lit, Lit::Str(s) if scopes.iter().any(|scope| scope == s)))
                }
                (lit, V::List(items)) => {
                    let needle = lit.value();
                    V::Bool(items.iter().any(|item| equals(&read::json(item), &needle) == Some(true)))
                }
                _ => return Err(Stop::Interpreter),
            },
            Node::InList(value, list) => {
                let value = self.node(value)?;
                let mut found = false;
                for item in list {
                    found |= equals(&item.value(), &value).ok_or(Stop::Interpreter)?;
                }
                V::Bool(found)
            }
            Node::Not(operand) => V::Bool(!self.boolean(operand)?),
            Node::And(left, right) => self.logic(left, right, false)?,
            Node::Or(left, right) => self.logic(left, right, true)?,
            Node::Cmp(op, left, right) => {
                let (left, right) = (self.node(left)?, self.node(right)?);
                V::Bool(match op {
                    Op::Eq => equals(&left, &right).ok_or(Stop::Interpreter)?,
                    Op::Ne => !equals(&left, &right).ok_or(Stop::Interpreter)?,
                    Op::Lt => order(&left, &right)? == Ordering::Less,
                    Op::Le => order(&left, &right)? != Ordering::Greater,
                    Op::Gt => order(&left, &right)? == Ordering::Greater,
                    Op::Ge => order(&left, &right)? != Ordering::Less,
                })
            }
            Node::Text(test, target, needle) => {
                let text = self.text(target)?;
                V::Bool(match test {
                    TextTest::StartsWith => text.starts_with(needle.as_str()),
                    TextTest::EndsWith => text.ends_with(needle.as_str()),
                    TextTest::Contains => text.contains(needle.as_str()),
                })
            }
            Node::Size(target) => match self.node(target)? {
                V::Str(text) => V::Int(text.chars().count() as i64),
                V::Scopes(scopes) => V::Int(scopes.len() as i64),
                V::List(items) => V::Int(items.len() as i64),
                _ => return Err(Stop::Interpreter),
            },
            Node::Matches(target, regex) => V::Bool(regex.is_match(&self.text(target)?)),
            Node::InCidr(target, net) => {
                // The text is a request's: the error never repeats it.
                let ip = self
                    .text(target)?
                    .parse::<IpAddr>()
                    .map_err(|_| EvalError("inCidr: the value is not an IP address".into()))?;
                V::Bool(net.contains(&ip.to_canonical()))
            }
        })
    }

    /// `&&` (`stop_on` false) and `||` (true) as CEL has them: an error on one side is absorbed
    /// when the other side alone decides (`false && error` is false, `error || true` true).
    fn logic<'n>(&self, left: &'n Node, right: &'n Node, stop_on: bool) -> Out<'n>
    where
        'a: 'n,
        'f: 'n,
    {
        let left = match self.boolean(left) {
            Ok(left) if left == stop_on => return Ok(V::Bool(stop_on)),
            Ok(_) => Ok(()),
            Err(Stop::Error(error)) => Err(error),
            Err(Stop::Interpreter) => return Err(Stop::Interpreter),
        };
        let right = self.boolean(right)?;
        match left {
            Ok(()) => Ok(V::Bool(right)),
            Err(_) if right == stop_on => Ok(V::Bool(stop_on)),
            Err(error) => Err(Stop::Error(error)),
        }
    }

    fn boolean(&self, node: &Node) -> Result<bool, Stop> {
        match self.node(node)? {
            V::Bool(b) => Ok(b),
            _ => Err(Stop::Interpreter),
        }
    }

    fn text<'n>(&self, node: &'n Node) -> Result<Cow<'n, str>, Stop>
    where
        'a: 'n,
        'f: 'n,
    {
        match self.node(node)? {
            V::Str(text) => Ok(text),
            _ => Err(Stop::Interpreter),
        }
    }

    fn read(&self, path: &Path) -> Out<'a> {
        self.read_steps(path.var, &path.steps)
    }

    fn read_steps(&self, var: Var, steps: &[String]) -> Out<'a> {
        let mut value = read::var(self.facts, var);
        for step in steps {
            value = match value {
                V::Map(map) => match read::get(self.facts, &map, step) {
                    Some(value) => value?,
                    None => return Err(Stop::Error(super::eval_errors::no_such_key(step, self.source))),
                },
                _ => return Err(Stop::Interpreter),
            };
        }
        Ok(value)
    }
}

impl Lit {
    fn value(&self) -> V<'_> {
        match self {
            Lit::Null => V::Null,
            Lit::Bool(b) => V::Bool(*b),
            Lit::Int(i) => V::Int(*i),
            Lit::UInt(u) => V::UInt(*u),
            Lit::Double(d) => V::Double(*d),
            Lit::Str(s) => V::Str(Cow::Borrowed(s)),
        }
    }
}

/// CEL's equality: numbers compare across int, uint and double; values of different kinds are
/// not equal. `None`: a list or map, left to the interpreter.
fn equals(left: &V<'_>, right: &V<'_>) -> Option<bool> {
    Some(match (left, right) {
        (V::List(_) | V::Scopes(_) | V::Map(_), _) | (_, V::List(_) | V::Scopes(_) | V::Map(_)) => return None,
        (V::Null, V::Null) => true,
        (V::Bool(a), V::Bool(b)) => a == b,
        (V::Str(a), V::Str(b)) => a == b,
        _ => numbers(left, right) == Some(Ordering::Equal),
    })
}

/// CEL's ordering of two values of one kind (numbers across kinds); anything else (an error in
/// the interpreter) is left to it.
fn order(left: &V<'_>, right: &V<'_>) -> Result<Ordering, Stop> {
    match (left, right) {
        (V::Bool(a), V::Bool(b)) => Ok(a.cmp(b)),
        (V::Str(a), V::Str(b)) => Ok(a.cmp(b)),
        _ => numbers(left, right).ok_or(Stop::Interpreter),
    }
}

fn numbers(left: &V<'_>, right: &V<'_>) -> Option<Ordering> {
    let (a, b) = (number(left)?, number(right)?);
    match (a, b) {
        (Number::Int(a), Number::Int(b)) => Some(a.cmp(&b)),
        (Number::UInt(a), Number::UInt(b)) => Some(a.cmp(&b)),
        (Number::Int(a), Number::UInt(b)) => Some(u64::try_from(a).map_or(Ordering::Less, |a| a.cmp(&b))),
        (Number::UInt(a), Number::Int(b)) => Some(i64::try_from(a).map_or(Ordering::Greater, |a| a.cmp(&b))),
        (Number::Double(a), Number::Double(b)) => a.partial_cmp(&b),
        (Number::Int(a), Number::Double(b)) => (a as f64).partial_cmp(&b),
        (Number::UInt(a), Number::Double(b)) => (a as f64).partial_cmp(&b),
        (Number::Double(a), Number::Int(b)) => a.partial_cmp(&(b as f64)),
        (Number::Double(a), Number::UInt(b)) => a.partial_cmp(&(b as f64)),
    }
}

#[derive(Clone, Copy)]
enum Number {
    Int(i64),
    UInt(u64),
    Double(f64),
}

fn number(value: &V<'_>) -> Option<Number> {
    match value {
        V::Int(i) => Some(Number::Int(*i)),
        V::UInt(u) => Some(Number::UInt(*u)),
        V::Double(d) => Some(Number::Double(*d)),
        _ => None,
    }
}

impl Map<'_> {
    fn is_record(&self) -> bool {
        matches!(self, Map::Request | Map::Source | Map::Identity)
    }
}
