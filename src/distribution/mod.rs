//! The client side of the OCI distribution API: the HTTP clients for every registry the
//! provider talks to directly (sources and ECR's registry), the credentials they take, and
//! what their answers mean. Loopback registries are spoken to over plain HTTP, as a Docker
//! engine does.
//!
//! In layers, each using only those above it:
//! - [`headers`]: `Retry-After` and `WWW-Authenticate` read (pure).
//! - [`digest`]: [`digest::Digest`], and the checks every manifest and blob passes (pure).
//! - [`failure`]: why a request failed, whether to try again, and the [`crate::error::Error`]
//!   it becomes on the side it failed on.
//! - [`http`]: the HTTP clients and their redirect policy; an answer's body read, and what
//!   came back (or did not) made a failure.
//! - [`session`]: a [`Session`] with one repository and its endpoint calls; `session::auth`
//!   how it meets a registry's challenge (tokens for basic credentials or for an identity
//!   token, basic).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use oci_client::errors::{OciEnvelope, OciErrorCode};
use oci_client::Reference;

use crate::credentials::Credentials;
use crate::error::Result;

pub(crate) mod digest;
pub(crate) mod failure;
pub mod headers;
pub(crate) mod http;
pub(crate) mod session;

pub(crate) use failure::{retry_request, RequestFailure};
pub(crate) use session::{Access, Clients, Session};

/// How long a registry may stay silent: before it answers, and between two reads of an
/// answer's body.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether `registry` (`host[:port]`) is on this machine, where Docker uses plain HTTP.
pub(crate) fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => registry.split(':').next().unwrap_or_default(),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What `reference` names in its repository: its digest, else its tag (`latest` when it has
/// neither).
pub(crate) fn tag_or_digest(reference: &Reference) -> &str {
    reference.digest().or(reference.tag()).unwrap_or("latest")
}

/// Which side of a copy a session speaks to: it names the service in network errors, and
/// which errors its failures become.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// The registry `docker_source` names.
    Source,
    /// ECR's registry.
    Target,
}

impl Role {
    /// The service this side is, as network errors name it, and the attribute that names it.
    pub(super) fn service(self) -> (&'static str, Option<&'static str>) {
        match self {
            Role::Source => ("the source registry", Some("docker_source")),
            Role::Target => ("ECR's registry", None),
        }
    }
}

/// What a registry answered to a failed request, told from its error codes and HTTP status,
/// never from message text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
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
}

/// HTTP clients for registries.
pub struct Distribution {
    // Built on first use, or by `prepare` ahead of it: reading the system's trusted roots
    // takes milliseconds (tens in a debug build), and most plans never talk to a registry.
    requests: OnceLock<Result<reqwest::Client>>,
    uploads: OnceLock<Result<reqwest::Client>>,
    exchanges: OnceLock<Result<reqwest::Client>>,
    tls: OnceLock<Result<rustls::ClientConfig>>,
    preparing: std::sync::atomic::AtomicBool,
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
            requests: OnceLock::new(),
            uploads: OnceLock::new(),
            exchanges: OnceLock::new(),
            tls: OnceLock::new(),
            preparing: Default::default(),
        }
    }

    /// Builds the clients on a thread of their own, once, ahead of the first request: a
    /// plan that will copy asks for it, so that the apply finds them made.
    pub(crate) fn prepare(self: &Arc<Self>) {
        if self
            .preparing
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        let distribution = self.clone();
        std::thread::spawn(move || {
            let _ = distribution.http();
            let _ = distribution.uploads();
            let _ = distribution.exchanges();
        });
    }

    /// The TLS configuration both clients share.
    fn tls(&self) -> Result<rustls::ClientConfig> {
        self.tls.get_or_init(http::tls).clone()
    }

    /// The client for blob uploads (no read timeout).
    fn uploads(&self) -> Result<&reqwest::Client> {
        self.uploads
            .get_or_init(|| http::client(self.tls()?, None, http::Redirects::Follow))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The client for identity-token exchanges with token services: it follows no
    /// redirect, since a `POST`'s form (the token in it) would follow a `307` elsewhere.
    fn exchanges(&self) -> Result<&reqwest::Client> {
        self.exchanges
            .get_or_init(|| http::client(self.tls()?, Some(READ_TIMEOUT), http::Redirects::None))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The client for requests outside a session's flows (a credential check): the
    /// sessions' own, with their redirect policy and read timeout.
    pub(crate) fn http(&self) -> Result<&reqwest::Client> {
        self.requests
            .get_or_init(|| http::client(self.tls()?, Some(READ_TIMEOUT), http::Redirects::Follow))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// A session with the repository of `reference`, for `access`, carrying `credentials`
    /// (none: anonymous). Its blob uploads go through a client without a read timeout:
    /// reqwest counts the time a body takes to send against it, and a large layer on a slow
    /// link takes minutes (the resource's `timeouts` still bound the whole mirror).
    pub(crate) fn session(
        &self,
        reference: Reference,
        credentials: Option<Credentials>,
        access: Access,
        role: Role,
    ) -> Result<Session<'_>> {
        let clients = Clients {
            requests: self.http()?,
            uploads: self.uploads()?,
            exchanges: self.exchanges()?,
        };
        Ok(Session::new(clients, reference, credentials, access, role))
    }

    /// A session for pulling from the source `reference` names, with `credentials`.
    pub(crate) fn source(
        &self,
        reference: Reference,
        credentials: Option<&Credentials>,
    ) -> Result<Session<'_>> {
        self.session(reference, credentials.cloned(), Access::Pull, Role::Source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A registry's JSON error answer with `code`.
    fn envelope(code: OciErrorCode) -> OciEnvelope {
        OciEnvelope {
            errors: vec![oci_client::errors::OciError {
                code,
                message: "whatever the registry says".into(),
                detail: serde_json::Value::Null,
            }],
        }
    }

    #[test]
    fn answers_are_told_by_code_or_status() {
        assert_eq!(Answer::of_status(429), Answer::Throttled);
        assert_eq!(
            Answer::of_envelope(&envelope(OciErrorCode::Toomanyrequests)),
            Answer::Throttled
        );
        assert_eq!(Answer::of_status(404), Answer::NotFound);
        assert_eq!(
            Answer::of_envelope(&envelope(OciErrorCode::ManifestUnknown)),
            Answer::NotFound
        );
        assert_eq!(Answer::of_status(403), Answer::Denied(Some(403)));
        assert_eq!(
            Answer::of_envelope(&envelope(OciErrorCode::Denied)),
            Answer::Denied(None)
        );
        assert_eq!(Answer::of_status(503), Answer::ServerError);
        assert_eq!(Answer::of_status(400), Answer::Other);
        assert_eq!(
            Answer::of_envelope(&envelope(OciErrorCode::DigestInvalid)),
            Answer::DigestInvalid
        );
        assert_eq!(
            Answer::of_envelope(&envelope(OciErrorCode::TagInvalid)),
            Answer::TagInvalid
        );
        assert_eq!(
            Answer::of_envelope(&envelope(OciErrorCode::Unsupported)),
            Answer::Other
        );
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
