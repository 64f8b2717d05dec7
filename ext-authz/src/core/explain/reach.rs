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
    /// The route's principal and credential, as the decision checks them. A route that takes
    /// no credential: `open`, some deny rule reads the identity, so a credential the request
    /// carries anyway is verified for them ([`Engine::open_identity`]).
    pub fn of(engine: &Engine, inputs: &Inputs<'_>, requires: &Requirements, open: bool) -> Reach {
        if check_principal(inputs.principal.as_ref(), requires).is_some() {
            return REFUSED;
        }
        if requires.credentials.is_empty() {
            return Reach::open(engine, inputs, open);
        }
        let Some(found) = engine.find_credential(inputs.request, requires, inputs.ctx) else { return REFUSED };
        match engine.verify_found(&found, inputs.ctx) {
            Ok(identity) => Reach { identity: Some(identity), refused: false },
            Err(_) => REFUSED,
        }
    }

    /// A route that takes no credential (public, a default, workload only); `open` as above.
    /// A key to fetch or keys never loaded are the answer (`refused`): explain does not fetch.
    pub fn open(engine: &Engine, inputs: &Inputs<'_>, open: bool) -> Reach {
        if !open {
            return Reach { identity: None, refused: false };
        }
        match engine.open_identity(inputs.request, inputs.ctx, false) {
            Ok(identity) => Reach { identity, refused: false },
            Err(_) => REFUSED,
        }
    }

    /// The identity a route's conditions see: the verified one; none on a route that takes no
    /// credential (the identity of an open route is the deny rules' alone).
    pub fn for_conditions<'r>(&'r self, requires: &Requirements) -> Option<&'r Identity> {
        self.identity.as_ref().filter(|_| !requires.credentials.is_empty())
    }

    /// Whether the decision gets to the route's conditions after its identity is known: its
    /// request principals, scopes and claims hold (a route without a credential has none to
    /// check).
    pub fn conditions_reached(&self, requires: &Requirements) -> bool {
        match (self.for_conditions(requires), self.refused) {
            (_, true) => false,
            (Some(identity), false) => authorize(identity, requires).is_none(),
            (None, false) => true,
        }
    }
}

const REFUSED: Reach = Reach { identity: None, refused: true };
