//! A throwaway cosign/Sigstore signer: signing keys as cosign has them, a private Sigstore
//! instance (a Fulcio-like CA and a Rekor-like log key, nothing served), and pushing
//! signatures as cosign does, so tests can sign images without the public Sigstore instance.
//!
//! - [`Key`]: an ECDSA P-256 (cosign's default) or Ed25519 key, for `cosign sign --key`.
//! - [`Sigstore`]: a root and an intermediate CA that issue Fulcio-style leaf certificates,
//!   and a log key that signs Rekor's SignedEntryTimestamps; [`Sigstore::trusted_root`] is
//!   the trusted root JSON a verifier is given for it.
//! - [`push_signature`]: cosign's tag scheme (`sha256-<hex>.sig`, simple-signing payloads
//!   with the signature, certificate, chain and Rekor bundle in layer annotations).
//! - [`push_bundle`]: `cosign sign --new-bundle-format`, an OCI 1.1 referrer whose layer is a
//!   Sigstore bundle (v0.3) holding a DSSE envelope over an in-toto statement.
//!
//! Nothing here is logged anywhere: a "log entry" is only its signed promise (SET), with the
//! log index counted per [`Sigstore`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::client::{digest_of, Client};
use crate::images::{cosign_tag, put_artifact_manifest, Naming, Referrer};

/// The media type of cosign's simple-signing payload layer.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The media type of a Sigstore bundle v0.3: the `artifactType` and layer type of
/// [`push_bundle`]'s referrer.
pub const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The predicate type of the statement `cosign sign --new-bundle-format` signs.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
/// DSSE's payload type for an in-toto statement.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";
/// The layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The layer annotation holding the leaf certificate's PEM (keyless).
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// The layer annotation holding the chain's PEM, intermediate then root (keyless).
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
/// The layer annotation holding the Rekor bundle JSON (keyless).
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// Fulcio's OIDC issuer extension, legacy form: the issuer URL's raw bytes.
pub const OID_ISSUER_V1: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 1];
/// Fulcio's OIDC issuer extension: a DER UTF8String of the issuer URL.
pub const OID_ISSUER_V2: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 8];
/// The base URL the trusted root names for the log.
pub const REKOR_URL: &str = "https://rekor.standin.invalid";
/// The URI the trusted root names for the CA.
pub const FULCIO_URL: &str = "https://fulcio.standin.invalid";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

/// Sets the validity of `params` (rcgen's dates, reached from the epoch so that the `time`
/// crate need not be named).
fn set_validity(
    params: &mut rcgen::CertificateParams,
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<()> {
    let since = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .context("a certificate time before 1970")
    };
    params.not_before = rcgen::date_time_ymd(1970, 1, 1) + since(not_before)?;
    params.not_after = rcgen::date_time_ymd(1970, 1, 1) + since(not_after)?;
    Ok(())
}

fn unix_seconds(time: SystemTime) -> Result<i64> {
    Ok(time
        .duration_since(UNIX_EPOCH)
        .context("a time before 1970")?
        .as_secs() as i64)
}

/// A DER length.
fn der_length(len: usize) -> Vec<u8> {
    if len < 0x80 {
        return vec![len as u8];
    }
    let bytes: Vec<u8> = len
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    let mut out = vec![0x80 | bytes.len() as u8];
    out.extend(bytes);
    out
}

/// A DER tag-length-value.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(der_length(content.len()));
    out.extend_from_slice(content);
    out
}

enum KeyKind {
    P256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A signing key as cosign has one: ECDSA P-256 (cosign's default) or Ed25519.
pub struct Key {
    /// The same key as rcgen holds it, for its public key (and for certificates about it).
    pair: rcgen::KeyPair,
    kind: KeyKind,
    rng: SystemRandom,
}

impl Key {
    /// A new ECDSA P-256 key.
    pub fn p256() -> Result<Key> {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let rng = SystemRandom::new();
        let ecdsa =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pair.serialized_der(), &rng)
                .map_err(|e| anyhow!("P-256 key: {e}"))?;
        Ok(Key {
            pair,
            kind: KeyKind::P256(ecdsa),
            rng,
        })
    }

    /// A new Ed25519 key.
    pub fn ed25519() -> Result<Key> {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        let ed = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pair.serialized_der())
            .map_err(|e| anyhow!("Ed25519 key: {e}"))?;
        Ok(Key {
            pair,
            kind: KeyKind::Ed25519(ed),
            rng: SystemRandom::new(),
        })
    }

    /// Whether this is an Ed25519 key (else ECDSA P-256).
    pub fn is_ed25519(&self) -> bool {
        matches!(self.kind, KeyKind::Ed25519(_))
    }

    /// The public key as `cosign.pub` has it: SPKI PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn public_pem(&self) -> String {
        self.pair.public_key_pem()
    }

    /// The public key, SPKI DER.
    pub fn public_der(&self) -> Vec<u8> {
        self.pair.public_key_der()
    }

    /// The bare public key: the uncompressed point (P-256) or the 32 bytes (Ed25519), as
    /// ring's `UnparsedPublicKey` takes it.
    pub fn public_raw(&self) -> Vec<u8> {
        self.pair.public_key_raw().to_vec()
    }

    /// base64 of sha256 of the SPKI DER: the bundle's `publicKey.hint` for this key.
    pub fn hint(&self) -> String {
        b64(&sha256(&self.public_der()))
    }

    /// Signs `message`: ECDSA over SHA-256, ASN.1 DER (P-256); pure Ed25519.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.kind {
            KeyKind::P256(key) => key
                .sign(&self.rng, message)
                // ring fails only when its random source does.
                .expect("ECDSA signing")
                .as_ref()
                .to_vec(),
            KeyKind::Ed25519(key) => key.sign(message).as_ref().to_vec(),
        }
    }
}

/// A Fulcio-style signing identity: what an OIDC token proved.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The OIDC issuer, e.g. `https://token.actions.githubusercontent.com`.
    pub issuer: String,
    /// A URI SAN when it contains `://` (a workflow), else an email SAN.
    pub subject: String,
    pub not_before: SystemTime,
    /// Fulcio issues 10-minute certificates.
    pub not_after: SystemTime,
}

impl Identity {
    /// An identity whose certificate is valid from a minute ago to nine minutes from now.
    pub fn new(issuer: &str, subject: &str) -> Identity {
        let now = SystemTime::now();
        Identity {
            issuer: issuer.to_string(),
            subject: subject.to_string(),
            not_before: now - Duration::from_secs(60),
            not_after: now + Duration::from_secs(9 * 60),
        }
    }
}

/// A certificate issued by a [`Sigstore`] CA.
#[derive(Clone, Debug)]
pub struct Issued {
    pub der: Vec<u8>,
    pub pem: String,
}

/// What a [`Sigstore`] log promised for one entry.
#[derive(Clone, Debug)]
pub struct LogEntry {
    /// base64 of the entry's body (Rekor's `body`, the bundle's `canonicalizedBody`).
    pub body: String,
    pub integrated_time: i64,
    pub log_index: u64,
    /// Lowercase hex of sha256 of the log's SPKI DER.
    pub log_id: String,
    /// The SignedEntryTimestamp: the log key's ECDSA signature over [`LogEntry::canonical`].
    pub signed_entry_timestamp: Vec<u8>,
}

impl LogEntry {
    /// The RFC 8785 canonical JSON the SET signs:
    /// `{"body":…,"integratedTime":…,"logID":…,"logIndex":…}`.
    pub fn canonical(&self) -> String {
        canonical_entry(
            &self.body,
            self.integrated_time,
            &self.log_id,
            self.log_index,
        )
    }
}

/// RFC 8785 canonical JSON of a log entry: keys sorted, no whitespace. Every value is
/// base64, hex or an integer, so nothing needs escaping.
fn canonical_entry(body: &str, integrated_time: i64, log_id: &str, log_index: u64) -> String {
    format!(
        r#"{{"body":"{body}","integratedTime":{integrated_time},"logID":"{log_id}","logIndex":{log_index}}}"#
    )
}

/// A private Sigstore instance: a Fulcio-like CA (a root and an intermediate, P-256) and a
/// Rekor-like log key (P-256). Its keys never leave the process.
pub struct Sigstore {
    root: rcgen::Certificate,
    intermediate_key: rcgen::KeyPair,
    intermediate: rcgen::Certificate,
    log: Key,
    next_log_index: AtomicU64,
    rng: SystemRandom,
}

impl Sigstore {
    /// A new instance: root `O=standin, CN=standin-fulcio`, intermediate
    /// `O=standin, CN=standin-fulcio-intermediate` (pathlen 0, EKU codeSigning as Fulcio's),
    /// both valid 2020 to 2100.
    pub fn new() -> Result<Sigstore> {
        let rng = SystemRandom::new();
        let ca_params = |name: &str, constraints| -> Result<rcgen::CertificateParams> {
            let mut params = rcgen::CertificateParams::default();
            params.distinguished_name = rcgen::DistinguishedName::new();
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, "standin");
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            params.is_ca = rcgen::IsCa::Ca(constraints);
            params.key_usages = vec![
                rcgen::KeyUsagePurpose::KeyCertSign,
                rcgen::KeyUsagePurpose::CrlSign,
            ];
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2100, 1, 1);
            params.serial_number = Some(serial(&rng)?);
            Ok(params)
        };
        let root_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let root = ca_params("standin-fulcio", rcgen::BasicConstraints::Unconstrained)?
            .self_signed(&root_key)?;
        let intermediate_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = ca_params(
            "standin-fulcio-intermediate",
            rcgen::BasicConstraints::Constrained(0),
        )?;
        params.use_authority_key_identifier_extension = true;
        // As Fulcio's intermediate (and so that path validators that check the EKU down the
        // whole chain, like webpki, accept it).
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::CodeSigning];
        let intermediate = params.signed_by(&intermediate_key, &root, &root_key)?;
        Ok(Sigstore {
            root,
            intermediate_key,
            intermediate,
            log: Key::p256()?,
            next_log_index: AtomicU64::new(0),
            rng,
        })
    }

    /// The root CA certificate, DER.
    pub fn root_der(&self) -> Vec<u8> {
        self.root.der().to_vec()
    }

    /// The intermediate CA certificate, DER.
    pub fn intermediate_der(&self) -> Vec<u8> {
        self.intermediate.der().to_vec()
    }

    /// The chain as cosign's `dev.sigstore.cosign/chain` has it: the intermediate's PEM,
    /// then the root's.
    pub fn chain_pem(&self) -> String {
        format!("{}{}", self.intermediate.pem(), self.root.pem())
    }

    /// The log's public key.
    pub fn log_key(&self) -> &Key {
        &self.log
    }

    /// The log's ID: lowercase hex of sha256 of its SPKI DER.
    pub fn log_id(&self) -> String {
        hex(&sha256(&self.log.public_der()))
    }

    /// The Sigstore trusted root (protobuf-specs `TrustedRoot` JSON) naming this CA (chain:
    /// intermediate, root) and this log key, with no CT logs and no timestamp authorities.
    pub fn trusted_root(&self) -> String {
        let log_der = self.log.public_der();
        json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [{
                "baseUrl": REKOR_URL,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": b64(&log_der),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": "2020-01-01T00:00:00Z"},
                },
                "logId": {"keyId": b64(&sha256(&log_der))},
            }],
            "certificateAuthorities": [{
                "subject": {"organization": "standin", "commonName": "standin-fulcio"},
                "uri": FULCIO_URL,
                "certChain": {"certificates": [
                    {"rawBytes": b64(self.intermediate.der())},
                    {"rawBytes": b64(self.root.der())},
                ]},
                "validFor": {"start": "2020-01-01T00:00:00Z"},
            }],
            "ctlogs": [],
            "timestampAuthorities": [],
        })
        .to_string()
    }

    /// A Fulcio-style leaf certificate for `key`, issued by the intermediate: an empty
    /// subject; a critical SubjectAltName (URI when `identity.subject` contains `://`, else
    /// rfc822Name); KeyUsage digitalSignature; ExtendedKeyUsage codeSigning; Fulcio's issuer
    /// extensions `1.3.6.1.4.1.57264.1.1` (raw URL) and `…1.8` (UTF8String).
    pub fn issue(&self, key: &Key, identity: &Identity) -> Result<Issued> {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        set_validity(&mut params, identity.not_before, identity.not_after)?;
        params.serial_number = Some(serial(&self.rng)?);
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::CodeSigning];
        params.use_authority_key_identifier_extension = true;
        // rcgen marks its own SubjectAltName non-critical; Fulcio marks it critical (the
        // subject is empty), so it goes in as a custom extension: GeneralNames with one
        // uniformResourceIdentifier [6] or rfc822Name [1].
        let tag = if identity.subject.contains("://") {
            0x86
        } else {
            0x81
        };
        let san = der(0x30, &der(tag, identity.subject.as_bytes()));
        let mut san = rcgen::CustomExtension::from_oid_content(&[2, 5, 29, 17], san);
        san.set_criticality(true);
        params.custom_extensions = vec![
            san,
            rcgen::CustomExtension::from_oid_content(
                OID_ISSUER_V1,
                identity.issuer.as_bytes().to_vec(),
            ),
            rcgen::CustomExtension::from_oid_content(
                OID_ISSUER_V2,
                der(0x0c, identity.issuer.as_bytes()),
            ),
        ];
        let cert = params.signed_by(&key.pair, &self.intermediate, &self.intermediate_key)?;
        Ok(Issued {
            der: cert.der().to_vec(),
            pem: cert.pem(),
        })
    }

    /// Logs an entry of `body` (the entry's JSON) at `integrated_time`: the next log index,
    /// and a SignedEntryTimestamp by the log key.
    pub fn log_entry(&self, body: &[u8], integrated_time: SystemTime) -> Result<LogEntry> {
        let body = b64(body);
        let integrated_time = unix_seconds(integrated_time)?;
        let log_index = self.next_log_index.fetch_add(1, Ordering::SeqCst);
        let log_id = self.log_id();
        let signed_entry_timestamp = self
            .log
            .sign(canonical_entry(&body, integrated_time, &log_id, log_index).as_bytes());
        Ok(LogEntry {
            body,
            integrated_time,
            log_index,
            log_id,
            signed_entry_timestamp,
        })
    }
}

/// A random positive 16-byte serial number.
fn serial(rng: &SystemRandom) -> Result<rcgen::SerialNumber> {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes)
        .map_err(|_| anyhow!("no random serial number"))?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(rcgen::SerialNumber::from_slice(&bytes))
}

/// Who signs, and how.
pub enum Signer<'a> {
    /// `cosign sign --key`: the signature alone (no certificate, no log entry).
    Key(&'a Key),
    /// `cosign sign` keyless: a fresh ephemeral P-256 key, a leaf certificate from `ca` for
    /// `identity`, and a log entry whose SignedEntryTimestamp `log`'s log key signs (normally
    /// the same instance as `ca`), integrated at `integrated_time`.
    Keyless {
        ca: &'a Sigstore,
        log: &'a Sigstore,
        identity: Identity,
        integrated_time: SystemTime,
    },
}

impl<'a> Signer<'a> {
    /// Keyless signing by `sigstore` (CA and log) for `identity`, integrated now.
    pub fn keyless(sigstore: &'a Sigstore, identity: Identity) -> Signer<'a> {
        Signer::Keyless {
            ca: sigstore,
            log: sigstore,
            identity,
            integrated_time: SystemTime::now(),
        }
    }
}

/// A keyless signature before it is logged.
struct Certified<'a> {
    leaf: Issued,
    chain_pem: String,
    log: &'a Sigstore,
    integrated_time: SystemTime,
}

/// Signs `message` as `signer`: the signature, and for keyless signing the certificate and
/// the log that is to take the entry.
fn sign<'a>(signer: &Signer<'a>, message: &[u8]) -> Result<(Vec<u8>, Option<Certified<'a>>)> {
    match signer {
        Signer::Key(key) => Ok((key.sign(message), None)),
        Signer::Keyless {
            ca,
            log,
            identity,
            integrated_time,
        } => {
            let ephemeral = Key::p256()?;
            let leaf = ca.issue(&ephemeral, identity)?;
            Ok((
                ephemeral.sign(message),
                Some(Certified {
                    leaf,
                    chain_pem: ca.chain_pem(),
                    log,
                    integrated_time: *integrated_time,
                }),
            ))
        }
    }
}

/// The hex of a `sha256:<hex>` digest.
fn digest_hex(digest: &str) -> Result<&str> {
    digest
        .strip_prefix("sha256:")
        .with_context(|| format!("{digest} is not a sha256 digest"))
}

/// cosign's simple-signing payload naming `signed_digest` in `repository`.
pub fn simple_signing_payload(repository: &str, signed_digest: &str) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":{}}},"image":{{"docker-manifest-digest":{}}},"type":"cosign container image signature"}},"optional":null}}"#,
        Value::from(repository),
        Value::from(signed_digest),
    )
    .into_bytes()
}

/// The in-toto statement `cosign sign --new-bundle-format` signs about `signed_digest`.
pub fn cosign_statement(repository: &str, signed_digest: &str) -> Result<Vec<u8>> {
    Ok(format!(
        r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":{},"digest":{{"sha256":"{}"}}}}],"predicateType":"{COSIGN_SIGN_PREDICATE}","predicate":{{}}}}"#,
        Value::from(repository),
        digest_hex(signed_digest)?,
    )
    .into_bytes())
}

/// DSSE's pre-authentication encoding of `payload` of `payload_type`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Signs `signed_digest` (normally `subject_digest`; another digest makes a signature whose
/// payload names a different image) and pushes the signature as cosign does: a simple-signing
/// payload layer in the OCI manifest tagged `sha256-<hex of subject_digest>.sig`, appended to
/// the layers already there when that tag holds a cosign signature manifest (cosign keeps
/// every signature of an image in that one manifest). `subject_digest` must be in
/// `repository`.
pub async fn push_signature(
    client: &Client,
    repository: &str,
    subject_digest: &str,
    signed_digest: &str,
    signer: &Signer<'_>,
) -> Result<Referrer> {
    client.require_manifest(repository, subject_digest).await?;
    let payload = simple_signing_payload(repository, signed_digest);
    let (signature, certified) = sign(signer, &payload)?;
    let mut annotations = json!({SIGNATURE_ANNOTATION: b64(&signature)});
    if let Some(certified) = certified {
        let body = format!(
            r#"{{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{{"data":{{"hash":{{"algorithm":"sha256","value":"{}"}}}},"signature":{{"content":"{}","publicKey":{{"content":"{}"}}}}}}}}"#,
            hex(&sha256(&payload)),
            b64(&signature),
            b64(certified.leaf.pem.as_bytes()),
        );
        let entry = certified
            .log
            .log_entry(body.as_bytes(), certified.integrated_time)?;
        let bundle = json!({
            "SignedEntryTimestamp": b64(&entry.signed_entry_timestamp),
            "Payload": {
                "body": entry.body,
                "integratedTime": entry.integrated_time,
                "logIndex": entry.log_index,
                "logID": entry.log_id,
            },
        });
        annotations[CERTIFICATE_ANNOTATION] = json!(certified.leaf.pem);
        annotations[CHAIN_ANNOTATION] = json!(certified.chain_pem);
        annotations[BUNDLE_ANNOTATION] = json!(bundle.to_string());
    }
    let payload_size = payload.len();
    let payload_digest = client.put_blob(repository, payload).await?;
    let layer = json!({
        "mediaType": SIMPLE_SIGNING,
        "size": payload_size,
        "digest": payload_digest,
        "annotations": annotations,
    });
    let tag = cosign_tag(subject_digest, "sig");
    let mut layers = match client.manifest(repository, &tag).await? {
        None => Vec::new(),
        Some(existing) => {
            let layers = existing.json["layers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if layers.iter().any(|l| l["mediaType"] != SIMPLE_SIGNING) {
                bail!("{repository}:{tag} holds something other than cosign signatures");
            }
            layers
        }
    };
    layers.push(layer);
    put_artifact_manifest(client, repository, layers, Naming::Tag(tag)).await
}

/// The Sigstore bundle (v0.3) of a DSSE envelope over cosign's statement about
/// `signed_digest`, signed as `signer`.
pub fn sign_bundle(repository: &str, signed_digest: &str, signer: &Signer<'_>) -> Result<Vec<u8>> {
    let statement = cosign_statement(repository, signed_digest)?;
    let (signature, certified) = sign(signer, &pae(IN_TOTO, &statement))?;
    // Written out so that the bytes (and so the envelope hash) do not hang on key order.
    let envelope = format!(
        r#"{{"payload":"{}","payloadType":"{IN_TOTO}","signatures":[{{"sig":"{}"}}]}}"#,
        b64(&statement),
        b64(&signature),
    );
    let material = match (signer, certified) {
        (Signer::Key(key), _) => json!({
            "publicKey": {"hint": key.hint()},
            "tlogEntries": [],
        }),
        (Signer::Keyless { .. }, Some(certified)) => {
            let body = format!(
                r#"{{"apiVersion":"0.0.1","kind":"dsse","spec":{{"envelopeHash":{{"algorithm":"sha256","value":"{}"}},"payloadHash":{{"algorithm":"sha256","value":"{}"}},"signatures":[{{"signature":"{}","verifier":"{}"}}]}}}}"#,
                hex(&sha256(envelope.as_bytes())),
                hex(&sha256(&statement)),
                b64(&signature),
                b64(certified.leaf.pem.as_bytes()),
            );
            let entry = certified
                .log
                .log_entry(body.as_bytes(), certified.integrated_time)?;
            json!({
                "certificate": {"rawBytes": b64(&certified.leaf.der)},
                "tlogEntries": [{
                    "logIndex": entry.log_index.to_string(),
                    "logId": {"keyId": b64(&sha256(&certified.log.log.public_der()))},
                    "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                    "integratedTime": entry.integrated_time.to_string(),
                    "inclusionPromise": {"signedEntryTimestamp": b64(&entry.signed_entry_timestamp)},
                    "canonicalizedBody": entry.body,
                }],
            })
        }
        (Signer::Keyless { .. }, None) => bail!("keyless signing gave no certificate"),
    };
    let envelope: Value = serde_json::from_str(&envelope)?;
    Ok(serde_json::to_vec(&json!({
        "mediaType": BUNDLE_V03,
        "verificationMaterial": material,
        "dsseEnvelope": envelope,
    }))?)
}

/// Signs as `cosign sign --new-bundle-format` does: an OCI 1.1 referrer of `subject_digest`
/// (pushed by digest, with a `subject`) whose `artifactType` and one layer's media type are
/// [`BUNDLE_V03`] and whose layer is the bundle of [`sign_bundle`] about `signed_digest`.
/// The manifest carries cosign's annotations `dev.sigstore.bundle.content`,
/// `dev.sigstore.bundle.predicateType` and `org.opencontainers.image.created`.
pub async fn push_bundle(
    client: &Client,
    repository: &str,
    subject_digest: &str,
    signed_digest: &str,
    signer: &Signer<'_>,
) -> Result<Referrer> {
    let subject = client.require_manifest(repository, subject_digest).await?;
    let bundle = sign_bundle(repository, signed_digest, signer)?;
    let size = bundle.len();
    let digest = digest_of(&bundle);
    client.put_blob(repository, bundle).await?;
    let layer = json!({"mediaType": BUNDLE_V03, "size": size, "digest": digest});
    let naming = Naming::Subject {
        subject: &subject,
        artifact_type: BUNDLE_V03,
        annotations: json!({
            "dev.sigstore.bundle.content": "dsse-envelope",
            "dev.sigstore.bundle.predicateType": COSIGN_SIGN_PREDICATE,
            "org.opencontainers.image.created": "2026-01-01T00:00:00Z",
        }),
    };
    put_artifact_manifest(client, repository, vec![layer], naming).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ED25519};
    use rustls::pki_types::{CertificateDer, UnixTime};

    fn unb64(text: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap()
    }

    fn verifies(key: &Key, message: &[u8], signature: &[u8]) -> bool {
        let algorithm: &dyn ring::signature::VerificationAlgorithm = if key.is_ed25519() {
            &ED25519
        } else {
            &ECDSA_P256_SHA256_ASN1
        };
        UnparsedPublicKey::new(algorithm, key.public_raw())
            .verify(message, signature)
            .is_ok()
    }

    /// The DER of an OID's content (the body of its `06` TLV).
    fn oid_der(oid: &[u64]) -> Vec<u8> {
        let mut out = vec![(oid[0] * 40 + oid[1]) as u8];
        for &arc in &oid[2..] {
            let mut groups = vec![(arc & 0x7f) as u8];
            let mut rest = arc >> 7;
            while rest > 0 {
                groups.push((rest & 0x7f) as u8 | 0x80);
                rest >>= 7;
            }
            out.extend(groups.into_iter().rev());
        }
        der(0x06, &out)
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    const ISSUER: &str = "https://token.actions.githubusercontent.com";
    const WORKFLOW: &str =
        "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";

    #[test]
    fn p256_and_ed25519_signatures_verify_against_the_public_key() {
        for key in [Key::p256().unwrap(), Key::ed25519().unwrap()] {
            let signature = key.sign(b"payload");
            assert!(verifies(&key, b"payload", &signature));
            assert!(!verifies(&key, b"payload!", &signature));
            assert!(key.public_der().ends_with(&key.public_raw()));
            assert!(key.public_pem().starts_with("-----BEGIN PUBLIC KEY-----"));
        }
        let p256 = Key::p256().unwrap();
        // ASN.1 DER: a SEQUENCE of two INTEGERs.
        assert_eq!(p256.sign(b"x")[0], 0x30);
        assert_eq!(Key::ed25519().unwrap().sign(b"x").len(), 64);
        assert_eq!(p256.public_raw().len(), 65);
    }

    #[test]
    fn the_trusted_root_names_the_log_key_and_the_chain() {
        let sigstore = Sigstore::new().unwrap();
        let root: Value = serde_json::from_str(&sigstore.trusted_root()).unwrap();
        let log_der = sigstore.log_key().public_der();
        let tlog = &root["tlogs"][0];
        assert_eq!(
            unb64(tlog["logId"]["keyId"].as_str().unwrap()),
            sha256(&log_der)
        );
        assert_eq!(
            unb64(tlog["publicKey"]["rawBytes"].as_str().unwrap()),
            log_der
        );
        assert_eq!(tlog["publicKey"]["keyDetails"], "PKIX_ECDSA_P256_SHA_256");
        assert_eq!(hex(&sha256(&log_der)), sigstore.log_id());
        let chain = &root["certificateAuthorities"][0]["certChain"]["certificates"];
        assert_eq!(
            unb64(chain[0]["rawBytes"].as_str().unwrap()),
            sigstore.intermediate_der()
        );
        assert_eq!(
            unb64(chain[1]["rawBytes"].as_str().unwrap()),
            sigstore.root_der()
        );
        assert_eq!(
            root["certificateAuthorities"][0]["subject"]["commonName"],
            "standin-fulcio"
        );
        assert_eq!(root["ctlogs"], json!([]));
    }

    /// Verifies `leaf` to `sigstore`'s root through its intermediate for code signing at `at`.
    fn chains(sigstore: &Sigstore, leaf: &[u8], at: SystemTime) -> Result<(), webpki::Error> {
        let root = CertificateDer::from(sigstore.root_der());
        let anchor = webpki::anchor_from_trusted_cert(&root).unwrap();
        let intermediates = [CertificateDer::from(sigstore.intermediate_der())];
        let leaf = CertificateDer::from(leaf.to_vec());
        let cert = webpki::EndEntityCert::try_from(&leaf).unwrap();
        cert.verify_for_usage(
            &[webpki::ring::ECDSA_P256_SHA256],
            &[anchor],
            &intermediates,
            UnixTime::since_unix_epoch(at.duration_since(UNIX_EPOCH).unwrap()),
            webpki::KeyUsage::required(&[0x2b, 6, 1, 5, 5, 7, 3, 3]),
            None,
            None,
        )
        .map(|_| ())
    }

    #[test]
    fn a_leaf_chains_to_the_root_with_fulcio_extensions() {
        let sigstore = Sigstore::new().unwrap();
        let key = Key::p256().unwrap();
        let identity = Identity::new(ISSUER, WORKFLOW);
        let leaf = sigstore.issue(&key, &identity).unwrap();
        chains(&sigstore, &leaf.der, SystemTime::now()).unwrap();
        // Fulcio's ten minutes: expired a quarter of an hour on.
        let later = SystemTime::now() + Duration::from_secs(15 * 60);
        assert!(chains(&sigstore, &leaf.der, later).is_err());
        // Another instance's root does not anchor it.
        assert!(chains(&Sigstore::new().unwrap(), &leaf.der, SystemTime::now()).is_err());

        // The certified key is `key`.
        assert!(contains(&leaf.der, &key.public_der()));
        // SubjectAltName, critical, a URI.
        let mut san = oid_der(&[2, 5, 29, 17]);
        san.extend([0x01, 0x01, 0xff]);
        assert!(contains(&leaf.der, &san));
        assert!(contains(&leaf.der, &der(0x86, WORKFLOW.as_bytes())));
        // Issuer, both forms.
        let mut v1 = oid_der(OID_ISSUER_V1);
        v1.extend(der(0x04, ISSUER.as_bytes()));
        assert!(contains(&leaf.der, &v1));
        let mut v2 = oid_der(OID_ISSUER_V2);
        v2.extend(der(0x04, &der(0x0c, ISSUER.as_bytes())));
        assert!(contains(&leaf.der, &v2));
        assert!(leaf.pem.starts_with("-----BEGIN CERTIFICATE-----"));

        // An email subject is an rfc822Name.
        let email = Identity::new("https://accounts.google.com", "dev@example.com");
        let leaf = sigstore.issue(&key, &email).unwrap();
        assert!(contains(&leaf.der, &der(0x81, b"dev@example.com")));
        chains(&sigstore, &leaf.der, SystemTime::now()).unwrap();
    }

    #[test]
    fn the_signed_entry_timestamp_verifies_with_the_log_key() {
        let sigstore = Sigstore::new().unwrap();
        let at = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let first = sigstore.log_entry(b"{\"a\":1}", at).unwrap();
        let second = sigstore.log_entry(b"{\"b\":2}", at).unwrap();
        assert_eq!((first.log_index, second.log_index), (0, 1));
        let canonical = first.canonical();
        assert_eq!(
            canonical,
            format!(
                r#"{{"body":"{}","integratedTime":1767225600,"logID":"{}","logIndex":0}}"#,
                b64(b"{\"a\":1}"),
                sigstore.log_id()
            )
        );
        let log = sigstore.log_key();
        assert!(verifies(
            log,
            canonical.as_bytes(),
            &first.signed_entry_timestamp
        ));
        assert!(!verifies(
            log,
            second.canonical().as_bytes(),
            &first.signed_entry_timestamp
        ));
    }

    #[test]
    fn payloads_are_cosigns() {
        let digest = "sha256:".to_string() + &"ab".repeat(32);
        assert_eq!(
            String::from_utf8(simple_signing_payload("team/app", &digest)).unwrap(),
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"team/app"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
            )
        );
        assert_eq!(pae("t/x", b"hello"), b"DSSEv1 3 t/x 5 hello");
        let statement: Value =
            serde_json::from_slice(&cosign_statement("team/app", &digest).unwrap()).unwrap();
        assert_eq!(statement["subject"][0]["digest"]["sha256"], "ab".repeat(32));
        assert_eq!(statement["predicateType"], COSIGN_SIGN_PREDICATE);
        assert!(cosign_statement("team/app", "latest").is_err());
    }

    #[test]
    fn bundles_verify_by_key_and_keyless() {
        let digest = "sha256:".to_string() + &"cd".repeat(32);
        let key = Key::ed25519().unwrap();
        let bundle: Value =
            serde_json::from_slice(&sign_bundle("team/app", &digest, &Signer::Key(&key)).unwrap())
                .unwrap();
        assert_eq!(bundle["mediaType"], BUNDLE_V03);
        assert_eq!(
            bundle["verificationMaterial"]["publicKey"]["hint"],
            key.hint()
        );
        assert_eq!(bundle["verificationMaterial"]["tlogEntries"], json!([]));
        let envelope = &bundle["dsseEnvelope"];
        let payload = unb64(envelope["payload"].as_str().unwrap());
        let sig = unb64(envelope["signatures"][0]["sig"].as_str().unwrap());
        assert!(verifies(&key, &pae(IN_TOTO, &payload), &sig));

        let sigstore = Sigstore::new().unwrap();
        let signer = Signer::keyless(&sigstore, Identity::new(ISSUER, WORKFLOW));
        let bundle: Value =
            serde_json::from_slice(&sign_bundle("team/app", &digest, &signer).unwrap()).unwrap();
        let material = &bundle["verificationMaterial"];
        let leaf = unb64(material["certificate"]["rawBytes"].as_str().unwrap());
        chains(&sigstore, &leaf, SystemTime::now()).unwrap();
        let entry = &material["tlogEntries"][0];
        assert_eq!(entry["kindVersion"]["kind"], "dsse");
        let canonical = canonical_entry(
            entry["canonicalizedBody"].as_str().unwrap(),
            entry["integratedTime"].as_str().unwrap().parse().unwrap(),
            &sigstore.log_id(),
            entry["logIndex"].as_str().unwrap().parse().unwrap(),
        );
        let set = unb64(
            entry["inclusionPromise"]["signedEntryTimestamp"]
                .as_str()
                .unwrap(),
        );
        assert!(verifies(sigstore.log_key(), canonical.as_bytes(), &set));
        let body: Value =
            serde_json::from_slice(&unb64(entry["canonicalizedBody"].as_str().unwrap())).unwrap();
        let envelope = &bundle["dsseEnvelope"];
        let payload = unb64(envelope["payload"].as_str().unwrap());
        assert_eq!(
            body["spec"]["payloadHash"]["value"].as_str().unwrap(),
            hex(&sha256(&payload))
        );
        assert_eq!(
            body["spec"]["signatures"][0]["signature"],
            envelope["signatures"][0]["sig"]
        );
        let verifier = unb64(body["spec"]["signatures"][0]["verifier"].as_str().unwrap());
        assert!(String::from_utf8(verifier)
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(
            body["spec"]["envelopeHash"]["value"].as_str().unwrap(),
            hex(&sha256(&serde_json::to_vec(envelope).unwrap()))
        );
    }
}
