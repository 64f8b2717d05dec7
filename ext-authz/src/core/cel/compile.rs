//! From an expression's text to what `Expression` keeps: parsed once (macros expanded), bounded
//! (text size, node count), checked (see `check`), its `matches`/`inCidr` literals replaced by
//! references to their compiled forms, and what it reads of the activation noted (see `needs`).

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};

use cel::common::ast::{EntryExpr, Expr, IdedExpr, SourceInfo};
use cel::common::value::Val;
use cel::ParseErrors;

use super::bounds::{MAX_COST, MAX_DEPTH, MAX_EXPRESSION_BYTES, MAX_NESTING, MAX_NODES};
use super::check::{check, CheckError};
use super::functions::env;
#[cfg(test)]
use super::functions::Literal;
use super::needs::Needs;
use super::schema::{Ty, Var};
use super::slots::slot_name;
use super::{CompileError, Expression, Uses};

/// The parser recurses deeply: an unoptimized build takes about 170 KiB of stack per bracket
/// level, so a dozen levels would overflow a 2 MiB thread. Compiling happens at config load
/// only, on a thread whose stack fits the bounds (reserved, not committed, memory): one for a
/// whole load (see `on_compiler_thread`), or else one per expression.
const COMPILER_STACK_BYTES: usize = 64 << 20;

thread_local! {
    /// Whether this thread is the one `on_compiler_thread` started.
    static ON_COMPILER_THREAD: Cell<bool> = const { Cell::new(false) };
}

pub fn compile(source: &str) -> Result<Expression, CompileError> {
    if ON_COMPILER_THREAD.get() {
        // A parser panic fails this expression, not the load that compiles it.
        return panic::catch_unwind(AssertUnwindSafe(|| compile_here(source)))
            .unwrap_or_else(|_| Err(at_start("the CEL parser failed".into())));
    }
    std::thread::scope(|scope| {
        let compiler = compiler_thread().spawn_scoped(scope, || compile_here(source));
        match compiler {
            Ok(compiler) => compiler.join().unwrap_or_else(|_| Err(at_start("the CEL parser failed".into()))),
            Err(e) => Err(at_start(format!("could not start the CEL compiler's thread: {e}"))),
        }
    })
}

/// Runs `work` (a config load) on one thread whose stack fits the parser, where each
/// expression it compiles is compiled in place: one thread per load, not one per expression.
/// If that thread cannot be started, `work` runs here and each expression gets its own. A
/// panic in `work` is resumed here.
pub fn on_compiler_thread<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    let mut work = Some(work);
    let outcome = std::thread::scope(|scope| {
        let thread = compiler_thread().spawn_scoped(scope, || {
            ON_COMPILER_THREAD.set(true);
            work.take().map(|work| work())
        });
        thread.ok().map(|thread| thread.join())
    });
    match outcome {
        Some(Ok(Some(done))) => done,
        Some(Err(panicked)) => panic::resume_unwind(panicked),
        // Not started, so `work` is still here.
        _ => match work.take() {
            Some(work) => work(),
            None => unreachable!("the compiler thread took the work and gave nothing back"),
        },
    }
}

fn compiler_thread() -> std::thread::Builder {
    std::thread::Builder::new().name("cel-compile".into()).stack_size(COMPILER_STACK_BYTES)
}

fn compile_here(source: &str) -> Result<Expression, CompileError> {
    if source.len() > MAX_EXPRESSION_BYTES {
        return Err(at_start(format!(
            "the expression is {} bytes, over the bound of {MAX_EXPRESSION_BYTES}",
            source.len()
        )));
    }
    if source.trim().is_empty() {
        return Err(at_start("the expression is empty".into()));
    }
    prescan(source)?;
    let (mut expr, info) = env().parser().parse_with_source_info(source).map_err(parse_error)?;
    let nodes = count(&expr);
    if nodes > MAX_NODES {
        return Err(at_start(format!("the expression has {nodes} nodes, over the bound of {MAX_NODES}")));
    }
    let depth = depth(&expr);
    if depth > MAX_DEPTH {
        return Err(at_start(format!("the expression nests {depth} levels deep, over the bound of {MAX_DEPTH}")));
    }
    let checked = check(&expr).map_err(|CheckError { id, message }| at(source, &info, id, message))?;
    if !matches!(checked.ty, Ty::Bool | Ty::Dyn) {
        let message = format!("the expression gives a {}, not a bool (a condition must be true or false)", checked.ty);
        return Err(at(source, &info, expr.id, message));
    }
    if checked.cost > MAX_COST {
        let message = format!(
            "the expression may cost {} steps per request, over the bound of {MAX_COST} (a comprehension over request data inside another one?)",
            checked.cost
        );
        return Err(at_start(message));
    }
    let mut literals: Vec<Box<dyn Val>> = Vec::with_capacity(checked.literals.len());
    for (id, literal) in checked.literals {
        replace(&mut expr, id, &slot_name(literals.len()));
        literals.push(Box::new(literal) as Box<dyn Val>);
    }
    // What `+` builds is bounded at run time (see `built`).
    super::built::bound_additions(&mut expr);
    let needs = Needs::of(&expr);
    let uses = Uses {
        request: needs.get(Var::Request).is_some(),
        source: needs.get(Var::Source).is_some(),
        identity: needs.get(Var::Identity).is_some(),
        route: needs.get(Var::Route).is_some(),
        context: needs.get(Var::Context).is_some(),
        now: needs.get(Var::Now).is_some(),
    };
    let direct = super::direct::compile(&expr, &literals);
    Ok(Expression { source: source.to_string(), expr, literals, needs, uses, direct })
}

/// Refuses, before parsing, what the parser could not take without overflowing a thread's
/// stack (it recurses once per bracket level, and once per link of a long `a.b.c...` chain):
/// brackets nested deeper than their bound, and more names and literals than the node bound
/// (each makes at least one node, so nothing refused here would have passed).
fn prescan(source: &str) -> Result<(), CompileError> {
    let (mut depth, mut atoms, mut quote, mut escaped, mut prev) = (0usize, 0usize, None, false, ' ');
    for c in source.chars() {
        match (quote, c) {
            (Some(_), _) if escaped => escaped = false,
            (Some(_), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => {
                quote = Some(c);
                atoms += 1;
            }
            (None, '(' | '[' | '{') => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(at_start(format!("brackets nest deeper than {MAX_NESTING}")));
                }
            }
            (None, ')' | ']' | '}') => depth = depth.saturating_sub(1),
            // A word starts (`2.5` is one: its `.` follows a digit).
            (None, c) if is_word(c) && !is_word(prev) && !(prev == '.' && c.is_ascii_digit()) => atoms += 1,
            (None, _) => {}
        }
        prev = c;
    }
    if atoms > MAX_NODES {
        return Err(at_start(format!(
            "the expression has {atoms} names and literals, over the bound of {MAX_NODES} nodes"
        )));
    }
    Ok(())
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn at_start(message: String) -> CompileError {
    CompileError { line: 1, column: 1, message }
}

/// The first parse error, where the parser put it (1-based).
fn parse_error(errors: ParseErrors) -> CompileError {
    let Some(first) = errors.errors.into_iter().next() else {
        return at_start("the expression does not parse".into());
    };
    let (line, column) = first.pos;
    if line < 1 || column < 1 {
        return at_start(first.msg);
    }
    CompileError { line: line as usize, column: column as usize, message: first.msg }
}

/// A node's position: the parser records its start as a byte offset in the text; the column
/// counts characters.
fn at(source: &str, info: &SourceInfo, id: u64, message: String) -> CompileError {
    let Some((start, _)) = info.offset_for(id) else { return at_start(message) };
    let (mut line, mut column) = (1, 1);
    for (_, c) in source.char_indices().take_while(|(i, _)| *i < start as usize) {
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    CompileError { line, column, message }
}

fn count(e: &IdedExpr) -> usize {
    1 + match &e.expr {
        Expr::Call(call) => call.target.as_deref().map_or(0, count) + call.args.iter().map(count).sum::<usize>(),
        Expr::Select(select) => count(&select.operand),
        Expr::List(list) => list.elements.iter().map(count).sum(),
        Expr::Map(map) => map.entries.iter().map(count_entry).sum(),
        Expr::Struct(s) => s.entries.iter().map(count_entry).sum(),
        Expr::Comprehension(c) => {
            count(&c.iter_range) + count(&c.accu_init) + count(&c.loop_cond) + count(&c.loop_step) + count(&c.result)
        }
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => 0,
    }
}

/// The nodes of a map literal's or a struct's entry.
fn count_entry(entry: &cel::common::ast::IdedEntryExpr) -> usize {
    match &entry.expr {
        EntryExpr::MapEntry(entry) => count(&entry.key) + count(&entry.value),
        EntryExpr::StructField(field) => count(&field.value),
    }
}

/// The longest path from the root to a leaf: how deep evaluation recurses.
fn depth(e: &IdedExpr) -> usize {
    let children: Vec<&IdedExpr> = match &e.expr {
        Expr::Call(call) => call.target.as_deref().into_iter().chain(&call.args).collect(),
        Expr::Select(select) => vec![&select.operand],
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(map) => map
            .entries
            .iter()
            .flat_map(|entry| match &entry.expr {
                EntryExpr::MapEntry(entry) => vec![&entry.key, &entry.value],
                EntryExpr::StructField(field) => vec![&field.value],
            })
            .collect(),
        Expr::Struct(s) => s
            .entries
            .iter()
            .flat_map(|entry| match &entry.expr {
                EntryExpr::MapEntry(entry) => vec![&entry.key, &entry.value],
                EntryExpr::StructField(field) => vec![&field.value],
            })
            .collect(),
        Expr::Comprehension(c) => vec![&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result],
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    };
    1 + children.into_iter().map(depth).max().unwrap_or(0)
}

/// Replaces the node `id` (a literal argument) by a reference to its compiled form.
fn replace(e: &mut IdedExpr, id: u64, name: &str) -> bool {
    if e.id == id {
        e.expr = Expr::Ident(name.to_string());
        return true;
    }
    match &mut e.expr {
        Expr::Call(call) => {
            call.target.as_deref_mut().is_some_and(|t| replace(t, id, name))
                || call.args.iter_mut().any(|a| replace(a, id, name))
        }
        Expr::Select(select) => replace(&mut select.operand, id, name),
        Expr::List(list) => list.elements.iter_mut().any(|item| replace(item, id, name)),
        Expr::Map(map) => map.entries.iter_mut().any(|entry| match &mut entry.expr {
            EntryExpr::MapEntry(entry) => replace(&mut entry.key, id, name) || replace(&mut entry.value, id, name),
            EntryExpr::StructField(field) => replace(&mut field.value, id, name),
        }),
        Expr::Comprehension(c) => {
            [&mut c.iter_range, &mut c.accu_init, &mut c.loop_cond, &mut c.loop_step, &mut c.result]
                .into_iter()
                .any(|part| replace(part, id, name))
        }
        Expr::Struct(_) | Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => false,
    }
}

/// For tests: the compiled literals of an expression.
#[cfg(test)]
pub fn literal_kinds(expression: &Expression) -> Vec<&'static str> {
    expression
        .literals
        .iter()
        .map(|l| match l.downcast_ref::<Literal>() {
            Some(Literal::Regex(_)) => "regex",
            Some(Literal::Cidr(_)) => "cidr",
            None => "?",
        })
        .collect()
}
