//! The load generator's gRPC clients: they send each protocol's request as any client does, and
//! of each answer decode only the field they check — the `CheckResponse`'s status code, the
//! `RateLimitResponse`'s overall code — skipping the rest as a protobuf reader skips fields it
//! does not know.
//!
//! Why: the generator shares the machine (and, in the profiles, the thread) with the server it
//! measures, so its own work per request is in every figure. Decoding a whole answer makes that
//! work grow with the answer: an ext-authz allow carries identity headers, removals and a dynamic
//! metadata `Struct`, which prost decodes into `String`s and a SipHash map — about 17,000
//! instructions a request more than the do-nothing floor's empty answer, all of it the
//! generator's. Envoy's decoding of the whole answer is still measured, by Envoy, in the rows
//! through Envoy; and one row decodes whole answers, to show what the choice changes
//! ([`crate::scenarios::authz_load_whole`]).

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

const CHECK: &str = "/envoy.service.auth.v3.Authorization/Check";
const SHOULD_RATE_LIMIT: &str = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit";

/// `CheckResponse` with only field 1, `status` (envoy/service/auth/v3/external_auth.proto).
#[derive(Clone, PartialEq, prost::Message)]
struct CheckStatus {
    #[prost(message, optional, tag = "1")]
    status: Option<RpcCode>,
}

/// `google.rpc.Status` with only field 1, `code`.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcCode {
    #[prost(int32, tag = "1")]
    code: i32,
}

/// `RateLimitResponse` with only field 1, `overall_code` (envoy/service/ratelimit/v3/rls.proto).
#[derive(Clone, PartialEq, prost::Message)]
struct OverallCode {
    #[prost(int32, tag = "1")]
    overall_code: i32,
}

/// A client of one unary method, sending `Req` and reading `Resp` of the answer.
#[derive(Clone)]
struct Unary {
    grpc: tonic::client::Grpc<Channel>,
    path: &'static str,
}

impl Unary {
    async fn call<Req, Resp>(&mut self, request: Req) -> Result<Resp, tonic::Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        self.grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
        let path = PathAndQuery::from_static(self.path);
        Ok(self.grpc.unary(tonic::Request::new(request), path, codec).await?.into_inner())
    }
}

/// An ext_authz client reading the status code of each answer (0 allows).
#[derive(Clone)]
pub struct AuthzClient(Unary);

impl AuthzClient {
    pub fn new(channel: Channel) -> AuthzClient {
        AuthzClient(Unary { grpc: tonic::client::Grpc::new(channel), path: CHECK })
    }

    /// The answer's status code; `None` when the answer has no status.
    pub async fn check(&mut self, request: CheckRequest) -> Result<Option<i32>, tonic::Status> {
        let answer: CheckStatus = self.0.call(request).await?;
        Ok(answer.status.map(|s| s.code))
    }
}

/// A rate limit client reading the overall code of each answer (1 OK, 2 OVER_LIMIT).
#[derive(Clone)]
pub struct RlsClient(Unary);

impl RlsClient {
    pub fn new(channel: Channel) -> RlsClient {
        RlsClient(Unary { grpc: tonic::client::Grpc::new(channel), path: SHOULD_RATE_LIMIT })
    }

    pub async fn should_rate_limit(&mut self, request: RateLimitRequest) -> Result<i32, tonic::Status> {
        let answer: OverallCode = self.0.call(request).await?;
        Ok(answer.overall_code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
    use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
    use envoy_types::pb::envoy::service::auth::v3::{CheckResponse, OkHttpResponse};
    use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::DescriptorStatus;
    use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitResponse;
    use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value};
    use envoy_types::pb::google::rpc::Status as RpcStatus;
    use prost::Message;

    /// The lean messages read the same codes the whole messages carry, whatever else the answer
    /// holds (the generator's check must not be weakened by skipping).
    #[test]
    fn the_lean_answers_read_the_codes_of_whole_answers() {
        for code in [0, 7, 16] {
            let header = HeaderValueOption {
                header: Some(HeaderValue { key: "x-user-id".into(), value: "u".into(), ..Default::default() }),
                ..Default::default()
            };
            let metadata =
                Struct { fields: [("sub".to_string(), Value { kind: Some(Kind::StringValue("u".into())) })].into() };
            let whole = CheckResponse {
                status: Some(RpcStatus { code, message: "m".into(), ..Default::default() }),
                http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                    headers: vec![header],
                    ..Default::default()
                })),
                dynamic_metadata: Some(metadata),
            };
            let lean = CheckStatus::decode(whole.encode_to_vec().as_slice()).expect("decodes");
            assert_eq!(lean.status.map(|s| s.code), Some(code));
        }
        let no_status = CheckStatus::decode(CheckResponse::default().encode_to_vec().as_slice()).expect("decodes");
        assert_eq!(no_status.status, None);

        for overall_code in [1, 2] {
            let whole = RateLimitResponse {
                overall_code,
                statuses: vec![DescriptorStatus { code: overall_code, ..Default::default() }],
                ..Default::default()
            };
            let lean = OverallCode::decode(whole.encode_to_vec().as_slice()).expect("decodes");
            assert_eq!(lean.overall_code, overall_code);
        }
    }
}
