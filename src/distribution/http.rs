//! The HTTP clients registries are spoken to with: a user agent, a connect timeout, a read
//! timeout where one is given, and a redirect policy that never leads to plain HTTP on
//! another machine (registries redirect blob downloads to signed storage URLs; reqwest
//! drops `Authorization` when a redirect changes host, port or scheme).

use std::time::Duration;

use reqwest::Url;

use super::is_loopback;
use crate::error::{Error, Result};

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
pub(super) struct PlainHttp(String);

impl std::fmt::Display for PlainHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlainHttp {}

/// An HTTP client for registries: redirects are followed only where [`allowed`], at most
/// `REDIRECTS` of them; `read_timeout` bounds each wait for the registry.
pub(crate) fn client(read_timeout: Option<Duration>) -> Result<reqwest::Client> {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
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
    let builder = reqwest::Client::builder()
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
