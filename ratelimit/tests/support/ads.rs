//! An ADS server written for the tests, speaking the protocol over loopback the way Envoy
//! Gateway's does: serves the current snapshot to every stream, pushes new ones, reports every
//! request it receives (with the stream's headers), and can cut every open stream.

use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::ratelimit::config::ratelimit::v3 as rl;
use prost::Message;
use tokio::sync::{mpsc, watch, Mutex};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// An ADS server: serves the current snapshot to every stream, pushes new ones, and reports
/// every request it receives (with the stream's headers).
#[derive(Clone)]
struct Ads {
    snapshot: watch::Receiver<Option<DiscoveryResponse>>,
    /// Bumping it ends every open stream.
    cut: watch::Receiver<u64>,
    seen: mpsc::UnboundedSender<(tonic::metadata::MetadataMap, DiscoveryRequest)>,
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for Ads {
    type StreamAggregatedResourcesStream = ReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaAggregatedResourcesStream = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let headers = request.metadata().clone();
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(8);
        let (mut snapshot, mut cut, seen) = (self.snapshot.clone(), self.cut.clone(), self.seen.clone());
        cut.borrow_and_update();
        tokio::spawn(async move {
            let initial = snapshot.borrow_and_update().clone();
            if let Some(current) = initial {
                let _ = tx.send(Ok(current)).await;
            }
            loop {
                tokio::select! {
                    message = inbound.message() => match message {
                        Ok(Some(request)) => { let _ = seen.send((headers.clone(), request)); }
                        _ => return,
                    },
                    changed = snapshot.changed() => {
                        if changed.is_err() { return; }
                        let current = snapshot.borrow_and_update().clone();
                        if let Some(current) = current { let _ = tx.send(Ok(current)).await; }
                    }
                    _ = cut.changed() => return,
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented("state of the world only"))
    }
}

pub struct AdsHarness {
    pub port: u16,
    snapshot: watch::Sender<Option<DiscoveryResponse>>,
    pub cut: watch::Sender<u64>,
    seen: Mutex<mpsc::UnboundedReceiver<(tonic::metadata::MetadataMap, DiscoveryRequest)>>,
    _server: tokio::task::JoinHandle<()>,
}

impl AdsHarness {
    pub async fn start(tls: Option<tonic::transport::ServerTlsConfig>) -> AdsHarness {
        let (snapshot, snapshot_rx) = watch::channel(None);
        let (cut, cut_rx) = watch::channel(0);
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let ads = Ads { snapshot: snapshot_rx, cut: cut_rx, seen: seen_tx };
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls).unwrap();
        }
        let router = builder.add_service(AggregatedDiscoveryServiceServer::new(ads));
        let server = tokio::spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            let _ = router.serve_with_incoming(incoming).await;
        });
        AdsHarness { port, snapshot, cut, seen: Mutex::new(seen), _server: server }
    }

    pub fn push(&self, version: &str, configs: Vec<rl::RateLimitConfig>) {
        let resources = configs
            .into_iter()
            .map(|c| Any { type_url: ratelimit::xds::TYPE_URL.into(), value: c.encode_to_vec() })
            .collect();
        let response = DiscoveryResponse {
            version_info: version.into(),
            resources,
            type_url: ratelimit::xds::TYPE_URL.into(),
            nonce: format!("nonce-{version}"),
            ..Default::default()
        };
        self.snapshot.send_replace(Some(response));
    }

    pub async fn next_request(&self) -> (tonic::metadata::MetadataMap, DiscoveryRequest) {
        let mut seen = self.seen.lock().await;
        tokio::time::timeout(Duration::from_secs(10), seen.recv()).await.expect("a request within 10 s").unwrap()
    }
}
