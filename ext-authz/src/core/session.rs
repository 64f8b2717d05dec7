//! Login sessions, the pure parts: sealing, cookies, the session model, the login and logout
//! protocol rules. The network side (provider calls, stores) lives in `crate::oidc`.

pub mod cookies;
pub mod login;
pub mod logout;
pub mod model;
pub mod pending_logins;
pub mod revoked;
pub mod seal;
pub mod stamp;
