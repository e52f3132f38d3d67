//! `verify`: a source is copied only when its publisher signed it. What is verified is the
//! manifest the source's tag names (its `source_digest`; an index pins its platforms by
//! digest), against cosign's signatures ([`cosign`]): by one of the `keys`, or keyless by a
//! certificate from a Fulcio CA of the trusted root ([`trust`]) whose identity matches a
//! `keyless` block, signed at a time a Rekor log of that root vouches for and the
//! certificate was valid at. A signature counts only when its payload names exactly that
//! digest. The resource verifies at plan and copies the digest it verified.

mod cosign;
mod keys;
mod trust;
mod tuf;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::{CertificateDer, UnixTime};
use x509_cert::der::Decode;

pub(crate) use keys::PublicKey;
pub(crate) use trust::TrustRoot;

use crate::credentials::Credentials;
use crate::distribution::Distribution;
use crate::error::{Error, Result};
use crate::reference::SourceRef;
use cosign::Signed;

/// `id-kp-codeSigning` (1.3.6.1.5.5.7.3.3), the extended key usage of Fulcio's certificates.
const CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];
/// Fulcio's OIDC issuer extensions: 1.3.6.1.4.1.57264.1.8 (a DER UTF8String) and the
/// legacy 1.3.6.1.4.1.57264.1.1 (the raw URL).
const ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";
const ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";

/// A keyless identity a signature may come from.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    pub(crate) issuer: String,
    pub(crate) subject: Subject,
}

/// How a certificate's subject (its email or URI) must read.
#[derive(Clone, Debug)]
pub(crate) enum Subject {
    Exactly(String),
    Matching(regex_lite::Regex),
}

impl Subject {
    fn matches(&self, subject: &str) -> bool {
        match self {
            Subject::Exactly(wanted) => wanted == subject,
            Subject::Matching(regex) => regex.is_match(subject),
        }
    }
}

/// What a `verify` block accepts.
#[derive(Clone, Debug)]
pub(crate) struct Policy {
    pub(crate) keys: Vec<PublicKey>,
    pub(crate) identities: Vec<Identity>,
    /// The `trusted_root`; `None`: Sigstore's public-good one, for `keyless` identities.
    pub(crate) root: Option<Arc<TrustRoot>>,
}

/// A source that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Verified {
    /// The manifest digest verified: the one to copy.
    pub(crate) digest: String,
    /// `key SHA256:<fingerprint>` or `keyless <issuer> <subject>`.
    pub(crate) by: String,
}

/// Verifies what `source` names now (its digest, asked with one `HEAD`), or the digest it
/// is pinned to, against `policy`.
pub(crate) async fn verify(
    distribution: &Distribution,
    source: &SourceRef,
    credentials: Option<&Credentials>,
    policy: &Policy,
) -> Result<Verified> {
    let digest = match source.digest() {
        Some(digest) => digest.to_string(),
        None => crate::source::digest(distribution, source, credentials).await?,
    };
    let root = match (&policy.root, policy.identities.is_empty()) {
        (Some(root), _) => Some(root.clone()),
        (None, true) => None,
        (None, false) => Some(public_good(distribution).await?),
    };
    let session = distribution.source(source.as_oci().clone(), credentials)?;
    let found = cosign::found(&session, &source.to_string(), &digest).await?;
    judge(
        &found,
        &digest,
        policy,
        root.as_deref(),
        &source.to_string(),
    )
}

/// Sigstore's public-good trusted root (or the TUF repository's the environment names),
/// fetched once per process (see [`tuf`]).
async fn public_good(distribution: &Distribution) -> Result<Arc<TrustRoot>> {
    /// How long a failure is the answer before the repository is asked again (so that the
    /// mirrors of one plan do not each wait for an unreachable repository).
    const FAILURE_HOLDS: Duration = Duration::from_secs(30);
    type Fetched = Option<(std::time::Instant, Result<Arc<TrustRoot>>)>;
    static FETCHED: tokio::sync::Mutex<Fetched> = tokio::sync::Mutex::const_new(None);
    let mut fetched = FETCHED.lock().await;
    match &*fetched {
        Some((_, Ok(root))) => return Ok(root.clone()),
        Some((at, Err(err))) if at.elapsed() < FAILURE_HOLDS => return Err(err.clone()),
        _ => {}
    }
    let failed = |cause: String| Error::TrustRoot { cause };
    let answer = async {
        let repository = tuf::Repository::from_environment().map_err(failed)?;
        let text = tuf::trusted_root(distribution.http()?, &repository)
            .await
            .map_err(|why| failed(format!("The TUF repository {}: {why}", repository.url)))?;
        TrustRoot::parse(&text).map(Arc::new).map_err(|why| {
            failed(format!(
                "The trusted root {} publishes is {why}",
                repository.url
            ))
        })
    }
    .await;
    *fetched = Some((std::time::Instant::now(), answer.clone()));
    answer
}

/// The first of `found` that `policy` accepts for `digest` (keyless ones checked against
/// `root`), else why none did.
fn judge(
    found: &[Signed],
    digest: &str,
    policy: &Policy,
    root: Option<&TrustRoot>,
    reference: &str,
) -> Result<Verified> {
    let mut reasons = BTreeSet::new();
    for signed in found {
        match accepts(signed, digest, policy, root) {
            Ok(by) => {
                return Ok(Verified {
                    digest: digest.to_string(),
                    by,
                })
            }
            Err(reason) => {
                reasons.insert(format!("{} in {}", reason, signed.whence));
            }
        }
    }
    if found.is_empty() {
        reasons.insert(format!(
            "no signature found: neither cosign's `{}.sig` tag nor a Sigstore bundle among its referrers",
            crate::reference::digest_tag(digest)
        ));
    }
    Err(Error::Unverified {
        reference: reference.to_string(),
        digest: digest.to_string(),
        reasons: reasons.into_iter().collect(),
    })
}

/// What accepts `signed` for `digest` (`key SHA256:…` or `keyless <issuer> <subject>`),
/// else why it does not count.
fn accepts(
    signed: &Signed,
    digest: &str,
    policy: &Policy,
    root: Option<&TrustRoot>,
) -> std::result::Result<String, String> {
    let names = signed
        .names
        .as_ref()
        .map_err(|why| format!("a signature that cannot be read ({why})"))?;
    if names != digest {
        return Err(format!(
            "a signature whose payload names another image ({names})"
        ));
    }
    match &signed.certificate {
        None => {
            let key = policy
                .keys
                .iter()
                .find(|key| key.verifies(&signed.message, &signed.signature));
            match (key, policy.keys.is_empty()) {
                (Some(key), _) => Ok(format!("key {}", key.fingerprint())),
                (None, true) => Err("a signature by a key, while `verify` names no `keys`".into()),
                (None, false) => Err("a signature by another key than those of `keys`".into()),
            }
        }
        Some(certificate) => keyless(signed, certificate, policy, root),
    }
}

/// Checks a keyless signature: its certificate's identity, the Rekor entry that proves
/// when it was made, the chain to a Fulcio CA at that time, and the signature.
fn keyless(
    signed: &Signed,
    certificate: &CertificateDer<'_>,
    policy: &Policy,
    root: Option<&TrustRoot>,
) -> std::result::Result<String, String> {
    if policy.identities.is_empty() {
        return Err("a keyless signature, while `verify` names no `keyless` identity".into());
    }
    let (issuer, subject) = identity(certificate)?;
    let described = format!("identity `{subject}` of issuer `{issuer}`");
    if !policy
        .identities
        .iter()
        .any(|wanted| wanted.issuer == issuer && wanted.subject.matches(&subject))
    {
        return Err(format!(
            "a keyless signature whose {described} did not match any `keyless` block"
        ));
    }
    let root = root.ok_or("a keyless signature, and no trusted root to check it")?;
    let entry = signed.entry.as_ref().ok_or_else(|| {
        format!("a keyless signature ({described}) with no Rekor entry to prove when it was made")
    })?;
    let log = root.log(&entry.log_id).ok_or_else(|| {
        format!(
            "a keyless signature ({described}) whose Rekor entry is signed by log {}, which the trusted root does not name",
            keys::hex(&entry.log_id)
        )
    })?;
    let promised = serde_json_canonicalizer::to_vec(&serde_json::json!({
        "body": entry.body,
        "integratedTime": entry.integrated_time,
        "logID": keys::hex(&entry.log_id),
        "logIndex": entry.log_index,
    }))
    .map_err(|err| err.to_string())?;
    if !keys::spki_verifies(&log.key, &promised, &entry.promise) {
        return Err(format!("a keyless signature ({described}) whose Rekor entry's signed timestamp does not verify with the log's key"));
    }
    let signed_at =
        UNIX_EPOCH + Duration::from_secs(u64::try_from(entry.integrated_time).unwrap_or(0));
    if !log.valid.holds(signed_at) {
        return Err(format!("a keyless signature ({described}) logged at {} by a log key the trusted root does not trust at that time", when(signed_at)));
    }
    cosign::entry_logs(&entry.body, signed, certificate)
        .map_err(|why| format!("a keyless signature ({described}) whose {why}"))?;
    let leaf = webpki::EndEntityCert::try_from(certificate)
        .map_err(|err| format!("a certificate that cannot be read ({err})"))?;
    chains(&leaf, certificate, &signed.chain, root, signed_at)
        .map_err(|why| format!("a keyless signature ({described}) whose {why}"))?;
    if !keys::ALGORITHMS.iter().any(|algorithm| {
        leaf.verify_signature(*algorithm, &signed.message, &signed.signature)
            .is_ok()
    }) {
        return Err(format!(
            "a keyless signature ({described}) that does not verify with its certificate's key"
        ));
    }
    Ok(format!("keyless {issuer} {subject}"))
}

/// Whether `leaf` (read from `certificate`) chains, at `signed_at`, to a Fulcio CA of `root`
/// valid then.
fn chains(
    leaf: &webpki::EndEntityCert<'_>,
    certificate: &CertificateDer<'_>,
    sent: &[CertificateDer<'_>],
    root: &TrustRoot,
    signed_at: SystemTime,
) -> std::result::Result<(), String> {
    let time = UnixTime::since_unix_epoch(signed_at.duration_since(UNIX_EPOCH).unwrap_or_default());
    let mut outside = None;
    for authority in root.authorities.iter().filter(|a| a.valid.holds(signed_at)) {
        let Some((anchor, intermediates)) = authority.chain.split_last() else {
            continue;
        };
        let Ok(anchor) = webpki::anchor_from_trusted_cert(anchor) else {
            continue;
        };
        let intermediates: Vec<CertificateDer<'_>> =
            intermediates.iter().chain(sent).cloned().collect();
        match leaf.verify_for_usage(
            keys::ALGORITHMS,
            &[anchor],
            &intermediates,
            time,
            webpki::KeyUsage::required(CODE_SIGNING),
            None,
            None,
        ) {
            Ok(_) => return Ok(()),
            Err(
                err @ (webpki::Error::CertExpired { .. } | webpki::Error::CertNotValidYet { .. }),
            ) => outside = Some(err),
            Err(err) => {
                tracing::debug!("the certificate does not chain to a CA of the trusted root: {err}")
            }
        }
    }
    match outside {
        Some(_) => Err(format!(
            "certificate was not valid when Rekor logged the signature ({}): {}",
            when(signed_at),
            validity(certificate).unwrap_or_default()
        )),
        None => Err("certificate does not chain to a Fulcio CA of the trusted root".into()),
    }
}

/// `time` as RFC 3339 (humantime writes none past the year 9999: those in words).
fn when(time: SystemTime) -> String {
    const LAST: Duration = Duration::from_secs(253_402_300_799);
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) if since <= LAST => humantime::format_rfc3339_seconds(time).to_string(),
        _ => "a time past the year 9999".into(),
    }
}

/// `valid from <not before> to <not after>`.
fn validity(certificate: &CertificateDer<'_>) -> Option<String> {
    let parsed = x509_cert::Certificate::from_der(certificate.as_ref()).ok()?;
    let validity = parsed.tbs_certificate().validity();
    Some(format!(
        "it is valid from {} to {}",
        when(validity.not_before.to_system_time()),
        when(validity.not_after.to_system_time())
    ))
}

/// A Fulcio certificate's OIDC issuer and subject (its SAN: an email or a URI).
fn identity(certificate: &CertificateDer<'_>) -> std::result::Result<(String, String), String> {
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::SubjectAltName;
    let parsed = x509_cert::Certificate::from_der(certificate.as_ref())
        .map_err(|err| format!("a certificate that cannot be read ({err})"))?;
    let tbs = parsed.tbs_certificate();
    let subject = tbs
        .get_extension::<SubjectAltName>()
        .ok()
        .flatten()
        .and_then(|(_, names)| {
            names.0.into_iter().find_map(|name| match name {
                GeneralName::Rfc822Name(email) => Some(email.to_string()),
                GeneralName::UniformResourceIdentifier(uri) => Some(uri.to_string()),
                _ => None,
            })
        })
        .ok_or("a certificate without an email or URI identity")?;
    let extensions = tbs.extensions().map(|e| e.as_slice()).unwrap_or_default();
    let extension = |oid: &str| {
        extensions
            .iter()
            .find(|e| e.extn_id.to_string() == oid)
            .map(|e| e.extn_value.as_bytes().to_vec())
    };
    let issuer = match (extension(ISSUER_V2), extension(ISSUER_V1)) {
        (Some(der), _) => x509_cert::der::asn1::Utf8StringRef::from_der(&der)
            .map(|s| s.as_str().to_string())
            .map_err(|err| format!("a certificate whose OIDC issuer cannot be read ({err})"))?,
        (None, Some(raw)) => {
            String::from_utf8(raw).map_err(|_| "a certificate whose OIDC issuer is not text")?
        }
        (None, None) => {
            return Err("a certificate without an OIDC issuer (not issued by Fulcio)".into())
        }
    };
    Ok((issuer, subject))
}
