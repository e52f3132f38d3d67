//! How the provider's connections reach the network, and what it means when they do not.
//!
//! Three kinds of connection leave the provider: the ECR API (AWS SDK), ECR's registry and
//! source registries (reqwest, [`crate::distribution::http`]). All of them:
//! - go through the proxy that `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` name, except for hosts
//!   `NO_PROXY` lists (either case, read as curl does);
//! - trust the system's CA certificates, which `SSL_CERT_FILE`/`SSL_CERT_DIR` replace.
//!
//! The ECR API also trusts the certificates of `AWS_CA_BUNDLE`, as the AWS CLI does (added to
//! the trusted roots, not replacing them; see `ecr::setup`).
//!
//! A connection that fails before any answer is an [`Error::Network`]: [`classify`] tells DNS,
//! refused, timed out, reset, TLS and proxy failures apart, and the diagnostic names the
//! endpoint, the proxy in the way and the likely fix.

use std::error::Error as StdError;

use crate::error::Error;

/// What went wrong on the way to a server, before it answered (the network's fault, not the
/// server's answer: those are [`crate::distribution::failure`]'s and the ECR API's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The host name does not resolve.
    Dns,
    /// Nothing accepts connections at the address.
    Refused,
    /// No answer in time.
    TimedOut,
    /// The connection was cut before an answer.
    Reset,
    /// The server's certificate is signed by a CA this machine does not trust.
    UnknownCa,
    /// The server's certificate does not name the host.
    WrongName,
    /// The server's certificate is expired or not yet valid.
    Expired,
    /// Another TLS failure.
    Tls,
    /// The proxy refused to open a tunnel to the host (it answered other than 200).
    ProxyRefused,
    /// The proxy demands credentials.
    ProxyAuth,
}

/// The failure behind `err`, when it is a network failure; walks the whole source chain
/// (I/O errors' inner errors included).
pub(crate) fn classify(err: &(dyn StdError + 'static)) -> Option<Fault> {
    let mut found = None;
    let mut text = String::new();
    let mut next = Some(err);
    while let Some(current) = next {
        text.push_str(&current.to_string().to_ascii_lowercase());
        text.push('\n');
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls_failure(tls));
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            found = found.or(match io.kind() {
                std::io::ErrorKind::ConnectionRefused => Some(Fault::Refused),
                std::io::ErrorKind::TimedOut => Some(Fault::TimedOut),
                std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof => Some(Fault::Reset),
                _ => None,
            });
            // An I/O error's `source` skips the error it wraps: look at that one too.
            if let Some(inner) = io.get_ref() {
                if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
                    return Some(tls_failure(tls));
                }
                next = Some(inner as &(dyn StdError + 'static));
                continue;
            }
        }
        next = current.source();
    }
    let has = |needle: &str| text.contains(needle);
    if has("proxy authorization required") {
        Some(Fault::ProxyAuth)
    } else if has("tunnel error: unsuccessful")
        || has("tunnel error: unexpected end of file")
        || has("tunnel error: proxy response headers too long")
    {
        Some(Fault::ProxyRefused)
    } else if has("dns error") || has("failed to lookup address") {
        Some(Fault::Dns)
    } else if found.is_some() {
        found
    } else if has("timed out") || has("timeout") {
        Some(Fault::TimedOut)
    } else if has("connection refused") {
        Some(Fault::Refused)
    } else if has("tcp connect error") || has("error trying to connect") {
        Some(Fault::Reset)
    } else {
        None
    }
}

fn tls_failure(err: &rustls::Error) -> Fault {
    use rustls::CertificateError as Cert;
    match err {
        rustls::Error::InvalidCertificate(cert) => match cert {
            Cert::UnknownIssuer | Cert::BadSignature => Fault::UnknownCa,
            Cert::NotValidForName | Cert::NotValidForNameContext { .. } => Fault::WrongName,
            Cert::Expired
            | Cert::ExpiredContext { .. }
            | Cert::NotValidYet
            | Cert::NotValidYetContext { .. } => Fault::Expired,
            Cert::Other(other) if other.to_string().to_ascii_lowercase().contains("issuer") => {
                Fault::UnknownCa
            }
            _ => Fault::Tls,
        },
        _ => Fault::Tls,
    }
}

/// The proxy a request to `endpoint` (`scheme://host[:port]`) goes through, as
/// `scheme://host:port` without credentials; `None` when it goes direct.
pub(crate) fn proxy_for(endpoint: &str) -> Option<String> {
    let uri: http::Uri = endpoint.parse().ok()?;
    let intercept = hyper_util::client::proxy::matcher::Matcher::from_env().intercept(&uri)?;
    let proxy = intercept.uri();
    let host = proxy.host()?;
    Some(match proxy.port_u16() {
        Some(port) => format!("{}://{host}:{port}", proxy.scheme_str().unwrap_or("http")),
        None => format!("{}://{host}", proxy.scheme_str().unwrap_or("http")),
    })
}

/// `scheme://host[:port]` of a URL, without path, query or credentials.
pub fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    format!("{scheme}://{authority}")
}

/// The host part of `endpoint`.
fn host_of(endpoint: &str) -> String {
    let authority = endpoint.split_once("://").map_or(endpoint, |(_, a)| a);
    match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default().to_string(),
        None => authority.split(':').next().unwrap_or_default().to_string(),
    }
}

/// What happened, and what to do about it, in two sentences.
pub(crate) fn explain(fault: Fault, endpoint: &str, proxy: Option<&str>) -> String {
    let host = host_of(endpoint);
    let ca_vars = "AWS_CA_BUNDLE (ECR API) or SSL_CERT_FILE / SSL_CERT_DIR (every connection)";
    match (fault, proxy) {
        (Fault::Dns, None) => format!(
            "The name {host} does not resolve on this machine. Check the address (region, endpoint or registry name) and this machine's DNS; if this network reaches the internet only through a proxy, set HTTPS_PROXY."
        ),
        (Fault::Dns, Some(proxy)) => format!(
            "The proxy {proxy} (from HTTPS_PROXY/HTTP_PROXY) does not resolve on this machine. Check the proxy variables, or list {host} in NO_PROXY to connect directly."
        ),
        (Fault::Refused, None) => format!(
            "Nothing accepts connections at {endpoint}. Check the address and port, and any firewall in between."
        ),
        (Fault::Refused, Some(proxy)) => format!(
            "The proxy {proxy} (from HTTPS_PROXY/HTTP_PROXY) refused the connection. Check that the proxy runs and the variables name it, or list {host} in NO_PROXY to connect directly."
        ),
        (Fault::TimedOut, None) => format!(
            "No answer from {endpoint} in time. A firewall may drop the connection; if this network reaches the internet only through a proxy, set HTTPS_PROXY."
        ),
        (Fault::TimedOut, Some(proxy)) => format!(
            "No answer in time through the proxy {proxy}. Check the proxy, or list {host} in NO_PROXY to connect directly."
        ),
        (Fault::Reset, _) => format!(
            "The connection to {endpoint} was closed before an answer{}. Apply again; if it keeps failing, a firewall or proxy in between is cutting it.",
            via(proxy)
        ),
        (Fault::UnknownCa, _) => format!(
            "The certificate {host} presented{} is signed by a CA this machine does not trust. If a TLS-inspecting proxy or a private CA signs it, trust that CA with {ca_vars}.",
            via(proxy)
        ),
        (Fault::WrongName, _) => format!(
            "The certificate presented{} does not name {host}. Check the address; a proxy that inspects TLS may be presenting its own certificate.",
            via(proxy)
        ),
        (Fault::Expired, _) => format!(
            "The certificate {host} presented{} has expired or is not valid yet. Check this machine's clock.",
            via(proxy)
        ),
        (Fault::Tls, _) => format!(
            "The TLS handshake with {host}{} failed. If a proxy inspects TLS, trust its CA with {ca_vars}.",
            via(proxy)
        ),
        (Fault::ProxyRefused, _) => format!(
            "The proxy {} would not open a connection to {host}: it may block or not know the host. Ask for the host to be allowed, or list it in NO_PROXY to connect directly.",
            proxy.unwrap_or("in the way")
        ),
        (Fault::ProxyAuth, _) => format!(
            "The proxy {} demands credentials. Put them in the proxy URL (http://user:password@proxy:port) in HTTPS_PROXY/HTTP_PROXY.",
            proxy.unwrap_or("in the way")
        ),
    }
}

fn via(proxy: Option<&str>) -> String {
    proxy
        .map(|p| format!(" (through the proxy {p})"))
        .unwrap_or_default()
}

/// An [`Error::Network`] for `err` when it is a network failure of a request to `service`
/// at `endpoint` (any URL on it).
pub(crate) fn network_error(
    service: &'static str,
    endpoint: &str,
    attribute: Option<&'static str>,
    err: &(dyn StdError + 'static),
) -> Option<Error> {
    let failure = classify(err)?;
    tracing::debug!(error = %crate::error::chain(err), "network failure");
    let endpoint = origin(endpoint);
    let proxy = proxy_for(&endpoint);
    Some(Error::Network {
        service,
        detail: explain(failure, &endpoint, proxy.as_deref()),
        endpoint,
        attribute,
    })
}

/// An [`Error::Network`] for a request to `service` that got no answer in time.
pub(crate) fn timed_out(
    service: &'static str,
    endpoint: &str,
    attribute: Option<&'static str>,
) -> Error {
    let endpoint = origin(endpoint);
    let proxy = proxy_for(&endpoint);
    Error::Network {
        service,
        detail: explain(Fault::TimedOut, &endpoint, proxy.as_deref()),
        endpoint,
        attribute,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(kind: std::io::ErrorKind, text: &str) -> std::io::Error {
        std::io::Error::new(kind, text.to_string())
    }

    /// An error with a message and a source, as connectors nest them.
    #[derive(Debug)]
    struct Wrapped(&'static str, Box<dyn StdError + Send + Sync>);
    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl StdError for Wrapped {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&*self.1)
        }
    }

    #[test]
    fn failures_are_told_apart_through_the_source_chain() {
        let dns = Wrapped(
            "dns error",
            Box::new(io(
                std::io::ErrorKind::Other,
                "failed to lookup address information: Name or service not known",
            )),
        );
        assert_eq!(classify(&dns), Some(Fault::Dns));

        let refused = Wrapped(
            "client error (Connect)",
            Box::new(Wrapped(
                "tcp connect error",
                Box::new(io(
                    std::io::ErrorKind::ConnectionRefused,
                    "Connection refused",
                )),
            )),
        );
        assert_eq!(classify(&refused), Some(Fault::Refused));

        let timed_out = io(std::io::ErrorKind::TimedOut, "connection timed out");
        assert_eq!(classify(&timed_out), Some(Fault::TimedOut));

        let reset = io(std::io::ErrorKind::ConnectionReset, "reset by peer");
        assert_eq!(classify(&reset), Some(Fault::Reset));

        let tunnel = Wrapped(
            "client error (Connect)",
            Box::new(io(std::io::ErrorKind::Other, "tunnel error: unsuccessful")),
        );
        assert_eq!(classify(&tunnel), Some(Fault::ProxyRefused));

        let auth = io(
            std::io::ErrorKind::Other,
            "tunnel error: proxy authorization required",
        );
        assert_eq!(classify(&auth), Some(Fault::ProxyAuth));

        let not_network = io(std::io::ErrorKind::InvalidData, "bad manifest");
        assert_eq!(classify(&not_network), None);
    }

    #[test]
    fn certificate_problems_are_found_inside_io_errors() {
        let unknown = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let wrapped = Wrapped("client error (Connect)", Box::new(unknown));
        assert_eq!(classify(&wrapped), Some(Fault::UnknownCa));

        let name = rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName);
        assert_eq!(classify(&name), Some(Fault::WrongName));

        let expired = rustls::Error::InvalidCertificate(rustls::CertificateError::Expired);
        assert_eq!(classify(&expired), Some(Fault::Expired));

        let other = rustls::Error::DecryptError;
        assert_eq!(classify(&other), Some(Fault::Tls));
    }

    #[test]
    fn explanations_name_the_endpoint_the_proxy_and_the_fix() {
        let api = "https://api.ecr.eu-west-1.amazonaws.com";
        let text = explain(Fault::Dns, api, None);
        assert!(
            text.contains("api.ecr.eu-west-1.amazonaws.com does not resolve"),
            "{text}"
        );
        assert!(text.contains("HTTPS_PROXY"), "{text}");

        let text = explain(Fault::Refused, api, Some("http://proxy.corp:3128"));
        assert!(text.contains("proxy http://proxy.corp:3128"), "{text}");
        assert!(text.contains("NO_PROXY"), "{text}");

        let text = explain(Fault::UnknownCa, api, None);
        assert!(
            text.contains("AWS_CA_BUNDLE") && text.contains("SSL_CERT_FILE"),
            "{text}"
        );

        for failure in [
            Fault::Dns,
            Fault::Refused,
            Fault::TimedOut,
            Fault::Reset,
            Fault::UnknownCa,
            Fault::WrongName,
            Fault::Expired,
            Fault::Tls,
            Fault::ProxyRefused,
            Fault::ProxyAuth,
        ] {
            let text = explain(failure, api, Some("http://proxy.corp:3128"));
            assert!(
                !text.to_ascii_lowercase().contains("credentials, profile"),
                "{failure:?}: {text}"
            );
            assert!(text.matches(". ").count() <= 2, "{failure:?}: {text}");
        }
    }

    #[test]
    fn origins_drop_paths_queries_and_credentials() {
        assert_eq!(
            origin("https://user:pw@registry.example:5000/v2/app/manifests/1?x=y"),
            "https://registry.example:5000"
        );
        assert_eq!(origin("http://127.0.0.1:80"), "http://127.0.0.1:80");
        assert_eq!(host_of("https://[::1]:443"), "::1");
    }
}
