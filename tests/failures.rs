//! Bad input and runtime failures: each is a diagnostic that says what failed and what to
//! do, nothing is pulled or pushed for invalid input, and state is never lost or corrupted.

mod support;

use standin::faults::Rule;
use support::{image, Harness};

const REPO: &str = "mirror/app";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_arguments_fail_at_plan_on_the_attribute() {
    let h = Harness::start().await;
    h.use_config("invalid");
    let run = h.terraform(&["plan", "-input=false", "-no-color"]).await;
    assert!(!run.success);
    let out = run.stderr;
    for (resource, expected) in [
        ("bad_source", "Invalid docker_source"),
        ("bad_repository", "Invalid repository"),
        ("bad_tag", "Invalid tag"),
        ("bad_platform", "Invalid platform"),
        ("digest_without_tag", "pinned by digest only"),
        ("null_source", "cannot be null"),
        ("bad_timeout", "is not a duration"),
        ("uppercase_digest_docker", "lowercase `a`-`f`"),
        ("uppercase_digest_registry", "lowercase `a`-`f`"),
    ] {
        let block = out
            .split("Error: ")
            .find(|d| d.contains(&format!("ecrmirror_image.{resource}")))
            .unwrap_or_else(|| panic!("no diagnostic for {resource}:\n{out}"));
        assert!(block.contains(expected), "{resource}: {block}");
    }
    // The diagnostics point at the attribute's line in the configuration.
    assert!(
        out.contains(r#"docker_source = "Not A Reference""#),
        "{out}"
    );
    assert!(out.contains(r#"repository    = "Mirror/App""#), "{out}");
    assert!(out.contains(r#"create = "soon""#), "{out}");
    // Nothing was pulled or pushed, and ECR was not even asked.
    assert!(h.source_requests().is_empty());
    assert!(h.ecr_requests().is_empty());
    assert!(h.ecr_calls().is_empty(), "{:?}", h.ecr_calls());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_unknown_at_plan_are_accepted() {
    let h = Harness::start().await;
    h.use_config("unknown");
    let (run, changes) = h.plan().await;
    assert!(changes);
    run.stdout_has("docker_source    = (known after apply)");
    run.stdout_has("tag              = (known after apply)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_repository_is_named_and_nothing_is_pulled() {
    let h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 41).await;
    h.clear_logs();
    h.config(&image(
        r#"
  docker_source = "{source}/upstream/app:1.0"
  repository    = "never/created"
"#,
    ));
    let run = h.apply_fails().await;
    run.stderr_has("ECR repository never/created does not exist");
    run.stderr_has("aws_ecr_repository");
    assert!(h.resources().await.is_empty());
    assert!(
        h.source_requests().is_empty(),
        "the source was contacted: {:?}",
        h.source_requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_docker_engine_is_a_clear_error() {
    let h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 42).await;
    // A socket with no engine behind it, as a stopped engine leaves it.
    let socket = h.work().join("docker.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    h.config(&format!(
        r#"
provider "ecrmirror" {{
  docker_host = "unix://{socket}"
}}

resource "ecrmirror_image" "test" {{
  docker_source = "{{source}}/upstream/app:1.0"
  repository    = "mirror/app"
}}
"#,
        socket = socket.display()
    ));
    let run = h.apply_fails().await;
    run.stderr_has("Cannot reach the Docker engine at unix://");
    run.stderr_has("Start the Docker engine");
    // Why, in the system's words, not the HTTP client's wrapping.
    run.stderr_has("Connection refused");
    assert!(!run.stderr.contains("hyper"), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert!(h.resources().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_ecr_password_is_a_clear_error_and_keeps_state() {
    wrong_ecr_password("docker", 43).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_ecr_password_is_a_clear_error_and_keeps_state_registry_method() {
    wrong_ecr_password("registry", 45).await;
}

async fn wrong_ecr_password(method: &str, seed: u64) {
    let h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", seed).await;
    h.seed_image("upstream/app", "2.0", seed + 100).await;
    let of_version = |version: &str| {
        image(&format!(
            r#"
  docker_source = "{{source}}/upstream/app:{version}"
  repository    = "mirror/app"
  tag           = "stable"
  copy_method   = "{method}"
"#
        ))
    };
    h.config(&of_version("1.0"));
    h.apply().await;
    let digest = h.attr("test", "image_digest").await;

    // From now on the registry refuses every token: the update fails and the state still
    // holds the mirror that exists.
    h.set_bad_tokens(true);
    h.config(&of_version("2.0"));
    let run = h.apply_fails().await;
    run.stderr_has("ECR refused the push credentials");
    assert_eq!(h.attr("test", "image_digest").await, digest);
    assert!(h
        .attr("test", "docker_source")
        .await
        .ends_with("upstream/app:1.0"));

    // Once the registry accepts tokens again, the same apply converges.
    h.set_bad_tokens(false);
    h.apply().await;
    let (_, changes) = h.plan().await;
    assert!(!changes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_not_found_points_at_docker_source() {
    let h = Harness::start().await;
    h.config(&image(
        r#"
  docker_source = "{source}/upstream/missing:1.0"
  repository    = "mirror/app"
"#,
    ));
    let run = h.apply_fails().await;
    run.stderr_has("was not found");
    run.stderr_has("docker_source =");
    assert!(h.resources().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_read_keeps_the_resource() {
    let h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 45).await;
    h.config(&image(
        r#"
  docker_source = "{source}/upstream/app:1.0"
  repository    = "mirror/app"
"#,
    ));
    h.apply().await;

    // A network blip (ECR failing every call) must never drop the resource from state.
    let mut blip = Rule::on("DescribeImages");
    blip.status = Some(500);
    blip.error_type = Some("ServerException".into());
    h.ecr_faults().add(blip);
    let run = h
        .terraform(&["apply", "-refresh-only", "-auto-approve", "-no-color"])
        .await;
    assert!(!run.success);
    run.stderr_has("ECR DescribeImages failed");
    assert_eq!(h.resources().await.len(), 1);

    h.ecr_faults().clear();
    let (_, changes) = h.plan().await;
    assert!(!changes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_destroy_keeps_the_resource() {
    let h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 46).await;
    h.config(&image(
        r#"
  docker_source = "{source}/upstream/app:1.0"
  repository    = "mirror/app"
"#,
    ));
    h.apply().await;

    let mut denied = Rule::on("BatchDeleteImage");
    denied.status = Some(400);
    denied.error_type = Some("AccessDeniedException".into());
    denied.message = Some("not allowed to ecr:BatchDeleteImage".into());
    h.ecr_faults().add(denied);
    let run = h
        .terraform(&["destroy", "-auto-approve", "-no-color"])
        .await;
    assert!(!run.success);
    run.stderr_has("ECR BatchDeleteImage failed");
    assert_eq!(h.resources().await.len(), 1);
    assert!(h.ecr_tag(REPO, "1.0").is_some());

    h.ecr_faults().clear();
    h.destroy().await;
    assert!(h.ecr_tag(REPO, "1.0").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_timeout_fires_and_names_the_limit() {
    let h = Harness::start().await;
    let engine = support::engine_images(&h).await;
    h.seed_image("upstream/app", "1.0", 47).await;
    // Every upload to ECR hangs far longer than the limit.
    let mut slow = Rule::on("registry:POST");
    slow.delay_ms = 60_000;
    h.ecr_faults().add(slow);
    h.config(&image(
        r#"
  docker_source = "{source}/upstream/app:1.0"
  repository    = "mirror/app"

  timeouts {
    create = "3s"
  }
"#,
    ));
    let started = std::time::Instant::now();
    let run = h.apply_fails().await;
    run.stderr_has("Mirroring did not finish within the create timeout of 3s");
    assert!(started.elapsed() < std::time::Duration::from_secs(50));
    assert!(h.resources().await.is_empty());
    // The cut-short copy still cleaned the engine up: nothing of it is left there.
    support::assert_engine_left_nothing(&h, &engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_source_says_so() {
    let h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 50).await;
    let mut limited = Rule::on("registry:GET");
    limited.status = Some(429);
    limited.message = Some("You have reached your pull rate limit.".into());
    limited.retry_after = Some(3600);
    h.source_faults().add(limited.clone());
    h.source_faults().add(Rule {
        target: "registry:HEAD".into(),
        ..limited
    });
    h.config(&image(
        r#"
  docker_source = "{source}/upstream/app:1.0"
  repository    = "mirror/app"
"#,
    ));
    let run = h.apply_fails().await;
    run.stderr_has("rate-limited the pull");
    run.stderr_has("registry_auth");
    assert!(h.resources().await.is_empty());
}

/// An ECR API error reads as its operation, code and message, then what to do: no SDK
/// `Debug` output (bodies, headers, extensions) in the diagnostic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_error_reads_as_code_message_and_hint() {
    let h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 48).await;
    let mut refused = Rule::on("DescribeRepositories");
    refused.status = Some(400);
    refused.error_type = Some("UnrecognizedClientException".into());
    refused.message = Some("The security token included in the request is invalid.".into());
    h.ecr_faults().add(refused);
    h.config(&image(
        r#"
  docker_source = "{source}/upstream/app:1.0"
  repository    = "mirror/app"
"#,
    ));
    let run = h.apply_fails().await;
    run.stderr_has("ECR DescribeRepositories failed");
    run.stderr_has("ECR answered UnrecognizedClientException: The security token included in the request is invalid.");
    run.stderr_has("aws sts get-caller-identity --profile <name>");
    for noise in ["SdkBody", "headers", "extensions", "ServiceError {"] {
        assert!(!run.stderr.contains(noise), "{noise}:\n{}", run.stderr);
    }
    let lines = run.stderr.lines().filter(|l| !l.trim().is_empty()).count();
    assert!(lines <= 12, "a long diagnostic:\n{}", run.stderr);
}

/// `registry_auth` blocks with a null where a value is required, and two blocks for one
/// registry: each is a plan error on `registry_auth` (no empty username sent, no silent
/// choice between two passwords), and nothing is contacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_auth_nulls_and_duplicates_fail_at_plan() {
    let h = Harness::start().await;
    plan_fails_with(
        &h,
        r#"
variable "nothing" {
  type    = string
  default = null
}

provider "ecrmirror" {
  registry_auth {
    address  = "ghcr.io"
    username = var.nothing
    password = "p"
  }
}
"#,
        [
            "Invalid registry_auth username",
            "`username` of registry_auth block 0 is required and cannot be null",
        ],
    )
    .await;
    plan_fails_with(
        &h,
        r#"
provider "ecrmirror" {
  registry_auth {
    address  = "ghcr.io"
    username = "u"
    password = "p"
  }
  registry_auth {
    address  = "https://ghcr.io/"
    username = "u"
    password = "p"
  }
}
"#,
        [
            "Duplicate registry_auth address",
            "registry_auth blocks 0 and 1 both name the registry `ghcr.io`",
        ],
    )
    .await;
    assert!(h.source_requests().is_empty());
    assert!(h.ecr_calls().is_empty(), "{:?}", h.ecr_calls());
}

/// Plans `provider` with one mirror; the plan must fail and say each of `expected`.
async fn plan_fails_with(h: &Harness, provider: &str, expected: [&str; 2]) {
    h.config(&format!(
        r#"{provider}
resource "ecrmirror_image" "test" {{
  docker_source = "{{source}}/upstream/app:1.0"
  repository    = "mirror/app"
}}
"#
    ));
    let run = h.terraform(&["plan", "-input=false", "-no-color"]).await;
    assert!(!run.success);
    for text in expected {
        assert!(run.stderr.contains(text), "{}", run.stderr);
    }
}
