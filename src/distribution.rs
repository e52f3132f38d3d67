//! The client side of the OCI distribution API: one pool of clients for every registry the
//! provider talks to directly (sources and ECR's registry), the credentials they take, and
//! the classification of their failures. `oci-client` does the protocol, Docker Hub's
//! bearer-token flow included. Loopback registries are spoken to over plain HTTP, as a
//! Docker engine does.

use std::sync::OnceLock;
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciEnvelope, OciErrorCode};
use oci_client::secrets::RegistryAuth;

use crate::credentials::Credentials;
use crate::error::Error;

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
pub fn is_loopback(registry: &str) -> bool {
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

/// What a registry answered to a failed request, told from its error codes and HTTP status,
/// never from message text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// `429` or `TOOMANYREQUESTS`.
    Throttled,
    /// `404`, or a `*_UNKNOWN` code.
    NotFound,
    /// `401`/`403`, `UNAUTHORIZED` or `DENIED`; the status when one is known.
    Denied(Option<u16>),
    /// `DIGEST_INVALID`: the bytes sent do not match the digest given.
    DigestInvalid,
    /// `TAG_INVALID`: the registry refuses the tag (ECR: an existing immutable tag).
    TagInvalid,
    /// A `5xx` status.
    ServerError,
    /// Anything else (or no answer at all).
    Other,
}

impl Answer {
    fn of_status(status: u16) -> Answer {
        match status {
            429 => Answer::Throttled,
            404 => Answer::NotFound,
            401 | 403 => Answer::Denied(Some(status)),
            500..=599 => Answer::ServerError,
            _ => Answer::Other,
        }
    }

    fn of_code(code: &OciErrorCode) -> Answer {
        match code {
            OciErrorCode::Toomanyrequests => Answer::Throttled,
            OciErrorCode::ManifestUnknown
            | OciErrorCode::NameUnknown
            | OciErrorCode::BlobUnknown
            | OciErrorCode::NotFound => Answer::NotFound,
            OciErrorCode::Unauthorized | OciErrorCode::Denied => Answer::Denied(None),
            OciErrorCode::DigestInvalid => Answer::DigestInvalid,
            OciErrorCode::TagInvalid => Answer::TagInvalid,
            _ => Answer::Other,
        }
    }

    fn of_envelope(envelope: &OciEnvelope) -> Answer {
        envelope
            .errors
            .iter()
            .map(|e| Answer::of_code(&e.code))
            .find(|answer| *answer != Answer::Other)
            .unwrap_or(Answer::Other)
    }

    /// What `err` says the registry answered.
    pub fn of(err: &OciDistributionError) -> Answer {
        match err {
            OciDistributionError::RegistryError { envelope, .. } => Answer::of_envelope(envelope),
            // oci-client leaves some error bodies unparsed: the registry's JSON error
            // envelope is read here, for its codes.
            OciDistributionError::ServerError { code, message, .. } => {
                match serde_json::from_str::<OciEnvelope>(message).map(|e| Answer::of_envelope(&e))
                {
                    Ok(Answer::Other) | Err(_) => Answer::of_status(*code),
                    Ok(answer) => answer,
                }
            }
            OciDistributionError::RequestError(err) => err
                .status()
                .map_or(Answer::Other, |s| Answer::of_status(s.as_u16())),
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => Answer::Denied(Some(401)),
            OciDistributionError::ImageManifestNotFoundError(_) => Answer::NotFound,
            _ => Answer::Other,
        }
    }
}

/// Whether another try of the request that failed with `err` may succeed: throttling, a
/// server error, a connection that broke or timed out, a body cut short.
pub fn transient(err: &OciDistributionError) -> bool {
    match err {
        OciDistributionError::RequestError(request) if request.status().is_none() => {
            request.is_connect()
                || request.is_timeout()
                || request.is_body()
                || request.is_request()
        }
        OciDistributionError::IoError(_) | OciDistributionError::DigestError(_) => true,
        _ => matches!(Answer::of(err), Answer::Throttled | Answer::ServerError),
    }
}

/// How often a registry request that failed transiently is tried in all.
pub const ATTEMPTS: u32 = 3;

/// How long to wait before try `attempt + 1` of a request when the registry did not say:
/// exponential (below 1 s, then below 2 s, …) with full jitter, so that requests failed by
/// one blip do not all come back at once.
pub fn backoff(attempt: u32) -> Duration {
    let ceiling = Duration::from_millis(500 * 2u64.pow(attempt.min(6)));
    ceiling.mul_f64(fastrand::f64())
}

/// `step` (made anew by each call), tried again after the wait `again` gives for its error
/// and the number of tries so far, until `again` gives none. Every retry loop of the
/// provider is this one; the debug log names `what`.
pub async fn with_retries<T, E, F, Fut>(
    what: &str,
    mut step: F,
    again: impl Fn(&E, u32) -> Option<Duration>,
) -> std::result::Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match step().await {
            Err(err) => match again(&err, attempt) {
                Some(wait) => {
                    tracing::debug!(attempt, ?wait, "retrying {what}: {err}");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                None => return Err(err),
            },
            done => return done,
        }
    }
}

/// `request` (made anew by each call) tried up to [`ATTEMPTS`] times while it fails
/// [`transient`]ly, after [`backoff`]. For the requests oci-client makes (manifests, config
/// blobs): its errors carry no `Retry-After`.
pub async fn retried<T, F, Fut>(what: &str, request: F) -> oci_client::errors::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = oci_client::errors::Result<T>>,
{
    with_retries(what, request, |err, attempt| {
        (transient(err) && attempt < ATTEMPTS).then(|| backoff(attempt))
    })
    .await
}

/// A failure to get `reference` from its source registry, classified by what the registry
/// answered; `auth`: the credentials the request carried.
pub fn source_error(reference: String, err: &OciDistributionError, auth: &RegistryAuth) -> Error {
    if let Some(network) = oci_network_error("the source registry", Some("docker_source"), err) {
        return network;
    }
    let cause = err.to_string();
    match Answer::of(err) {
        Answer::Throttled => Error::RateLimited { reference, cause },
        Answer::NotFound => Error::SourceNotFound { reference, cause },
        Answer::Denied(_) => Error::SourceDenied {
            reference,
            cause,
            with_credentials: !matches!(auth, RegistryAuth::Anonymous),
        },
        _ => Error::Source { reference, cause },
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

/// HTTP and distribution clients for registries.
pub struct Distribution {
    // Built on first use: loading the system's trusted roots takes tens of milliseconds,
    // and most plans never talk to a registry.
    http: OnceLock<reqwest::Client>,
    tls: OnceLock<oci_client::Client>,
    plain: OnceLock<oci_client::Client>,
    tls_uploads: OnceLock<oci_client::Client>,
    plain_uploads: OnceLock<oci_client::Client>,
}

impl Default for Distribution {
    fn default() -> Self {
        Distribution::new()
    }
}

impl Distribution {
    /// Clients with the system's trusted roots, made when first needed.
    pub fn new() -> Distribution {
        crate::install_crypto_provider();
        Distribution {
            http: OnceLock::new(),
            tls: OnceLock::new(),
            plain: OnceLock::new(),
            tls_uploads: OnceLock::new(),
            plain_uploads: OnceLock::new(),
        }
    }

    /// A plain HTTP client, for requests outside the distribution protocol's flows.
    pub fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(|| {
            reqwest::Client::builder()
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A registry's JSON error answer with `code`.
    fn registry_error(code: OciErrorCode) -> OciDistributionError {
        OciDistributionError::RegistryError {
            envelope: OciEnvelope {
                errors: vec![oci_client::errors::OciError {
                    code,
                    message: "whatever the registry says".into(),
                    detail: serde_json::Value::Null,
                }],
            },
            url: "http://r/v2/a/blobs/sha256:1".into(),
        }
    }

    /// An answer with HTTP status `code` and a body that is not an error envelope.
    fn server_error(code: u16) -> OciDistributionError {
        OciDistributionError::ServerError {
            code,
            url: "http://r/v2/".into(),
            message: "no".into(),
        }
    }

    #[test]
    fn throttling_is_told_by_code_or_status() {
        let throttled = |err: OciDistributionError| {
            matches!(
                source_error("r/a:1".into(), &err, &RegistryAuth::Anonymous),
                Error::RateLimited { .. }
            )
        };
        assert!(throttled(registry_error(OciErrorCode::Toomanyrequests)));
        assert!(throttled(server_error(429)));
        assert!(!throttled(registry_error(OciErrorCode::Denied)));
        assert!(!throttled(server_error(500)));
    }

    #[test]
    fn answers_are_told_by_code_or_status() {
        let kind = |err: OciDistributionError| {
            std::mem::discriminant(&source_error(
                "r/a:1".into(),
                &err,
                &RegistryAuth::Anonymous,
            ))
        };
        let not_found = kind(registry_error(OciErrorCode::ManifestUnknown));
        assert_eq!(kind(server_error(404)), not_found);
        let denied = kind(registry_error(OciErrorCode::Denied));
        assert_eq!(kind(server_error(403)), denied);
        assert_ne!(denied, not_found);
        assert!(transient(&server_error(503)));
        assert!(transient(&registry_error(OciErrorCode::Toomanyrequests)));
        assert!(!transient(&server_error(404)));
        assert!(!transient(&registry_error(OciErrorCode::Denied)));
        assert_eq!(
            Answer::of(&registry_error(OciErrorCode::DigestInvalid)),
            Answer::DigestInvalid
        );
        let unparsed = OciDistributionError::ServerError {
            code: 400,
            url: "http://r/v2/a/blobs/uploads/u".into(),
            message: r#"{"errors":[{"code":"DIGEST_INVALID","message":"no match"}]}"#.into(),
        };
        assert_eq!(Answer::of(&unparsed), Answer::DigestInvalid);
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
