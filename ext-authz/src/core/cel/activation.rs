//! One request's variables: converted on first use (only the variables, fields and keys some
//! expression reads), then shared by every expression evaluated for the request; and the
//! evaluation itself, against the shared values and the expression's compiled literals.

use cel::common::types::CelBool;
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Value};

use super::eval_errors::eval_error;
use super::functions::env;
use super::needs::Need;
use super::schema::Var;
use super::slots::slot_index;
use super::values::{build, Boxed};
use super::{EvalError, Expression, Facts};

/// A variable as converted so far: what it holds, and the value (or why it could not be made).
pub struct Built<'a> {
    need: Need,
    value: Result<Boxed<'a>, EvalError>,
}

pub type Slots<'a> = [Option<Built<'a>>; 6];

/// Converts what `expression` reads and is not held yet (widening a variable converted for
/// another expression), then evaluates it.
pub fn evaluate<'a>(expression: &Expression, facts: &Facts<'a>, built: &mut Slots<'a>) -> Result<bool, EvalError> {
    // A value over its bound under a wider need than this expression's (another expression read
    // all headers, this one reads one) is made again for this expression alone, so an answer
    // never depends on which expressions ran before it.
    let mut own: [Option<Boxed<'a>>; 6] = Default::default();
    for var in Var::ALL {
        let Some(need) = expression.needs.get(var) else { continue };
        let slot = &mut built[var.index()];
        if !slot.as_ref().is_some_and(|held| held.need.covers(need)) {
            let mut wider = need.clone();
            if let Some(held) = slot.as_ref() {
                wider.merge(&held.need);
            }
            *slot = Some(Built { value: build(facts, var, &wider), need: wider });
        }
        if let Some(Built { value: Err(_), need: held }) = slot.as_ref() {
            if held == need {
                return Err(slot.as_ref().and_then(|b| b.value.as_ref().err()).cloned().unwrap_or_else(unknown));
            }
            own[var.index()] = Some(build(facts, var, need)?);
        }
    }
    let mut values: [Option<&(dyn Val + 'a)>; 6] = [None; 6];
    for var in Var::ALL {
        values[var.index()] = match &own[var.index()] {
            Some(value) => Some(value.as_ref()),
            None => built[var.index()].as_ref().and_then(|b| b.value.as_ref().ok()).map(|v| v.as_ref()),
        };
    }
    let scope = Scope { values, literals: &expression.literals };
    let mut context = Context::with_env(env().clone());
    context.set_variable_resolver(&scope);
    let result = Value::resolve_val(&expression.expr, &context).map_err(|e| eval_error(e, expression.source()))?;
    match result.downcast_ref::<CelBool>() {
        Some(holds) => Ok(*holds.inner()),
        None => Err(EvalError(format!("the expression gave a {}, not a bool", result.get_type().name()))),
    }
}

fn unknown() -> EvalError {
    EvalError("a value could not be converted".into())
}

/// The variables one evaluation sees, and the expression's compiled literals (`@0`, `@1`, ...).
struct Scope<'s, 'a> {
    values: [Option<&'s (dyn Val + 'a)>; 6],
    literals: &'s [Box<dyn Val>],
}

impl VariableResolver for Scope<'_, '_> {
    fn resolve<'b>(&'b self, name: &str) -> Option<CowVal<'b, 'b>> {
        if let Some(var) = Var::named(name) {
            return self.values[var.index()].map(CowVal::Borrowed);
        }
        let literal = self.literals.get(slot_index(name)?)?;
        Some(CowVal::Borrowed(literal.as_ref()))
    }
}
