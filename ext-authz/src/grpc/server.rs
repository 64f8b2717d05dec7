//! The `envoy.service.auth.v3.Authorization` service, served by `shared::serve::unary` instead
//! of the generated server: the generated one encodes a fresh `CheckResponse` for every answer,
//! and ours sends a [`CheckAnswer`], which reuses an identity's encoded part. The wire format is
//! the same `CheckResponse`; clients see no difference.

use std::future::Future;

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use shared::serve::unary::{UnaryMethod, UnaryServer};

use super::{AuthorizationGrpc, CheckAnswer};

pub type AuthorizationServer = UnaryServer<AuthorizationGrpc>;

impl UnaryMethod for AuthorizationGrpc {
    const SERVICE: &'static str = "envoy.service.auth.v3.Authorization";
    const PATH: &'static str = "/envoy.service.auth.v3.Authorization/Check";
    type Request = CheckRequest;
    type Answer = CheckAnswer;

    fn call(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> impl Future<Output = Result<tonic::Response<CheckAnswer>, tonic::Status>> + Send {
        self.check(request)
    }
}
