//! From the parsed tree (macros expanded, `matches`/`inCidr` literals bound as `@N`) to the
//! direct evaluator's tree, when every node is in its subset; `None` otherwise (the expression is
//! the interpreter's).

use cel::common::ast::{operators, CallExpr, Expr, IdedExpr, LiteralValue};
use cel::common::value::Val;

use super::{Lit, Node, Op, Path, Program, TextTest};
use crate::core::cel::functions::Literal;
use crate::core::cel::schema::Var;
use crate::core::cel::slots::slot_index;

pub fn compile(expr: &IdedExpr, literals: &[Box<dyn Val>]) -> Option<Program> {
    Some(Program { root: node(expr, literals)? })
}

fn node(e: &IdedExpr, literals: &[Box<dyn Val>]) -> Option<Node> {
    let boxed = |e: &IdedExpr| node(e, literals).map(Box::new);
    match &e.expr {
        Expr::Literal(literal) => Some(Node::Lit(lit(literal)?)),
        Expr::Ident(_) => Some(Node::Read(path(e)?)),
        Expr::Select(select) if select.test => {
            let mut tested = path(&select.operand)?;
            tested.steps.push(select.field.clone());
            Some(Node::Has(tested))
        }
        Expr::Select(_) => Some(Node::Read(path(e)?)),
        Expr::Call(call) => {
            let name = call.func_name.as_str();
            match (call.target.as_deref(), call.args.as_slice()) {
                (None, [_, _]) if name == operators::INDEX => Some(Node::Read(path(e)?)),
                (None, [left, right]) => {
                    let op = match name {
                        operators::LOGICAL_AND => return Some(Node::And(boxed(left)?, boxed(right)?)),
                        operators::LOGICAL_OR => return Some(Node::Or(boxed(left)?, boxed(right)?)),
                        operators::IN => return in_(left, right, literals),
                        "matches" => return pattern(left, right, literals),
                        operators::EQUALS => Op::Eq,
                        operators::NOT_EQUALS => Op::Ne,
                        operators::LESS => Op::Lt,
                        operators::LESS_EQUALS => Op::Le,
                        operators::GREATER => Op::Gt,
                        operators::GREATER_EQUALS => Op::Ge,
                        _ => return None,
                    };
                    Some(Node::Cmp(op, boxed(left)?, boxed(right)?))
                }
                (None, [operand]) if name == operators::LOGICAL_NOT => Some(Node::Not(boxed(operand)?)),
                (None, [operand]) | (Some(operand), []) if name == "size" => Some(Node::Size(boxed(operand)?)),
                (Some(target), [argument]) => member(name, call, target, argument, literals),
                _ => None,
            }
        }
        _ => None,
    }
}

fn member(
    name: &str,
    call: &CallExpr,
    target: &IdedExpr,
    argument: &IdedExpr,
    literals: &[Box<dyn Val>],
) -> Option<Node> {
    debug_assert_eq!(call.args.len(), 1);
    let test = match name {
        "startsWith" => TextTest::StartsWith,
        "endsWith" => TextTest::EndsWith,
        "contains" => TextTest::Contains,
        "matches" => return pattern(target, argument, literals),
        "inCidr" => match compiled(argument, literals)? {
            Literal::Cidr(net) => return Some(Node::InCidr(Box::new(node(target, literals)?), *net)),
            Literal::Regex(_) => return None,
        },
        _ => return None,
    };
    let Expr::Literal(LiteralValue::String(needle)) = &argument.expr else { return None };
    Some(Node::Text(test, Box::new(node(target, literals)?), needle.inner().to_string()))
}

fn pattern(target: &IdedExpr, argument: &IdedExpr, literals: &[Box<dyn Val>]) -> Option<Node> {
    match compiled(argument, literals)? {
        Literal::Regex(regex) => Some(Node::Matches(Box::new(node(target, literals)?), regex.clone())),
        Literal::Cidr(_) => None,
    }
}

/// A `@N` reference to a compiled literal.
fn compiled<'l>(argument: &IdedExpr, literals: &'l [Box<dyn Val>]) -> Option<&'l Literal> {
    let Expr::Ident(name) = &argument.expr else { return None };
    literals.get(slot_index(name)?)?.downcast_ref::<Literal>()
}

/// `literal in path` (a map: that key alone is looked at), or `value in [literals]`.
fn in_(left: &IdedExpr, right: &IdedExpr, literals: &[Box<dyn Val>]) -> Option<Node> {
    if let Expr::List(list) = &right.expr {
        if !list.optional_indices.is_empty() {
            return None;
        }
        let items = list.elements.iter().map(|item| match &item.expr {
            Expr::Literal(literal) => lit(literal),
            _ => None,
        });
        return Some(Node::InList(Box::new(node(left, literals)?), items.collect::<Option<_>>()?));
    }
    let Expr::Literal(literal) = &left.expr else { return None };
    Some(Node::In(lit(literal)?, path(right)?))
}

fn lit(literal: &LiteralValue) -> Option<Lit> {
    Some(match literal {
        LiteralValue::Null => Lit::Null,
        LiteralValue::Boolean(b) => Lit::Bool(*b.inner()),
        LiteralValue::Int(i) => Lit::Int(*i.inner()),
        LiteralValue::UInt(u) => Lit::UInt(*u.inner()),
        LiteralValue::Double(d) => Lit::Double(*d.inner()),
        LiteralValue::String(s) => Lit::Str(s.inner().to_string()),
        LiteralValue::Bytes(_) => return None,
    })
}

/// `var.a['b'].c` as the variable and its steps.
fn path(e: &IdedExpr) -> Option<Path> {
    match &e.expr {
        Expr::Ident(name) => Some(Path { var: Var::named(name)?, steps: Vec::new() }),
        Expr::Select(select) if !select.test => {
            let mut path = path(&select.operand)?;
            path.steps.push(select.field.clone());
            Some(path)
        }
        Expr::Call(call) if call.func_name == operators::INDEX && call.target.is_none() && call.args.len() == 2 => {
            let Expr::Literal(LiteralValue::String(key)) = &call.args[1].expr else { return None };
            let mut path = path(&call.args[0])?;
            path.steps.push(key.inner().to_string());
            Some(path)
        }
        _ => None,
    }
}
