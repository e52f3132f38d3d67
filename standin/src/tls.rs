//! HTTPS for the stand-in world: a throwaway CA, server certificates it signs, and serving a
//! router over TLS. Clients trust the CA through `SSL_CERT_FILE` or `AWS_CA_BUNDLE`, as
//! users behind a TLS-inspecting proxy or with an internal registry do.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;

/// A CA made for one test run; its key never leaves the process.
pub struct ThrowawayCa {
    key: rcgen::KeyPair,
    cert: rcgen::Certificate,
}

impl ThrowawayCa {
    /// A new CA named `ecrmirror stand-in CA`.
    pub fn new() -> Result<ThrowawayCa> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ecrmirror stand-in CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(ThrowawayCa { key, cert })
    }

    /// The CA certificate, PEM-encoded: what clients are told to trust.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A server configuration whose certificate, signed by this CA, names `names` (DNS names,
    /// wildcards like `*.proxied.test`, or IP addresses).
    pub fn server_config(&self, names: &[&str]) -> Result<Arc<rustls::ServerConfig>> {
        let leaf_key = rcgen::KeyPair::generate()?;
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            names.first().copied().unwrap_or("stand-in"),
        );
        let leaf = params.signed_by(&leaf_key, &self.cert, &self.key)?;
        let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der())
            .map_err(|e| anyhow::anyhow!("server key: {e}"))?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), self.cert.der().clone()], key)?;
        Ok(Arc::new(config))
    }
}

/// Serves `router` over TLS on `127.0.0.1:0` in the background; returns the bound address.
pub async fn serve_tls(router: Router, config: Arc<rustls::ServerConfig>) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    serve_tls_on(listener, router, config);
    Ok(addr)
}

/// Serves `router` over TLS on `listener` in the background.
pub fn serve_tls_on(
    listener: tokio::net::TcpListener,
    router: Router,
    config: Arc<rustls::ServerConfig>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            // As `front::serve`: each write goes at once.
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let service = TowerToHyperService::new(router.clone());
            tokio::spawn(async move {
                if let Ok(stream) = acceptor.accept(tcp).await {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
            });
        }
    });
}
