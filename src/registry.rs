//! Talking to registries' distribution API directly, not through the Docker engine.
//!
//! - Before a push the provider checks ECR's credentials with one `GET /v2/`, as `docker
//!   login` does: a Docker engine retries a refused upload for about a minute before it gives
//!   up, while this answers at once.
//! - Source registries are asked, with manifest requests only (never a pull), which digest a
//!   tag names (`HEAD`, which Docker Hub does not count against its pull limit) and which
//!   image config a reference holds for a platform. `oci-client` does the protocol, Docker
//!   Hub's bearer-token flow included. Loopback registries are spoken to over plain HTTP, as
//!   a Docker engine does.

use std::sync::OnceLock;
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;

use crate::credentials::Credentials;
use crate::ecr::RegistryLogin;
use crate::error::{Error, Result};
use crate::manifest::{self, Selected};
use crate::reference::{Platform, SourceRef};

/// How long a registry may stay silent: before it answers, and between two reads of an
/// answer's body.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A distribution client speaking `protocol`. Blobs are pushed in one streamed request each
/// (`POST`, then `PUT ?digest=` with the whole blob as its body): ECR answers the chunked
/// upload's `PATCH`es otherwise than the distribution spec says (`201` and a `Range` that
/// stops advancing; aws/containers-roadmap#2831), and one request per blob is also what
/// costs least. reqwest counts the time a request's body takes to send against the read
/// timeout, so the client that uploads blobs has none (`read_timeout` `None`): a large layer
/// on a slow link takes minutes. The resource's `timeouts` still bound the whole mirror.
fn distribution_client(
    protocol: ClientProtocol,
    read_timeout: Option<Duration>,
) -> oci_client::Client {
    oci_client::Client::new(ClientConfig {
        protocol,
        use_monolithic_push: true,
        connect_timeout: Some(Duration::from_secs(30)),
        read_timeout,
        ..Default::default()
    })
}

/// Whether `registry` (`host[:port]`) is on this machine, where Docker uses plain HTTP.
fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => registry.split(':').next().unwrap_or_default(),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Source credentials as the distribution client takes them. Identity tokens (an OAuth
/// refresh token in the Docker config file) are not exchanged here; such sources are asked
/// anonymously.
pub fn oci_auth(credentials: Option<&Credentials>) -> RegistryAuth {
    match credentials {
        Some(Credentials::Basic {
            username, password, ..
        }) => RegistryAuth::Basic(username.clone(), password.expose().to_string()),
        _ => RegistryAuth::Anonymous,
    }
}

/// A failure to get `reference` from its source registry, classified by what the registry
/// answered: throttling by its error code or status (oci-client's message does not say
/// 429), the rest by [`Error::from_source`].
pub fn source_error(reference: String, err: &OciDistributionError) -> Error {
    if let Some(network) = oci_network_error("the source registry", Some("docker_source"), err) {
        return network;
    }
    let throttled = match err {
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| e.code == OciErrorCode::Toomanyrequests),
        OciDistributionError::ServerError { code, .. } => *code == 429,
        OciDistributionError::RequestError(err) => err.status().is_some_and(|s| s.as_u16() == 429),
        _ => false,
    };
    if throttled {
        Error::RateLimited {
            reference,
            cause: err.to_string(),
        }
    } else {
        Error::from_source(reference, err.to_string())
    }
}

/// An [`Error::Network`] when `err` is a request to `service` that got no answer.
pub fn oci_network_error(
    service: &'static str,
    attribute: Option<&'static str>,
    err: &OciDistributionError,
) -> Option<Error> {
    let OciDistributionError::RequestError(request) = err else {
        return None;
    };
    if request.status().is_some() {
        return None;
    }
    let url = request.url()?.to_string();
    crate::network::network_error(service, &url, attribute, request).or_else(|| {
        request
            .is_timeout()
            .then(|| crate::network::timed_out(service, &url, attribute))
    })
}

/// How long the credential check may take before it is skipped (the push then reports).
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// HTTP clients for registries.
pub struct Registry {
    // Built on first use: loading the system's trusted roots takes tens of milliseconds,
    // and most plans never talk to a registry.
    http: OnceLock<reqwest::Client>,
    tls: OnceLock<oci_client::Client>,
    plain: OnceLock<oci_client::Client>,
    tls_uploads: OnceLock<oci_client::Client>,
    plain_uploads: OnceLock<oci_client::Client>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    /// Clients with the system's trusted roots, made when first needed.
    pub fn new() -> Registry {
        crate::install_crypto_provider();
        Registry {
            http: OnceLock::new(),
            tls: OnceLock::new(),
            plain: OnceLock::new(),
            tls_uploads: OnceLock::new(),
            plain_uploads: OnceLock::new(),
        }
    }

    fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(|| {
            reqwest::Client::builder()
                .timeout(CHECK_TIMEOUT)
                .user_agent(concat!(
                    "terraform-provider-ecrmirror/",
                    env!("CARGO_PKG_VERSION")
                ))
                .build()
                .unwrap_or_default()
        })
    }

    /// The distribution client for `registry` (plain HTTP for loopback registries).
    pub fn client_for(&self, registry: &str) -> &oci_client::Client {
        self.distribution(registry, false)
    }

    /// The distribution client that uploads blobs to `registry`: no read timeout, as the
    /// upload's own sending counts against it.
    pub fn upload_client_for(&self, registry: &str) -> &oci_client::Client {
        self.distribution(registry, true)
    }

    fn distribution(&self, registry: &str, uploads: bool) -> &oci_client::Client {
        let (cell, protocol) = match (is_loopback(registry), uploads) {
            (true, false) => (&self.plain, ClientProtocol::Http),
            (false, false) => (&self.tls, ClientProtocol::Https),
            (true, true) => (&self.plain_uploads, ClientProtocol::Http),
            (false, true) => (&self.tls_uploads, ClientProtocol::Https),
        };
        cell.get_or_init(|| distribution_client(protocol, (!uploads).then_some(READ_TIMEOUT)))
    }

    /// The digest `source` names now (one `HEAD` request).
    pub async fn source_digest(
        &self,
        source: &SourceRef,
        credentials: Option<&Credentials>,
    ) -> Result<String> {
        self.client_for(source.registry())
            .fetch_manifest_digest(source.as_oci(), &oci_auth(credentials))
            .await
            .map_err(|err| source_error(source.to_string(), &err))
    }

    /// The digest `source` names, and the digest of the manifest a registry-to-registry copy
    /// pushes: the same, or the platform's manifest in an index when `platform` is given.
    pub async fn source_copy_digest(
        &self,
        source: &SourceRef,
        platform: Option<&Platform>,
        credentials: Option<&Credentials>,
    ) -> Result<(String, Option<String>)> {
        let Some(platform) = platform else {
            let digest = self.source_digest(source, credentials).await?;
            return Ok((digest.clone(), Some(digest)));
        };
        let (body, digest) = self
            .client_for(source.registry())
            .pull_manifest_raw(source.as_oci(), &oci_auth(credentials), &manifest::ACCEPTED)
            .await
            .map_err(|err| source_error(source.to_string(), &err))?;
        let copied = match manifest::select(&body, platform) {
            Selected::Manifest(child) => Some(child),
            Selected::Config(_) => Some(digest.clone()),
            Selected::Missing => None,
        };
        Ok((digest, copied))
    }

    /// The digest `source` names and the image config digest it holds for `platform`.
    pub async fn source_config(
        &self,
        source: &SourceRef,
        platform: &Platform,
        credentials: Option<&Credentials>,
    ) -> Result<(String, Option<String>)> {
        let client = self.client_for(source.registry());
        let auth = oci_auth(credentials);
        let fail = |err: OciDistributionError| source_error(source.to_string(), &err);
        let (body, digest) = client
            .pull_manifest_raw(source.as_oci(), &auth, &manifest::ACCEPTED)
            .await
            .map_err(fail)?;
        let config = match manifest::select(&body, platform) {
            Selected::Config(config) => Some(config),
            Selected::Manifest(platform_digest) => {
                let reference = source.as_oci().clone_with_digest(platform_digest);
                let (body, _) = client
                    .pull_manifest_raw(&reference, &auth, &manifest::ACCEPTED)
                    .await
                    .map_err(fail)?;
                match manifest::select(&body, platform) {
                    Selected::Config(config) => Some(config),
                    _ => None,
                }
            }
            Selected::Missing => None,
        };
        Ok((digest, config))
    }

    /// Fails with [`Error::TargetDenied`] when the registry refuses `login`. Other failures
    /// (network, server errors) are left for the push itself to report.
    pub async fn check_login(&self, login: &RegistryLogin) -> Result<()> {
        let url = format!("{}/v2/", login.endpoint);
        let response = self
            .http()
            .get(&url)
            .basic_auth(&login.username, Some(login.password.expose()))
            .send()
            .await;
        match response {
            Ok(response) if matches!(response.status().as_u16(), 401 | 403) => {
                Err(Error::TargetDenied {
                    registry: login.host.clone(),
                    cause: format!(
                        "The registry answered {} to the credentials GetAuthorizationToken returned.",
                        response.status()
                    ),
                })
            }
            Ok(_) => Ok(()),
            Err(err) => {
                tracing::debug!(registry = %login.host, "credential check skipped: {err}");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_is_told_by_code_or_status() {
        let envelope = |code| oci_client::errors::OciEnvelope {
            errors: vec![oci_client::errors::OciError {
                code,
                message: "slow down".into(),
                detail: serde_json::Value::Null,
            }],
        };
        let registry_error = |code| OciDistributionError::RegistryError {
            envelope: envelope(code),
            url: "http://r/v2/a/blobs/sha256:1".into(),
        };
        let server_error = |code| OciDistributionError::ServerError {
            code,
            url: "http://r/v2/".into(),
            message: "no".into(),
        };
        let throttled = |err: OciDistributionError| {
            matches!(
                source_error("r/a:1".into(), &err),
                Error::RateLimited { .. }
            )
        };
        assert!(throttled(registry_error(OciErrorCode::Toomanyrequests)));
        assert!(throttled(server_error(429)));
        assert!(!throttled(registry_error(OciErrorCode::Denied)));
        assert!(!throttled(server_error(500)));
    }

    #[test]
    fn loopback_registries_are_told_apart() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("docker.io"));
        assert!(!is_loopback("127.example.com"));
    }
}
