//! Bad input and runtime failures: each is a diagnostic that says what failed and what to
//! do, nothing is pulled or pushed for invalid input, and state is never lost or corrupted.

mod support;

use standin::faults::Rule;
use support::Harness;

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
    // Nothing was pulled or pushed, and ECR was not even asked.
    assert!(h.world.source.log.lock().unwrap().is_empty());
    assert!(h.world.ecr.state.front().log.lock().unwrap().is_empty());
    assert!(
        h.world.ecr.state.calls().is_empty(),
        "{:?}",
        h.world.ecr.state.calls()
    );
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
    let mut h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 41).await;
    h.world.source.log.lock().unwrap().clear();
    h.use_config("basic");
    h.var("source_image", Some(&h.source_ref("upstream/app:1.0")));
    h.var("repository", Some("never/created"));
    let run = h.apply_fails().await;
    run.stderr_has("ECR repository never/created does not exist");
    run.stderr_has("aws_ecr_repository");
    assert!(h.resources().await.is_empty());
    assert!(
        h.world.source.log.lock().unwrap().is_empty(),
        "the source was contacted: {:?}",
        h.world.source.log.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_docker_engine_is_a_clear_error() {
    let mut h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 42).await;
    // A socket with no engine behind it, as a stopped engine leaves it.
    let socket = h.work().join("docker.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    h.use_config("basic");
    h.var("source_image", Some(&h.source_ref("upstream/app:1.0")));
    h.var("docker_host", Some(&format!("unix://{}", socket.display())));
    let run = h.apply_fails().await;
    run.stderr_has("Cannot reach the Docker engine at unix://");
    run.stderr_has("Start the Docker engine");
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
    let mut h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", seed).await;
    h.seed_image("upstream/app", "2.0", seed + 100).await;
    h.use_config("basic");
    h.var("copy_method", Some(method));
    h.var("tag", Some("stable"));
    h.var("source_image", Some(&h.source_ref("upstream/app:1.0")));
    h.apply().await;
    let digest = h.attr("test", "image_digest").await;

    // From now on the registry refuses every token: the update fails and the state still
    // holds the mirror that exists.
    h.world.ecr.state.set_bad_tokens(true);
    h.var("source_image", Some(&h.source_ref("upstream/app:2.0")));
    let run = h.apply_fails().await;
    run.stderr_has("ECR refused the push credentials");
    assert_eq!(h.attr("test", "image_digest").await, digest);
    assert!(h
        .attr("test", "docker_source")
        .await
        .ends_with("upstream/app:1.0"));

    // Once the registry accepts tokens again, the same apply converges.
    h.world.ecr.state.set_bad_tokens(false);
    h.apply().await;
    let (_, changes) = h.plan().await;
    assert!(!changes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_not_found_points_at_docker_source() {
    let mut h = Harness::start().await;
    h.use_config("basic");
    h.var("source_image", Some(&h.source_ref("upstream/missing:1.0")));
    let run = h.apply_fails().await;
    run.stderr_has("was not found");
    run.stderr_has("docker_source =");
    assert!(h.resources().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_read_keeps_the_resource() {
    let mut h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 45).await;
    h.use_config("basic");
    h.var("source_image", Some(&h.source_ref("upstream/app:1.0")));
    h.apply().await;

    // A network blip (ECR failing every call) must never drop the resource from state.
    let mut blip = Rule::on("DescribeImages");
    blip.status = Some(500);
    blip.error_type = Some("ServerException".into());
    h.world.ecr.state.front().faults.add(blip);
    let run = h
        .terraform(&["apply", "-refresh-only", "-auto-approve", "-no-color"])
        .await;
    assert!(!run.success);
    run.stderr_has("ECR DescribeImages failed");
    assert_eq!(h.resources().await.len(), 1);

    h.world.ecr.state.front().faults.clear();
    let (_, changes) = h.plan().await;
    assert!(!changes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_destroy_keeps_the_resource() {
    let mut h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 46).await;
    h.use_config("basic");
    h.var("source_image", Some(&h.source_ref("upstream/app:1.0")));
    h.apply().await;

    let mut denied = Rule::on("BatchDeleteImage");
    denied.status = Some(400);
    denied.error_type = Some("AccessDeniedException".into());
    denied.message = Some("not allowed to ecr:BatchDeleteImage".into());
    h.world.ecr.state.front().faults.add(denied);
    let run = h
        .terraform(&["destroy", "-auto-approve", "-no-color"])
        .await;
    assert!(!run.success);
    run.stderr_has("ECR BatchDeleteImage failed");
    assert_eq!(h.resources().await.len(), 1);
    assert!(h.world.ecr.state.tag_digest(REPO, "1.0").is_some());

    h.world.ecr.state.front().faults.clear();
    h.destroy().await;
    assert!(h.world.ecr.state.tag_digest(REPO, "1.0").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_timeout_fires_and_names_the_limit() {
    let mut h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 47).await;
    // Every upload to ECR hangs far longer than the limit.
    let mut slow = Rule::on("registry:POST");
    slow.delay_ms = 60_000;
    h.world.ecr.state.front().faults.add(slow);
    h.use_config("basic");
    h.var("source_image", Some(&h.source_ref("upstream/app:1.0")));
    h.var("create_timeout", Some("3s"));
    let started = std::time::Instant::now();
    let run = h.apply_fails().await;
    run.stderr_has("Mirroring did not finish within the create timeout of 3s");
    assert!(started.elapsed() < std::time::Duration::from_secs(50));
    assert!(h.resources().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_source_says_so() {
    let mut h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 50).await;
    let mut limited = Rule::on("registry:GET");
    limited.status = Some(429);
    limited.message = Some("You have reached your pull rate limit.".into());
    limited.retry_after = Some(3600);
    h.world.source.faults.add(limited.clone());
    h.world.source.faults.add(Rule {
        target: "registry:HEAD".into(),
        ..limited
    });
    h.use_config("basic");
    h.var("source_image", Some(&h.source_ref("upstream/app:1.0")));
    let run = h.apply_fails().await;
    run.stderr_has("rate-limited the pull");
    run.stderr_has("registry_auth");
    assert!(h.resources().await.is_empty());
}
