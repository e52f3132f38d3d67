//! Public keys and signature checks. Every check is rustls-webpki's, over the `ring`
//! algorithms the provider's TLS already uses: nothing cryptographic is written here.

use pki_types::pem::PemObject;
use pki_types::{SignatureVerificationAlgorithm, SubjectPublicKeyInfoDer};
use rustls_pki_types as pki_types;
use sha2::{Digest, Sha256};
use x509_cert::der::Decode;
use x509_cert::spki::SubjectPublicKeyInfoRef;

/// The signature algorithms cosign signs with: ECDSA P-256 (its default) and P-384,
/// Ed25519, RSA PKCS#1 v1.5 and PSS.
pub(super) const ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ED25519,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512,
    webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
];

/// The key types cosign verifies with, by the OID of their SubjectPublicKeyInfo algorithm.
const ID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const ID_ED25519: &str = "1.3.101.112";
const ID_RSA: &str = "1.2.840.113549.1.1.1";
/// The named curves of EC keys: P-256 and P-384.
const CURVES: [&str; 2] = ["1.2.840.10045.3.1.7", "1.3.132.0.34"];

/// A public key of `keys`.
#[derive(Clone, Debug)]
pub(crate) struct PublicKey {
    spki: SubjectPublicKeyInfoDer<'static>,
}

impl PublicKey {
    /// Reads a PEM public key (`-----BEGIN PUBLIC KEY-----`, as `cosign.pub`); an error says
    /// what is wrong with it.
    #[cfg(test)]
    pub(crate) fn parse(pem: &str) -> Result<PublicKey, String> {
        let mut keys = PublicKey::parse_all(pem)?;
        match keys.len() {
            1 => Ok(keys.remove(0)),
            n => Err(format!("{n} keys, not one")),
        }
    }

    /// Reads every PEM public key of `pem` (one, as `cosign.pub`, or several one after the
    /// other); an error says what is wrong with them.
    pub(crate) fn parse_all(pem: &str) -> Result<Vec<PublicKey>, String> {
        let blocks: Vec<SubjectPublicKeyInfoDer<'static>> =
            SubjectPublicKeyInfoDer::pem_slice_iter(pem.trim().as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|err| format!("not PEM: {err}"))?;
        if blocks.is_empty() {
            return Err("not a PEM public key: expected `-----BEGIN PUBLIC KEY-----`, as `cosign.pub` holds (`cosign public-key --key cosign.key` prints it)".into());
        }
        blocks.into_iter().map(PublicKey::from_spki).collect()
    }

    /// A SubjectPublicKeyInfo (DER) as a key cosign signs with.
    fn from_spki(spki: SubjectPublicKeyInfoDer<'static>) -> Result<PublicKey, String> {
        let info = SubjectPublicKeyInfoRef::from_der(spki.as_ref())
            .map_err(|err| format!("the PEM block is not a public key: {err}"))?;
        let algorithm = info.algorithm.oid.to_string();
        let curve = info
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<x509_cert::der::asn1::ObjectIdentifier>().ok())
            .map(|oid| oid.to_string());
        match (algorithm.as_str(), curve.as_deref()) {
            (ID_EC_PUBLIC_KEY, Some(curve)) if CURVES.contains(&curve) => {}
            (ID_EC_PUBLIC_KEY, _) => {
                return Err("an ECDSA key on a curve cosign does not sign with: use P-256 (cosign's default) or P-384".into())
            }
            (ID_ED25519 | ID_RSA, _) => {}
            (other, _) => {
                return Err(format!(
                    "a key of type {other}, which cosign does not sign with: use ECDSA (P-256, P-384), Ed25519 or RSA"
                ))
            }
        }
        webpki::RawPublicKeyEntity::try_from(&spki)
            .map_err(|err| format!("the public key cannot be read: {err}"))?;
        Ok(PublicKey { spki })
    }

    /// `SHA256:<hex>`: the SHA-256 of the key's DER encoding (`openssl pkey -pubin -in
    /// cosign.pub -outform DER | sha256sum`).
    pub(crate) fn fingerprint(&self) -> String {
        format!("SHA256:{}", hex(&Sha256::digest(self.spki.as_ref())))
    }

    /// Whether `signature` is this key's signature of `message`.
    pub(super) fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        spki_verifies(&self.spki, message, signature)
    }
}

/// Whether `signature` is the signature of `message` by the key `spki` (DER), with any
/// algorithm of [`ALGORITHMS`] that fits the key.
pub(super) fn spki_verifies(
    spki: &SubjectPublicKeyInfoDer<'_>,
    message: &[u8],
    signature: &[u8],
) -> bool {
    let Ok(key) = webpki::RawPublicKeyEntity::try_from(spki) else {
        return false;
    };
    ALGORITHMS
        .iter()
        .any(|algorithm| key.verify_signature(*algorithm, message, signature).is_ok())
}

/// Lowercase hexadecimal.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    // Keys made with openssl for these tests, and their signatures of `payload`
    // (`openssl dgst -sha256 -sign`, `openssl pkeyutl -sign -rawin` for Ed25519).
    const P256: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE3vBgB+pKxfIYuO+K3K24SnAS95wf
J5GCk8kk5TjKh5nlsY8JiYxSvTu51KrjpocM9S4nacA6So8CyQEnELOicw==
-----END PUBLIC KEY-----";
    const P256_SIGNATURE: &str = "MEUCIGqcE360Q6BZzSQ4Ckr9BCH+KVNYB+NS5KdqGGtdLWfWAiEAsqZvWM0hw5TJyBAP1Mgpd1VxKY2+E+DoBMklW543HWg=";
    const ED25519: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJB6FLR51pgDn1gBXxu8eBB8d/6C95SFXjLBBVirpX0s=
-----END PUBLIC KEY-----";
    const ED25519_SIGNATURE: &str =
        "o+bDeNYkEjA3legWt1DHRYfBylAvDLdG2Nlg1x74dpyhQ2rbRrep1IxgdvS6rfex6HOKEpjm5HTixMdBAXyrCw==";
    const RSA: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA6I2wlyzJ8N8AyI8p19Im
61hZmJqZWnHrQE8ZiXjocVSm2Ts+BRJZWsqfenExm9fWeGqq9LIDnbTaFZYW19zV
+P1TDXejp3GKg7TPeGcaa+rxatx/ddxfpGZJabIYk68XIED5kjQ3jj3YeNIEeqYY
FLu1Ns6Ha0cJSY/p2enxCSloKMcmeiJ2b/hMvfJOiek+1gwDEgbY7V0FMb8FYg+4
wM2L+Hj5h73aa4oeQgpW3O+QSeUYZsTySeLxpzXG+dhCrn82zAlh72W59FGN2xdv
xHXkFG6XgJ1YUfjQo1VE+NmGH0179F3oiEJReB1dsiBBVIr3bYTVTpyEOs9U7fyC
xwIDAQAB
-----END PUBLIC KEY-----";
    const RSA_PKCS1_SIGNATURE: &str = "fuB50deRe0WtJtDbdOTjvCd1CxLPUMKz9c/louOTPAVTG+iyMXJB/PNRtvP1/NzQEXcgHQPei8xtkJP7P/efJLt0R5gKexUcOeFLK6wcQ88pCDU6g21o7aF1Bv1yaUFfw+Y2b0JCSDl8ouPWktbgZKmZ87kDDFCPusUodz9JgPbpHscR8SwFUKUZSqw3unubEsW/7ohfEt/+B+K1BhBBOdik0zT/lZRyv/GKSzrX4AIg6yLzxpB7ZsjgcEbq8FygI9uY1YhV1KnBOEL52vWr2kwBCB2NmBP7w2UXfO0xuvrf94+Qme/xyvA2Z8vQpgvOuNwniuBq2Csu1Dm5H2yxyw==";
    const RSA_PSS_SIGNATURE: &str = "z+BzzWn+RTYL2b0Skx0lWJpsV/F1usn6T9MFpMN6YBdVPuFwojIwVfugDAbArI+AtHEDbM+kH6KxVPgF7b2USRn/EflGsTi1qSpO+fo0Q8jbE54FZYqhE7pOQdpvh45ShRfcF13DHT9ZC1Pi6A5MEBnRX65KNvH0NVoGME7hNWCHgQkd0rJJ8rTbFDaHfU3vAWSgbaTK8gVvGjCYgSfZ2Up7RGD7FUaXzzQm4sqjYk5xoaRC4pzqq6ek2Lor3kFFlB8/010BLrW2hNFKmZvkIIG/2BjiC58IF900gQDr6m2B+2Tn6fsvZu94o5ifSASOwo2eB97+GYICP6cSvfQ/mA==";
    const SECP256K1: &str = "-----BEGIN PUBLIC KEY-----
MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAEh30eg2QNbwETJSuJZVSvl1YFtM16WbOI
aINlQXKc86MnN91ZD2jUGx/oWA4ZEokIWElP4hSiF7rHDxX5EF/hYQ==
-----END PUBLIC KEY-----";

    fn signature(b64: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
    }

    #[test]
    fn every_key_type_cosign_signs_with_verifies() {
        let cases = [
            (P256, P256_SIGNATURE),
            (ED25519, ED25519_SIGNATURE),
            (RSA, RSA_PKCS1_SIGNATURE),
            (RSA, RSA_PSS_SIGNATURE),
        ];
        for (pem, b64) in cases {
            let key = PublicKey::parse(pem).unwrap();
            assert!(key.verifies(b"payload", &signature(b64)), "{pem}");
            assert!(!key.verifies(b"payloaD", &signature(b64)), "{pem}");
        }
        // Another key's signature does not verify.
        let p256 = PublicKey::parse(P256).unwrap();
        assert!(!p256.verifies(b"payload", &signature(ED25519_SIGNATURE)));
    }

    #[test]
    fn fingerprints_are_the_sha256_of_the_key() {
        let key = PublicKey::parse(P256).unwrap();
        let der = SubjectPublicKeyInfoDer::from_pem_slice(P256.as_bytes()).unwrap();
        assert_eq!(
            key.fingerprint(),
            format!("SHA256:{}", hex(&Sha256::digest(der.as_ref())))
        );
        assert_ne!(
            key.fingerprint(),
            PublicKey::parse(ED25519).unwrap().fingerprint()
        );
    }

    #[test]
    fn keys_parse_with_what_is_wrong() {
        let err = PublicKey::parse("cosign.pub").unwrap_err();
        assert!(err.contains("not a PEM public key"), "{err}");
        let err = PublicKey::parse("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")
            .unwrap_err();
        assert!(err.contains("is not a public key"), "{err}");
        let err = PublicKey::parse(SECP256K1).unwrap_err();
        assert!(err.contains("P-256"), "{err}");
    }
}
