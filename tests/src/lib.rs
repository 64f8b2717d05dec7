//! End-to-end support: a real Envoy in front of ext-authz, ratelimit (on a real Redis) and the
//! demo backend, all on free loopback ports. Each test builds its own [`Stack`], so tests run in
//! parallel and leave no process behind (everything stops when the stack is dropped).

pub mod backend;
pub mod browser;
pub mod demo;
pub mod envoy;
pub mod http;
pub mod stack;
pub mod webdriver;
pub mod yaml;

pub use stack::{LoginOptions, Stack, StackOptions};
