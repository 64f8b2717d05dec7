//! How far the decision gets with a route's requirements before its conditions: the workload's
//! principal, then the credential found and verified — each step the decision's own function.

use crate::core::decision::{authorize, check_principal, Engine};
use crate::core::identity::Identity;
use crate::core::routes::Requirements;

use super::Inputs;

/// What a route's requirements give the steps after them.
pub(super) struct Reach {
    /// The verified identity (`None`: the route takes no credential, or it was refused).
    pub identity: Option<Identity>,
    /// The principal or the credential was refused: the decision answers that, and nothing
    /// that reads the identity (deny rules, the route's conditions) is judged.
    pub refused: bool,
}

impl Reach {
    /// The route's principal and credential, as the decision checks them.
    pub fn of(engine: &Engine, inputs: &Inputs<'_>, requires: &Requirements) -> Reach {
        let refused = Reach { identity: None, refused: true };
        if check_principal(inputs.principal.as_ref(), requires).is_some() {
            return refused;
        }
        if requires.credentials.is_empty() {
            return Reach { identity: None, refused: false };
        }
        let Some(found) = engine.find_credential(inputs.request, requires, inputs.ctx) else { return refused };
        match engine.verify_found(&found, inputs.ctx) {
            Ok(identity) => Reach { identity: Some(identity), refused: false },
            Err(_) => refused,
        }
    }

    /// Whether the decision gets to the route's conditions after its identity is known: its
    /// request principals, scopes and claims hold (a route without a credential has none to
    /// check).
    pub fn conditions_reached(&self, requires: &Requirements) -> bool {
        match (&self.identity, self.refused) {
            (_, true) => false,
            (Some(identity), false) => authorize(identity, requires).is_none(),
            (None, false) => true,
        }
    }
}
