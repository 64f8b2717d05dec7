//! TLS for our gRPC servers, with certificates re-read when their files change, so a rotated
//! Kubernetes Secret takes effect without a restart. Optional client certificates (mutual
//! TLS), optionally restricted to allowed identities: DNS names or IPs, or SPIFFE ID patterns
//! matched against the certificate's URI SANs (a mesh workload's identity).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::reload;

/// Certificate files of a TLS server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by this CA.
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: when not empty, the client certificate must carry one of these.
    pub allowed_clients: Vec<AllowedClient>,
}

/// An identity a client certificate may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedClient {
    /// A DNS name or IP address the certificate is valid for.
    Name(String),
    /// A SPIFFE ID pattern one of the certificate's URI SANs must match.
    Spiffe(crate::spiffe::IdPattern),
}

impl AllowedClient {
    /// `spiffe://…` is a SPIFFE ID pattern; anything else a DNS name or IP.
    pub fn parse(text: &str) -> Result<AllowedClient, TlsError> {
        if text.starts_with("spiffe://") {
            crate::spiffe::IdPattern::parse(text)
                .map(AllowedClient::Spiffe)
                .map_err(|e| TlsError::Spiffe { pattern: text.to_string(), reason: e.to_string() })
        } else {
            ServerName::try_from(text.to_string()).map_err(|_| TlsError::San(text.to_string()))?;
            Ok(AllowedClient::Name(text.to_string()))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{path}: no certificate found")]
    NoCertificate { path: PathBuf },
    #[error("{key}: the key does not belong to the certificate in {cert}")]
    KeyMismatch { key: PathBuf, cert: PathBuf },
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client CA: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("{0:?} is not a DNS name or IP address")]
    San(String),
    #[error("{pattern:?} is not a SPIFFE ID pattern: {reason}")]
    Spiffe { pattern: String, reason: String },
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_error(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::File { path: path.to_path_buf(), reason: e.to_string() }
}

/// Reads a PEM certificate chain and key.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| read_error(cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| read_error(cert, e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { path: cert.to_path_buf() });
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| read_error(key, e))?;
    // Checks that the key belongs to the certificate: a rotation caught between its two files
    // (or a wrong Secret) must be refused, not served to every handshake.
    CertifiedKey::from_der(chain, key_der, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            TlsError::KeyMismatch { key: key.to_path_buf(), cert: cert.to_path_buf() }
        }
        other => TlsError::Rustls(other),
    })
}

/// The SPIFFE IDs among a certificate's URI SANs (a workload's identity; the SPIFFE
/// specification allows one, so the first is the one that counts).
fn spiffe_ids_of(cert: &webpki::EndEntityCert<'_>) -> Vec<crate::spiffe::SpiffeId> {
    cert.valid_uri_names().filter_map(|uri| crate::spiffe::SpiffeId::parse(uri).ok()).collect()
}

/// The SPIFFE IDs in the first certificate of a PEM text (a peer certificate as Envoy hands it
/// to ext_authz, once URL-decoded); empty when there is no readable certificate. The
/// certificate is not verified here: its sender already did (Envoy, at the handshake).
pub fn spiffe_ids_in_pem(pem: &[u8]) -> Vec<crate::spiffe::SpiffeId> {
    let Some(Ok(der)) = CertificateDer::pem_slice_iter(pem).next() else { return Vec::new() };
    match webpki::EndEntityCert::try_from(&der) {
        Ok(cert) => spiffe_ids_of(&cert),
        Err(_) => Vec::new(),
    }
}

/// Hands out the current certificate; [`ReloadingServer::watch`] replaces it.
#[derive(Debug)]
struct CurrentCert(Arc<ArcSwap<CertifiedKey>>);

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// A TLS acceptor whose certificate follows its files.
pub struct ReloadingServer {
    files: TlsFiles,
    current: Arc<CurrentCert>,
    /// The files' fingerprint taken before they were first read.
    read_fingerprint: u64,
    acceptor: TlsAcceptor,
}

impl ReloadingServer {
    /// For gRPC: ALPN `h2`.
    pub fn new(files: TlsFiles) -> Result<ReloadingServer, TlsError> {
        ReloadingServer::with_alpn(files, &[b"h2"])
    }

    /// For HTTP/1.1 servers: ALPN `http/1.1`.
    pub fn for_http1(files: TlsFiles) -> Result<ReloadingServer, TlsError> {
        ReloadingServer::with_alpn(files, &[b"http/1.1"])
    }

    fn with_alpn(files: TlsFiles, alpn: &[&[u8]]) -> Result<ReloadingServer, TlsError> {
        let read_fingerprint = reload::fingerprint([files.cert.as_path(), files.key.as_path()]);
        let current =
            Arc::new(CurrentCert(Arc::new(ArcSwap::from_pointee(load_certified_key(&files.cert, &files.key)?))));
        let builder = ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
        let builder = match &files.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(ca).map_err(|e| read_error(ca, e))? {
                    roots.add(cert.map_err(|e| read_error(ca, e))?)?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).build()?;
                if files.allowed_clients.is_empty() {
                    builder.with_client_cert_verifier(verifier)
                } else {
                    let mut allowed = Vec::new();
                    for client in &files.allowed_clients {
                        allowed.push(match client {
                            AllowedClient::Name(name) => Allowed::Name(
                                ServerName::try_from(name.clone()).map_err(|_| TlsError::San(name.clone()))?.to_owned(),
                            ),
                            AllowedClient::Spiffe(pattern) => Allowed::Spiffe(pattern.clone()),
                        });
                    }
                    builder.with_client_cert_verifier(Arc::new(IdentityVerifier { inner: verifier, allowed }))
                }
            }
        };
        let mut config = builder.with_cert_resolver(current.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(ReloadingServer { files, current, read_fingerprint, acceptor: TlsAcceptor::from(Arc::new(config)) })
    }

    /// Re-reads the certificate and key whenever their files change (a shared
    /// [`reload::Reloadable`], `what="tls"`: a rotation is read once it held still, a broken
    /// pair is refused and the current certificate stays), until `stop`. `counter` is the
    /// service's `<service>_reloads_total`.
    pub async fn watch(
        self: Arc<Self>,
        every: Duration,
        counter: impl reload::ReloadCounter + 'static,
        stop: watch::Receiver<bool>,
    ) {
        let (cert, key) = (self.files.cert.clone(), self.files.key.clone());
        let watched = reload::Watched::files(every, [cert.clone(), key.clone()]).since(self.read_fingerprint);
        reload::Reloadable::swapping("tls", counter, self.current.0.clone())
            .watch_blocking(watched, move || load_certified_key(&cert, &key), stop)
            .await;
    }

    /// One TLS handshake on an accepted connection.
    pub async fn accept(&self, stream: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        self.acceptor.accept(stream).await
    }

    /// Accepts TCP connections and completes TLS handshakes concurrently (a slow client never
    /// holds up the others), yielding established streams for the gRPC server.
    pub fn incoming(
        self: Arc<Self>,
        listener: TcpListener,
        mut stop: watch::Receiver<bool>,
    ) -> tokio_stream::wrappers::ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>> {
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = stop.changed() => return,
                };
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let acceptor = self.acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send(Ok(tls)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(rx)
    }
}

/// Client certificate verification plus a check that the certificate carries one of the
/// allowed identities.
#[derive(Debug)]
struct IdentityVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<Allowed>,
}

#[derive(Debug)]
enum Allowed {
    Name(ServerName<'static>),
    Spiffe(crate::spiffe::IdPattern),
}

impl ClientCertVerifier for IdentityVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
        let spiffe_ids = spiffe_ids_of(&cert);
        let carries = |allowed: &Allowed| match allowed {
            Allowed::Name(name) => cert.verify_is_valid_for_subject_name(name).is_ok(),
            Allowed::Spiffe(pattern) => spiffe_ids.iter().any(|id| pattern.matches(id)),
        };
        if self.allowed.iter().any(carries) {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }
}
