//! The load-time bound of the value a node gives: how many entries a list or map may hold, how
//! many bytes a string may hold. The checker derives from it how many rounds a comprehension may
//! make over a computed range, and what a `+` costs to build (see `MAX_COST`).
//!
//! A value whose size is not known at load keeps the bounds every value keeps at run time:
//! request values are checked when converted (values.rs), what `+` builds when it is built
//! (built.rs), and literals are smaller than the expression.

use super::bounds::{MAX_ENTRIES, MAX_STRING_BYTES};
use super::schema::Ty;

/// Bytes of a string built by `+` that cost one step: copying 256 bytes costs less than
/// evaluating one node (an allocation and a few lookups), the unit of the cost.
pub const BYTES_PER_STEP: u64 = 256;

/// At most `entries` entries if the value is a list or a map, at most `bytes` bytes if it is a
/// string or bytes (a `dyn` value may be either).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub entries: u64,
    pub bytes: u64,
}

impl Size {
    pub const NONE: Size = Size { entries: 0, bytes: 0 };

    pub fn entries(entries: usize) -> Size {
        Size { entries: entries as u64, bytes: 0 }
    }

    pub fn bytes(bytes: usize) -> Size {
        Size { entries: 0, bytes: bytes as u64 }
    }

    /// What a value of type `ty` may hold when nothing more is known of it.
    pub fn of(ty: &Ty) -> Size {
        Size { entries: u64::MAX, bytes: u64::MAX }.within(ty)
    }

    /// `self`, keeping what a value of type `ty` can hold, each within its run-time bound.
    pub fn within(self, ty: &Ty) -> Size {
        let (entries, bytes) = match ty {
            Ty::List(_) | Ty::Map(..) | Ty::Record(_) => (true, false),
            Ty::String | Ty::Bytes => (false, true),
            Ty::Dyn => (true, true),
            _ => (false, false),
        };
        Size {
            entries: if entries { self.entries.min(MAX_ENTRIES as u64) } else { 0 },
            bytes: if bytes { self.bytes.min(MAX_STRING_BYTES as u64) } else { 0 },
        }
    }

    /// The size of `self + other` (before its bounds).
    pub fn sum(self, other: Size) -> Size {
        Size { entries: self.entries.saturating_add(other.entries), bytes: self.bytes.saturating_add(other.bytes) }
    }

    pub fn max(self, other: Size) -> Size {
        Size { entries: self.entries.max(other.entries), bytes: self.bytes.max(other.bytes) }
    }

    /// The steps building a value of this size costs: one per entry copied, one per
    /// [`BYTES_PER_STEP`] bytes.
    pub fn building_cost(self) -> u64 {
        self.entries.max(self.bytes.div_ceil(BYTES_PER_STEP))
    }
}
