//! Reading `x-forwarded-client-cert` (XFCC), the header in which Envoy proxies pass on the
//! client certificate of the connection they terminated.
//!
//! The format, as Envoy writes it: elements separated by `,`, one per proxy that added one,
//! oldest first; each element `key=value` pairs separated by `;` (keys `By`, `Hash`, `Cert`,
//! `Chain`, `Subject`, `URI`, `DNS`, case-insensitive); a value holding `,`, `;` or `=` is
//! double-quoted, with `"` inside written `\"`.
//!
//! Only the **last** element counts: it is the one the nearest proxy added about its own
//! client. Whatever came before it came from further away, possibly from the client itself.

/// The `URI=` values of the header's last element, unquoted, in order. Empty when the header
/// is malformed (an unterminated quote): a header we cannot read names nobody.
pub fn last_element_uris(header: &str) -> Vec<String> {
    let Some(element) = last_element(header) else { return Vec::new() };
    split_outside_quotes(element, b';')
        .into_iter()
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            key.trim().eq_ignore_ascii_case("uri").then(|| unquote(value.trim()))
        })
        .collect()
}

/// The text after the last `,` that is not inside quotes; `None` for an unterminated quote.
fn last_element(header: &str) -> Option<&str> {
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, b) in header.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b',' if !quoted => start = i + 1,
            _ => {}
        }
    }
    (!quoted).then(|| &header[start..])
}

/// `text` split at each `separator` outside quotes (the quotes are balanced: checked by
/// [`last_element`]).
fn split_outside_quotes(text: &str, separator: u8) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, b) in text.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            _ if b == separator && !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// A value without its surrounding quotes and with `\"` as `"`.
fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\""),
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoys_documented_examples() {
        // From Envoy's x-forwarded-client-cert documentation.
        let one = r#"By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";URI=http://testclient.lyft.com"#;
        assert_eq!(last_element_uris(one), vec!["http://testclient.lyft.com"]);
        let two = r#"By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;URI=http://testclient.lyft.com,By=http://backend.lyft.com;Hash=9ba61d6425303443c0748a02dd8de688468ed33be74eee6556d90c0149c1309e;URI=http://frontend.lyft.com"#;
        assert_eq!(last_element_uris(two), vec!["http://frontend.lyft.com"], "the nearest proxy's element");
        let dns = r#"By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;Subject="CN=Test Client,OU=Lyft";URI=spiffe://td/ns/a/sa/b;DNS=lyft.com;DNS=www.lyft.com"#;
        assert_eq!(last_element_uris(dns), vec!["spiffe://td/ns/a/sa/b"], "a comma inside quotes is not a separator");
    }

    #[test]
    fn quotes_keys_and_malformed_headers() {
        assert_eq!(last_element_uris(r#"uri="spiffe://td/x";Subject="a\"b,c""#), vec!["spiffe://td/x"]);
        assert_eq!(last_element_uris("URI=spiffe://td/a;URI=spiffe://td/b"), vec!["spiffe://td/a", "spiffe://td/b"]);
        // A forged element first, then the proxy's own: only the proxy's counts.
        assert_eq!(last_element_uris("URI=spiffe://td/admin,Hash=ab;URI=spiffe://td/web"), vec!["spiffe://td/web"]);
        assert!(last_element_uris(r#"URI="spiffe://td/a"#).is_empty(), "unterminated quote");
        assert!(last_element_uris("By=x;Hash=y").is_empty());
        assert!(last_element_uris("URI=spiffe://td/a,").is_empty(), "an empty last element names nobody");
        assert!(last_element_uris("").is_empty());
    }
}
