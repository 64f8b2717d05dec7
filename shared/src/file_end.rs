//! Telling a whole YAML file from one cut short.
//!
//! Why: a file cut short while it was written (a full disk, an interrupted copy, an editor
//! saving in place) is often still valid YAML, and what it loses is its end: the last rule's
//! `scopes`, the last items of a list, a key's expiry. Such a file loads with its last rule
//! loosened, and a reload counts it a success. Nothing in the text of a block-style document
//! says where it ends, so a file that decides who gets in must say so itself:
//!
//! - a block-style document ends with YAML's own end-of-document line, `...`;
//! - a flow-style document (JSON, or YAML that opens with `{` or `[`) needs nothing: every
//!   prefix of it leaves a bracket open and fails to parse.
//!
//! Comments and blank lines may follow the marker: losing them loses nothing.
//!
//! ext-authz requires this of its config and API key files ([`require_end`]). ratelimit reads
//! the reference's files, which have no such marker, so it only warns in `validate` when a
//! file's last line looks cut ([`looks_cut`]).

/// The file's last document does not say it is complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the file does not end with `...` (YAML's end-of-document line) after its last key: without it a \
     file cut short while it was written could load with its last rules loosened; add a last line `...`"
)]
pub struct NoEndMarker;

/// Lines that carry nothing: blank, or only a comment.
fn is_blank(line: &str) -> bool {
    let line = line.trim();
    line.is_empty() || line.starts_with('#')
}

/// Lines that start a document or carry a directive, before any content.
fn is_preamble(line: &str) -> bool {
    is_blank(line) || line.starts_with("---") && is_blank(&line[3..]) || line.starts_with('%')
}

/// Checks that `text` ends with `...` after its last content, or is one flow-style collection
/// (which cannot be cut and still parse). The caller parses the text too: this only checks how
/// it ends.
pub fn require_end(text: &str) -> Result<(), NoEndMarker> {
    let first = text.lines().find(|line| !is_preamble(line)).map(str::trim_start);
    if first.is_some_and(|line| line.starts_with('{') || line.starts_with('[')) {
        return Ok(());
    }
    let last = text.lines().rev().find(|line| !is_blank(line));
    match last {
        Some(line) if line.starts_with("...") && is_blank(&line[3..]) => Ok(()),
        _ => Err(NoEndMarker),
    }
}

/// Why the end of `text` looks cut, if it does: no line break after the last line, or a last
/// key with nothing after it. A heuristic for files that have no end marker (ratelimit's
/// reference format): a cut at a line break after a complete value cannot be seen.
pub fn looks_cut(text: &str) -> Option<&'static str> {
    let last = text.lines().rev().find(|line| !is_blank(line))?;
    if !text.ends_with('\n') && !is_blank(text.lines().last().unwrap_or_default()) {
        return Some("its last line has no line break: was the file cut short while it was written?");
    }
    let content = last.split(" #").next().unwrap_or(last).trim_end();
    if content.ends_with(':') || content.trim() == "-" {
        return Some("its last line opens a value that never comes: was the file cut short while it was written?");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_document_must_end_with_the_marker() {
        assert_eq!(require_end("routes:\n  default: deny\n...\n"), Ok(()));
        assert_eq!(require_end("routes:\n  default: deny\n... # the end\n\n# trailing comment\n  \n"), Ok(()));
        assert_eq!(require_end("---\nroutes: {default: deny}\n..."), Ok(()));
        assert_eq!(require_end("routes:\n  default: deny\n"), Err(NoEndMarker));
        assert_eq!(require_end("routes:\n  default: deny\n..\n"), Err(NoEndMarker));
        assert_eq!(require_end("routes:\n  default: deny\n...x\n"), Err(NoEndMarker));
        // A marker inside a value (indented) is not the document's end.
        assert_eq!(require_end("a: |\n  ...\n"), Err(NoEndMarker));
        assert_eq!(require_end(""), Err(NoEndMarker));
    }

    #[test]
    fn a_flow_document_needs_no_marker() {
        assert_eq!(require_end("{\"keys\": []}"), Ok(()));
        assert_eq!(require_end("# keys\n---\n[1, 2]\n"), Ok(()));
        assert_eq!(require_end("  {a: 1}\n"), Ok(()));
    }

    #[test]
    fn every_cut_of_a_marked_file_lacks_the_marker() {
        let whole = "# header\nroutes:\n  rules:\n    - path: /a\n      scopes: [x, y]\n...\n# tail\n";
        let content_end = whole.find("...").unwrap() + 3;
        for cut in 0..=whole.len() {
            let prefix = &whole[..cut];
            assert_eq!(require_end(prefix).is_ok(), cut >= content_end, "{prefix:?}");
        }
    }

    #[test]
    fn looks_cut_names_a_missing_line_break_or_an_open_value() {
        assert_eq!(looks_cut("domain: d\ndescriptors:\n  - key: k\n"), None);
        assert_eq!(looks_cut("domain: d\n# comment without line break"), None);
        assert!(looks_cut("domain: d\ndescriptors:\n  - key: k").unwrap().contains("no line break"));
        assert!(looks_cut("domain: d\ndescriptors:\n  - key: k\n    rate_limit:\n").unwrap().contains("never comes"));
        assert!(looks_cut("domain: d\ndescriptors:\n  -\n").unwrap().contains("never comes"));
        assert!(looks_cut("a: b\nrate_limit: # cut\n").unwrap().contains("never comes"));
        assert_eq!(looks_cut(""), None);
    }
}
