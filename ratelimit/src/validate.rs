//! `ratelimit validate [--reference] <path>...`: check config files offline, the way the service
//! loads them; with `--reference`, also whether envoyproxy/ratelimit could load them (no
//! Gatehouse extension keys).

use std::path::Path;

use crate::core::config::ConfigSource;
use crate::core::RateLimitConfig;

/// Reads files and directories (recursively; keys are relative paths with `/` → `.`, as under
/// `RUNTIME_WATCH_ROOT=false`) and returns a report and whether everything is valid.
pub fn validate(paths: &[String], merge_domains: bool) -> (String, bool) {
    validate_with(paths, merge_domains, false)
}

/// [`validate`], and with `reference` each file also as the reference would parse it.
pub fn validate_with(paths: &[String], merge_domains: bool, reference: bool) -> (String, bool) {
    let mut sources = Vec::new();
    let mut report = String::new();
    let mut ok = true;
    for path in paths {
        if let Err(e) = collect(Path::new(path), Path::new(path), &mut sources) {
            report.push_str(&format!("{path}: {e}\n"));
            ok = false;
        }
    }
    // The reference's files say nothing of where they end, so a file cut short loads with its
    // last limits missing (as the reference loads it): not refused, but said.
    for source in &sources {
        if let Some(reason) = shared::file_end::looks_cut(&source.content) {
            report.push_str(&format!("warning: {}: {reason}\n", source.name));
        }
    }
    let errors = RateLimitConfig::validate_all(&sources, merge_domains);
    for error in &errors {
        report.push_str(&format!("{error}\n"));
    }
    ok &= errors.is_empty();
    if ok && reference {
        for source in &sources {
            if let Err(e) = crate::core::config_file::parse_as_reference(&source.content) {
                report.push_str(&format!(
                    "{}: not loadable by envoyproxy/ratelimit: {e} (a Gatehouse extension)\n",
                    source.name
                ));
                ok = false;
            }
        }
    }
    if ok {
        match RateLimitConfig::load(&sources, merge_domains) {
            Ok(config) => report.push_str(&format!(
                "OK: {} files, {} domains, {} limits{}\n",
                sources.len(),
                config.domain_count(),
                config.limits().len(),
                if reference { "; loadable by envoyproxy/ratelimit too" } else { "" }
            )),
            Err(e) => {
                report.push_str(&format!("{e}\n"));
                ok = false;
            }
        }
    }
    (report, ok)
}

fn collect(base: &Path, path: &Path, sources: &mut Vec<ConfigSource>) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.path());
        for entry in entries {
            collect(base, &entry.path(), sources)?;
        }
    } else {
        let name = if base == path {
            path.display().to_string()
        } else {
            path.strip_prefix(base).unwrap_or(path).to_string_lossy().replace('/', ".")
        };
        let content = shared::bounded_yaml::read_text(path, shared::bounded_yaml::YamlLimits::FILES).map_err(|e| {
            match base == path {
                true => std::io::Error::other(e.to_string()),
                false => std::io::Error::other(format!("{}: {e}", path.display())),
            }
        })?;
        sources.push(ConfigSource { name, content });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_whose_last_line_looks_cut_is_warned_about_and_still_valid() {
        let dir = tempfile::tempdir().unwrap();
        let whole = "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: hour, requests_per_unit: 5}\n";
        std::fs::write(dir.path().join("whole.yaml"), whole).unwrap();
        std::fs::write(dir.path().join("cut.yaml"), "domain: e\ndescriptors:\n  - key: k\n    rate_limit:\n").unwrap();
        std::fs::write(dir.path().join("mid.yaml"), "domain: f\ndescriptors:\n  - key: k\n    rate_limit: {unit: hour")
            .unwrap();
        let (report, ok) = validate(&[dir.path().join("whole.yaml").display().to_string()], false);
        assert!(ok && !report.contains("warning"), "{report}");
        let (report, ok) = validate(&[dir.path().join("cut.yaml").display().to_string()], false);
        assert!(ok, "the reference loads it too: {report}");
        assert!(report.contains("cut.yaml: its last line opens a value that never comes"), "{report}");
        let (report, _) = validate(&[dir.path().join("mid.yaml").display().to_string()], false);
        assert!(report.contains("mid.yaml: its last line has no line break"), "{report}");
    }
}
