//! `policies:` (named route tables, chosen by the gateway's route) and `policy_selector:`
//! (where a request names one).

use std::collections::BTreeMap;

use super::check::{Check, Checked};
use super::keys;
use super::raw::{RawPolicy, RawPolicySelector};
use super::routes::{table, Available, TableShape};
use crate::core::decision::ROUTES;
use crate::core::routes::{NamedPolicy, Policies, PolicySelector, RouteMetadataKey};

/// The longest policy name: it is a metric label and the value of a route's setting.
const MAX_NAME: usize = 63;

pub fn policies(
    raw: &BTreeMap<String, RawPolicy>,
    selector: &RawPolicySelector,
    available: &Available<'_>,
    c: &Check<'_>,
) -> Checked<Policies> {
    let mut named = BTreeMap::new();
    let mut failed = false;
    for (name, policy) in raw {
        match self::policy(name, policy, available, c) {
            Ok(built) => {
                named.insert(name.clone(), built);
            }
            Err(_) => failed = true,
        }
    }
    let selector = self::selector(selector, c);
    if failed {
        return Err(super::check::Reported);
    }
    Ok(Policies { named, selector: selector? })
}

fn policy(name: &str, raw: &RawPolicy, available: &Available<'_>, c: &Check<'_>) -> Checked<NamedPolicy> {
    let at = format!("policies.{name}");
    let name_ok = if name.is_empty()
        || name.len() > MAX_NAME
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        c.fail(&at, format!("{name:?} is not a policy name: 1 to {MAX_NAME} letters, digits, '-', '_' or '.'"))
    } else if name == ROUTES {
        c.fail(&at, "`routes` names the routes section in logs and metrics: name the policy otherwise")
    } else {
        Ok(())
    };
    let mode = c.choice(&format!("{at}.mode"), &keys::POLICY_MODE, &raw.mode);
    let shape = TableShape {
        public: &raw.public,
        default: &raw.default,
        default_accept: &raw.default_accept,
        rules: &raw.rules,
    };
    let table = table(&at, &shape, available, c);
    name_ok?;
    Ok(NamedPolicy { table: table?, mode: mode? })
}

fn selector(raw: &RawPolicySelector, c: &Check<'_>) -> Checked<PolicySelector> {
    let metadata = &raw.route_metadata;
    let route_metadata = match (metadata.namespace.is_empty(), metadata.annotation.is_empty()) {
        (true, _) => Ok(None),
        (false, true) => c.fail(
            "policy_selector.route_metadata.annotation",
            "empty: name the annotation, or set namespace to \"\" to read no route metadata",
        ),
        (false, false) => Ok(Some(RouteMetadataKey {
            namespace: metadata.namespace.clone(),
            annotation: metadata.annotation.clone(),
        })),
    };
    Ok(PolicySelector { context_extension: raw.context_extension.clone(), route_metadata: route_metadata? })
}
