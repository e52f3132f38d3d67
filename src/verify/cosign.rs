//! Signatures where cosign puts them, read into [`Signed`]: the layers of the
//! `sha256-<hex>.sig` manifest (a simple-signing payload, its signature in an annotation and,
//! keyless, the certificate and Rekor bundle in others), and Sigstore bundles attached as
//! OCI referrers (a DSSE envelope over an in-toto statement, or a message signature).
//! Reading is pure; [`found`] asks the registry.

use base64::Engine;
use bytes::Bytes;
use oci_client::manifest::{OciImageIndex, OciManifest};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::keys::hex;
use crate::distribution::{retry_request, Session};
use crate::error::Result;

/// The media type of a simple-signing payload layer.
const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Annotations of a signature layer.
const SIGNATURE: &str = "dev.cosignproject.cosign/signature";
const CERTIFICATE: &str = "dev.sigstore.cosign/certificate";
const CHAIN: &str = "dev.sigstore.cosign/chain";
const BUNDLE: &str = "dev.sigstore.cosign/bundle";
/// The media type (and artifact type) of a Sigstore bundle, any version.
const SIGSTORE_BUNDLE: &str = "application/vnd.dev.sigstore.bundle";
/// The most signatures read for one image, of each kind (a `.sig` manifest's layers, the
/// newest: cosign appends; bundles): enough for every real publisher (one that re-signs or
/// rotates keys included), a bound for a hostile one.
const MOST: usize = 128;
/// The largest payload or bundle read.
const LARGEST: u64 = 1 << 20;

/// One signature found for an image.
#[derive(Debug)]
pub(super) struct Signed {
    /// Where it was found, for diagnostics.
    pub(super) whence: &'static str,
    /// The bytes the signature covers.
    pub(super) message: Vec<u8>,
    pub(super) signature: Vec<u8>,
    /// The image digest its payload names, or why none could be read.
    pub(super) names: std::result::Result<String, String>,
    /// The signing certificate and the chain it came with (keyless).
    pub(super) certificate: Option<CertificateDer<'static>>,
    pub(super) chain: Vec<CertificateDer<'static>>,
    /// The Rekor entry that logged it.
    pub(super) entry: Option<Entry>,
}

/// A Rekor entry and its signed entry timestamp (the log's promise to include it).
#[derive(Debug)]
pub(super) struct Entry {
    /// The entry body, base64, as Rekor canonicalised it.
    pub(super) body: String,
    pub(super) integrated_time: i64,
    pub(super) log_index: i64,
    pub(super) log_id: Vec<u8>,
    pub(super) promise: Vec<u8>,
}

fn b64(text: &str) -> std::result::Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|err| format!("not base64: {err}"))
}

/// The digest a simple-signing payload names.
fn simple_signing_digest(payload: &[u8]) -> std::result::Result<String, String> {
    let json: Value =
        serde_json::from_slice(payload).map_err(|err| format!("its payload is not JSON: {err}"))?;
    json.pointer("/critical/image/docker-manifest-digest")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| "its payload names no `critical.image.docker-manifest-digest`".into())
}

/// The certificates of a PEM text.
fn pem_certificates(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(std::result::Result::ok)
        .collect()
}

/// cosign's bundle annotation: `{"SignedEntryTimestamp", "Payload": {body, integratedTime,
/// logIndex, logID}}`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CosignBundle {
    signed_entry_timestamp: String,
    payload: CosignEntry,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CosignEntry {
    body: String,
    integrated_time: i64,
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

fn unhex(text: &str) -> std::result::Result<Vec<u8>, String> {
    if text.len() % 2 != 0 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("`{text}` is not hexadecimal"));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|err| err.to_string()))
        .collect()
}

impl CosignBundle {
    fn entry(self) -> std::result::Result<Entry, String> {
        Ok(Entry {
            body: self.payload.body,
            integrated_time: self.payload.integrated_time,
            log_index: self.payload.log_index,
            log_id: unhex(&self.payload.log_id)?,
            promise: b64(&self.signed_entry_timestamp)?,
        })
    }
}

/// A signature layer of a `.sig` manifest, with its payload.
pub(super) fn from_layer(
    annotations: &std::collections::BTreeMap<String, String>,
    payload: &[u8],
) -> Signed {
    let signature = annotations.get(SIGNATURE).map(|s| b64(s));
    let entry = annotations.get(BUNDLE).map(|text| {
        serde_json::from_str::<CosignBundle>(text)
            .map_err(|err| err.to_string())
            .and_then(CosignBundle::entry)
    });
    let names = match (&signature, &entry) {
        (Some(Err(err)), _) => Err(format!("its signature annotation is {err}")),
        (None, _) => Err(format!("it has no `{SIGNATURE}` annotation")),
        (_, Some(Err(err))) => Err(format!("its Rekor bundle cannot be read: {err}")),
        _ => simple_signing_digest(payload),
    };
    Signed {
        whence: "the cosign signature tag",
        message: payload.to_vec(),
        signature: signature.and_then(|s| s.ok()).unwrap_or_default(),
        names,
        certificate: annotations
            .get(CERTIFICATE)
            .and_then(|pem| pem_certificates(pem).into_iter().next()),
        chain: annotations
            .get(CHAIN)
            .map(|pem| pem_certificates(pem))
            .unwrap_or_default(),
        entry: entry.and_then(|e| e.ok()),
    }
}

/// A Sigstore bundle (v0.1 to v0.3), as protobuf-specs' JSON writes it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BundleJson {
    verification_material: Material,
    dsse_envelope: Option<Envelope>,
    message_signature: Option<MessageSignature>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Material {
    certificate: Option<Raw>,
    x509_certificate_chain: Option<Chain>,
    #[serde(default)]
    tlog_entries: Vec<TlogJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    raw_bytes: String,
}

#[derive(Deserialize)]
struct Chain {
    certificates: Vec<Raw>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TlogJson {
    log_index: Value,
    log_id: KeyId,
    integrated_time: Value,
    inclusion_promise: Option<Promise>,
    canonicalized_body: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyId {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Promise {
    signed_entry_timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload: String,
    payload_type: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Deserialize)]
struct EnvelopeSignature {
    sig: String,
}

/// A message signature: it signs a blob (its digest is in the bundle), not an image.
#[derive(Deserialize)]
struct MessageSignature {}

/// protobuf's JSON writes 64-bit integers as strings.
fn int(value: &Value) -> std::result::Result<i64, String> {
    match value {
        Value::Number(n) => n.as_i64().ok_or_else(|| format!("{n} is not an integer")),
        Value::String(s) => s.parse().map_err(|_| format!("`{s}` is not an integer")),
        other => Err(format!("{other} is not an integer")),
    }
}

impl TlogJson {
    fn entry(self) -> std::result::Result<Entry, String> {
        let promise = self
            .inclusion_promise
            .ok_or("its Rekor entry has no inclusion promise (signed entry timestamp)")?;
        Ok(Entry {
            body: self.canonicalized_body,
            integrated_time: int(&self.integrated_time)?,
            log_index: int(&self.log_index)?,
            log_id: b64(&self.log_id.key_id)?,
            promise: b64(&promise.signed_entry_timestamp)?,
        })
    }
}

/// DSSE's pre-authentication encoding of a payload: what the envelope's signature covers.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// The predicate type of cosign's signature as an in-toto statement (a bundle's DSSE
/// envelope); a statement of any other type is an attestation, not a signature.
const COSIGN_SIGN: &str = "https://sigstore.dev/cosign/sign/v1";

/// The image digest an in-toto statement of cosign's signature names in its subject
/// (`sha256` only).
fn statement_digest(payload: &[u8]) -> std::result::Result<String, String> {
    let json: Value = serde_json::from_slice(payload)
        .map_err(|err| format!("its in-toto statement is not JSON: {err}"))?;
    match json.get("predicateType").and_then(Value::as_str) {
        Some(COSIGN_SIGN) => {}
        Some(other) => return Err(format!("it is an attestation (`{other}`), not a signature")),
        None => return Err("its in-toto statement has no predicate type".into()),
    }
    let subjects = json
        .get("subject")
        .and_then(Value::as_array)
        .ok_or("its in-toto statement has no subject")?;
    let digests: Vec<&str> = subjects
        .iter()
        .filter_map(|s| s.pointer("/digest/sha256").and_then(Value::as_str))
        .collect();
    match digests.as_slice() {
        [one] => Ok(format!("sha256:{one}")),
        [] => Err("its in-toto statement's subject has no sha256 digest".into()),
        _ => Err("its in-toto statement names several subjects".into()),
    }
}

/// A Sigstore bundle attached to the image as a referrer.
pub(super) fn from_bundle(body: &[u8]) -> Signed {
    let signed = |names: std::result::Result<String, String>| Signed {
        whence: "a Sigstore bundle",
        message: Vec::new(),
        signature: Vec::new(),
        names,
        certificate: None,
        chain: Vec::new(),
        entry: None,
    };
    let bundle: BundleJson = match serde_json::from_slice(body) {
        Ok(bundle) => bundle,
        Err(err) => return signed(Err(format!("it is not a Sigstore bundle: {err}"))),
    };
    let material = bundle.verification_material;
    let mut chain: Vec<CertificateDer<'static>> = material
        .x509_certificate_chain
        .map(|c| c.certificates)
        .unwrap_or_default()
        .into_iter()
        .chain(material.certificate)
        .filter_map(|raw| b64(&raw.raw_bytes).ok().map(CertificateDer::from))
        .collect();
    let certificate = (!chain.is_empty()).then(|| chain.remove(0));
    let entry = material
        .tlog_entries
        .into_iter()
        .next()
        .map(TlogJson::entry);
    let (message, signature, names) = match (bundle.dsse_envelope, bundle.message_signature) {
        (Some(envelope), _) => match (b64(&envelope.payload), envelope.signatures.first()) {
            (Ok(payload), Some(first)) => {
                let names = if envelope.payload_type == "application/vnd.in-toto+json" {
                    statement_digest(&payload)
                } else {
                    Err(format!(
                        "its envelope holds a `{}`, not an in-toto statement",
                        envelope.payload_type
                    ))
                };
                (
                    pae(&envelope.payload_type, &payload),
                    b64(&first.sig).unwrap_or_default(),
                    names,
                )
            }
            (Err(err), _) => (
                Vec::new(),
                Vec::new(),
                Err(format!("its envelope's payload is {err}")),
            ),
            (_, None) => (
                Vec::new(),
                Vec::new(),
                Err("its envelope holds no signature".into()),
            ),
        },
        // A message signature signs a blob, which the bundle does not hold: it names no image.
        (None, Some(_)) => (
            Vec::new(),
            Vec::new(),
            Err("it signs a blob (a message signature), not an image".into()),
        ),
        (None, None) => (Vec::new(), Vec::new(), Err("it holds no signature".into())),
    };
    let names = match (&entry, names) {
        (Some(Err(err)), Ok(_)) => Err(format!("its Rekor entry cannot be read: {err}")),
        (_, names) => names,
    };
    Signed {
        message,
        signature,
        certificate,
        chain,
        entry: entry.and_then(|e| e.ok()),
        ..signed(names)
    }
}

/// Whether Rekor's entry `body` (base64 JSON) logs `signed`: the same signature, over
/// the same payload, by the same certificate. A `hashedrekord` hashes the payload; a `dsse`
/// entry hashes the envelope's payload.
pub(super) fn entry_logs(
    body: &str,
    signed: &Signed,
    certificate: &CertificateDer<'_>,
) -> std::result::Result<(), String> {
    let body = b64(body).map_err(|err| format!("its Rekor entry body is {err}"))?;
    let json: Value = serde_json::from_slice(&body)
        .map_err(|err| format!("its Rekor entry body is not JSON: {err}"))?;
    let kind = json.get("kind").and_then(Value::as_str).unwrap_or_default();
    let spec = json.get("spec").cloned().unwrap_or_default();
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
    let (hash, signatures) = match kind {
        "hashedrekord" => (
            text(spec.pointer("/data/hash/value")),
            vec![(
                text(spec.pointer("/signature/content")),
                text(spec.pointer("/signature/publicKey/content")),
            )],
        ),
        "dsse" => (
            text(spec.pointer("/payloadHash/value")),
            spec.get("signatures")
                .and_then(Value::as_array)
                .map(|all| {
                    all.iter()
                        .map(|s| (text(s.get("signature")), text(s.get("verifier"))))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        other => {
            return Err(format!(
                "its Rekor entry is of kind `{other}`, which does not log a cosign signature"
            ))
        }
    };
    let hashed = match kind {
        "dsse" => dsse_payload(&signed.message),
        _ => &signed.message[..],
    };
    if !hash.eq_ignore_ascii_case(&hex(&Sha256::digest(hashed))) {
        return Err("its Rekor entry logs another payload".into());
    }
    let logged = signatures.iter().any(|(signature, verifier)| {
        let same_signature = b64(signature).is_ok_and(|s| s == signed.signature);
        let same_certificate = b64(verifier)
            .ok()
            .and_then(|pem| String::from_utf8(pem).ok())
            .is_some_and(|pem| {
                pem_certificates(&pem)
                    .first()
                    .is_some_and(|c| c.as_ref() == certificate.as_ref())
            });
        same_signature && same_certificate
    });
    if logged {
        Ok(())
    } else {
        Err("its Rekor entry logs another signature or certificate".into())
    }
}

/// The payload inside a DSSE pre-authentication encoding.
fn dsse_payload(pae: &[u8]) -> &[u8] {
    // "DSSEv1 <len> <type> <len> <payload>": the payload follows the fourth space.
    let mut spaces = 0;
    for (i, b) in pae.iter().enumerate() {
        if *b == b' ' {
            spaces += 1;
            if spaces == 4 {
                return &pae[i + 1..];
            }
        }
    }
    &[]
}

/// Every signature the source holds for the manifest `digest`: the layers of cosign's
/// `sha256-<hex>.sig` tag and the Sigstore bundles among its referrers, to [`MOST`].
pub(super) async fn found(
    session: &Session<'_>,
    reference: &str,
    digest: &str,
) -> Result<Vec<Signed>> {
    let failed = |failure: crate::distribution::RequestFailure| failure.error(session, reference);
    let tag = format!("{}.sig", crate::reference::digest_tag(digest));
    let (tagged, listed) = tokio::join!(
        async {
            match retry_request("a cosign signature", || session.manifest_head(&tag)).await {
                Ok(Some(_)) => retry_request("a cosign signature", || session.manifest(&tag))
                    .await
                    .map(|document| Some(document.body)),
                Ok(None) => Ok(None),
                Err(failure) => Err(failure),
            }
        },
        retry_request("the referrers", || session.referrers(digest)),
    );
    let mut signed = Vec::new();
    if let Some(body) = tagged.map_err(failed)? {
        if let Ok(OciManifest::Image(manifest)) = serde_json::from_slice::<OciManifest>(&body) {
            let layers: Vec<_> = manifest
                .layers
                .iter()
                .filter(|l| l.media_type == SIMPLE_SIGNING)
                .collect();
            let skipped = layers.len().saturating_sub(MOST);
            for layer in &layers[skipped..] {
                let annotations = layer.annotations.clone().unwrap_or_default();
                let annotations = annotations.into_iter().collect();
                match small(session, &layer.digest, layer.size)
                    .await
                    .map_err(failed)?
                {
                    Ok(payload) => signed.push(from_layer(&annotations, &payload)),
                    Err(why) => signed.push(Signed {
                        names: Err(why),
                        ..from_layer(&annotations, b"")
                    }),
                }
            }
            if skipped > 0 {
                signed.push(Signed {
                    names: Err(format!("{skipped} older signatures, not read: the provider reads the newest {MOST}")),
                    ..from_layer(&Default::default(), b"")
                });
            }
        }
    }
    let bundles: Vec<String> = match listed.map_err(failed)? {
        Some(body) => serde_json::from_slice::<OciImageIndex>(&body)
            .map(|index| index.manifests)
            .unwrap_or_default()
            .into_iter()
            .filter(|entry| {
                entry
                    .artifact_type
                    .as_deref()
                    .is_some_and(|t| t.starts_with(SIGSTORE_BUNDLE))
            })
            .map(|entry| entry.digest)
            .collect(),
        None => Vec::new(),
    };
    for bundle in bundles.into_iter().take(MOST) {
        let document = retry_request("a Sigstore bundle", || session.manifest(&bundle))
            .await
            .map_err(failed)?;
        let Ok(OciManifest::Image(manifest)) =
            serde_json::from_slice::<OciManifest>(&document.body)
        else {
            continue;
        };
        if let Some(layer) = manifest
            .layers
            .iter()
            .find(|l| l.media_type.starts_with(SIGSTORE_BUNDLE))
        {
            signed.push(
                match small(session, &layer.digest, layer.size)
                    .await
                    .map_err(failed)?
                {
                    Ok(body) => from_bundle(&body),
                    Err(why) => Signed {
                        names: Err(why),
                        ..from_bundle(b"{}")
                    },
                },
            );
        }
    }
    Ok(signed)
}

/// A payload or bundle blob, checked against its digest; refused past [`LARGEST`] (the
/// inner error says why it is not read).
async fn small(
    session: &Session<'_>,
    digest: &str,
    size: i64,
) -> std::result::Result<std::result::Result<Bytes, String>, crate::distribution::RequestFailure> {
    if u64::try_from(size).unwrap_or(u64::MAX) > LARGEST {
        return Ok(Err(format!(
            "its payload is larger than {} KiB, and not read",
            LARGEST >> 10
        )));
    }
    let body = retry_request("a signature payload", || session.small_blob(digest)).await?;
    Ok(if crate::manifest::digest_of(&body) == digest {
        Ok(body)
    } else {
        Err(format!(
            "the registry served its payload with another digest than {digest}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_their_digest() {
        let payload = br#"{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"sha256:ab"},"type":"cosign container image signature"},"optional":null}"#;
        assert_eq!(simple_signing_digest(payload).unwrap(), "sha256:ab");
        assert!(simple_signing_digest(b"{}").is_err());
        let statement = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"r","digest":{"sha256":"cd"}}],"predicateType":"https://sigstore.dev/cosign/sign/v1"}"#;
        assert_eq!(statement_digest(statement).unwrap(), "sha256:cd");
        let provenance = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"r","digest":{"sha256":"cd"}}],"predicateType":"https://slsa.dev/provenance/v1"}"#;
        assert!(statement_digest(provenance)
            .unwrap_err()
            .contains("an attestation"));
    }

    #[test]
    fn dsse_encoding_holds_its_payload() {
        let encoded = pae("application/vnd.in-toto+json", b"{\"a\": 1}");
        assert_eq!(
            encoded,
            b"DSSEv1 28 application/vnd.in-toto+json 8 {\"a\": 1}".to_vec()
        );
        assert_eq!(dsse_payload(&encoded), b"{\"a\": 1}");
    }

    #[test]
    fn a_layer_without_a_signature_names_nothing() {
        let signed = from_layer(&Default::default(), b"{}");
        assert!(signed
            .names
            .unwrap_err()
            .contains("no `dev.cosignproject.cosign/signature`"));
        let signed = from_bundle(b"[]");
        assert!(signed.names.unwrap_err().contains("not a Sigstore bundle"));
    }
}
