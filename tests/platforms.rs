//! Platforms: one rule decides which manifest a mirror of a platform is, and the platform
//! check, adoption and both copy methods follow it. A platform the source lacks is refused
//! before anything is transferred, on `platform`, with the platforms the source holds and
//! advice in the copy method's terms; adoption adopts only what matches the platform and the
//! method.

mod support;

use support::Harness;

const REPO: &str = "mirror/app";

/// One mirror of `source` (under `{source}`) with `platform` and `method`.
fn mirror(source: &str, platform: Option<&str>, method: &str) -> String {
    let platform = platform.map_or(String::new(), |p| format!("  platform      = \"{p}\"\n"));
    format!(
        r#"
provider "ecrmirror" {{}}

resource "ecrmirror_image" "app" {{
  docker_source = "{{source}}/{source}"
  repository    = "{REPO}"
  tag           = "1.0"
  copy_method   = "{method}"
{platform}}}
"#
    )
}

/// Asserts that ECR was not written to and the source served no layer.
fn assert_nothing_transferred(h: &Harness, layers: &[String]) {
    let writes: Vec<String> = h
        .ecr_requests()
        .into_iter()
        .filter(|r| !r.starts_with("GET ") && !r.starts_with("HEAD "))
        .collect();
    assert!(writes.is_empty(), "ECR received: {writes:?}");
    let served: Vec<String> = h
        .source_requests()
        .into_iter()
        .filter(|r| layers.iter().any(|layer| r.ends_with(layer.as_str())))
        .collect();
    assert!(served.is_empty(), "the source served layers: {served:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_the_source_lacks_is_refused_before_any_transfer_by_both_methods() {
    let h = Harness::start().await;
    let single = h.seed_image("upstream/single", "1.0", 48).await;
    let (_, images) = h.seed_index("upstream/multi", "1.0", 49).await;
    let layers: Vec<String> = std::iter::once(&single)
        .chain(&images)
        .flat_map(|image| image.layer_digests.clone())
        .collect();
    for (method, unset) in [
        (
            "docker",
            "leave it unset to mirror the Docker engine's own platform",
        ),
        (
            "registry",
            "leave it unset to copy every platform of the index",
        ),
    ] {
        // A single-platform (amd64) image.
        h.config(&mirror("upstream/single:1.0", Some("linux/s390x"), method));
        h.clear_logs();
        let run = h.apply_fails().await;
        run.stderr_has("upstream/single:1.0 has no image for platform linux/s390x")
            .stderr_has(r#"platform      = "linux/s390x""#)
            .stderr_has("The source holds one platform: linux/amd64.")
            .stderr_has(unset);
        assert_nothing_transferred(&h, &layers);
        assert!(h.ecr_tag(REPO, "1.0").is_none(), "{method}");

        // An index without it.
        h.config(&mirror("upstream/multi:1.0", Some("linux/s390x"), method));
        h.clear_logs();
        let run = h.apply_fails().await;
        run.stderr_has("upstream/multi:1.0 has no image for platform linux/s390x")
            .stderr_has("The source holds these platforms: linux/amd64, linux/arm64/v8.")
            .stderr_has(unset);
        assert_nothing_transferred(&h, &layers);
        assert!(h.resources().await.is_empty(), "{method}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_a_platform_the_source_lacks_is_refused_not_adopted() {
    for method in ["docker", "registry"] {
        let h = Harness::start().await;
        let image = h.seed_image("upstream/single", "1.0", 51).await;
        h.config(&mirror("upstream/single:1.0", None, method));
        h.apply().await;
        let held = h.ecr_tag(REPO, "1.0").expect("the mirror");

        // The amd64-only image does not become arm64 in state.
        h.config(&mirror(
            "upstream/single:1.0",
            Some("linux/arm64/v8"),
            method,
        ));
        let run = h.apply_fails().await;
        run.stderr_has("has no image for platform linux/arm64/v8")
            .stderr_has("The source holds one platform: linux/amd64.");
        assert_eq!(h.attr("app", "platform").await, "", "{method}");
        assert_eq!(h.ecr_tag(REPO, "1.0"), Some(held.clone()), "{method}");

        // The platform it holds is adopted: nothing is transferred.
        h.config(&mirror("upstream/single:1.0", Some("linux/amd64"), method));
        h.clear_logs();
        h.apply().await;
        assert_nothing_transferred(&h, &image.layer_digests);
        assert_eq!(h.attr("app", "platform").await, "linux/amd64");
        assert_eq!(h.attr("app", "image_digest").await, held, "{method}");
        let (_, changes) = h.plan().await;
        assert!(!changes, "{method}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_index_switched_to_docker_with_a_platform_becomes_that_platforms_image() {
    let h = Harness::start().await;
    let (index, images) = h.seed_index("upstream/app", "1.0", 53).await;
    h.config(&mirror("upstream/app:1.0", None, "registry"));
    h.apply().await;
    assert_eq!(h.attr("app", "image_digest").await, index);

    // ECR's tag holds the index: not what a Docker push of arm64 is, so it is copied.
    h.config(&mirror(
        "upstream/app:1.0",
        Some("linux/arm64/v8"),
        "docker",
    ));
    h.apply().await;
    let served = h.ecr_manifest(REPO, "1.0").await.expect("the mirror");
    assert_ne!(served.digest, index, "the index was adopted");
    assert_eq!(
        served.config_digest(),
        Some(images[1].config_digest.clone())
    );
    assert_eq!(h.attr("app", "image_digest").await, served.digest);
    assert_eq!(h.attr("app", "source_digest").await, index);
    let (_, changes) = h.plan().await;
    assert!(!changes);

    // And back: the registry method's copy of the platform is its manifest, byte for byte.
    h.config(&mirror(
        "upstream/app:1.0",
        Some("linux/arm64/v8"),
        "registry",
    ));
    h.apply().await;
    assert_eq!(
        h.attr("app", "image_digest").await,
        images[1].manifest_digest
    );
}

/// Pushes an OCI index of linux/amd64, linux/arm64/v8 and linux/s390x with annotations to
/// `upstream/trio:1.0`; returns the index digest and each platform's image.
async fn seed_trio(h: &Harness, seed: u64) -> (String, Vec<standin::images::Pushed>) {
    let specs = [
        standin::images::Spec::small(seed).oci(),
        standin::images::Spec::small(seed)
            .for_platform("arm64", Some("v8"))
            .oci(),
        standin::images::Spec::small(seed)
            .for_platform("s390x", None)
            .oci(),
    ];
    let annotations =
        serde_json::json!({"org.opencontainers.image.version": format!("1.0.{seed}")});
    standin::images::push_annotated_index(
        &h.source_client(),
        "upstream/trio",
        "1.0",
        &specs,
        Some(annotations),
    )
    .await
    .expect("seeding a three-platform index")
}

/// A mirror of two of `upstream/trio:1.0`'s platforms, with `extra` arguments.
fn two_of_three(extra: &str) -> String {
    format!(
        r#"
provider "ecrmirror" {{
  copy_method = "registry"
}}

resource "ecrmirror_image" "app" {{
  docker_source = "{{source}}/upstream/trio:1.0"
  repository    = "{REPO}"
  platforms     = ["linux/arm64/v8", "linux/amd64"]
{extra}}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subset_of_platforms_is_a_new_index_of_their_manifests_digests_preserved() {
    let h = Harness::start().await;
    let (index, images) = seed_trio(&h, 61).await;
    h.config(&two_of_three("  track_source  = true\n"));
    h.apply().await;

    let served = h.ecr_manifest(REPO, "1.0").await.unwrap();
    assert_eq!(served.media_type, standin::images::OCI_INDEX);
    let entries: Vec<&str> = served.json["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["digest"].as_str().unwrap())
        .collect();
    // The source's order, the platform manifests' own digests.
    assert_eq!(
        entries,
        [
            images[0].manifest_digest.as_str(),
            images[1].manifest_digest.as_str()
        ]
    );
    assert_eq!(
        served.json["annotations"]["org.opencontainers.image.version"],
        "1.0.61"
    );
    assert_ne!(served.digest, index, "the subset is a new index");
    assert_eq!(h.attr("app", "image_digest").await, served.digest);
    assert_eq!(h.attr("app", "source_digest").await, index);
    for image in &images[..2] {
        let copied = h.ecr_manifest(REPO, &image.manifest_digest).await;
        assert!(copied.is_some(), "{} was not copied", image.manifest_digest);
    }
    for layer in &images[2].layer_digests {
        assert!(
            !h.ecr_has_blob(REPO, layer).await,
            "the s390x layer {layer} was copied"
        );
    }
    let (_, changes) = h.plan().await;
    assert!(!changes, "the plan after the apply is not empty");

    // Lost state: the next apply finds the same subset in ECR and transfers nothing.
    h.forget("app").await;
    h.clear_logs();
    h.apply().await;
    assert_nothing_transferred(&h, &[]);
    assert_eq!(h.attr("app", "image_digest").await, served.digest);

    // The source moves upstream: tracked, it is mirrored again, still two of three.
    let (moved, moved_images) = seed_trio(&h, 62).await;
    let (run, changes) = h.plan().await;
    assert!(changes);
    run.stdout_has("~ image_digest");
    h.apply().await;
    assert_eq!(h.attr("app", "source_digest").await, moved);
    let served = h.ecr_manifest(REPO, "1.0").await.unwrap();
    assert_eq!(
        served.json["manifests"][1]["digest"],
        moved_images[1].manifest_digest.as_str()
    );
    assert_eq!(served.json["manifests"].as_array().unwrap().len(), 2);

    // Another subset is an update in place.
    h.config(&two_of_three("").replace("\"linux/arm64/v8\", ", ""));
    let (run, _) = h.plan().await;
    run.stdout_has("1 to change");
    h.apply().await;
    let served = h.ecr_manifest(REPO, "1.0").await.unwrap();
    assert_eq!(served.json["manifests"].as_array().unwrap().len(), 1);
    let (_, changes) = h.plan().await;
    assert!(!changes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platforms_are_checked_at_plan_and_a_platform_the_source_lacks_is_refused() {
    let h = Harness::start().await;
    let (_, images) = seed_trio(&h, 63).await;
    let single = h.seed_image("upstream/single", "1.0", 64).await;

    // A platform the source lacks: refused on `platforms`, naming what it holds, before
    // anything is transferred.
    h.config(&two_of_three("").replace("linux/arm64/v8", "linux/ppc64le"));
    h.clear_logs();
    let run = h.apply_fails().await;
    run.stderr_has("has no image for platform linux/ppc64le")
        .stderr_has("The source holds these platforms: linux/amd64, linux/arm64/v8, linux/s390x.")
        .stderr_has("List only platforms the source holds in `platforms`")
        .stderr_has("with ecrmirror_image.app");
    let layers: Vec<String> = images
        .iter()
        .flat_map(|i| i.layer_digests.clone())
        .collect();
    assert_nothing_transferred(&h, &layers);

    // A single image has no platforms to pick from.
    h.config(&two_of_three("").replace("upstream/trio", "upstream/single"));
    let run = h.apply_fails().await;
    run.stderr_has("is a single image, not a multi-platform index")
        .stderr_has("Use `platform`");
    assert_nothing_transferred(&h, &single.layer_digests);

    // The Docker method cannot push an index: a plan error on `platforms` (validation
    // cannot know the provider's default method; the plan does).
    h.config(&two_of_three("").replace("\"registry\"", "\"docker\""));
    let run = h.terraform(&["plan", "-no-color", "-input=false"]).await;
    assert!(!run.success, "{}", run.output());
    run.stderr_has("Invalid platforms")
        .stderr_has("`platforms` needs `copy_method = \"registry\"`");
    h.config(&two_of_three("  copy_method = \"docker\"\n"));
    let run = h.terraform(&["validate", "-no-color"]).await;
    assert!(!run.success, "{}", run.output());
    run.stderr_has("`platforms` needs `copy_method = \"registry\"`");

    // Conflicts with `platform`, and bad values, at validation.
    for (extra, says) in [
        ("  platform = \"linux/amd64\"\n", "cannot both be set"),
        ("", "is not a platform"),
    ] {
        let hcl = two_of_three(extra);
        let hcl = if extra.is_empty() {
            hcl.replace("linux/amd64", "amd64")
        } else {
            hcl
        };
        h.config(&hcl);
        let run = h.terraform(&["validate", "-no-color"]).await;
        assert!(!run.success, "{}", run.output());
        run.stderr_has("Invalid platforms").stderr_has(says);
    }
}
