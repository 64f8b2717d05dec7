//! Do-nothing servers: the cheapest possible answer to each protocol, over the same tonic
//! stack our services use. Their throughput is the floor our services are compared with.

use envoy_types::pb::envoy::service::auth::v3::authorization_server::{Authorization, AuthorizationServer};
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{Code, DescriptorStatus};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use tonic::{Request, Response, Status};

pub struct NothingRls;

#[tonic::async_trait]
impl RateLimitService for NothingRls {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        let statuses = request
            .into_inner()
            .descriptors
            .iter()
            .map(|_| DescriptorStatus { code: Code::Ok as i32, ..Default::default() })
            .collect();
        Ok(Response::new(RateLimitResponse { overall_code: Code::Ok as i32, statuses, ..Default::default() }))
    }
}

pub struct NothingAuthz;

#[tonic::async_trait]
impl Authorization for NothingAuthz {
    async fn check(&self, _request: Request<CheckRequest>) -> Result<Response<CheckResponse>, Status> {
        Ok(Response::new(CheckResponse { status: Some(RpcStatus::default()), ..Default::default() }))
    }
}

/// Serves both do-nothing services on a free loopback port; returns the address.
pub async fn start() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let addr = listener.local_addr().expect("bound");
    let router = tonic::transport::Server::builder()
        .add_service(RateLimitServiceServer::new(NothingRls))
        .add_service(AuthorizationServer::new(NothingAuthz));
    tokio::spawn(async move {
        let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let _ = router.serve_with_incoming(incoming).await;
    });
    addr
}
