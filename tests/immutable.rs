//! ECR repositories with immutable tags (`imageTagMutability`), which the emulator enforces
//! as ECR does: no push to an existing immutable tag, even of the manifest it names. An
//! identical image is adopted without a push; a re-mirror that would overwrite the tag is a
//! plan warning on `tag` and an apply error before any transfer, with the state unchanged;
//! exclusion filters are honoured; destroy untags.

mod support;

use support::{image, Harness};

const REPO: &str = "mirror/app";

/// Requests that wrote to ECR's registry.
fn ecr_writes(h: &Harness) -> Vec<String> {
    h.ecr_requests()
        .into_iter()
        .filter(|r| !r.starts_with("GET ") && !r.starts_with("HEAD "))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_refuses_to_overwrite_an_immutable_tag_as_ecr_does() {
    let h = Harness::start().await;
    h.set_tag_mutability(REPO, "IMMUTABLE", &[]);
    let ecr = h.world.ecr_client();
    let spec = standin::images::Spec::small(81);
    standin::images::push_image(&ecr, REPO, Some("1.0"), &spec)
        .await
        .expect("a new tag is pushed");
    let again = standin::images::push_image(&ecr, REPO, Some("1.0"), &spec).await;
    let error = format!("{:#}", again.expect_err("the same image again is refused"));
    assert!(
        error.contains("cannot be overwritten because the repository is immutable"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identical_image_is_adopted_into_an_immutable_tag_by_both_methods() {
    let h = Harness::start().await;
    h.seed_index("upstream/app", "1.0", 82).await;
    for method in ["registry", "docker"] {
        // The mirror by `method` into the tag named after it, with `extra` arguments.
        let mirror = |extra: &str| {
            image(&format!(
                r#"
  docker_source = "{{source}}/upstream/app:1.0"
  repository    = "{REPO}"
  tag           = "{method}"
  copy_method   = "{method}"
{extra}"#
            ))
        };
        h.config(&mirror(""));
        h.set_tag_mutability(REPO, "MUTABLE", &[]);
        h.apply().await;
        let digest = h.attr("test", "image_digest").await;
        h.forget("test").await;

        // The state is lost; the repository has become immutable. The next apply finds the
        // same image under the tag and records it without a push.
        h.set_tag_mutability(REPO, "IMMUTABLE", &[]);
        h.clear_logs();
        h.apply().await;
        assert_eq!(ecr_writes(&h), Vec::<String>::new(), "{method}");
        assert_eq!(h.attr("test", "image_digest").await, digest);
        let (_, changes) = h.plan().await;
        assert!(!changes, "{method}: the plan after adoption is not empty");

        // New triggers ask for a copy; into an immutable tag that holds the source's image,
        // the copy would make the same, so it is recorded as it is.
        h.config(&mirror("  triggers = { build = \"2\" }\n"));
        h.clear_logs();
        h.apply().await;
        assert_eq!(ecr_writes(&h), Vec::<String>::new(), "{method}");
        assert_eq!(h.attr("test", "image_digest").await, digest);

        // Destroy untags, as ECR allows in an immutable repository.
        h.destroy().await;
        assert_eq!(h.ecr_tag(REPO, method), None, "{method}");
    }
}

/// `track_source` with a source that moves upstream, into `REPO:1.0`.
const TRACKED: &str = r#"
  docker_source = "{source}/upstream/app:1.0"
  repository    = "mirror/app"
  copy_method   = "registry"
  track_source  = true
"#;

/// The instance's record of its mirror in a state file: its image digests and private data.
fn recorded(state: &str) -> Vec<serde_json::Value> {
    let state: serde_json::Value = serde_json::from_str(state).unwrap();
    let instance = &state["resources"][0]["instances"][0];
    vec![
        instance["attributes"]["image_digest"].clone(),
        instance["attributes"]["image_uri_digest"].clone(),
        instance["private"].clone(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_source_into_an_immutable_tag_warns_at_plan_and_fails_before_any_transfer() {
    let h = Harness::start().await;
    h.set_tag_mutability(REPO, "IMMUTABLE", &[]);
    h.seed_image("upstream/app", "1.0", 83).await;
    h.config(&image(TRACKED));
    h.apply().await;
    let digest = h.attr("test", "image_digest").await;
    let state = h.state_file();
    let (_, changes) = h.plan().await;
    assert!(!changes);

    let moved = h.seed_image("upstream/app", "1.0", 84).await;
    let (run, changes) = h.plan().await;
    assert!(changes);
    run.stdout_has("Warning: This plan mirrors again into the immutable ECR tag mirror/app:1.0")
        .stdout_has("the apply fails before transferring anything")
        .stdout_has("Mirror to a new tag");

    h.clear_logs();
    let run = h.apply_fails().await;
    run.stderr_has("is immutable")
        .stderr_has(&format!(
            "the tag names {digest}, not {}, which the mirror of the source is now",
            moved.manifest_digest
        ))
        .stderr_has("Nothing was transferred")
        .stderr_has("with ecrmirror_image.test")
        .stderr_has("Mirror to a new tag");
    assert_eq!(ecr_writes(&h), Vec::<String>::new());
    let layers: Vec<String> = h
        .source_requests()
        .into_iter()
        .filter(|r| r.contains("/blobs/"))
        .collect();
    assert!(layers.is_empty(), "the source served blobs: {layers:?}");
    assert_eq!(h.ecr_tag(REPO, "1.0"), Some(digest.clone()));
    assert_eq!(h.attr("test", "image_digest").await, digest);
    // What the mirror recorded is unchanged (the refresh of `track_source` records what the
    // source names now in `source_digest`, as it does for every plan).
    assert_eq!(recorded(&h.state_file()), recorded(&state));
    // Mirroring to a new tag, as the error says, works.
    h.config(&image(&format!("{TRACKED}  tag = \"1.0-2\"\n")));
    h.apply().await;
    assert_eq!(
        h.ecr_tag(REPO, "1.0-2"),
        Some(moved.manifest_digest.clone())
    );
    let (_, changes) = h.plan().await;
    assert!(!changes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusion_filters_decide_which_tags_are_immutable() {
    let h = Harness::start().await;
    h.set_tag_mutability(REPO, "IMMUTABLE_WITH_EXCLUSION", &["lat*"]);
    h.seed_image("upstream/app", "latest", 85).await;
    let tracked_latest = TRACKED.replace(":1.0", ":latest");
    h.config(&image(&tracked_latest));
    h.apply().await;

    // `latest` is excluded from immutability: a moved source is mirrored again, no warning.
    let moved = h.seed_image("upstream/app", "latest", 86).await;
    let (run, changes) = h.plan().await;
    assert!(changes);
    assert!(!run.stdout.contains("immutable"), "{}", run.stdout);
    h.apply().await;
    assert_eq!(h.ecr_tag(REPO, "latest"), Some(moved.manifest_digest));

    // The other way round, only the filter's tags are immutable.
    h.set_tag_mutability(REPO, "MUTABLE_WITH_EXCLUSION", &["lat*"]);
    h.seed_image("upstream/app", "latest", 87).await;
    let (run, _) = h.plan().await;
    run.stdout_has("immutable ECR tag mirror/app:latest");
    h.apply_fails().await.stderr_has("is immutable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_ecr_refuses_at_the_push_says_it_is_immutable() {
    let h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 88).await;
    h.config(&image(TRACKED));
    h.apply().await;
    // The repository becomes immutable, and ECR cannot say what the tag holds: the copy
    // goes ahead, and ECR's refusal of the tag is reported as such.
    h.set_tag_mutability(REPO, "IMMUTABLE", &[]);
    h.seed_image("upstream/app", "1.0", 89).await;
    h.ecr_faults().add(standin::faults::Rule {
        status: Some(500),
        error_type: Some("ServerException".into()),
        ..standin::faults::Rule::on("BatchGetImage")
    });
    let run = h.apply_fails().await;
    run.stderr_has("ECR refused the tag")
        .stderr_has("cannot be overwritten because the repository is immutable")
        .stderr_has("Mirror to a new tag");
}
