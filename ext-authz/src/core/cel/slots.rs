//! Compiled literals (a `matches` pattern, an `inCidr` block) live in numbered slots; an
//! expression names its slot where the literal was.

/// The name a compiled literal is bound to: `@` cannot start an identifier a user writes.
pub fn slot_name(index: usize) -> String {
    format!("@{index}")
}

pub fn slot_index(name: &str) -> Option<usize> {
    name.strip_prefix('@')?.parse().ok()
}
