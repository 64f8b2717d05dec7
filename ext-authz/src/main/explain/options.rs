//! `ext-authz explain CONFIG` and the request it is given: the same `--flag VALUE` shape as
//! `api-key new`, each flag's value checked here so a wrong one is a usage error naming it.

use std::net::IpAddr;
use std::path::PathBuf;

use shared::spiffe::SpiffeId;

use crate::args::{closest, UsageError};

pub const EXPLAIN_USAGE: &str = "ext-authz explain FILE --url URL [--method M] [--header 'NAME: VALUE']… \
                                 [--token JWT|-] [--api-key KEY|-] [--cookie NAME=VALUE]… [--context KEY=VALUE]… \
                                 [--route-metadata JSON] [--peer IP] [--xff LIST] [--principal SPIFFE_ID] \
                                 [--now UNIX_SECONDS] [--json]";

/// The flags that take a value, for "did you mean".
const FLAGS: [&str; 13] = [
    "--url",
    "--method",
    "--header",
    "--token",
    "--api-key",
    "--cookie",
    "--context",
    "--route-metadata",
    "--peer",
    "--xff",
    "--principal",
    "--now",
    "--json",
];

/// The request to explain, as the command line gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub file: PathBuf,
    /// Upper case; GET when not given.
    pub method: String,
    /// `scheme://authority/path?query`, or a path with its query (the host then comes from a
    /// `host` header, if any).
    pub url: String,
    /// Names lower-case, in the order given; repeated names are joined with `,` as Envoy does.
    pub headers: Vec<(String, String)>,
    pub token: Option<Secret>,
    pub api_key: Option<Secret>,
    /// `NAME=VALUE` each.
    pub cookies: Vec<String>,
    /// Envoy's `context_extensions`.
    pub context: Vec<(String, String)>,
    /// Envoy's `route_metadata_context.filter_metadata` (namespace → struct), as JSON.
    pub route_metadata: Option<serde_json::Value>,
    /// The address Envoy saw (`attributes.source.address`).
    pub peer: Option<IpAddr>,
    /// The `X-Forwarded-For` header as it arrives.
    pub xff: Option<String>,
    /// The calling workload's SPIFFE ID (Envoy's mutual TLS peer).
    pub principal: Option<SpiffeId>,
    /// Unix seconds to decide at (default: now).
    pub now: Option<u64>,
    pub json: bool,
}

/// A credential from the command line, or `-`: read from standard input (kept out of the
/// shell's history and of `ps`).
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Given(String),
    Stdin,
}

/// Never the value, should options reach a debug line.
impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Secret::Given(_) => "Given(..)",
            Secret::Stdin => "Stdin",
        })
    }
}

/// `explain`'s arguments (after the word `explain`).
pub fn parse(args: &[&str]) -> Result<Options, UsageError> {
    let mut options = Options { method: "GET".into(), ..Options::default() };
    let mut file = None;
    let mut url = None;
    let mut rest = args.iter().copied();
    while let Some(arg) = rest.next() {
        // `--flag=value` as well as `--flag value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value)),
            _ => (arg, None),
        };
        if flag == "--json" && inline.is_none() {
            options.json = true;
            continue;
        }
        if !flag.starts_with('-') {
            match file {
                None => file = Some(PathBuf::from(arg)),
                Some(_) => return Err(UsageError::ExplainExtra(arg.to_string())),
            }
            continue;
        }
        if !FLAGS.contains(&flag) || flag == "--json" {
            return Err(UsageError::ExplainOption { typed: arg.to_string(), meant: closest(flag, &FLAGS) });
        }
        let Some(value) = inline.or_else(|| rest.next()) else {
            return Err(UsageError::ExplainValue { flag: flag.to_string(), problem: "needs a value".into() });
        };
        let wrong = |problem: String| UsageError::ExplainValue { flag: flag.to_string(), problem };
        match flag {
            "--url" => url = Some(value.to_string()),
            "--method" if is_token(value) => options.method = value.to_ascii_uppercase(),
            "--method" => return Err(wrong(format!("{value:?} is not an HTTP method"))),
            "--header" => options.headers.push(header(value).map_err(wrong)?),
            "--token" => options.token = Some(secret(value, &options.api_key).map_err(wrong)?),
            "--api-key" => options.api_key = Some(secret(value, &options.token).map_err(wrong)?),
            "--cookie" if value.split_once('=').is_some_and(|(name, _)| is_token(name)) => {
                options.cookies.push(value.to_string())
            }
            "--cookie" => return Err(wrong(format!("{value:?} is not NAME=VALUE"))),
            "--context" => match value.split_once('=') {
                Some((key, value)) if !key.is_empty() => options.context.push((key.into(), value.into())),
                _ => return Err(wrong(format!("{value:?} is not KEY=VALUE"))),
            },
            "--route-metadata" => match serde_json::from_str::<serde_json::Value>(value) {
                Ok(metadata) if metadata.is_object() => options.route_metadata = Some(metadata),
                _ => return Err(wrong("is not a JSON object (namespace → struct, as Envoy sends it)".into())),
            },
            "--peer" => {
                options.peer = Some(value.parse().map_err(|_| wrong(format!("{value:?} is not an IP address")))?)
            }
            "--xff" => options.xff = Some(value.to_string()),
            "--principal" => {
                let id = SpiffeId::parse(value).map_err(|e| wrong(format!("{value:?} is not a SPIFFE ID: {e}")))?;
                options.principal = Some(id);
            }
            "--now" => options.now = Some(value.parse().map_err(|_| wrong(format!("{value:?} is not Unix seconds")))?),
            _ => unreachable!("every flag of FLAGS is handled"),
        }
    }
    options.file = file.ok_or(UsageError::ExplainWithoutFile)?;
    let url = url.ok_or(UsageError::ExplainWithoutUrl)?;
    if !url.starts_with('/') && !url.starts_with("http://") && !url.starts_with("https://") {
        let problem = format!("{url:?} is neither http(s)://HOST/PATH nor a /PATH");
        return Err(UsageError::ExplainValue { flag: "--url".into(), problem });
    }
    options.url = url;
    Ok(options)
}

/// `NAME: VALUE`, the name lower-cased.
fn header(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((name, value)) if is_token(name.trim()) => Ok((name.trim().to_ascii_lowercase(), value.trim().into())),
        _ => Err(format!("{text:?} is not 'NAME: VALUE'")),
    }
}

/// One credential may come from standard input, not both.
fn secret(value: &str, other: &Option<Secret>) -> Result<Secret, String> {
    match value {
        "" => Err("is empty".into()),
        "-" if *other == Some(Secret::Stdin) => {
            Err("-: only one of --token and --api-key can be read from stdin".into())
        }
        "-" => Ok(Secret::Stdin),
        value => Ok(Secret::Given(value.into())),
    }
}

/// An HTTP token (RFC 9110 §5.6.2): a method or a header name.
fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_request_parses() {
        let options = parse(&[
            "config.yaml",
            "--method",
            "delete",
            "--url=https://api.example.com/orders/7?x=1",
            "--header",
            "X-Tenant: acme",
            "--header",
            "x-tenant:  other ",
            "--token",
            "-",
            "--cookie",
            "a=1",
            "--context",
            "policy=orders",
            "--peer",
            "10.1.2.3",
            "--xff",
            "203.0.113.9, 10.0.0.1",
            "--now",
            "1700000000",
            "--json",
        ])
        .unwrap();
        assert_eq!(options.file, PathBuf::from("config.yaml"));
        assert_eq!(options.method, "DELETE");
        assert_eq!(options.url, "https://api.example.com/orders/7?x=1");
        assert_eq!(options.headers, [("x-tenant".into(), "acme".into()), ("x-tenant".into(), "other".into())]);
        assert_eq!(options.token, Some(Secret::Stdin));
        assert_eq!(options.context, [("policy".into(), "orders".into())]);
        assert_eq!(options.peer, Some("10.1.2.3".parse().unwrap()));
        assert_eq!((options.now, options.json), (Some(1_700_000_000), true));
        assert_eq!(format!("{:?}", Secret::Given("t".into())), "Given(..)");
    }

    #[test]
    fn wrong_flags_are_named() {
        for (args, said) in [
            (&["--url", "/a"][..], "explain needs the config file: ext-authz explain FILE --url URL"),
            (&["c.yaml"], "explain needs the request's --url"),
            (
                &["c.yaml", "--url", "/a", "d.yaml"],
                "explain: unexpected argument \"d.yaml\" (one config file at a time)",
            ),
            (&["c.yaml", "--methd", "GET"], "explain: unknown option \"--methd\" (did you mean --method?)"),
            (&["c.yaml", "--url"], "explain: --url needs a value"),
            (&["c.yaml", "--url", "api.example.com/a"], "explain: --url \"api.example.com/a\" is neither"),
            (&["c.yaml", "--url", "/a", "--peer", "10.1"], "explain: --peer \"10.1\" is not an IP address"),
            (&["c.yaml", "--url", "/a", "--header", "x-a"], "explain: --header \"x-a\" is not 'NAME: VALUE'"),
            (&["c.yaml", "--url", "/a", "--method", "GE T"], "explain: --method \"GE T\" is not an HTTP method"),
            (&["c.yaml", "--url", "/a", "--context", "=x"], "explain: --context \"=x\" is not KEY=VALUE"),
            (&["c.yaml", "--url", "/a", "--route-metadata", "[]"], "explain: --route-metadata is not a JSON object"),
            (&["c.yaml", "--url", "/a", "--token", "-", "--api-key", "-"], "explain: --api-key -: only one of"),
            (&["c.yaml", "--url", "/a", "--json=1"], "explain: unknown option \"--json=1\""),
        ] {
            let error = parse(args).unwrap_err().to_string();
            assert!(error.starts_with(said), "{args:?}: {error}");
            assert!(!error.contains('\n'), "one line: {error}");
        }
    }
}
