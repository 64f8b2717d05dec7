//! The `identity:` section: which headers the backend gets, from which claims.

use super::check::{each, Check, Checked};
use super::keys::{self, ArrayFormatKind};
use super::raw::{RawClaimPath, RawHeaderSource, RawIdentity};
use crate::core::claims::ClaimPath;
use crate::core::identity::{ArrayFormat, HeaderSource, IdentityHeaders};

pub fn claim_path(raw: &RawClaimPath) -> ClaimPath {
    match raw {
        RawClaimPath::Text(text) => ClaimPath::parse(text),
        RawClaimPath::Segments(segments) => ClaimPath::from_segments(segments.clone()),
    }
}

/// Letters, digits, `-` and `_`: a name Envoy and every backend take as it is.
pub fn check_header_name(name: &str, key: &str, c: &Check<'_>) -> Checked<()> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return c.fail(key, format!("{name:?} is not a valid header name"));
    }
    Ok(())
}

pub fn identity(raw: &RawIdentity, c: &Check<'_>) -> Checked<IdentityHeaders> {
    let rules = match &raw.headers {
        None => Ok(IdentityHeaders::defaults()),
        Some(map) => each(map, |_, (header, source)| {
            let key = format!("identity.headers.{header}");
            check_header_name(header, &key, c)?;
            let source = match source {
                RawHeaderSource::One(s) if s == "scopes" => HeaderSource::Scopes,
                RawHeaderSource::One(s) => HeaderSource::Claims(vec![ClaimPath::parse(s)]),
                RawHeaderSource::Many(list) if !list.is_empty() => {
                    HeaderSource::Claims(list.iter().map(claim_path).collect())
                }
                RawHeaderSource::Many(_) => return c.fail(key, "list at least one claim"),
            };
            Ok((header.to_ascii_lowercase(), source))
        }),
    };
    let arrays = match c.choice("identity.array_format", &keys::IDENTITY_ARRAY_FORMAT, &raw.array_format)? {
        ArrayFormatKind::Join => ArrayFormat::Join(raw.array_separator.clone()),
        ArrayFormatKind::Json => ArrayFormat::Json,
    };
    Ok(IdentityHeaders {
        rules: rules?,
        arrays,
        payload_header: raw.payload_header.as_ref().map(|h| h.to_ascii_lowercase()),
    })
}
