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

/// The least an ext_authz server can answer for the rate limit filter behind it to have a
/// descriptor: allow, with the `x-user-id` header the bench's Envoy route limits on. The floor
/// of the Envoy rows (the gRPC rows use [`NothingAuthz`], which answers less).
pub struct UserHeaderAuthz;

#[tonic::async_trait]
impl Authorization for UserHeaderAuthz {
    async fn check(&self, _request: Request<CheckRequest>) -> Result<Response<CheckResponse>, Status> {
        use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
        use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
        use envoy_types::pb::envoy::service::auth::v3::OkHttpResponse;
        let header = HeaderValueOption {
            header: Some(HeaderValue { key: "x-user-id".into(), value: "bench".into(), ..Default::default() }),
            ..Default::default()
        };
        Ok(Response::new(CheckResponse {
            status: Some(RpcStatus::default()),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers: vec![header],
                ..Default::default()
            })),
            ..Default::default()
        }))
    }
}

/// Serves both do-nothing services on a free loopback port; returns the address.
pub async fn start() -> std::net::SocketAddr {
    serve_both(AuthorizationServer::new(NothingAuthz)).await
}

/// The do-nothing RLS and [`UserHeaderAuthz`] on a free loopback port: the services of the
/// Envoy rows' floors.
pub async fn start_for_envoy() -> std::net::SocketAddr {
    serve_both(AuthorizationServer::new(UserHeaderAuthz)).await
}

async fn serve_both<A: Authorization>(authz: AuthorizationServer<A>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let addr = listener.local_addr().expect("bound");
    let router =
        tonic::transport::Server::builder().add_service(RateLimitServiceServer::new(NothingRls)).add_service(authz);
    tokio::spawn(async move {
        let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let _ = router.serve_with_incoming(incoming).await;
    });
    addr
}

/// `bench serve-floor PORT [h2-adaptive|h2-1mib]`: both do-nothing services on `PORT` in a
/// process of their own (the cost rows read its CPU from `/proc`), until killed. `h2-adaptive`
/// turns on HTTP/2's adaptive flow-control window, `h2-1mib` sets 1 MiB stream and connection
/// windows: the HTTP/2 settings the cost rows compare.
pub async fn serve_on(port: u16, http2: Option<&str>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let mut builder = tonic::transport::Server::builder();
    builder = match http2 {
        Some("h2-adaptive") => builder.http2_adaptive_window(Some(true)),
        Some("h2-1mib") => builder.initial_stream_window_size(1 << 20).initial_connection_window_size(1 << 20),
        Some(other) => anyhow::bail!("serve-floor: {other:?} is not h2-adaptive or h2-1mib"),
        None => builder,
    };
    let router = builder
        .add_service(RateLimitServiceServer::new(NothingRls))
        .add_service(AuthorizationServer::new(NothingAuthz));
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    router.serve_with_incoming(incoming).await?;
    Ok(())
}
