//! The `envoy.service.auth.v3.Authorization` service, routed by hand instead of through the
//! generated server: the generated one encodes a fresh `CheckResponse` for every answer, and
//! ours sends a [`CheckAnswer`], which reuses an identity's encoded part. The wire format is the
//! same `CheckResponse`; clients see no difference.

use std::convert::Infallible;
use std::sync::Arc;

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use tonic::codegen::{http, Body, BoxFuture, Context, Poll, Service, StdError};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic_prost::ProstCodec;

use super::{AuthorizationGrpc, CheckAnswer};

const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

#[derive(Clone)]
pub struct AuthorizationServer {
    inner: Arc<AuthorizationGrpc>,
}

impl AuthorizationServer {
    pub fn new(inner: AuthorizationGrpc) -> AuthorizationServer {
        AuthorizationServer { inner: Arc::new(inner) }
    }
}

impl NamedService for AuthorizationServer {
    const NAME: &'static str = "envoy.service.auth.v3.Authorization";
}

/// One `Check` call.
struct CheckMethod(Arc<AuthorizationGrpc>);

impl UnaryService<CheckRequest> for CheckMethod {
    type Response = CheckAnswer;
    type Future = BoxFuture<tonic::Response<CheckAnswer>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<CheckRequest>) -> Self::Future {
        let inner = self.0.clone();
        Box::pin(async move { inner.check(request).await })
    }
}

impl<B> Service<http::Request<B>> for AuthorizationServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != CHECK_PATH {
            // As a generated server answers a method it does not have.
            return Box::pin(async { Ok(tonic::Status::unimplemented("").into_http()) });
        }
        let method = CheckMethod(self.inner.clone());
        Box::pin(async move {
            let mut grpc = Grpc::new(ProstCodec::<CheckAnswer, CheckRequest>::default());
            Ok(grpc.unary(method, request).await)
        })
    }
}
