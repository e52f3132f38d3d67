//! The HTTP clients registries are spoken to with: a user agent, a connect timeout, a read
//! timeout where one is given, and a redirect policy that never leads to plain HTTP on
//! another machine (registries redirect blob downloads to signed storage URLs; reqwest
//! drops `Authorization` when a redirect changes host, port or scheme).

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::{Method, Response, Url};

use super::failure::{Kind, RequestFailure};
use super::headers::retry_after;
use super::{is_loopback, Answer, Role};
use crate::error::{causes, chain, without_queries, Error, Result};

/// How much of an error answer's body a diagnostic quotes.
const QUOTED: usize = 300;

/// How many redirects a request follows.
const REDIRECTS: usize = 10;

/// Whether a request may go to `url`: over HTTPS, or over plain HTTP on this machine (as a
/// Docker engine speaks to a loopback registry).
pub(crate) fn allowed(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => url.host_str().is_some_and(is_loopback),
        _ => false,
    }
}

/// A redirect, token realm or upload location that would have the provider speak plain HTTP
/// to another machine.
#[derive(Debug)]
struct PlainHttp(String);

impl std::fmt::Display for PlainHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlainHttp {}

/// The TLS configuration of registry clients: the system's trust store, as reqwest uses it
/// by default (rustls-platform-verifier), read once.
pub(crate) fn tls() -> Result<rustls::ClientConfig> {
    let unusable = |err: rustls::Error| {
        Error::Environment {
        summary: "Cannot set up TLS for registries".into(),
        detail: format!(
            "{err}\n\nCheck the trusted certificates of the machine that runs Terraform (SSL_CERT_FILE, SSL_CERT_DIR)."
        ),
    }
    };
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone()).map_err(unusable)?;
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(unusable)?
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(verifier))
        .with_no_client_auth())
}

/// Whether a client follows redirects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Redirects {
    /// Where [`allowed`], at most `REDIRECTS` of them.
    Follow,
    /// Never: a redirect is the answer (for requests whose body is a secret).
    None,
}

/// An HTTP client for registries over `tls`: redirects are followed as `redirects` says;
/// `read_timeout` bounds each wait for the registry.
pub(crate) fn client(
    tls: rustls::ClientConfig,
    read_timeout: Option<Duration>,
    redirects: Redirects,
) -> Result<reqwest::Client> {
    let follow = reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= REDIRECTS {
            attempt.error(format!("more than {REDIRECTS} redirects"))
        } else if !allowed(attempt.url()) {
            let origin = crate::network::origin(attempt.url().as_str());
            attempt.error(PlainHttp(format!(
                "the registry redirected the request to {origin}, over plain HTTP; the provider follows redirects over HTTPS only"
            )))
        } else {
            attempt.follow()
        }
    });
    let policy = match redirects {
        Redirects::Follow => follow,
        Redirects::None => reqwest::redirect::Policy::none(),
    };
    let builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .user_agent(USER_AGENT)
        .redirect(policy)
        .connect_timeout(Duration::from_secs(30));
    match read_timeout {
        Some(timeout) => builder.read_timeout(timeout),
        None => builder,
    }
    .build()
    .map_err(|err| Error::Environment {
        summary: "Cannot set up the HTTP client for registries".into(),
        detail: format!(
            "{}\n\nCheck the trusted certificates of the machine that runs Terraform (SSL_CERT_FILE, SSL_CERT_DIR).",
            crate::error::chain(&err)
        ),
    })
}

/// The provider's `User-Agent`.
pub(crate) const USER_AGENT: &str =
    concat!("terraform-provider-ecrmirror/", env!("CARGO_PKG_VERSION"));

/// The failure of `method url`, which got no answer (or a redirect refused), on the
/// side `role` names.
pub(crate) fn unanswered(
    role: Role,
    method: &Method,
    url: &str,
    err: reqwest::Error,
) -> RequestFailure {
    let (service, attribute) = role.service();
    let network = crate::network::network_error(service, url, attribute, &err)
        .or_else(|| {
            err.is_timeout()
                .then(|| crate::network::timed_out(service, url, attribute))
        })
        .map(Box::new);
    let retry = !err.is_redirect() && !err.is_builder();
    let plain = causes(&err).any(|cause| cause.is::<PlainHttp>());
    let cause = without_queries(&chain(&err.without_url()));
    let kind = if plain {
        Kind::PlainHttp
    } else {
        Kind::Unanswered { network, retry }
    };
    RequestFailure::new(kind, format!("{method} {}: {cause}", without_queries(url)))
}

/// The failure for `response` to `method`, which is not a success.
pub(crate) async fn refused(method: &Method, response: Response) -> RequestFailure {
    let status = response.status();
    let wait = retry_after(response.headers());
    let url = without_queries(response.url().as_str());
    let body = read(response, 64 << 10).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    let envelope = serde_json::from_slice::<oci_client::errors::OciEnvelope>(&body).ok();
    let answer = envelope
        .as_ref()
        .map(Answer::of_envelope)
        .filter(|answer| *answer != Answer::Other)
        .unwrap_or_else(|| Answer::of_status(status.as_u16()));
    let said = match &envelope {
        Some(envelope) => envelope
            .errors
            .iter()
            .map(|e| {
                let code = serde_json::to_value(&e.code).unwrap_or_default();
                format!("{}: {}", code.as_str().unwrap_or("?"), e.message)
            })
            .collect::<Vec<_>>()
            .join("; "),
        None => text.trim().chars().take(QUOTED).collect(),
    };
    let mut cause = format!("The registry answered {status} to {method} {url}");
    if !said.is_empty() {
        cause.push_str(&format!(" ({})", without_queries(&said)));
    }
    RequestFailure {
        kind: Kind::Answered(answer),
        cause,
        wait,
    }
}

/// The body of `response`, at most `limit` bytes.
pub(crate) async fn read(response: Response, limit: usize) -> Result<Bytes, RequestFailure> {
    let url = without_queries(response.url().as_str());
    let too_large = || {
        RequestFailure::new(
            Kind::Unusable,
            format!("{url} answered more than {limit} bytes"),
        )
    };
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|err| {
            RequestFailure::new(
                Kind::Unanswered {
                    network: None,
                    retry: true,
                },
                format!("Reading the answer of {url}: {}", chain(&err.without_url())),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_this_machine_is_spoken_to() {
        let ok = |url: &str| allowed(&Url::parse(url).unwrap());
        assert!(ok("https://storage.example.com/blob?sig=1"));
        assert!(ok("http://127.0.0.1:5000/v2/"));
        assert!(ok("http://localhost/v2/"));
        assert!(ok("http://[::1]:5000/v2/"));
        assert!(!ok("http://storage.example.com/blob"));
        assert!(!ok("ftp://127.0.0.1/blob"));
    }
}
