//! Blob downloads from the source registry, by requests of our own rather than oci-client's:
//! registries answer a blob download with a redirect to a signed storage URL on another
//! host, and throttle with `Retry-After`; oci-client's answers let us neither steer the one
//! nor read the other. Here:
//! - a redirect is followed only to HTTPS, or to plain HTTP on this machine (as a registry
//!   itself is spoken to);
//! - `Authorization` never leaves the registry's origin: reqwest drops it when a redirect
//!   changes host, port or scheme;
//! - `Retry-After` on a `429` or `503` says when the next try goes;
//! - the bytes are checked against the digest as they pass; a mismatch fails the body.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};
use sha2::Digest as _;

use super::{note, Failed, Side};
use crate::distribution::{is_loopback, source_error};
use crate::error::{without_queries, Error};

/// The longest wait a `Retry-After` may ask for here; the resource's `timeouts` bound the
/// whole mirror in any case.
const LONGEST_WAIT: Duration = Duration::from_secs(60);
/// How many redirects a download follows.
const REDIRECTS: usize = 10;

/// The HTTP client for blob downloads: redirects are followed over HTTPS only (plain HTTP
/// only to this machine), at most [`REDIRECTS`] of them.
pub fn client() -> reqwest::Client {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        let url = attempt.url();
        let local = url.host_str().is_some_and(is_loopback);
        if attempt.previous().len() >= REDIRECTS {
            attempt.error(format!("more than {REDIRECTS} redirects"))
        } else if url.scheme() != "https" && !local {
            let origin = crate::network::origin(url.as_str());
            attempt.error(format!(
                "the registry redirected the download to {origin}, over plain HTTP; the provider follows redirects over HTTPS only"
            ))
        } else {
            attempt.follow()
        }
    });
    reqwest::Client::builder()
        .user_agent(concat!(
            "terraform-provider-ecrmirror/",
            env!("CARGO_PKG_VERSION")
        ))
        .redirect(policy)
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_default()
}

/// The URL of blob `digest` in the repository of `reference`.
fn blob_url(reference: &Reference, digest: &str) -> String {
    let registry = reference.resolve_registry();
    let scheme = if is_loopback(registry) {
        "http"
    } else {
        "https"
    };
    format!(
        "{scheme}://{registry}/v2/{}/blobs/{digest}",
        reference.repository()
    )
}

/// The bearer token the source's blob requests carry, when its challenge gives one for
/// pulling (asked once per copy, or again with `refresh`).
async fn bearer_token(side: &Side<'_>, refresh: bool) -> Result<Option<String>, Failed> {
    let mut cached = side.pull_token.lock().await;
    if let (Some(token), false) = (cached.as_ref(), refresh) {
        return Ok(token.clone());
    }
    let token = side
        .client
        .auth(&side.reference, &side.auth, RegistryOperation::Pull)
        .await
        .map_err(|err| Failed {
            retry: crate::distribution::transient(&err),
            error: source_error(side.reference.to_string(), &err, &side.auth),
            wait: None,
        })?;
    *cached = Some(token.clone());
    Ok(token)
}

/// How long `Retry-After` in `headers` asks to wait (seconds or an HTTP date), capped.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let wait = match value.trim().parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value.trim())
            .ok()?
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    };
    Some(wait.min(LONGEST_WAIT))
}

/// Asks the source for `digest`; the body comes back checked against the digest, a mismatch
/// noted in `failure` (as [`Error::Corrupt`]) and ending the body with an error.
pub async fn pull(
    http: &reqwest::Client,
    side: &Side<'_>,
    digest: &str,
    failure: &Arc<Mutex<Option<Failed>>>,
) -> Result<BoxStream<'static, std::io::Result<Bytes>>, Failed> {
    let url = blob_url(&side.reference, digest);
    let reference = side.reference.to_string();
    let mut refreshed = false;
    let response = loop {
        // The bearer token the challenge gave, else the basic credentials, else none.
        let request = match (bearer_token(side, refreshed).await?, &side.auth) {
            (Some(token), _) => http.get(&url).bearer_auth(token),
            (None, RegistryAuth::Basic(username, password)) => {
                http.get(&url).basic_auth(username, Some(password))
            }
            (None, _) => http.get(&url),
        };
        let response = request
            .send()
            .await
            .map_err(|err| unanswered(&reference, &url, err))?;
        // A bearer token may expire during a long copy: one fresh one.
        if response.status() == reqwest::StatusCode::UNAUTHORIZED && !refreshed {
            refreshed = true;
            continue;
        }
        break response;
    };
    let status = response.status();
    if !status.is_success() {
        return Err(refused(side, &reference, response).await);
    }
    Ok(verified(
        response,
        reference,
        digest.to_string(),
        failure.clone(),
    ))
}

/// The failure for a request that got no answer (or a redirect the client refused).
fn unanswered(reference: &str, url: &str, err: reqwest::Error) -> Failed {
    if let Some(network) =
        crate::network::network_error("the source registry", url, Some("docker_source"), &err)
    {
        return Failed {
            error: network,
            retry: true,
            wait: None,
        };
    }
    let retry = !err.is_redirect();
    let cause = without_queries(&crate::error::chain(&err.without_url()));
    Failed {
        error: Error::Source {
            reference: reference.to_string(),
            cause: format!(
                "Downloading a blob from {}: {cause}",
                crate::network::origin(url)
            ),
        },
        retry,
        wait: None,
    }
}

/// The failure for the source's answer `response`, which is not a success.
async fn refused(side: &Side<'_>, reference: &str, response: reqwest::Response) -> Failed {
    let status = response.status();
    let wait = retry_after(response.headers());
    let url = without_queries(response.url().as_str());
    let cause = format!("The registry answered {status} to GET {url}");
    let reference = reference.to_string();
    let (error, retry) = match status.as_u16() {
        429 => (Error::RateLimited { reference, cause }, true),
        404 => (Error::SourceNotFound { reference, cause }, false),
        401 | 403 => (
            Error::SourceDenied {
                reference,
                cause,
                with_credentials: !matches!(side.auth, RegistryAuth::Anonymous),
            },
            false,
        ),
        code => (Error::Source { reference, cause }, code >= 500),
    };
    Failed { error, retry, wait }
}

/// The body of `response`, hashed as it passes and compared with `digest` at its end.
fn verified(
    response: reqwest::Response,
    reference: String,
    digest: String,
    failure: Arc<Mutex<Option<Failed>>>,
) -> BoxStream<'static, std::io::Result<Bytes>> {
    let mut hasher = Hasher::of(&digest);
    // The body's chunks, then its end (`None`), where the digest is compared.
    let body = response
        .bytes_stream()
        .map(|chunk| chunk.map(Some).map_err(std::io::Error::other));
    let end = futures_util::stream::once(async { Ok(None) });
    body.chain(end)
        .map(move |chunk| match chunk? {
            Some(chunk) => {
                hasher.update(&chunk);
                Ok(chunk)
            }
            None => match hasher.finish() {
                Some(found) if found != digest => {
                    let cause = format!("the source sent bytes whose digest is {found}");
                    note(
                        &failure,
                        Failed {
                            error: Error::Corrupt {
                                reference: reference.clone(),
                                digest: digest.clone(),
                                cause: cause.clone(),
                            },
                            // Damaged in transit, perhaps: another try costs one blob.
                            retry: true,
                            wait: None,
                        },
                    );
                    Err(std::io::Error::new(std::io::ErrorKind::InvalidData, cause))
                }
                _ => Ok(Bytes::new()),
            },
        })
        .boxed()
}

/// The hash of a digest's algorithm (`sha256`, `sha512`); others are left to the target,
/// which checks every blob against `?digest=` before it commits it.
enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
    Unchecked,
    Done,
}

impl Hasher {
    fn of(digest: &str) -> Hasher {
        match digest.split_once(':').map(|(algorithm, _)| algorithm) {
            Some("sha256") => Hasher::Sha256(sha2::Sha256::new()),
            Some("sha512") => Hasher::Sha512(sha2::Sha512::new()),
            _ => Hasher::Unchecked,
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
            Hasher::Unchecked | Hasher::Done => {}
        }
    }

    /// The digest of what passed, once (`None` when not checked).
    fn finish(&mut self) -> Option<String> {
        match std::mem::replace(self, Hasher::Done) {
            Hasher::Sha256(h) => Some(format!("sha256:{:x}", h.finalize())),
            Hasher::Sha512(h) => Some(format!("sha512:{:x}", h.finalize())),
            Hasher::Unchecked | Hasher::Done => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_seconds_or_as_a_date_and_capped() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert("retry-after", "86400".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(LONGEST_WAIT));
        let soon = std::time::SystemTime::now() + Duration::from_secs(30);
        headers.insert(
            "retry-after",
            httpdate::fmt_http_date(soon).parse().unwrap(),
        );
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(20) && wait <= Duration::from_secs(30));
        headers.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn digests_are_checked_by_their_algorithm() {
        let empty256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let mut hasher = Hasher::of(empty256);
        assert_eq!(hasher.finish().as_deref(), Some(empty256));
        assert_eq!(hasher.finish(), None, "once");
        let mut hasher = Hasher::of("sha256:00");
        hasher.update(b"a");
        assert_ne!(hasher.finish().as_deref(), Some("sha256:00"));
        assert!(Hasher::of("sha512:00")
            .finish()
            .unwrap()
            .starts_with("sha512:"));
        assert_eq!(Hasher::of("blake3:00").finish(), None);
    }
}
