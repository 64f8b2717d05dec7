//! Limits from an xDS server (`CONFIG_TYPE=GRPC_XDS_SOTW`), as Envoy Gateway delivers them: a
//! state-of-the-world ADS stream of `ratelimit.config.ratelimit.v3.RateLimitConfig` resources,
//! each converted to the file model and loaded together with the files' rules and messages.
//! A good snapshot is ACKed; a bad one is NACKed with the error text and the last good config
//! stays. A broken stream is re-opened with exponential backoff.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use tokio::sync::{mpsc, oneshot, watch};
use tonic::metadata::{Ascii, MetadataKey, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::core::RateLimitConfig;
use crate::provider::Installer;

mod resources;

pub use resources::{to_roots, SnapshotError, TYPE_URL};

/// The reference's `CONFIG_GRPC_XDS_*` and `XDS_CLIENT_*` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct XdsSettings {
    /// `host:port`.
    pub server_url: String,
    pub node_id: String,
    pub node_metadata: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub tls: Option<XdsTls>,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub backoff_random_factor: f64,
    pub backoff_jitter: bool,
    pub connect_retry_interval: Duration,
    pub max_message_size: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct XdsTls {
    pub ca_cert: std::path::PathBuf,
    pub client_cert: Option<std::path::PathBuf>,
    pub client_key: Option<std::path::PathBuf>,
    /// Server name to verify instead of the URL's host.
    pub server_name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum XdsError {
    #[error("invalid xDS server address {0:?}")]
    Address(String),
    #[error("cannot read {path}: {source}")]
    File { path: std::path::PathBuf, source: std::io::Error },
    #[error("xDS transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("xDS stream: {0}")]
    Stream(#[from] tonic::Status),
    #[error("invalid additional header {0:?}")]
    Header(String),
}

/// Follows the xDS server until `stop`. `first_event` fires after the first snapshot was
/// handled (loaded or refused).
pub async fn run(
    settings: XdsSettings,
    installer: Installer,
    first_event: oneshot::Sender<()>,
    mut stop: watch::Receiver<bool>,
) {
    let mut first_event = Some(first_event);
    let mut backoff = settings.backoff_initial;
    // The version of the last accepted snapshot survives reconnects, as the protocol asks.
    let mut accepted_version = String::new();
    loop {
        let session = follow(&settings, &installer, &mut first_event, &mut accepted_version, &mut backoff);
        let result = tokio::select! {
            result = session => result,
            _ = stop.changed() => return,
        };
        let wait = match &result {
            Err(XdsError::Transport(_)) => settings.connect_retry_interval,
            _ => next_backoff(&settings, &mut backoff),
        };
        if let Err(e) = result {
            tracing::warn!(server = %settings.server_url, retry_in = ?wait, "xDS config stream ended: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One stream: connect, subscribe, then handle snapshots until the stream breaks.
async fn follow(
    settings: &XdsSettings,
    installer: &Installer,
    first_event: &mut Option<oneshot::Sender<()>>,
    accepted_version: &mut String,
    backoff: &mut Duration,
) -> Result<(), XdsError> {
    let channel = connect(settings).await?;
    let mut client =
        AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(settings.max_message_size);
    let (requests, outgoing) = mpsc::channel(4);
    let node = node(settings);
    let _ = requests
        .send(DiscoveryRequest {
            version_info: accepted_version.clone(),
            node: Some(node.clone()),
            type_url: TYPE_URL.into(),
            ..DiscoveryRequest::default()
        })
        .await;
    let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(outgoing));
    for (k, v) in &settings.headers {
        let (key, value) = metadata(k, v)?;
        request.metadata_mut().insert(key, value);
    }
    let mut responses = client.stream_aggregated_resources(request).await?.into_inner();
    tracing::info!(server = %settings.server_url, node = %settings.node_id, "xDS config stream open");
    while let Some(response) = responses.message().await? {
        *backoff = settings.backoff_initial;
        let ack = handle(installer, &response, accepted_version);
        if let Some(first) = first_event.take() {
            let _ = first.send(());
        }
        if requests.send(ack).await.is_err() {
            break;
        }
    }
    Ok(())
}

/// Loads one snapshot and builds the ACK (or NACK) for it.
fn handle(installer: &Installer, response: &DiscoveryResponse, accepted_version: &mut String) -> DiscoveryRequest {
    let name = format!("xds version {}", response.version_info);
    let result = installer.install(&name, |merge| -> Result<_, SnapshotError> {
        let roots = to_roots(&response.resources)?;
        Ok(RateLimitConfig::load_roots(roots, merge)?)
    });
    let error_detail = match result {
        Ok(()) => {
            *accepted_version = response.version_info.clone();
            None
        }
        // INVALID_ARGUMENT, as Envoy reports a rejected config.
        Err(error) => Some(RpcStatus { code: 3, message: error.to_string(), details: Vec::new() }),
    };
    DiscoveryRequest {
        version_info: accepted_version.clone(),
        type_url: TYPE_URL.into(),
        response_nonce: response.nonce.clone(),
        error_detail,
        ..DiscoveryRequest::default()
    }
}

fn node(settings: &XdsSettings) -> Node {
    let metadata = (!settings.node_metadata.is_empty()).then(|| Struct {
        fields: settings
            .node_metadata
            .iter()
            .map(|(k, v)| (k.clone(), Value { kind: Some(Kind::StringValue(v.clone())) }))
            .collect(),
    });
    Node { id: settings.node_id.clone(), metadata, user_agent_name: "gatehouse-ratelimit".into(), ..Node::default() }
}

impl XdsSettings {
    /// What every connection attempt would fail on, found before the first: the server
    /// address, the extra headers, the TLS files. For the settings check, so that a value that
    /// can never work stops the start instead of retrying for ever.
    pub fn check(&self) -> Result<(), XdsError> {
        endpoint(self)?;
        for (k, v) in &self.headers {
            metadata(k, v)?;
        }
        if let Some(tls) = &self.tls {
            let files = [Some(&tls.ca_cert), tls.client_cert.as_ref(), tls.client_key.as_ref()];
            for path in files.into_iter().flatten() {
                read(path)?;
            }
        }
        Ok(())
    }
}

fn endpoint(settings: &XdsSettings) -> Result<Endpoint, XdsError> {
    let scheme = if settings.tls.is_some() { "https" } else { "http" };
    Endpoint::from_shared(format!("{scheme}://{}", settings.server_url))
        .map_err(|_| XdsError::Address(settings.server_url.clone()))
}

/// One `CONFIG_GRPC_XDS_CLIENT_ADDITIONAL_HEADERS` entry as gRPC metadata.
fn metadata(k: &str, v: &str) -> Result<(MetadataKey<Ascii>, MetadataValue<Ascii>), XdsError> {
    let key = MetadataKey::from_bytes(k.as_bytes()).map_err(|_| XdsError::Header(k.to_string()))?;
    let value = MetadataValue::try_from(v).map_err(|_| XdsError::Header(k.to_string()))?;
    Ok((key, value))
}

fn read(path: &std::path::PathBuf) -> Result<Vec<u8>, XdsError> {
    std::fs::read(path).map_err(|source| XdsError::File { path: path.clone(), source })
}

async fn connect(settings: &XdsSettings) -> Result<Channel, XdsError> {
    let mut endpoint = endpoint(settings)?.connect_timeout(Duration::from_secs(10));
    if let Some(tls) = &settings.tls {
        let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(&tls.ca_cert)?));
        if let (Some(cert), Some(key)) = (&tls.client_cert, &tls.client_key) {
            config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        if let Some(name) = &tls.server_name {
            config = config.domain_name(name.clone());
        }
        endpoint = endpoint.tls_config(config)?;
    }
    Ok(endpoint.connect().await?)
}

/// Exponential backoff with the reference's random factor (and optional jitter).
fn next_backoff(settings: &XdsSettings, current: &mut Duration) -> Duration {
    let base = *current;
    *current = (base * 2).min(settings.backoff_max);
    if !settings.backoff_jitter || settings.backoff_random_factor <= 0.0 {
        return base;
    }
    let spread = settings.backoff_random_factor.min(1.0);
    base.mul_f64(1.0 - spread + 2.0 * spread * fastrand::f64())
}
