//! Which parts of the activation an expression reads, found in its tree at load: a variable, and
//! below it the fields or keys named literally (`request.headers['x-tenant']`,
//! `identity.claims.org`). A request's activation converts only those: a condition on one
//! header does not copy every header and claim. Anything read another way (iterated, indexed
//! by a computed key, compared whole) needs all of it.

use std::collections::BTreeMap;

use cel::common::ast::{operators, EntryExpr, Expr, IdedExpr, LiteralValue};

use super::schema::Var;

/// The part of a value that is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    All,
    /// Only these keys (each with what is read of it).
    Fields(BTreeMap<String, Need>),
}

static ALL: Need = Need::All;

impl Need {
    fn add(&mut self, path: &[String]) {
        let Need::Fields(fields) = self else { return };
        match path.split_first() {
            None => *self = Need::All,
            Some((field, rest)) => {
                fields.entry(field.clone()).or_insert_with(|| Need::Fields(BTreeMap::new())).add(rest)
            }
        }
    }

    /// Whether what `self` holds includes what `other` reads.
    pub fn covers(&self, other: &Need) -> bool {
        match (self, other) {
            (Need::All, _) => true,
            (Need::Fields(_), Need::All) => false,
            (Need::Fields(mine), Need::Fields(theirs)) => {
                theirs.iter().all(|(key, need)| mine.get(key).is_some_and(|held| held.covers(need)))
            }
        }
    }

    pub fn merge(&mut self, other: &Need) {
        match (&mut *self, other) {
            (Need::All, _) => {}
            (_, Need::All) => *self = Need::All,
            (Need::Fields(mine), Need::Fields(theirs)) => {
                for (key, need) in theirs {
                    match mine.get_mut(key) {
                        Some(held) => held.merge(need),
                        None => {
                            mine.insert(key.clone(), need.clone());
                        }
                    }
                }
            }
        }
    }

    /// What is read of the key `name`, if anything.
    pub fn field(&self, name: &str) -> Option<&Need> {
        match self {
            Need::All => Some(&ALL),
            Need::Fields(fields) => fields.get(name),
        }
    }

    /// The keys read, or `None` for all of them.
    pub fn keys(&self) -> Option<impl Iterator<Item = &str>> {
        match self {
            Need::All => None,
            Need::Fields(fields) => Some(fields.keys().map(String::as_str)),
        }
    }
}

/// What an expression reads of each variable (`None`: not read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs([Option<Need>; 6]);

impl Needs {
    pub fn of(expr: &IdedExpr) -> Needs {
        let mut needs = Needs::default();
        walk(expr, &mut Vec::new(), &mut needs);
        needs
    }

    pub fn get(&self, var: Var) -> Option<&Need> {
        self.0[var.index()].as_ref()
    }

    fn add(&mut self, var: Var, path: &[String]) {
        self.0[var.index()].get_or_insert_with(|| Need::Fields(BTreeMap::new())).add(path);
    }
}

fn walk(e: &IdedExpr, shadowed: &mut Vec<String>, needs: &mut Needs) {
    if let Some((var, path)) = chain(e, shadowed).or_else(|| key_in(e, shadowed)) {
        needs.add(var, &path);
        return;
    }
    match &e.expr {
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                walk(target, shadowed, needs);
            }
            for arg in &call.args {
                walk(arg, shadowed, needs);
            }
        }
        Expr::Select(select) => walk(&select.operand, shadowed, needs),
        Expr::List(list) => list.elements.iter().for_each(|item| walk(item, shadowed, needs)),
        Expr::Map(map) => {
            for entry in &map.entries {
                if let EntryExpr::MapEntry(entry) = &entry.expr {
                    walk(&entry.key, shadowed, needs);
                    walk(&entry.value, shadowed, needs);
                }
            }
        }
        Expr::Struct(s) => {
            for entry in &s.entries {
                if let EntryExpr::StructField(field) = &entry.expr {
                    walk(&field.value, shadowed, needs);
                }
            }
        }
        Expr::Comprehension(c) => {
            walk(&c.iter_range, shadowed, needs);
            walk(&c.accu_init, shadowed, needs);
            let outer = shadowed.len();
            shadowed.push(c.iter_var.clone());
            shadowed.extend(c.iter_var2.clone());
            shadowed.push(c.accu_var.clone());
            walk(&c.loop_cond, shadowed, needs);
            walk(&c.loop_step, shadowed, needs);
            walk(&c.result, shadowed, needs);
            shadowed.truncate(outer);
        }
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// `'k' in var.a` reads the key `k` of `var.a` alone (a presence test of one header does not
/// convert, nor bound, the others); in a list, the whole list is read anyway.
fn key_in(e: &IdedExpr, shadowed: &[String]) -> Option<(Var, Vec<String>)> {
    let Expr::Call(call) = &e.expr else { return None };
    let [key, container] = call.args.as_slice() else { return None };
    if call.func_name != operators::IN || call.target.is_some() {
        return None;
    }
    let Expr::Literal(LiteralValue::String(key)) = &key.expr else { return None };
    let (var, mut path) = chain(container, shadowed)?;
    path.push(key.inner().to_string());
    Some((var, path))
}

/// `var.a['b'].c` as the variable and the path `[a, b, c]`.
fn chain(e: &IdedExpr, shadowed: &[String]) -> Option<(Var, Vec<String>)> {
    match &e.expr {
        Expr::Ident(name) if !shadowed.contains(name) => Var::named(name).map(|var| (var, Vec::new())),
        Expr::Select(select) => {
            let (var, mut path) = chain(&select.operand, shadowed)?;
            path.push(select.field.clone());
            Some((var, path))
        }
        Expr::Call(call) if call.func_name == operators::INDEX && call.target.is_none() && call.args.len() == 2 => {
            let Expr::Literal(LiteralValue::String(key)) = &call.args[1].expr else { return None };
            let (var, mut path) = chain(&call.args[0], shadowed)?;
            path.push(key.inner().to_string());
            Some((var, path))
        }
        _ => None,
    }
}
