//! The activation's declared shape: the six variables, their fields and types, as the load-time
//! checker sees them (and as docs/ext-authz.md, "Conditions (CEL)", documents them).

use std::fmt;

/// A top-level variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    Request,
    Source,
    Identity,
    Route,
    Context,
    Now,
}

impl Var {
    pub const ALL: [Var; 6] = [Var::Request, Var::Source, Var::Identity, Var::Route, Var::Context, Var::Now];

    pub fn named(name: &str) -> Option<Var> {
        Var::ALL.into_iter().find(|var| var.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Var::Request => "request",
            Var::Source => "source",
            Var::Identity => "identity",
            Var::Route => "route",
            Var::Context => "context",
            Var::Now => "now",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn ty(self) -> Ty {
        match self {
            Var::Request => Ty::Record(Record::Request),
            Var::Source => Ty::Record(Record::Source),
            Var::Identity => Ty::Record(Record::Identity),
            Var::Route | Var::Context => strings(),
            Var::Now => Ty::Int,
        }
    }
}

/// The maps whose fields are fixed: a field not listed is a load error (`request.header` is a
/// typo, not a missing key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    Request,
    Source,
    Identity,
}

impl Record {
    pub fn name(self) -> &'static str {
        match self {
            Record::Request => "request",
            Record::Source => "source",
            Record::Identity => "identity",
        }
    }

    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Record::Request => &["method", "host", "path", "query", "headers", "id"],
            Record::Source => &["address", "client"],
            Record::Identity => &["kind", "provider", "claims", "scopes", "principal"],
        }
    }

    pub fn field(self, name: &str) -> Option<Ty> {
        Some(match (self, name) {
            (Record::Request, "method" | "host" | "path" | "id") => Ty::String,
            (Record::Request, "query" | "headers") => strings(),
            (Record::Source, "address" | "client") => Ty::String,
            (Record::Identity, "kind" | "provider" | "principal") => Ty::String,
            (Record::Identity, "claims") => Ty::Map(Box::new(Ty::String), Box::new(Ty::Dyn)),
            (Record::Identity, "scopes") => Ty::List(Box::new(Ty::String)),
            _ => return None,
        })
    }
}

/// A type as far as it is known at load: claims are `Dyn` (any JSON value).
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    Dyn,
    Null,
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    /// A type value (`int`, `type(x)`).
    Type,
    List(Box<Ty>),
    Map(Box<Ty>, Box<Ty>),
    Record(Record),
}

/// `map(string, string)`: headers, query parameters, route captures, context extensions.
pub fn strings() -> Ty {
    Ty::Map(Box::new(Ty::String), Box::new(Ty::String))
}

impl Ty {
    pub fn is_numeric(&self) -> bool {
        matches!(self, Ty::Int | Ty::Uint | Ty::Double)
    }

    /// The type of a value that is either `self` or `other` (a list's elements, the two arms of
    /// `?:`): the same type, or `Dyn`.
    pub fn join(&self, other: &Ty) -> Ty {
        if self == other {
            self.clone()
        } else {
            Ty::Dyn
        }
    }

    /// Whether values of the two types may ever compare equal (CEL compares numbers across
    /// types; `null` only equals `null`).
    pub fn may_equal(&self, other: &Ty) -> bool {
        match (self, other) {
            (Ty::Dyn, _) | (_, Ty::Dyn) => true,
            (a, b) if a.is_numeric() && b.is_numeric() => true,
            (Ty::List(a), Ty::List(b)) => a.may_equal(b),
            (Ty::Map(ka, va), Ty::Map(kb, vb)) => ka.may_equal(kb) && va.may_equal(vb),
            (Ty::Record(_), Ty::Map(..)) | (Ty::Map(..), Ty::Record(_)) => true,
            (a, b) => a == b,
        }
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Dyn => f.write_str("dyn"),
            Ty::Null => f.write_str("null"),
            Ty::Bool => f.write_str("bool"),
            Ty::Int => f.write_str("int"),
            Ty::Uint => f.write_str("uint"),
            Ty::Double => f.write_str("double"),
            Ty::String => f.write_str("string"),
            Ty::Bytes => f.write_str("bytes"),
            Ty::Type => f.write_str("type"),
            Ty::List(t) => write!(f, "list({t})"),
            Ty::Map(k, v) => write!(f, "map({k}, {v})"),
            Ty::Record(r) => write!(f, "{} (a map of {})", r.name(), r.fields().join(", ")),
        }
    }
}
