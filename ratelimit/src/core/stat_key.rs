//! Stat keys of limits (`<domain>.<level>.<level>`), the names the reference's statistics and
//! its Prometheus mapping use, so existing dashboards keep working.

use super::config_file::YamlDescriptor;
use super::request::Entry;

/// How one level of a matched chain appears in a request-dependent stat key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatLevel {
    /// The config's composite key (`key`, `key_value` or the wildcard pattern).
    Config(String),
    /// The config key with the request's value (`value_to_metric`).
    RequestValue(String),
    /// The request's key and value (`detailed_metric` on the leaf).
    RequestEntry,
}

impl StatLevel {
    /// `None` when the stat key never depends on the request.
    pub fn for_chain(chain: &[&YamlDescriptor]) -> Option<Vec<StatLevel>> {
        let detailed = chain.last().is_some_and(|leaf| leaf.detailed_metric);
        if !detailed && !chain.iter().any(|d| d.value_to_metric) {
            return None;
        }
        let levels = chain
            .iter()
            .map(|d| {
                let configured_value = !d.value.is_empty() && !d.value.contains('*');
                if d.share_threshold || (configured_value && !detailed) {
                    StatLevel::Config(composite_key(&d.key, &d.value))
                } else if detailed {
                    StatLevel::RequestEntry
                } else if d.value_to_metric {
                    StatLevel::RequestValue(d.key.clone())
                } else {
                    StatLevel::Config(composite_key(&d.key, &d.value))
                }
            })
            .collect();
        Some(levels)
    }
}

/// The stat key of a request that matched a limit with request-dependent levels.
pub fn dynamic_stat_key(domain: &str, levels: &[StatLevel], entries: &[Entry]) -> String {
    let mut key = String::from(domain);
    for (level, entry) in levels.iter().zip(entries) {
        key.push('.');
        match level {
            StatLevel::Config(composite) => key.push_str(composite),
            StatLevel::RequestValue(config_key) => key.push_str(&composite_key(config_key, &entry.value)),
            StatLevel::RequestEntry => {
                key.push_str(&entry.key);
                key.push('_');
                key.push_str(&entry.value);
            }
        }
    }
    key
}

/// The stat key of a descriptor carrying its own limit: `<domain>.<k0>[_<v0>].<k1>[_<v1>]…`.
pub fn override_stat_key(domain: &str, entries: &[Entry]) -> String {
    let mut key = String::from(domain);
    for entry in entries {
        key.push('.');
        key.push_str(&composite_key(&entry.key, &entry.value));
    }
    key
}

/// Sanitises a stat name as the reference does: `:` and `|` become `_`, and so do the dots of
/// IPv4 literals (`10.0.0.1` → `10_0_0_1`). Other dots stay and separate path segments.
pub fn sanitize(name: &str) -> String {
    let mut out: Vec<u8> = name.bytes().map(|b| if b == b':' || b == b'|' { b'_' } else { b }).collect();
    let mut i = 0;
    while i < out.len() {
        if let Some(len) = ipv4_at(&out[i..]) {
            let starts_clean = i == 0 || !out[i - 1].is_ascii_digit();
            if starts_clean {
                for b in &mut out[i..i + len] {
                    if *b == b'.' {
                        *b = b'_';
                    }
                }
                i += len;
                continue;
            }
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Length of a dotted-quad starting at `bytes[0]`, if one does.
fn ipv4_at(bytes: &[u8]) -> Option<usize> {
    let mut pos = 0;
    for octet in 0..4 {
        if octet > 0 {
            if bytes.get(pos) != Some(&b'.') {
                return None;
            }
            pos += 1;
        }
        let digits = bytes[pos..].iter().take(3).take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        pos += digits;
    }
    if bytes.get(pos).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    Some(pos)
}

/// `key` alone when the value is empty, else `key_value`: how the reference names a descriptor
/// entry in config keys and stat names.
pub fn composite_key(key: &str, value: &str) -> String {
    if value.is_empty() {
        key.to_string()
    } else {
        format!("{key}_{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_like_the_reference() {
        assert_eq!(sanitize("d.remote_address_10.0.0.1"), "d.remote_address_10_0_0_1");
        assert_eq!(sanitize("d.ip_::1|x"), "d.ip___1_x");
        assert_eq!(sanitize("d.path_nested/file1.txt"), "d.path_nested/file1.txt");
        assert_eq!(sanitize("d.v_1.2.3"), "d.v_1.2.3");
    }

    #[test]
    fn override_keys_omit_empty_values() {
        let entries = vec![Entry::new("a", "b"), Entry::new("c", "")];
        assert_eq!(override_stat_key("d", &entries), "d.a_b.c");
    }
}
