//! The defaults a service's documentation states, compared with the declared ones, so a changed
//! default cannot leave the docs behind. The docs' settings tables are markdown tables whose
//! first two columns are headed `setting`, `variable` or `key`, and `default`:
//!
//! ```text
//! | setting | default | meaning |
//! |---|---|---|
//! | `SHUTDOWN_DELAY`, `SHUTDOWN_TIMEOUT` | `0s`, `15s` | ... |
//! | `OTEL_EXPORTER_OTLP_HEADERS`, `…_TRACES_HEADERS` | | ... |
//! ```
//!
//! A row names settings in backticks (`…_X` stands for the previous name with its last word
//! replaced by `_X`), and gives one default for each, one for all, nothing (unset), or prose
//! (allowed only for a setting declared unset, whose default the code works out).

use super::Documented;

/// What comparing one document with the declarations found.
#[derive(Debug, Default)]
pub struct DocumentedDefaults {
    /// The settings whose documented default was compared with the declared one.
    pub checked: Vec<String>,
    /// One line per difference, naming the setting.
    pub problems: Vec<String>,
}

/// Compares every settings table of `markdown` with `declared`. A documented name that is not
/// declared is a problem unless listed in `undeclared` (keys without a scalar default, such as
/// lists, documented in the same table).
pub fn documented_defaults(markdown: &str, declared: &[&dyn Documented], undeclared: &[&str]) -> DocumentedDefaults {
    let mut found = DocumentedDefaults::default();
    let mut in_table = false;
    for line in markdown.lines().map(str::trim) {
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() < 2 {
            continue;
        }
        if ["setting", "variable", "key"].contains(&cells[0].to_ascii_lowercase().as_str()) && cells[1] == "default" {
            in_table = true;
            continue;
        }
        if !in_table || cells[0].starts_with("---") {
            continue;
        }
        compare_row(cells[0], cells[1], declared, undeclared, &mut found);
    }
    found
}

fn compare_row(
    names_cell: &str,
    default_cell: &str,
    declared: &[&dyn Documented],
    undeclared: &[&str],
    found: &mut DocumentedDefaults,
) {
    let mut names: Vec<String> = Vec::new();
    for name in backticked(names_cell) {
        match (name.strip_prefix('…'), names.last()) {
            (Some(suffix), Some(previous)) => {
                let stem = previous.rsplit_once('_').map_or(previous.as_str(), |(stem, _)| stem);
                names.push(format!("{stem}{suffix}"));
            }
            _ => names.push(name.to_string()),
        }
    }
    let values = backticked(default_cell);
    // Only backticked values, separated by commas (a value may itself be a comma): anything
    // else is prose.
    let exact = !values.is_empty()
        && default_cell.matches('`').count().is_multiple_of(2)
        && default_cell.split('`').step_by(2).all(|between| matches!(between.trim(), "" | ","));
    for (i, name) in names.iter().enumerate() {
        let Some(setting) = declared.iter().find(|s| s.name() == name) else {
            if !undeclared.contains(&name.as_str()) {
                found.problems.push(format!("{name}: documented, but not declared"));
            }
            continue;
        };
        let declared_default = setting.default_text();
        let documented = if default_cell.is_empty() {
            Some("")
        } else if !exact {
            None
        } else if values.len() == names.len() {
            Some(values[i])
        } else if values.len() == 1 {
            Some(values[0])
        } else {
            found.problems.push(format!(
                "{name}: {} names but {} defaults in {default_cell:?}",
                names.len(),
                values.len()
            ));
            continue;
        };
        match documented {
            Some(text) if text == declared_default => {}
            Some(text) => found
                .problems
                .push(format!("{name}: documented default {text:?}, declared default {declared_default:?}")),
            None if declared_default.is_empty() => {}
            None => found.problems.push(format!(
                "{name}: documented default {default_cell:?} is prose, but the declared default is {declared_default:?} \
                 (write it in backticks)"
            )),
        }
        found.checked.push(name.clone());
    }
}

/// The text between each pair of backticks.
fn backticked(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Setting;

    const DELAY: Setting<std::time::Duration> = Setting::duration("DELAY", "0s", "");
    const TIMEOUT: Setting<std::time::Duration> = Setting::duration("DELAY_TIMEOUT", "15s", "");
    const NAME: Setting<String> = Setting::text("NAME", "", "");

    #[test]
    fn compares_each_documented_default_with_the_declared_one() {
        let declared: [&dyn Documented; 3] = [&DELAY, &TIMEOUT, &NAME];
        let docs =
            "text\n\n| setting | default | meaning |\n|---|---|---|\n| `DELAY`, `…_TIMEOUT` | `0s`, `15s` | x |\n\
                    | `NAME` | a random name | y |\n| `LIST` | `[]` | z |\n| `DELAY`, `NAME` | `0s`, `` | w |\n";
        let found = documented_defaults(docs, &declared, &["LIST"]);
        assert_eq!(found.problems, Vec::<String>::new());
        assert_eq!(found.checked, ["DELAY", "DELAY_TIMEOUT", "NAME", "DELAY", "NAME"]);

        let wrong = docs.replace("`15s`", "`10s`").replace("`LIST`", "`OTHER`");
        let found = documented_defaults(&wrong, &declared, &["LIST"]);
        assert_eq!(
            found.problems,
            [
                "DELAY_TIMEOUT: documented default \"10s\", declared default \"15s\"",
                "OTHER: documented, but not declared"
            ]
        );
        let prose = documented_defaults("| key | default |\n|---|---|\n| `DELAY` | none |\n", &declared, &[]);
        assert!(prose.problems[0].contains("is prose"), "{:?}", prose.problems);
    }
}
