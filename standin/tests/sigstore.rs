//! Signing as cosign does, against a real registry: signatures by cosign's tag (a key, then
//! keyless, appended to one manifest) and a Sigstore bundle by `subject`.

use base64::Engine;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use serde_json::Value;
use standin::client::digest_of;
use standin::images::{push_image, Spec};
use standin::sigstore::{
    push_bundle, push_signature, simple_signing_payload, Identity, Key, Signer, Sigstore,
    BUNDLE_ANNOTATION, BUNDLE_V03, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING,
};
use standin::World;

fn unb64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_and_bundles_reach_the_registry_as_cosign_pushes_them() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::start(dir.path()).await.expect("world starts");
    world.source.serve_referrers(true);
    let client = world.source_client(None);
    let image = push_image(&client, "team/app", Some("1.0"), &Spec::small(7).oci())
        .await
        .unwrap();
    let other = push_image(&client, "team/app", Some("2.0"), &Spec::small(8).oci())
        .await
        .unwrap();
    let digest = &image.manifest_digest;

    let key = Key::p256().unwrap();
    let first = push_signature(&client, "team/app", digest, digest, &Signer::Key(&key))
        .await
        .unwrap();
    let tag = format!("{}.sig", digest.replace(':', "-"));
    assert_eq!(first.tag.as_deref(), Some(tag.as_str()));

    let sigstore = Sigstore::new().unwrap();
    let identity = Identity::new("https://accounts.google.com", "dev@example.com");
    // Keyless, over a payload that names the other image.
    let second = push_signature(
        &client,
        "team/app",
        digest,
        &other.manifest_digest,
        &Signer::keyless(&sigstore, identity.clone()),
    )
    .await
    .unwrap();
    let manifest = client.require_manifest("team/app", &tag).await.unwrap();
    assert_eq!(manifest.digest, second.manifest_digest);
    let layers = manifest.json["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "the second signature is appended");
    assert!(layers.iter().all(|l| l["mediaType"] == SIMPLE_SIGNING));
    assert_eq!(
        layers[0]["digest"],
        digest_of(&simple_signing_payload("team/app", digest))
    );
    assert_eq!(
        layers[1]["digest"],
        digest_of(&simple_signing_payload("team/app", &other.manifest_digest))
    );
    assert_eq!(second.blob_digests.len(), 3, "config and two payloads");
    let config = manifest.config_digest().unwrap();
    assert_eq!(second.blob_digests[0], config);

    // The key's signature verifies over the payload.
    let signature = unb64(
        layers[0]["annotations"][SIGNATURE_ANNOTATION]
            .as_str()
            .unwrap(),
    );
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key.public_raw())
        .verify(&simple_signing_payload("team/app", digest), &signature)
        .unwrap();
    assert!(layers[0]["annotations"]
        .get(CERTIFICATE_ANNOTATION)
        .is_none());

    // The keyless one carries its certificate, chain and a bundle whose SET verifies.
    let annotations = &layers[1]["annotations"];
    assert!(annotations[CERTIFICATE_ANNOTATION]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(annotations[CHAIN_ANNOTATION], sigstore.chain_pem());
    let bundle: Value =
        serde_json::from_str(annotations[BUNDLE_ANNOTATION].as_str().unwrap()).unwrap();
    let payload = &bundle["Payload"];
    assert_eq!(payload["logID"], sigstore.log_id());
    let canonical = format!(
        r#"{{"body":"{}","integratedTime":{},"logID":"{}","logIndex":{}}}"#,
        payload["body"].as_str().unwrap(),
        payload["integratedTime"],
        sigstore.log_id(),
        payload["logIndex"],
    );
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, sigstore.log_key().public_raw())
        .verify(
            canonical.as_bytes(),
            &unb64(bundle["SignedEntryTimestamp"].as_str().unwrap()),
        )
        .unwrap();
    let body: Value = serde_json::from_slice(&unb64(payload["body"].as_str().unwrap())).unwrap();
    assert_eq!(body["kind"], "hashedrekord");
    assert_eq!(
        body["spec"]["signature"]["content"],
        annotations[SIGNATURE_ANNOTATION]
    );

    // The bundle: a referrer by subject.
    let referrer = push_bundle(
        &client,
        "team/app",
        digest,
        digest,
        &Signer::keyless(&sigstore, identity),
    )
    .await
    .unwrap();
    assert!(referrer.tag.is_none());
    let manifest = client
        .require_manifest("team/app", &referrer.manifest_digest)
        .await
        .unwrap();
    assert_eq!(manifest.json["artifactType"], BUNDLE_V03);
    assert_eq!(manifest.json["subject"]["digest"], digest.as_str());
    assert_eq!(manifest.json["layers"][0]["mediaType"], BUNDLE_V03);
    let referrers = client.referrers("team/app", digest).await.unwrap().unwrap();
    assert_eq!(referrers, vec![referrer.manifest_digest.clone()]);
}
