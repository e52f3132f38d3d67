//! `copy_method = "registry"`: registry to registry, no Docker engine, digests preserved.

mod support;

use standin::faults::Rule;
use support::{image, Harness};

const REPO: &str = "mirror/app";

/// A harness whose provider cannot reach any Docker engine (`DOCKER_HOST` names a socket
/// with nothing behind it).
async fn without_docker() -> Harness {
    let mut h = Harness::start().await;
    let socket = h.work().join("no-docker.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    h.set_env("DOCKER_HOST", &format!("unix://{}", socket.display()));
    h
}

/// `{source}/upstream/app:1.0` copied registry to registry into `mirror/app`.
const APP_BY_REGISTRY: &str = r#"
  docker_source = "{source}/upstream/app:1.0"
  repository    = "mirror/app"
  copy_method   = "registry"
"#;

/// Twelve tags of one source mirrored at once (Terraform runs ten operations in parallel).
fn twelve_tags(method: &str) -> String {
    r#"
provider "ecrmirror" {}

resource "ecrmirror_image" "tags" {
  count         = 12
  docker_source = "{source}/upstream/app:1.0"
  repository    = "mirror/app"
  tag           = "t${count.index}"
  copy_method   = "METHOD"
}
"#
    .replace("METHOD", method)
}

fn uploads(h: &Harness) -> Vec<String> {
    h.ecr_requests()
        .into_iter()
        .filter(|r| r.starts_with("POST ") || r.starts_with("PATCH ") || r.starts_with("PUT "))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_index_is_copied_with_its_digest_and_no_engine() {
    let h = without_docker().await;
    let (index, platforms) = h.seed_index("upstream/app", "1.0", 91).await;
    h.config(&image(APP_BY_REGISTRY));
    h.apply().await;

    let served = h.ecr_manifest(REPO, "1.0").await.expect("mirrored");
    assert_eq!(served.digest, index);
    assert_eq!(h.attr("test", "image_digest").await, index);
    assert_eq!(h.attr("test", "source_digest").await, index);
    for platform in &platforms {
        let child = h.ecr_manifest(REPO, &platform.manifest_digest).await;
        assert!(
            child.is_some(),
            "{} missing in ECR",
            platform.manifest_digest
        );
    }
    let (_, changes) = h.plan().await;
    assert!(!changes);

    // Drift is restored, a lost state is adopted without transfer, destroy untags.
    h.delete_ecr_tag(REPO, "1.0").await;
    h.apply().await;
    assert_eq!(h.ecr_manifest(REPO, "1.0").await.unwrap().digest, index);
    std::fs::remove_file(h.work().join("terraform.tfstate")).unwrap();
    h.clear_logs();
    h.apply().await;
    assert!(uploads(&h).is_empty(), "{:?}", uploads(&h));
    let (_, changes) = h.plan().await;
    assert!(!changes);
    h.destroy().await;
    assert!(h.ecr_tag(REPO, "1.0").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_copies_that_manifest_and_the_provider_default_applies() {
    let h = without_docker().await;
    let (_, platforms) = h.seed_index("upstream/app", "2.0", 92).await;
    h.config(
        r#"
provider "ecrmirror" {
  copy_method = "registry"
}

resource "ecrmirror_image" "test" {
  docker_source = "{source}/upstream/app:2.0"
  repository    = "mirror/app"
  platform      = "linux/arm64/v8"
}
"#,
    );
    h.apply().await;
    assert_eq!(h.attr("test", "copy_method").await, "registry");
    let served = h.ecr_manifest(REPO, "2.0").await.unwrap();
    assert_eq!(served.digest, platforms[1].manifest_digest);
    assert_eq!(
        h.attr("test", "image_digest").await,
        platforms[1].manifest_digest
    );
    let (_, changes) = h.plan().await;
    assert!(!changes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_ecr_has_are_skipped_and_transient_failures_retried() {
    let h = without_docker().await;
    h.seed_image("upstream/app", "1.0", 93).await;
    h.config(&image(APP_BY_REGISTRY));
    // The first blob upload fails with a 503; the copy retries that blob and goes on.
    h.ecr_faults().add(Rule {
        count: 1,
        status: Some(503),
        ..Rule::on("registry:POST")
    });
    h.apply().await;
    assert!(h.ecr_manifest(REPO, "1.0").await.is_some());

    // Another tag of the same image: only the manifest is pushed.
    h.config(&image(
        r#"
  docker_source = "{source}/upstream/app:1.0"
  repository    = "mirror/app"
  tag           = "again"
  copy_method   = "registry"
"#,
    ));
    h.clear_logs();
    h.apply().await;
    let pushed = uploads(&h);
    assert_eq!(
        pushed,
        vec![format!("PUT /v2/{REPO}/manifests/again")],
        "{pushed:?}"
    );
}

/// The source throttles the first blob it is asked for (429 with Retry-After): that blob is
/// asked for again, no other. (Alone here: a failed upload also abandons its blob's request,
/// which would blur the count.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_source_blob_is_asked_for_again() {
    let h = without_docker().await;
    let seeded = h.seed_image("upstream/app", "1.0", 95).await;
    h.config(&image(APP_BY_REGISTRY));
    h.source_faults().add(Rule {
        count: 1,
        status: Some(429),
        retry_after: Some(1),
        ..Rule::on("registry:GET:/blobs/")
    });
    h.apply().await;
    assert!(h.ecr_manifest(REPO, "1.0").await.is_some());
    let throttled = h
        .source_requests()
        .into_iter()
        .filter(|r| r.starts_with("GET ") && r.contains("/blobs/"))
        .count();
    let blobs = 1 + seeded.layer_digests.len();
    assert_eq!(
        throttled,
        blobs + 1,
        "the throttled blob is asked for again, no other"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_method_is_an_in_place_update_and_bad_values_fail_at_plan() {
    let h = Harness::start().await;
    let (index, _) = h.seed_index("upstream/app", "1.0", 94).await;
    let by = |method: &str| {
        image(&format!(
            r#"
  docker_source = "{{source}}/upstream/app:1.0"
  repository    = "mirror/app"
{method}"#
        ))
    };
    h.config(&by(""));
    h.apply().await;
    assert_eq!(h.attr("test", "copy_method").await, "docker");
    assert_ne!(h.attr("test", "image_digest").await, index);

    h.config(&by(r#"  copy_method   = "registry""#));
    let (run, changes) = h.plan().await;
    assert!(changes);
    run.stdout_has("0 to add, 1 to change, 0 to destroy");
    h.apply().await;
    assert_eq!(h.attr("test", "image_digest").await, index);

    h.config(&by(r#"  copy_method   = "skopeo""#));
    let run = h.terraform(&["plan", "-no-color", "-input=false"]).await;
    assert!(!run.success);
    run.stderr_has("Invalid copy_method");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_indexes_are_copied_as_they_are() {
    let h = without_docker().await;
    let specs = [
        standin::images::Spec::small(95).oci(),
        standin::images::Spec::small(95)
            .for_platform("arm64", Some("v8"))
            .oci(),
    ];
    let (index, _) = standin::images::push_index(&h.source_client(), "upstream/oci", "1.0", &specs)
        .await
        .unwrap();
    h.config(&image(
        r#"
  docker_source = "{source}/upstream/oci:1.0"
  repository    = "mirror/app"
  copy_method   = "registry"
"#,
    ));
    h.apply().await;
    let served = h.ecr_manifest(REPO, "1.0").await.unwrap();
    assert_eq!(served.digest, index);
    assert_eq!(served.media_type, standin::images::OCI_INDEX);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_token_source_is_copied_registry_to_registry() {
    let user = standin::front::BasicAuth {
        username: "mirror-bot".into(),
        password: "s3cr3t-token-pass".into(),
    };
    let mut h = Harness::start_with(standin::SourceAuth::Token(user)).await;
    let (index, _) = h.seed_index("private/app", "1.0", 96).await;
    h.var("source_password", Some("s3cr3t-token-pass"));
    h.config(&format!(
        "{}{}",
        support::provider_with_registry_auth("mirror-bot"),
        r#"
resource "ecrmirror_image" "test" {
  docker_source = "{source}/private/app:1.0"
  repository    = "mirror/app"
  copy_method   = "registry"
}
"#
    ));
    h.apply().await;
    assert_eq!(h.ecr_manifest(REPO, "1.0").await.unwrap().digest, index);
    let (_, changes) = h.plan().await;
    assert!(!changes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_in_another_repository_are_mounted_not_uploaded() {
    let h = Harness::start().await;
    h.create_repository("mirror/app-copy");
    h.seed_image("upstream/app", "1.0", 97).await;
    // One after the other, into two repositories of one registry.
    h.config(
        r#"
provider "ecrmirror" {}

resource "ecrmirror_image" "first" {
  docker_source = "{source}/upstream/app:1.0"
  repository    = "mirror/app"
  copy_method   = "registry"
}

resource "ecrmirror_image" "second" {
  docker_source = "{source}/upstream/app:1.0"
  repository    = "mirror/app-copy"
  copy_method   = "registry"
  depends_on    = [ecrmirror_image.first]
}
"#,
    );
    h.clear_logs();
    h.apply().await;
    let requests = h.ecr_requests();
    let mounts = requests
        .iter()
        .filter(|r| r.starts_with("POST /v2/mirror/app-copy/blobs/uploads"))
        .count();
    let copy_uploads: Vec<_> = requests
        .iter()
        .filter(|r| r.starts_with("PATCH /v2/mirror/app-copy/"))
        .collect();
    assert_eq!(mounts, 3, "config and two layers mounted: {requests:?}");
    assert!(copy_uploads.is_empty(), "uploaded again: {copy_uploads:?}");
    assert_eq!(
        h.attr("first", "image_digest").await,
        h.attr("second", "image_digest").await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_that_does_not_match_its_digest_is_never_committed() {
    let h = without_docker().await;
    let seeded = h.seed_image("upstream/app", "1.0", 96).await;
    h.config(&image(APP_BY_REGISTRY));
    // Every blob the source sends has its first byte changed.
    h.source_faults().add(Rule {
        corrupt: true,
        ..Rule::on("registry:GET:/blobs/")
    });
    h.clear_logs();
    let run = h.apply_fails().await;
    // Found by the provider as the bytes passed (not by ECR once it had them all), and
    // blamed on the source.
    run.stderr_has("does not match its digest")
        .stderr_has("the source sent bytes whose digest is")
        .stderr_has("Nothing of this blob was stored in ECR");
    let refused = h
        .world
        .ecr
        .state
        .front()
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/blobs/uploads/") && r.status == 400)
        .count();
    assert_eq!(
        refused, 0,
        "ECR received whole blobs and refused their digests"
    );
    let requests = h.ecr_requests();
    assert!(
        !requests.iter().any(|r| r.contains("/manifests/")),
        "a manifest was pushed: {requests:?}"
    );
    let blobs = std::iter::once(&seeded.config_digest).chain(&seeded.layer_digests);
    for blob in blobs {
        assert!(!h.ecr_has_blob(REPO, blob).await, "{blob} was committed");
    }
    assert!(h.resources().await.is_empty(), "nothing enters the state");

    // Once the source serves the right bytes, the same apply goes through.
    h.source_faults().clear();
    h.apply().await;
    assert!(h.ecr_manifest(REPO, "1.0").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tags_of_one_image_at_once_upload_each_blob_once() {
    let h = without_docker().await;
    let seeded = h.seed_image("upstream/app", "1.0", 97).await;
    h.config(&twelve_tags("registry"));
    h.apply().await;
    for n in 0..12 {
        let served = h.ecr_manifest(REPO, &format!("t{n}")).await;
        assert_eq!(
            served.map(|m| m.digest),
            Some(seeded.manifest_digest.clone())
        );
    }
    let commits: Vec<String> = uploads(&h)
        .into_iter()
        .filter(|r| r.starts_with("PUT ") && r.contains("/blobs/uploads/"))
        .collect();
    assert_eq!(commits.len(), 1 + seeded.layer_digests.len(), "{commits:?}");

    // Refreshing the twelve shares DescribeImages calls (Terraform refreshes ten at a time).
    let describes = |h: &Harness| h.ecr_calls().get("DescribeImages").copied();
    let before = describes(&h).unwrap_or(0);
    let (_, changes) = h.plan().await;
    assert!(!changes);
    let calls = describes(&h).unwrap_or(0) - before;
    assert!(
        (1..12).contains(&calls),
        "{calls} DescribeImages calls for 12 tags"
    );

    // A tag deleted outside: ECR fails a shared call for it, and each tag is asked alone.
    h.delete_ecr_tag(REPO, "t3").await;
    let (run, changes) = h.plan().await;
    assert!(changes);
    run.stdout_has("ecrmirror_image.tags[3] will be created")
        .stdout_has("1 to add, 0 to change, 0 to destroy");
}

/// The same with the Docker engine, which has its own way with one image pushed to many
/// tags at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tags_of_one_image_at_once_through_docker() {
    let h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 98).await;
    h.config(&twelve_tags("docker"));
    h.apply().await;
    let first = h
        .ecr_manifest(REPO, "t0")
        .await
        .expect("t0 mirrored")
        .digest;
    for n in 1..12 {
        let served = h.ecr_manifest(REPO, &format!("t{n}")).await;
        assert_eq!(served.map(|m| m.digest), Some(first.clone()), "t{n}");
    }
    let (_, changes) = h.plan().await;
    assert!(!changes);
}

/// ECR may take longer to answer a blob's upload than the distribution client's read timeout
/// (60 s) when the blob is large and the link slow: the request's own sending counts against
/// that timeout, so the uploads go through a client without one. Here ECR holds the answer
/// to the first upload for 62 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_slower_than_the_read_timeout_completes() {
    let h = without_docker().await;
    let seeded = h.seed_image("upstream/app", "1.0", 99).await;
    h.config(&image(APP_BY_REGISTRY));
    h.ecr_faults().add(Rule {
        count: 1,
        delay_ms: 62_000,
        ..Rule::on("registry:PUT:/blobs/uploads/")
    });
    h.clear_logs();
    h.apply().await;
    assert!(h.ecr_manifest(REPO, "1.0").await.is_some());
    // Each blob was uploaded once: the slow upload was waited for, not abandoned and retried.
    let sessions = uploads(&h)
        .into_iter()
        .filter(|r| r.starts_with("POST ") && r.contains("/blobs/uploads/"))
        .count();
    assert_eq!(sessions, 1 + seeded.layer_digests.len());
    let (_, changes) = h.plan().await;
    assert!(!changes);
}

/// Two resources of one configuration mirroring different sources to one tag, with either
/// method: the plan warns on `tag`, naming the other source, and no mirror records a digest
/// another one pushed: the manifest each records holds its own source's image. (ECR answers
/// the first tag lookup late, so the other push lands while the first mirror confirms its
/// own.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_mirrors_of_one_tag_are_warned_about_and_never_record_each_others_digest() {
    for method in ["registry", "docker"] {
        two_mirrors_of_one_tag(method).await;
    }
}

async fn two_mirrors_of_one_tag(method: &str) {
    let h = Harness::start().await;
    let one = h.seed_image("upstream/app", "1.0", 88).await;
    let two = h.seed_image("upstream/app", "2.0", 89).await;
    h.config(&format!(
        r#"
provider "ecrmirror" {{}}

resource "ecrmirror_image" "one" {{
  docker_source = "{{source}}/upstream/app:1.0"
  repository    = "mirror/app"
  tag           = "shared"
  copy_method   = "{method}"
}}

resource "ecrmirror_image" "two" {{
  docker_source = "{{source}}/upstream/app:2.0"
  repository    = "mirror/app"
  tag           = "shared"
  copy_method   = "{method}"
}}
"#
    ));
    let (run, _) = h.plan().await;
    let out = run.output();
    let words = out.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("Warning: Another mirror targets mirror/app:shared"),
        "{method}: {out}"
    );
    assert!(words.contains("mirrors `"), "{out}");
    assert!(words.contains("its own `tag`"), "{out}");

    h.ecr_faults().add(Rule {
        count: 1,
        delay_ms: 2_000,
        ..Rule::on("DescribeImages")
    });
    let run = h
        .terraform(&["apply", "-auto-approve", "-input=false", "-no-color"])
        .await;
    assert!(h.ecr_tag(REPO, "shared").is_some());
    // Whatever the order, the manifest a mirror in state records holds its own source's
    // image (the same image config).
    for resource in h.resources().await {
        let values = &resource["values"];
        let own = match values["docker_source"].as_str() {
            Some(source) if source.ends_with(":1.0") => &one,
            _ => &two,
        };
        let recorded = values["image_digest"].as_str().unwrap_or_default();
        let manifest = h.ecr_manifest(REPO, recorded).await;
        assert_eq!(
            manifest.and_then(|m| m.config_digest()),
            Some(own.config_digest.clone()),
            "{method}: {} recorded another mirror's digest:\n{}",
            resource["address"],
            run.output()
        );
    }
    if !run.success {
        run.stderr_has("Another push took")
            .stderr_has("its own `tag`");
    }
}
