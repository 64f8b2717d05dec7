//! The pure core: the request view, route policy, JWT verification, API keys, workload and
//! request principals, identity → headers, and the decision. No tonic, reqwest or redis here, and time is a parameter.

pub mod apikeys;
pub mod cel;
pub mod cidr;
pub mod claims;
pub mod client_address;
pub mod decision;
pub mod error_code;
pub mod explain;
pub mod header_spellings;
pub mod identity;
pub mod identity_headers;
pub mod identity_part;
pub mod jwt;
pub mod path;
pub mod principals;
pub mod random;
pub mod request;
pub mod route_annotation;
pub mod routes;
pub mod session;
pub mod token_cache;
pub mod token_schedule;
pub mod xfcc;
