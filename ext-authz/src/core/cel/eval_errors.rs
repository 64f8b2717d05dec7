//! The words of evaluation errors: never a request's value (header or claim values would end up
//! in logs), shared by the interpreter's path and the direct one.

use cel::ExecutionError;

use super::EvalError;

/// An evaluation error in words that never repeat a request's value (header or claim values
/// end up in logs otherwise): the crate's own texts print the values involved.
pub fn eval_error(error: ExecutionError, source: &str) -> EvalError {
    let text = match error {
        ExecutionError::NoSuchKey(key) => return no_such_key(&key, source),
        // The crate prints the operand types (0.15.0); a later version could print more.
        ExecutionError::NoSuchOverload(overload) => format!("'{}' does not apply to these values", overload.function()),
        // Sizes only (see `built`).
        ExecutionError::FunctionError { function, message } if function == super::built::ADD => message,
        ExecutionError::UnexpectedType { got, want } => format!("unexpected type: got {got}, want {want}"),
        ExecutionError::UndeclaredReference(name) => format!("undeclared reference to '{name}'"),
        ExecutionError::FunctionError { function, message } if function == "inCidr" || function == "matches" => {
            format!("{function}: {message}")
        }
        ExecutionError::FunctionError { function, .. } => format!("{function}() failed on its argument"),
        ExecutionError::DivisionByZero(_) => "division by zero".into(),
        ExecutionError::RemainderByZero(_) => "remainder by zero".into(),
        ExecutionError::Overflow(op, _, _) => format!("overflow in '{op}'"),
        ExecutionError::IndexOutOfBounds(_) => "index out of bounds".into(),
        ExecutionError::ValuesNotComparable(..) => "values that cannot be compared".into(),
        ExecutionError::UnsupportedBinaryOperator(op, _, _) => format!("'{op}' does not apply to these values"),
        ExecutionError::UnsupportedIndex(..) | ExecutionError::UnsupportedKeyType(_) => {
            "a value that cannot be an index or key".into()
        }
        ExecutionError::DuplicateKey(_) => "a map literal repeats a key".into(),
        ExecutionError::InvalidArgumentCount { expected, actual } => {
            format!("{actual} arguments where {expected} are expected")
        }
        ExecutionError::NotSupportedAsMethod { method, .. } => format!("'{method}' does not apply to this value"),
        ExecutionError::UnsupportedTargetType { .. } => "a value of the wrong type".into(),
        ExecutionError::MissingArgumentOrTarget => "a missing argument".into(),
        _ => "an evaluation error".into(),
    };
    EvalError(text)
}

/// A key named in the expression is the operator's text; one computed from the request is not
/// repeated.
pub fn no_such_key(key: &str, source: &str) -> EvalError {
    match is_plain(key) && source.contains(key) {
        true => EvalError(format!("no such key: {key}")),
        false => EvalError("no such key".into()),
    }
}

fn is_plain(key: &str) -> bool {
    !key.is_empty() && key.len() <= 64 && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.:/".contains(&b))
}
