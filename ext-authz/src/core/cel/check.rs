//! The load-time checker: walks the parsed (macro-expanded) tree once, with the activation's
//! declared types (see `schema`), and refuses what can be told wrong before any request:
//! unknown variables and functions, fields the fixed maps do not have, calls and operators
//! whose operand types can never fit (`request.method + 1`, `now == 'x'`, `now.startsWith('1')`),
//! `matches`/`inCidr` without a literal argument, comprehensions nested too deep, and a
//! worst-case cost over the bound. It returns the expression's type and the literals to
//! compile in place.
//!
//! What it cannot tell is left to run time: claims are `dyn` (any JSON value), so
//! `identity.claims.level > 3` on a string claim, a missing map key, or a division by zero is an
//! evaluation error, and the rule denies.

use cel::common::ast::{operators, CallExpr, ComprehensionExpr, EntryExpr, Expr, IdedExpr, LiteralValue};

use super::bounds::MAX_COMPREHENSION_DEPTH;
use super::built::is_macro_append;
use super::functions::{compile_regex, Literal};
use super::schema::{Ty, Var};
use super::size::Size;
use crate::core::cidr::parse_cidr;

/// What the checker found wrong, and at which node.
#[derive(Debug)]
pub struct CheckError {
    pub id: u64,
    pub message: String,
}

/// A well-typed expression's type, worst-case cost, and the literal arguments to compile in
/// place (node id → compiled form).
pub struct Checked {
    pub ty: Ty,
    pub cost: u64,
    pub literals: Vec<(u64, Literal)>,
}

pub fn check(expr: &IdedExpr) -> Result<Checked, CheckError> {
    let mut checker = Checker { scopes: Vec::new(), depth: 0, literals: Vec::new() };
    let (ty, cost, _) = checker.expr(expr)?;
    Ok(Checked { ty, cost, literals: checker.literals })
}

/// Names a program may use as type values (`type(x) == string`).
const TYPE_NAMES: [&str; 10] = ["bool", "bytes", "double", "int", "list", "map", "null_type", "string", "type", "uint"];

struct Checker {
    /// Comprehension variables in scope, innermost last (they shadow the activation's).
    scopes: Vec<(String, Ty)>,
    depth: usize,
    literals: Vec<(u64, Literal)>,
}

/// A node's type, its worst-case cost, and the bound of the value it gives.
type Typed = Result<(Ty, u64, Size), CheckError>;

fn error<T>(id: u64, message: impl Into<String>) -> Result<T, CheckError> {
    Err(CheckError { id, message: message.into() })
}

impl Checker {
    fn expr(&mut self, e: &IdedExpr) -> Typed {
        match &e.expr {
            Expr::Literal(literal) => Ok((literal_type(literal), 1, literal_size(literal))),
            Expr::Ident(name) => {
                let ty = self.ident(e.id, name)?;
                let size = Size::of(&ty);
                Ok((ty, 1, size))
            }
            Expr::Select(select) => {
                let (operand, cost, _) = self.expr(&select.operand)?;
                let field = field_type(select.operand.id, &operand, &select.field)?;
                let ty = if select.test { Ty::Bool } else { field };
                let size = Size::of(&ty);
                Ok((ty, cost + 1, size))
            }
            Expr::Call(call) => self.call(e.id, call),
            Expr::List(list) => {
                let mut element: Option<Ty> = None;
                let mut cost = 1;
                for item in &list.elements {
                    let (ty, c, _) = self.expr(item)?;
                    element = Some(element.map_or(ty.clone(), |t| t.join(&ty)));
                    cost += c;
                }
                Ok((Ty::List(Box::new(element.unwrap_or(Ty::Dyn))), cost, Size::entries(list.elements.len())))
            }
            Expr::Map(map) => {
                let (mut key, mut value): (Option<Ty>, Option<Ty>) = (None, None);
                let mut cost = 1;
                for entry in &map.entries {
                    let EntryExpr::MapEntry(entry) = &entry.expr else {
                        return error(e.id, "a map literal holds key: value entries only");
                    };
                    let (k, kc, _) = self.expr(&entry.key)?;
                    if !matches!(k, Ty::Dyn | Ty::String | Ty::Int | Ty::Uint | Ty::Bool) {
                        return error(entry.key.id, format!("a map key is a string, int, uint or bool, not a {k}"));
                    }
                    let (v, vc, _) = self.expr(&entry.value)?;
                    key = Some(key.map_or(k.clone(), |t| t.join(&k)));
                    value = Some(value.map_or(v.clone(), |t| t.join(&v)));
                    cost += kc + vc;
                }
                let ty = Ty::Map(Box::new(key.unwrap_or(Ty::Dyn)), Box::new(value.unwrap_or(Ty::Dyn)));
                Ok((ty, cost, Size::entries(map.entries.len())))
            }
            Expr::Comprehension(comprehension) => self.comprehension(e.id, comprehension),
            Expr::Struct(s) => error(e.id, format!("message literals ({} {{...}}) are not supported", s.type_name)),
            Expr::Unspecified => error(e.id, "an incomplete expression"),
        }
    }

    fn ident(&self, id: u64, name: &str) -> Result<Ty, CheckError> {
        if let Some((_, ty)) = self.scopes.iter().rev().find(|(n, _)| n == name) {
            return Ok(ty.clone());
        }
        if let Some(var) = Var::named(name) {
            return Ok(var.ty());
        }
        if TYPE_NAMES.contains(&name) {
            return Ok(Ty::Type);
        }
        error(
            id,
            format!("unknown variable '{name}' (the variables are request, source, identity, route, context and now)"),
        )
    }

    fn comprehension(&mut self, id: u64, c: &ComprehensionExpr) -> Typed {
        if self.depth >= MAX_COMPREHENSION_DEPTH {
            return error(
                id,
                format!(
                    "comprehensions (all, exists, exists_one, map, filter) nest deeper than {MAX_COMPREHENSION_DEPTH}"
                ),
            );
        }
        let (range, range_cost, range_size) = self.expr(&c.iter_range)?;
        let (first, second) = match &range {
            Ty::List(t) => (if c.iter_var2.is_some() { Ty::Int } else { (**t).clone() }, (**t).clone()),
            Ty::Map(k, v) => ((**k).clone(), (**v).clone()),
            Ty::Record(_) => (Ty::String, Ty::Dyn),
            Ty::Dyn => (Ty::Dyn, Ty::Dyn),
            other => return error(c.iter_range.id, format!("cannot iterate over a {other}")),
        };
        // As many rounds as the range may hold entries: a literal its length, `a + b` the sum of
        // theirs, a `map` or `filter` its own range's, a value of the request up to its bound.
        let rounds = range_size.entries;
        let (accu, init_cost, _) = self.expr(&c.accu_init)?;
        let outer = self.scopes.len();
        self.depth += 1;
        self.scopes.push((c.iter_var.clone(), first));
        if let Some(second_var) = &c.iter_var2 {
            self.scopes.push((second_var.clone(), second));
        }
        self.scopes.push((c.accu_var.clone(), accu.clone()));
        let body = (|| {
            let (cond, cond_cost, _) = self.expr(&c.loop_cond)?;
            if !matches!(cond, Ty::Bool | Ty::Dyn) {
                return error(c.loop_cond.id, format!("a loop condition is a bool, not a {cond}"));
            }
            let (step, step_cost, _) = self.expr(&c.loop_step)?;
            Ok((step, cond_cost + step_cost))
        })();
        self.scopes.truncate(outer);
        let (step, body_cost) = match body {
            Ok(body) => body,
            Err(e) => {
                self.depth -= 1;
                return Err(e);
            }
        };
        self.scopes.push((c.accu_var.clone(), accu.join(&step)));
        let result = self.expr(&c.result);
        self.scopes.truncate(outer);
        self.depth -= 1;
        let (result, result_cost, _) = result?;
        let cost = (range_cost + init_cost + result_cost).saturating_add(rounds.saturating_mul(body_cost));
        // A `map` or `filter` gives a list of at most one entry per round.
        let size = match &result {
            Ty::List(_) => Size { entries: rounds, bytes: 0 }.within(&result),
            _ => Size::of(&result),
        };
        Ok((result, cost, size))
    }

    fn call(&mut self, id: u64, call: &CallExpr) -> Typed {
        let name = call.func_name.as_str();
        let member = call.target.is_some();
        if name == "matches" || name == "inCidr" {
            return self.literal_call(id, call);
        }
        let mut cost = 1;
        let mut types = Vec::with_capacity(call.args.len() + 1);
        let mut sizes = Vec::with_capacity(call.args.len() + 1);
        if let Some(target) = &call.target {
            let (ty, c, size) = self.expr(target)?;
            types.push(ty);
            sizes.push(size);
            cost += c;
        }
        for arg in &call.args {
            let (ty, c, size) = self.expr(arg)?;
            types.push(ty);
            sizes.push(size);
            cost += c;
        }
        let ty = match (name, member, types.as_slice()) {
            (operators::LOGICAL_AND | operators::LOGICAL_OR, false, [a, b]) => {
                for (ty, arg) in [a, b].into_iter().zip(&call.args) {
                    if !matches!(ty, Ty::Bool | Ty::Dyn) {
                        let op = if name == operators::LOGICAL_AND { "&&" } else { "||" };
                        return error(arg.id, format!("'{op}' needs a bool, not a {ty}"));
                    }
                }
                Ty::Bool
            }
            (operators::LOGICAL_NOT, false, [a]) => match a {
                Ty::Bool | Ty::Dyn => Ty::Bool,
                _ => return error(id, format!("'!' needs a bool, not a {a}")),
            },
            (operators::NOT_STRICTLY_FALSE, false, [_]) => Ty::Bool,
            (operators::NEGATE, false, [a]) => match a {
                Ty::Int | Ty::Double | Ty::Dyn => a.clone(),
                _ => return error(id, format!("'-' needs an int or a double, not a {a}")),
            },
            (operators::EQUALS | operators::NOT_EQUALS, false, [a, b]) => {
                if !a.may_equal(b) {
                    return error(id, format!("a {a} is never equal to a {b}"));
                }
                Ty::Bool
            }
            (
                operators::LESS | operators::LESS_EQUALS | operators::GREATER | operators::GREATER_EQUALS,
                false,
                [a, b],
            ) => {
                let orderable = match (a, b) {
                    (Ty::Dyn, _) | (_, Ty::Dyn) => true,
                    (a, b) if a.is_numeric() && b.is_numeric() => true,
                    (Ty::String, Ty::String) | (Ty::Bytes, Ty::Bytes) | (Ty::Bool, Ty::Bool) => true,
                    _ => false,
                };
                if !orderable {
                    return error(id, format!("a {a} cannot be ordered against a {b}"));
                }
                Ty::Bool
            }
            (operators::ADD, false, [a, b]) => add(id, a, b)?,
            (operators::SUBSTRACT | operators::MULTIPLY | operators::DIVIDE | operators::MODULO, false, [a, b]) => {
                arithmetic(id, name, a, b)?
            }
            (operators::CONDITIONAL, false, [c, a, b]) => {
                if !matches!(c, Ty::Bool | Ty::Dyn) {
                    return error(call.args[0].id, format!("a condition is a bool, not a {c}"));
                }
                a.join(b)
            }
            (operators::INDEX, false, [container, index]) => self.index(id, &call.args[1], container, index)?,
            (operators::IN, false, [element, container]) => {
                let fits = match container {
                    Ty::List(t) => element.may_equal(t),
                    Ty::Map(k, _) => element.may_equal(k),
                    Ty::Record(_) => element.may_equal(&Ty::String),
                    Ty::Dyn => true,
                    _ => return error(id, format!("'in' needs a list or a map on its right, not a {container}")),
                };
                if !fits {
                    return error(id, format!("a {element} is never in a {container}"));
                }
                Ty::Bool
            }
            ("size", false, [a]) | ("size", true, [a]) => match a {
                Ty::String | Ty::Bytes | Ty::List(_) | Ty::Map(..) | Ty::Record(_) | Ty::Dyn => Ty::Int,
                _ => return error(id, format!("size() applies to a string, bytes, list or map, not a {a}")),
            },
            ("contains" | "startsWith" | "endsWith", true, [target, arg]) => {
                for ty in [target, arg] {
                    if !matches!(ty, Ty::String | Ty::Dyn) {
                        return error(id, format!("{name}() applies to strings, not a {ty}"));
                    }
                }
                Ty::Bool
            }
            ("int" | "uint" | "double", false, [a]) => match a {
                Ty::Int | Ty::Uint | Ty::Double | Ty::String | Ty::Dyn => match name {
                    "int" => Ty::Int,
                    "uint" => Ty::Uint,
                    _ => Ty::Double,
                },
                _ => return error(id, format!("{name}() converts a number or a string, not a {a}")),
            },
            ("string", false, [a]) => match a {
                Ty::Int | Ty::Uint | Ty::Double | Ty::String | Ty::Bool | Ty::Bytes | Ty::Dyn => Ty::String,
                _ => return error(id, format!("string() converts a scalar, not a {a}")),
            },
            ("bool", false, [a]) => match a {
                Ty::Bool | Ty::String | Ty::Dyn => Ty::Bool,
                _ => return error(id, format!("bool() converts a bool or a string, not a {a}")),
            },
            ("dyn", false, [_]) => Ty::Dyn,
            ("type", false, [_]) => Ty::Type,
            _ if is_known(name) => {
                let form = if member { "called on a value" } else { "called alone" };
                return error(id, format!("'{name}' cannot be {form} with {} argument(s) here", call.args.len()));
            }
            _ => {
                return error(
                    id,
                    format!(
                        "unknown function '{name}' (see docs/ext-authz.md, \"Conditions (CEL)\", for the functions)"
                    ),
                );
            }
        };
        let size = match (name, sizes.as_slice()) {
            (operators::ADD, [a, b]) => {
                let size = a.sum(*b).within(&ty);
                // What `+` copies; a macro's append (`map`, `filter`) is made in place.
                if !is_macro_append(&call.args) {
                    cost = cost.saturating_add(size.building_cost());
                }
                size
            }
            (operators::CONDITIONAL, [_, a, b]) => a.max(*b).within(&ty),
            ("dyn", [a]) => *a,
            _ => Size::of(&ty),
        };
        Ok((ty, cost, size))
    }

    /// `_[_]`: a list by position, a map by key, a fixed map by a literal field name.
    fn index(&self, id: u64, index_expr: &IdedExpr, container: &Ty, index: &Ty) -> Result<Ty, CheckError> {
        match container {
            Ty::List(t) if matches!(index, Ty::Int | Ty::Uint | Ty::Dyn) => Ok((**t).clone()),
            Ty::List(_) => error(id, format!("a list is indexed by an int, not a {index}")),
            Ty::Map(k, v) if index.may_equal(k) => Ok((**v).clone()),
            Ty::Map(k, _) => error(id, format!("this map's keys are {k}, not {index}")),
            Ty::Record(_) => match &index_expr.expr {
                Expr::Literal(LiteralValue::String(field)) => field_type(index_expr.id, container, field.inner()),
                _ if matches!(index, Ty::String | Ty::Dyn) => Ok(Ty::Dyn),
                _ => error(id, format!("a field name is a string, not a {index}")),
            },
            Ty::Dyn => Ok(Ty::Dyn),
            other => error(id, format!("a {other} cannot be indexed")),
        }
    }

    /// `matches` and `inCidr`: the subject is checked as any operand; the pattern or block must
    /// be a string literal, compiled here.
    fn literal_call(&mut self, id: u64, call: &CallExpr) -> Typed {
        let name = call.func_name.as_str();
        let (subject, literal) = match (&call.target, call.args.as_slice()) {
            (Some(target), [literal]) => (&**target, literal),
            (None, [subject, literal]) if name == "matches" => (subject, literal),
            _ => {
                let usage = if name == "matches" { "text.matches('pattern')" } else { "ip.inCidr('10.0.0.0/8')" };
                return error(id, format!("'{name}' is called as {usage}"));
            }
        };
        let (ty, cost, _) = self.expr(subject)?;
        if !matches!(ty, Ty::String | Ty::Dyn) {
            return error(id, format!("{name}() applies to a string, not a {ty}"));
        }
        let Expr::Literal(LiteralValue::String(text)) = &literal.expr else {
            return error(
                literal.id,
                format!("the argument of {name}() must be a string literal (compiled when the config is loaded)"),
            );
        };
        let compiled = if name == "matches" {
            compile_regex(text.inner()).map(|regex| Literal::Regex(regex.into()))
        } else {
            parse_cidr(text.inner()).map(Literal::Cidr)
        };
        match compiled {
            Ok(compiled) => self.literals.push((literal.id, compiled)),
            Err(message) => return error(literal.id, message),
        }
        Ok((Ty::Bool, cost + 2, Size::NONE))
    }
}

fn is_known(name: &str) -> bool {
    matches!(
        name,
        "size"
            | "contains"
            | "startsWith"
            | "endsWith"
            | "int"
            | "uint"
            | "double"
            | "string"
            | "bool"
            | "dyn"
            | "type"
    ) || name.starts_with('_')
        || name.starts_with('@')
        || name.starts_with("!_")
        || name.starts_with("-_")
}

fn literal_size(literal: &LiteralValue) -> Size {
    match literal {
        LiteralValue::String(text) => Size::bytes(text.inner().len()),
        LiteralValue::Bytes(bytes) => Size::bytes(bytes.len()),
        _ => Size::NONE,
    }
}

fn literal_type(literal: &LiteralValue) -> Ty {
    match literal {
        LiteralValue::Boolean(_) => Ty::Bool,
        LiteralValue::Bytes(_) => Ty::Bytes,
        LiteralValue::Double(_) => Ty::Double,
        LiteralValue::Int(_) => Ty::Int,
        LiteralValue::Null => Ty::Null,
        LiteralValue::String(_) => Ty::String,
        LiteralValue::UInt(_) => Ty::Uint,
    }
}

/// `operand.field`: a fixed map's field (or an error naming its fields), an open map's value.
fn field_type(id: u64, operand: &Ty, field: &str) -> Result<Ty, CheckError> {
    match operand {
        Ty::Record(record) => record.field(field).map_or_else(
            || {
                error(
                    id,
                    format!("{} has no field '{field}' (its fields: {})", record.name(), record.fields().join(", ")),
                )
            },
            Ok,
        ),
        Ty::Map(k, v) if k.may_equal(&Ty::String) => Ok((**v).clone()),
        Ty::Dyn => Ok(Ty::Dyn),
        other => error(id, format!("a {other} has no fields (reading '{field}')")),
    }
}

fn add(id: u64, a: &Ty, b: &Ty) -> Result<Ty, CheckError> {
    let addable =
        |t: &Ty| matches!(t, Ty::Int | Ty::Uint | Ty::Double | Ty::String | Ty::Bytes | Ty::List(_) | Ty::Dyn);
    match (a, b) {
        (Ty::List(x), Ty::List(y)) => Ok(Ty::List(Box::new(x.join(y)))),
        (Ty::Dyn, t) | (t, Ty::Dyn) if addable(t) => Ok(t.clone()),
        (x, y) if x == y && addable(x) => Ok(x.clone()),
        _ => error(id, format!("'+' does not apply to a {a} and a {b}")),
    }
}

fn arithmetic(id: u64, name: &str, a: &Ty, b: &Ty) -> Result<Ty, CheckError> {
    let op = name.trim_matches('_');
    let fits = |t: &Ty| match op {
        "%" => matches!(t, Ty::Int | Ty::Uint | Ty::Dyn),
        _ => matches!(t, Ty::Int | Ty::Uint | Ty::Double | Ty::Dyn),
    };
    match (a, b) {
        (Ty::Dyn, t) | (t, Ty::Dyn) if fits(t) => Ok(t.clone()),
        (x, y) if x == y && fits(x) => Ok(x.clone()),
        _ => error(id, format!("'{op}' does not apply to a {a} and a {b} (convert with int(), uint() or double())")),
    }
}
