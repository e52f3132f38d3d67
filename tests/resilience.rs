//! What a mirror survives: ECR tokens that expire mid-copy, throttling, a provider killed
//! mid-apply, with either copy method.

mod support;

use std::time::Duration;

use standin::faults::Rule;
use support::{image, Harness};

const REPO: &str = "mirror/app";

/// `{source}/upstream/app:1.0` into `mirror/app:<tag>` by `method`.
fn app_by(method: &str, tag: &str) -> String {
    image(&format!(
        r#"
  docker_source = "{{source}}/upstream/app:1.0"
  repository    = "mirror/app"
  tag           = "{tag}"
  copy_method   = "{method}"
"#
    ))
}

fn token_requests(h: &Harness) -> u64 {
    h.ecr_calls()
        .get("GetAuthorizationToken")
        .copied()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ecr_token_expiring_mid_copy_is_renewed_once_registry() {
    a_token_expiring_mid_copy_is_renewed_once("registry").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ecr_token_expiring_mid_copy_is_renewed_once_docker() {
    a_token_expiring_mid_copy_is_renewed_once("docker").await;
}

/// The token expires after a few of the copy's registry requests: the mirror asks
/// GetAuthorizationToken once more and completes; the state records what ECR serves. A
/// token refused from the start is asked for once more, not again and again.
async fn a_token_expiring_mid_copy_is_renewed_once(method: &str) {
    let h = Harness::start().await;
    let seeded = h.seed_image("upstream/app", "1.0", 131).await;
    h.config(&app_by(method, "1.0"));
    h.expire_ecr_tokens_after(4);
    h.apply().await;
    assert_eq!(h.ecr_token_expirations(), 1, "the token expired mid-copy");
    assert_eq!(token_requests(&h), 2, "one renewal: {:?}", h.ecr_calls());
    let served = h
        .ecr_manifest(REPO, "1.0")
        .await
        .expect("ECR holds the tag");
    assert_eq!(h.attr("test", "image_digest").await, served.digest);
    if method == "registry" {
        assert_eq!(served.digest, seeded.manifest_digest);
    }
    let (_, changes) = h.plan().await;
    assert!(!changes, "the renewed mirror is settled");
    // The source is anonymous: ECR's passwords, the first and the renewed, went nowhere but
    // ECR's registry.
    let source = h.world.source.log.lock().unwrap().clone();
    assert!(
        !source.is_empty() && source.iter().all(|r| !r.authorized),
        "{source:?}"
    );

    // Every token refused: one renewal, then the refusal is reported, on the mirror.
    // A plan asks once, to learn which registry ECR is today (a mirror may have moved); the
    // apply that follows runs in a provider of its own.
    h.set_bad_tokens(true);
    h.config(&app_by(method, "other"));
    let before = token_requests(&h);
    h.plan().await;
    let plan = token_requests(&h) - before;
    assert_eq!(plan, 1, "a plan asks once: {:?}", h.ecr_calls());
    let before = token_requests(&h);
    h.apply_fails()
        .await
        .stderr_has("ecrmirror_image.test")
        .stderr_has("ecr:GetAuthorizationToken");
    assert_eq!(
        token_requests(&h) - before,
        plan + 2,
        "the plan's one, then asked once and renewed once"
    );
}

/// Two mirrors; the provider is killed (SIGKILL) once one is in ECR but not yet confirmed
/// (ECR's DescribeImages hangs) and the other's manifest push is under way (after its
/// blobs). Terraform reports the crash; the state claims nothing ECR lacks; the next apply
/// adopts the finished mirror without a transfer and, of the other, pushes only the
/// manifest ECR lacks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_killed_mid_apply_loses_nothing_and_the_next_apply_finishes() {
    let h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 132).await;
    h.seed_image("upstream/other", "1.0", 133).await;
    h.config(
        r#"
provider "ecrmirror" {}

resource "ecrmirror_image" "done" {
  docker_source = "{source}/upstream/app:1.0"
  repository    = "mirror/app"
  tag           = "done"
  copy_method   = "registry"
}

resource "ecrmirror_image" "hung" {
  docker_source = "{source}/upstream/other:1.0"
  repository    = "mirror/app"
  tag           = "hung"
  copy_method   = "registry"
}
"#,
    );
    for target in ["DescribeImages", "registry:PUT:/manifests/hung"] {
        h.ecr_faults().add(Rule {
            delay_ms: 120_000,
            ..Rule::on(target)
        });
    }

    let child = h.spawn_terraform(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    let pgid = child.id().expect("terraform runs");
    let under_way = || {
        h.ecr_tag(REPO, "done").is_some()
            && h.ecr_faults().fired("DescribeImages") > 0
            && h.ecr_faults().fired("registry:PUT:/manifests/hung") > 0
    };
    for _ in 0..600 {
        if under_way() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        under_way(),
        "the apply never got there: {:?}",
        h.ecr_requests()
    );
    let provider = tokio::process::Command::new("pgrep")
        .args([
            "-g",
            &pgid.to_string(),
            "-f",
            "terraform-provider-ecrmirror",
        ])
        .output()
        .await
        .unwrap();
    let pid = String::from_utf8_lossy(&provider.stdout).trim().to_string();
    assert!(
        !pid.is_empty() && !pid.contains('\n'),
        "provider pid: {pid:?}"
    );
    support::kill("KILL", &pid).await;
    let output = child.wait_with_output().await.unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{said}");
    assert!(
        said.contains("Plugin did not respond"),
        "Terraform reports the crash: {said}"
    );

    // Whatever the state holds, ECR holds with that digest.
    for resource in h.resources().await {
        let values = &resource["values"];
        let tag = values["tag"].as_str().unwrap();
        assert_eq!(
            h.ecr_tag(REPO, tag).as_deref(),
            values["image_digest"].as_str(),
            "state claims what ECR lacks: {resource}"
        );
    }

    h.ecr_faults().clear();
    h.clear_logs();
    h.apply().await;
    let pushed: Vec<String> = h
        .ecr_requests()
        .into_iter()
        .filter(|r| r.starts_with("POST ") || r.starts_with("PATCH ") || r.starts_with("PUT "))
        .collect();
    assert_eq!(
        pushed,
        vec!["PUT /v2/mirror/app/manifests/hung".to_string()],
        "the finished mirror is adopted; of the other only its manifest is pushed"
    );
    for name in ["done", "hung"] {
        assert_eq!(
            Some(h.attr(name, "image_digest").await),
            h.ecr_tag(REPO, name),
            "{name}"
        );
    }
    let (_, changes) = h.plan().await;
    assert!(!changes);
}

/// A burst of ThrottlingExceptions from ECR's API (more than the SDK's default three tries
/// outlast) is ridden out by the provider's retry settings; a user's AWS_MAX_ATTEMPTS is
/// kept, and the throttling then reported as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_ecr_api_throttling_is_ridden_out() {
    let mut h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 134).await;
    h.config(&app_by("registry", "1.0"));
    let burst = |count| Rule {
        count,
        status: Some(400),
        error_type: Some("ThrottlingException".into()),
        message: Some("Rate exceeded".into()),
        ..Rule::on("DescribeImages")
    };
    h.ecr_faults().add(burst(4));
    h.apply().await;
    assert_eq!(h.ecr_faults().fired("DescribeImages"), 4);
    assert_eq!(
        Some(h.attr("test", "image_digest").await),
        h.ecr_tag(REPO, "1.0")
    );

    h.set_env("AWS_MAX_ATTEMPTS", "2");
    h.config(&app_by("registry", "other"));
    h.ecr_faults().add(burst(4));
    h.apply_fails()
        .await
        .stderr_has("ThrottlingException")
        .stderr_has("ecrmirror_image.test");
    assert_eq!(h.ecr_faults().fired("DescribeImages"), 4 + 2, "two tries");
}

/// A source blob answered `429` with `Retry-After: 3` is asked for again no sooner than
/// three seconds later (without it, the first retry comes within a second).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_from_the_source_is_honoured() {
    let h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 137).await;
    h.config(&app_by("registry", "1.0"));
    h.source_faults().add(Rule {
        count: 1,
        status: Some(429),
        retry_after: Some(3),
        ..Rule::on("registry:GET:/blobs/")
    });
    h.clear_logs();
    h.apply().await;
    let log = h.world.source.log.lock().unwrap().clone();
    let throttled = log
        .iter()
        .find(|r| r.status == 429)
        .expect("a blob was throttled");
    let again = log
        .iter()
        .find(|r| r.path == throttled.path && r.status == 200)
        .expect("the throttled blob was asked for again");
    assert!(
        again.at_ms - throttled.at_ms >= 2_900,
        "asked again after {} ms",
        again.at_ms - throttled.at_ms
    );
    assert_eq!(
        Some(h.attr("test", "image_digest").await),
        h.ecr_tag(REPO, "1.0")
    );
}

/// A `Retry-After` longer than what is left of the `timeouts` limit is not waited out: the
/// limit stops the mirror, and its diagnostic says what it was waiting for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeout_bounds_a_retry_after_and_says_what_was_awaited() {
    let h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 143).await;
    h.config(&image(
        r#"
  docker_source = "{source}/upstream/app:1.0"
  repository    = "mirror/app"
  copy_method   = "registry"

  timeouts {
    create = "4s"
  }
"#,
    ));
    h.source_faults().add(Rule {
        status: Some(429),
        retry_after: Some(45),
        ..Rule::on("registry:GET:/blobs/")
    });
    let started = std::time::Instant::now();
    let run = h.apply_fails().await;
    let took = started.elapsed();
    run.stderr_has("Mirroring did not finish within the create timeout of 4s")
        .stderr_has("Its last retry: a blob (sha256:")
        .stderr_has("try 2, 45s after")
        .stderr_has("rate-limited the pull")
        .stderr_has("Raise `create`");
    assert!(took < Duration::from_secs(40), "the apply took {took:?}");
    assert!(h.resources().await.is_empty());
    assert_eq!(h.ecr_tag(REPO, "1.0"), None);
}

/// The first request that `log` shows throttled at `path` (a part of it) with `method`, and
/// how long after it the request that `again` picks came: the registry's `Retry-After: 2`
/// must have been waited for.
fn waited_after_throttling(
    log: &[standin::front::Logged],
    method: &str,
    path: &str,
    again: impl Fn(&standin::front::Logged, &standin::front::Logged) -> bool,
) -> u64 {
    let throttled = log
        .iter()
        .find(|r| r.method == method && r.path.contains(path) && r.status == 429)
        .unwrap_or_else(|| panic!("no {method} …{path}… was throttled: {log:#?}"));
    let next = log
        .iter()
        .filter(|r| r.at_ms >= throttled.at_ms && !std::ptr::eq(*r, throttled))
        .find(|r| again(throttled, r))
        .unwrap_or_else(|| panic!("{method} {} was not tried again", throttled.path));
    next.at_ms - throttled.at_ms
}

/// `Retry-After` is honoured on every kind of registry request of a registry copy, not only
/// on blob downloads: the source's manifest, and ECR's blob `HEAD`, upload `PUT` and
/// manifest `PUT` (each throttled once with `Retry-After: 2`) are each asked again only
/// after 2 s; a jittered backoff alone would come back within 1 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_on_manifests_and_every_ecr_request() {
    let h = Harness::start().await;
    let seeded = h.seed_image("upstream/app", "1.0", 139).await;
    h.config(&app_by("registry", "1.0"));
    let throttle = |target: &str| Rule {
        count: 1,
        status: Some(429),
        retry_after: Some(2),
        ..Rule::on(target)
    };
    // The source's tag is asked with a HEAD, its manifest with a GET by digest.
    h.source_faults()
        .add(throttle("registry:GET:/manifests/sha256:"));
    for target in [
        "registry:HEAD:/blobs/sha256:",
        "registry:PUT:/blobs/uploads/",
        "registry:PUT:/manifests/",
    ] {
        h.ecr_faults().add(throttle(target));
    }
    h.clear_logs();
    h.apply().await;
    let same = |a: &standin::front::Logged, b: &standin::front::Logged| {
        a.method == b.method && a.path == b.path
    };
    let source = h.world.source.log.lock().unwrap().clone();
    let ecr = h.world.ecr.state.front().log.lock().unwrap().clone();
    let waits = [
        (
            "source GET manifest",
            waited_after_throttling(&source, "GET", "/manifests/sha256:", same),
        ),
        (
            "ECR HEAD blob",
            waited_after_throttling(&ecr, "HEAD", "/blobs/sha256:", same),
        ),
        // The upload is begun anew (a new session): its blob is looked up again first.
        (
            "ECR PUT upload",
            waited_after_throttling(&ecr, "PUT", "/blobs/uploads/", |put, r| {
                let query = put.query.as_deref().unwrap_or_default();
                let digest = query.split('&').find_map(|p| p.strip_prefix("digest="));
                r.method == "HEAD" && digest.is_some_and(|d| r.path.ends_with(d))
            }),
        ),
        (
            "ECR PUT manifest",
            waited_after_throttling(&ecr, "PUT", "/manifests/", same),
        ),
    ];
    for (what, waited) in waits {
        assert!(waited >= 1_900, "{what} asked again after {waited} ms");
    }
    assert_eq!(h.ecr_tag(REPO, "1.0"), Some(seeded.manifest_digest));
    assert_eq!(
        Some(h.attr("test", "image_digest").await),
        h.ecr_tag(REPO, "1.0")
    );
}

/// The source's connection breaks off halfway through a blob (a reset, a truncated body):
/// that blob is asked for again and the copy completes; what ECR committed matches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_cut_short_mid_body_is_asked_for_again() {
    let h = Harness::start().await;
    let seeded = h.seed_image("upstream/app", "1.0", 138).await;
    h.config(&app_by("registry", "1.0"));
    h.source_faults().add(Rule {
        count: 1,
        truncate: true,
        ..Rule::on("registry:GET:/blobs/")
    });
    h.clear_logs();
    h.apply().await;
    assert_eq!(h.source_faults().fired("registry:GET:/blobs/"), 1);
    let gets = h
        .source_requests()
        .into_iter()
        .filter(|r| r.starts_with("GET ") && r.contains("/blobs/"))
        .count();
    assert_eq!(gets, 1 + seeded.layer_digests.len() + 1, "one blob twice");
    assert_eq!(h.ecr_tag(REPO, "1.0"), Some(seeded.manifest_digest));
    for blob in std::iter::once(&seeded.config_digest).chain(&seeded.layer_digests) {
        assert!(h.ecr_has_blob(REPO, blob).await, "{blob}");
    }
}
