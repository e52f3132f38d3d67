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
