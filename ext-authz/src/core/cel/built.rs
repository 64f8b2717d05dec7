//! What an expression builds is bounded as what reaches it from the request is: a string or
//! bytes made by `+` hold at most [`MAX_STRING_BYTES`], a list at most [`MAX_ENTRIES`]; more is
//! an evaluation error (the rule denies), found from the operands' sizes before anything is
//! copied.
//!
//! The crate's interpreter evaluates `_+_` itself, without asking the environment, so at load
//! every `+` of the checked tree is renamed [`ADD`], a function of ours registered for any
//! operands (its name cannot be written in an expression). The appends of the `map` and `filter`
//! macros (`@result + [x]`) stay as they are: the interpreter recognises them to append in place,
//! and they add one entry per element of their range, itself bounded.
//!
//! The other builders cannot grow past the bounds: list and map literals are bounded by the node
//! count, `map`/`filter` by their range, `string()` of a scalar by the scalar.

use cel::common::ast::{operators, EntryExpr, Expr, IdedExpr};
use cel::common::types::{CelBytes, CelString, Kind};
use cel::common::value::{CowVal, Val};
use cel::ExecutionError;

use super::bounds::{MAX_ENTRIES, MAX_STRING_BYTES};

/// The function `+` is renamed to.
pub const ADD: &str = "@+";

/// Renames each `+` but the macros' appends to [`ADD`].
pub fn bound_additions(e: &mut IdedExpr) {
    match &mut e.expr {
        Expr::Call(call) => {
            if call.func_name == operators::ADD && call.target.is_none() && !is_macro_append(&call.args) {
                call.func_name = ADD.to_string();
            }
            call.target.as_deref_mut().into_iter().chain(call.args.iter_mut()).for_each(bound_additions);
        }
        Expr::Select(select) => bound_additions(&mut select.operand),
        Expr::List(list) => list.elements.iter_mut().for_each(bound_additions),
        Expr::Map(map) => map.entries.iter_mut().for_each(|entry| match &mut entry.expr {
            EntryExpr::MapEntry(entry) => {
                bound_additions(&mut entry.key);
                bound_additions(&mut entry.value);
            }
            EntryExpr::StructField(field) => bound_additions(&mut field.value),
        }),
        Expr::Comprehension(c) => {
            [&mut c.iter_range, &mut c.accu_init, &mut c.loop_cond, &mut c.loop_step, &mut c.result]
                .into_iter()
                .for_each(bound_additions);
        }
        Expr::Struct(_) | Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// `@result + [...]`: a macro's accumulator (`@` starts no name an expression can write).
pub fn is_macro_append(args: &[IdedExpr]) -> bool {
    matches!(args, [IdedExpr { expr: Expr::Ident(accu), .. }, _] if accu.starts_with('@'))
}

/// `lhs + rhs`, refused when the result would be over its bound.
pub fn add<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [lhs, rhs] = args.as_slice() else {
        return Err(ExecutionError::invalid_argument_count(2, args.len()));
    };
    if let Some(message) = over_bound(lhs.as_ref(), rhs.as_ref()) {
        return Err(ExecutionError::function_error(ADD, message));
    }
    let adder =
        lhs.as_adder().ok_or_else(|| ExecutionError::function_error(ADD, "'+' does not apply to these values"))?;
    Ok(CowVal::Owned(adder.add(rhs.as_ref())?.into_owned()))
}

/// Why `lhs + rhs` may not be built (sizes only: the values are the request's).
fn over_bound(lhs: &dyn Val, rhs: &dyn Val) -> Option<String> {
    let (what, size, bound, unit) =
        if let (Some(a), Some(b)) = (lhs.downcast_ref::<CelString>(), rhs.downcast_ref::<CelString>()) {
            ("a string", a.inner().len() + b.inner().len(), MAX_STRING_BYTES, "bytes")
        } else if let (Some(a), Some(b)) = (lhs.downcast_ref::<CelBytes>(), rhs.downcast_ref::<CelBytes>()) {
            ("bytes", a.inner().len() + b.inner().len(), MAX_STRING_BYTES, "bytes")
        } else if lhs.get_type().kind() == Kind::List && rhs.get_type().kind() == Kind::List {
            let entries =
                |v: &dyn Val| v.as_sizer().map_or(0, |s| usize::try_from(*s.size().inner()).unwrap_or(usize::MAX));
            ("a list", entries(lhs).saturating_add(entries(rhs)), MAX_ENTRIES, "entries")
        } else {
            return None;
        };
    (size > bound).then(|| format!("'+' would build {what} of {size} {unit}, over the bound of {bound}"))
}
