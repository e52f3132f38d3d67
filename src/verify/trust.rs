//! A Sigstore trusted root: the Fulcio certificate authorities keyless certificates chain
//! to, and the Rekor transparency logs whose signed entry timestamps prove when a signature
//! was made. Read from the trusted-root JSON Sigstore publishes (protobuf-specs'
//! `TrustedRoot`, as `cosign trusted-root create` writes it); only the fields verification
//! needs are read.

use std::time::SystemTime;

use base64::Engine;
use rustls_pki_types::{CertificateDer, SubjectPublicKeyInfoDer};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// What a `trusted_root` names.
#[derive(Debug)]
pub(crate) struct TrustRoot {
    pub(super) authorities: Vec<Authority>,
    pub(super) logs: Vec<Log>,
}

/// A Fulcio certificate authority.
#[derive(Debug)]
pub(super) struct Authority {
    /// Its chain, the certificate that issues leaves first, the root last.
    pub(super) chain: Vec<CertificateDer<'static>>,
    pub(super) valid: Window,
}

/// A Rekor log's key.
#[derive(Debug)]
pub(super) struct Log {
    /// The log's id: the SHA-256 of its public key (DER).
    pub(super) id: Vec<u8>,
    pub(super) key: SubjectPublicKeyInfoDer<'static>,
    pub(super) valid: Window,
}

/// When a key or authority may be used: from `start`, until `end` when it has one.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Window {
    start: Option<SystemTime>,
    end: Option<SystemTime>,
}

impl Window {
    pub(super) fn holds(&self, time: SystemTime) -> bool {
        self.start.is_none_or(|start| start <= time) && self.end.is_none_or(|end| time <= end)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RootJson {
    #[serde(default)]
    tlogs: Vec<LogJson>,
    #[serde(default)]
    certificate_authorities: Vec<AuthorityJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogJson {
    public_key: KeyJson,
    log_id: Option<LogIdJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyJson {
    raw_bytes: String,
    valid_for: Option<WindowJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogIdJson {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthorityJson {
    cert_chain: ChainJson,
    valid_for: Option<WindowJson>,
}

#[derive(Deserialize)]
struct ChainJson {
    certificates: Vec<RawJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawJson {
    raw_bytes: String,
}

#[derive(Deserialize)]
struct WindowJson {
    start: Option<String>,
    end: Option<String>,
}

impl WindowJson {
    fn parse(&self) -> Result<Window, String> {
        let time = |text: &Option<String>| -> Result<Option<SystemTime>, String> {
            text.as_deref()
                .map(|t| {
                    humantime::parse_rfc3339_weak(t)
                        .map_err(|err| format!("`{t}` is not an RFC 3339 time: {err}"))
                })
                .transpose()
        };
        Ok(Window {
            start: time(&self.start)?,
            end: time(&self.end)?,
        })
    }
}

fn window(json: &Option<WindowJson>) -> Result<Window, String> {
    json.as_ref()
        .map_or(Ok(Window::default()), WindowJson::parse)
}

fn decoded(text: &str, what: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|err| format!("{what} is not base64: {err}"))
}

impl TrustRoot {
    /// Reads a trusted-root JSON document; an error says what is wrong with it.
    pub(crate) fn parse(text: &str) -> Result<TrustRoot, String> {
        let json: RootJson = serde_json::from_str(text)
            .map_err(|err| format!("not a Sigstore trusted root (JSON): {err}"))?;
        let mut authorities = Vec::new();
        for (n, authority) in json.certificate_authorities.iter().enumerate() {
            let chain = authority
                .cert_chain
                .certificates
                .iter()
                .map(|cert| {
                    decoded(
                        &cert.raw_bytes,
                        &format!("certificateAuthorities[{n}]'s certificate"),
                    )
                    .map(CertificateDer::from)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let Some(root) = chain.last() else {
                return Err(format!(
                    "certificateAuthorities[{n}] has an empty certificate chain"
                ));
            };
            webpki::anchor_from_trusted_cert(root).map_err(|err| {
                format!("certificateAuthorities[{n}]'s root certificate cannot be read: {err}")
            })?;
            authorities.push(Authority {
                chain,
                valid: window(&authority.valid_for)?,
            });
        }
        let mut logs = Vec::new();
        for (n, log) in json.tlogs.iter().enumerate() {
            let key = decoded(
                &log.public_key.raw_bytes,
                &format!("tlogs[{n}]'s public key"),
            )?;
            let id = match &log.log_id {
                Some(id) => decoded(&id.key_id, &format!("tlogs[{n}]'s logId"))?,
                None => Sha256::digest(&key).to_vec(),
            };
            logs.push(Log {
                id,
                key: SubjectPublicKeyInfoDer::from(key),
                valid: window(&log.public_key.valid_for)?,
            });
        }
        if authorities.is_empty() && logs.is_empty() {
            return Err(
                "it names no certificate authority (`certificateAuthorities`) and no transparency log (`tlogs`)"
                    .into(),
            );
        }
        Ok(TrustRoot { authorities, logs })
    }

    /// The log whose id is `id`.
    pub(super) fn log(&self, id: &[u8]) -> Option<&Log> {
        self.logs.iter().find(|log| log.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_hold_their_times() {
        let window = WindowJson {
            start: Some("2021-01-01T00:00:00Z".into()),
            end: Some("2022-01-01T00:00:00.5Z".into()),
        }
        .parse()
        .unwrap();
        let at = |t: &str| humantime::parse_rfc3339(t).unwrap();
        assert!(window.holds(at("2021-06-01T00:00:00Z")));
        assert!(!window.holds(at("2020-12-31T23:59:59Z")));
        assert!(!window.holds(at("2022-01-02T00:00:00Z")));
        assert!(Window::default().holds(SystemTime::now()));
    }

    #[test]
    fn a_root_without_authorities_or_logs_is_refused() {
        let err = TrustRoot::parse(r#"{"mediaType":"x","tlogs":[],"certificateAuthorities":[]}"#)
            .unwrap_err();
        assert!(err.contains("names no certificate authority"), "{err}");
        let err = TrustRoot::parse("[1]").unwrap_err();
        assert!(err.starts_with("not a Sigstore trusted root"), "{err}");
        let err = TrustRoot::parse(
            r#"{"certificateAuthorities":[{"certChain":{"certificates":[{"rawBytes":"AAAA"}]}}]}"#,
        )
        .unwrap_err();
        assert!(err.contains("root certificate cannot be read"), "{err}");
    }
}
