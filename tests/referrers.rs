//! `copy_referrers`: the supply chain mirrored with the image. A signed two-platform index
//! with a cosign-style signature, an in-toto attestation, an SPDX SBOM (by cosign's tag) and
//! a signature on the attestation: every referrer reaches ECR byte for byte and ECR's
//! referrers API lists those with a `subject`; a new upstream signature with `track_source`
//! copies just its blobs; a referrer deleted in ECR is restored; adoption copies only the
//! missing referrers; the Docker method refuses `copy_referrers` at plan.

mod support;

use serde_json::json;
use standin::images::{push_referrer, Artifact, Referrer, Scheme};
use support::{image, Harness};

const REPO: &str = "mirror/app";

/// The mirror under test, registry to registry with its referrers, tracked upstream.
const SIGNED: &str = r#"
  docker_source = "{source}/upstream/app:1.0"
  repository    = "mirror/app"
  copy_method   = "registry"
  copy_referrers = true
  track_source  = true
"#;

/// The signed image's referrers.
struct Signed {
    index: String,
    signature: Referrer,
    attestation: Referrer,
    sbom: Referrer,
    attestation_signature: Referrer,
}

impl Signed {
    fn digests(&self) -> Vec<String> {
        let mut digests: Vec<String> = [
            &self.signature,
            &self.attestation,
            &self.sbom,
            &self.attestation_signature,
        ]
        .iter()
        .map(|r| r.manifest_digest.clone())
        .collect();
        digests.sort();
        digests
    }
}

/// Seeds `upstream/app:1.0` (two platforms) with its supply chain: a signature of the index
/// and an attestation of the arm64 image (by `subject`), an SBOM of the index (by cosign's
/// tag), and a signature of the attestation (a referrer of a referrer).
async fn seed_signed(h: &Harness) -> Signed {
    h.world.source.serve_referrers(true);
    let (index, images) = h.seed_index("upstream/app", "1.0", 31).await;
    let arm = &images[1].manifest_digest;
    let signature = refer(h, &index, Artifact::Signature, Scheme::Subject, 1).await;
    let attestation = refer(h, arm, Artifact::Attestation, Scheme::Subject, 2).await;
    let sbom = refer(h, &index, Artifact::Sbom, Scheme::CosignTag, 3).await;
    let attestation_signature = refer(
        h,
        &attestation.manifest_digest,
        Artifact::Signature,
        Scheme::Subject,
        4,
    )
    .await;
    Signed {
        index,
        signature,
        attestation,
        sbom,
        attestation_signature,
    }
}

/// Pushes an `artifact` about `subject` of the source's `upstream/app`, named by `scheme`.
async fn refer(
    h: &Harness,
    subject: &str,
    artifact: Artifact,
    scheme: Scheme,
    seed: u64,
) -> Referrer {
    push_referrer(
        &h.source_client(),
        "upstream/app",
        subject,
        artifact,
        scheme,
        seed,
    )
    .await
    .expect("seeding a referrer")
}

/// `referrer_digests` in state.
async fn recorded(h: &Harness) -> Vec<String> {
    let resources = h.resources().await;
    resources[0]["values"]["referrer_digests"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|d| d.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts that ECR holds each referrer, byte for byte (same digest).
async fn assert_in_ecr(h: &Harness, referrers: &[&Referrer]) {
    for referrer in referrers {
        let copied = h.ecr_manifest(REPO, &referrer.manifest_digest).await;
        assert_eq!(
            copied.map(|m| m.digest),
            Some(referrer.manifest_digest.clone()),
            "ECR lacks {}",
            referrer.manifest_digest
        );
        for blob in &referrer.blob_digests {
            assert!(h.ecr_has_blob(REPO, blob).await, "ECR lacks blob {blob}");
        }
    }
}

/// Blob uploads ECR received since the logs were last cleared.
fn uploads(h: &Harness) -> usize {
    h.ecr_requests()
        .iter()
        .filter(|r| r.starts_with("POST ") && r.contains("/blobs/uploads/"))
        .count()
}

/// The manifest `GET`s (each a pull on Docker Hub) the source saw since the logs were last
/// cleared.
fn manifest_gets(h: &Harness) -> Vec<String> {
    h.source_requests()
        .into_iter()
        .filter(|r| r.starts_with("GET ") && r.contains("/manifests/"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_index_is_mirrored_with_every_referrer() {
    let h = Harness::start().await;
    let signed = seed_signed(&h).await;
    h.config(&image(SIGNED));
    h.apply().await;

    assert_eq!(h.attr("test", "image_digest").await, signed.index);
    assert_in_ecr(
        &h,
        &[
            &signed.signature,
            &signed.attestation,
            &signed.sbom,
            &signed.attestation_signature,
        ],
    )
    .await;
    assert_eq!(recorded(&h).await, signed.digests());
    // ECR's referrers API lists the referrers with a subject; cosign's tag is kept.
    let ecr = h.world.ecr_client();
    assert_eq!(
        ecr.referrers(REPO, &signed.index).await.unwrap(),
        Some(vec![signed.signature.manifest_digest.clone()])
    );
    assert_eq!(
        ecr.referrers(REPO, &signed.attestation.manifest_digest)
            .await
            .unwrap(),
        Some(vec![signed.attestation_signature.manifest_digest.clone()])
    );
    assert_eq!(
        h.ecr_tag(REPO, signed.sbom.tag.as_deref().unwrap()),
        Some(signed.sbom.manifest_digest.clone())
    );
    h.clear_logs();
    let (_, changes) = h.plan().await;
    assert!(!changes, "the plan after the apply is not empty");
    // Tracked with referrers, a plan asks the tag with HEADs and lists the referrers: no
    // manifest GET (a pull on Docker Hub), the tag's manifests are cached by digest.
    assert_eq!(manifest_gets(&h), Vec::<String>::new());

    // A new signature upstream: tracked, one update that uploads just its blobs.
    let resigned = refer(&h, &signed.index, Artifact::Signature, Scheme::Subject, 5).await;
    let mut new_blobs = 0;
    for blob in &resigned.blob_digests {
        if !h.ecr_has_blob(REPO, blob).await {
            new_blobs += 1;
        }
    }
    let (run, changes) = h.plan().await;
    assert!(changes);
    run.stdout_has("1 to change");
    h.clear_logs();
    h.apply().await;
    assert_eq!(uploads(&h), new_blobs, "{:?}", h.ecr_requests());
    assert!(
        !h.ecr_requests()
            .iter()
            .any(|r| r.starts_with("PUT ") && r.ends_with("/manifests/1.0")),
        "the image's tag was pushed again"
    );
    assert_in_ecr(&h, &[&resigned]).await;
    assert!(recorded(&h).await.contains(&resigned.manifest_digest));
    let (_, changes) = h.plan().await;
    assert!(!changes);

    // A referrer deleted in ECR outside Terraform is restored.
    h.delete_ecr_manifest(REPO, &signed.attestation.manifest_digest)
        .await;
    let (_, changes) = h.plan().await;
    assert!(changes, "the deleted referrer is not noticed");
    h.apply().await;
    assert_in_ecr(&h, &[&signed.attestation]).await;
    let (_, changes) = h.plan().await;
    assert!(!changes);

    // Lost state, and ECR holds the image but not all its referrers: only those are copied.
    h.forget("test").await;
    h.delete_ecr_manifest(REPO, &signed.signature.manifest_digest)
        .await;
    h.clear_logs();
    h.apply().await;
    let pushes: Vec<String> = h
        .ecr_requests()
        .into_iter()
        .filter(|r| r.starts_with("PUT ") && r.contains("/manifests/"))
        .collect();
    assert_eq!(
        pushes,
        vec![format!(
            "PUT /v2/{REPO}/manifests/{}",
            signed.signature.manifest_digest
        )]
    );
    assert_eq!(uploads(&h), 0, "the signature's blobs are in ECR already");
    assert_in_ecr(&h, &[&signed.signature]).await;
    let (_, changes) = h.plan().await;
    assert!(!changes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_are_found_by_the_tag_schema_where_the_source_lacks_the_api() {
    let h = Harness::start().await;
    let (index, _) = h.seed_index("upstream/app", "1.0", 32).await;
    // The source serves no referrers API: a client that pushes a referrer with a subject
    // also records it in the referrers tag schema's index, `sha256-<hex>`.
    let signature = refer(&h, &index, Artifact::Signature, Scheme::Subject, 6).await;
    let source = h.source_client();
    let pushed = source
        .require_manifest("upstream/app", &signature.manifest_digest)
        .await
        .unwrap();
    let schema_index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": standin::images::OCI_INDEX,
        "manifests": [{
            "mediaType": standin::images::OCI_MANIFEST,
            "digest": signature.manifest_digest,
            "size": pushed.size,
            "artifactType": Artifact::Signature.artifact_type(),
        }],
    }))
    .unwrap();
    source
        .put_manifest(
            "upstream/app",
            &index.replace(':', "-"),
            standin::images::OCI_INDEX,
            schema_index,
        )
        .await
        .unwrap();
    assert_eq!(
        source.referrers("upstream/app", &index).await.unwrap(),
        None
    );

    h.config(&image(SIGNED));
    h.apply().await;
    assert_in_ecr(&h, &[&signature]).await;
    assert_eq!(recorded(&h).await, vec![signature.manifest_digest.clone()]);
    assert_eq!(
        h.world.ecr_client().referrers(REPO, &index).await.unwrap(),
        Some(vec![signature.manifest_digest.clone()])
    );
    // Without the API, each manifest's tag schema index is asked with a HEAD, and fetched
    // only where it exists: the index's.
    h.clear_logs();
    let (_, changes) = h.plan().await;
    assert!(!changes);
    assert_eq!(
        manifest_gets(&h),
        vec![format!(
            "GET /v2/upstream/app/manifests/{}",
            index.replace(':', "-")
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docker_method_refuses_copy_referrers_at_plan() {
    let h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 33).await;
    h.config(&image(
        r#"
  docker_source  = "{source}/upstream/app:1.0"
  repository     = "mirror/app"
  copy_method    = "docker"
  copy_referrers = true
"#,
    ));
    let run = h.terraform(&["plan", "-no-color", "-input=false"]).await;
    assert!(!run.success, "{}", run.output());
    run.stderr_has("Invalid copy_referrers")
        .stderr_has("`copy_referrers` needs `copy_method = \"registry\"`");
    assert!(h.ecr_requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_refuses_the_referrers_api_still_has_its_cosign_tags_copied() {
    let h = Harness::start().await;
    let (index, _) = h.seed_index("upstream/app", "1.0", 34).await;
    let signature = refer(&h, &index, Artifact::Signature, Scheme::CosignTag, 7).await;
    // Some registries answer the referrers API with 405 rather than 404.
    h.source_faults().add(standin::faults::Rule {
        status: Some(405),
        ..standin::faults::Rule::on("registry:GET:/referrers/")
    });
    h.config(&image(SIGNED));
    h.apply().await;
    assert_in_ecr(&h, &[&signature]).await;
    assert_eq!(
        h.ecr_tag(REPO, signature.tag.as_deref().unwrap()),
        Some(signature.manifest_digest.clone())
    );
    let (_, changes) = h.plan().await;
    assert!(!changes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecr_answers_a_push_with_a_subject_as_an_oci_1_1_registry_does() {
    let h = Harness::start().await;
    let ecr = h.world.ecr_client();
    let image =
        standin::images::push_image(&ecr, REPO, Some("1.0"), &standin::images::Spec::small(35))
            .await
            .unwrap();
    let empty = ecr.put_blob(REPO, b"{}".to_vec()).await.unwrap();
    let referrer = |subject: Option<&str>| {
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": standin::images::OCI_MANIFEST,
            "artifactType": "application/vnd.example+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2}],
        });
        if let Some(subject) = subject {
            manifest["subject"] = json!({"mediaType": standin::images::DOCKER_MANIFEST, "digest": subject, "size": image.manifest_size});
        }
        serde_json::to_vec(&manifest).unwrap()
    };
    let body = referrer(Some(&image.manifest_digest));
    let digest = standin::client::digest_of(&body);
    let (_, subject) = ecr
        .put_manifest_answered(REPO, &digest, standin::images::OCI_MANIFEST, body)
        .await
        .unwrap();
    assert_eq!(subject.as_deref(), Some(image.manifest_digest.as_str()));
    assert_eq!(
        ecr.referrers(REPO, &image.manifest_digest).await.unwrap(),
        Some(vec![digest])
    );
    // Without a subject, no OCI-Subject.
    let body = referrer(None);
    let digest = standin::client::digest_of(&body);
    let (_, subject) = ecr
        .put_manifest_answered(REPO, &digest, standin::images::OCI_MANIFEST, body)
        .await
        .unwrap();
    assert_eq!(subject, None);
}

/// The tags in ECR's `mirror/app` that hold referrers (`sha256-…`), sorted.
fn referrer_tags(h: &Harness) -> Vec<String> {
    h.world
        .ecr
        .state
        .tags(REPO)
        .into_keys()
        .filter(|tag| tag.starts_with("sha256-"))
        .collect()
}

/// Two mirrors of one signed index with `copy_referrers`, `test` (tag `1.0`) and `copy`.
fn two_signed_mirrors(with_copy: bool, referrers: bool) -> String {
    let mirror = |name: &str, tag: &str| {
        format!(
            r#"
resource "ecrmirror_image" "{name}" {{
  docker_source  = "{{source}}/upstream/app:1.0"
  repository     = "mirror/app"
  tag            = "{tag}"
  copy_method    = "registry"
  copy_referrers = {referrers}
}}
"#
        )
    };
    let mut hcl = format!("provider \"ecrmirror\" {{}}\n{}", mirror("test", "1.0"));
    if with_copy {
        hcl.push_str(&mirror("copy", "copy"));
    }
    hcl
}

/// The referrer tags a mirror copied (cosign's, of the index and of a platform manifest)
/// leave with it: when `copy_referrers` is turned off, which plans no new digest (nothing
/// pinned to `image_uri_digest` churns), and at destroy, unless another tag still holds
/// their subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrer_tags_leave_with_their_mirror() {
    let h = Harness::start().await;
    let signed = seed_signed(&h).await;
    let (_, images) = h.seed_index("upstream/app", "1.0", 31).await;
    let platform_signature = refer(
        &h,
        &images[0].manifest_digest,
        Artifact::Signature,
        Scheme::CosignTag,
        6,
    )
    .await;
    let copied = {
        let mut tags = vec![
            signed.sbom.tag.clone().expect("the SBOM has a cosign tag"),
            platform_signature.tag.clone().expect("a cosign tag"),
        ];
        tags.sort();
        tags
    };

    h.config(&two_signed_mirrors(false, true));
    h.apply().await;
    assert_eq!(referrer_tags(&h), copied);
    let pinned = h.attr("test", "image_uri_digest").await;

    // Turned off: only referrer_digests changes in the plan; the tags leave.
    h.config(&two_signed_mirrors(false, false));
    let (plan, changes) = h.plan().await;
    assert!(changes);
    plan.stdout_has("0 to add, 1 to change, 0 to destroy");
    assert!(
        !plan.stdout.contains("image_digest") && !plan.stdout.contains("image_uri_digest"),
        "turning copy_referrers off plans new digests:\n{}",
        plan.stdout
    );
    h.apply().await;
    assert_eq!(referrer_tags(&h), Vec::<String>::new());
    assert_eq!(h.attr("test", "image_uri_digest").await, pinned);
    let (plan, changes) = h.plan().await;
    assert!(!changes, "{}", plan.stdout);

    // On again, with a second mirror of the index: destroying one leaves the tags the
    // other still needs; destroying the last removes them.
    h.config(&two_signed_mirrors(true, true));
    h.apply().await;
    assert_eq!(referrer_tags(&h), copied);
    h.config(
        &two_signed_mirrors(false, true)
            .replace("\"1.0\"", "\"copy\"")
            .replace("\"test\"", "\"copy\""),
    );
    let run = h.apply().await;
    run.stdout_has("1 destroyed");
    assert_eq!(
        referrer_tags(&h),
        copied,
        "the other mirror's referrers left"
    );
    h.destroy().await;
    assert_eq!(referrer_tags(&h), Vec::<String>::new());
    assert!(h.world.ecr.state.tags(REPO).is_empty());
}
