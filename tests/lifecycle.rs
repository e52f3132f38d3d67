//! The life of a mirror through real Terraform, the real provider, a real Docker engine and
//! the stand-in world: create, empty re-plan, update in place, drift, replacement, destroy.

mod support;

use support::{docker, image, Harness};

const REPO: &str = "mirror/app";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_lifecycle_through_docker() {
    mirror_lifecycle("docker").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_lifecycle_registry_to_registry() {
    mirror_lifecycle("registry").await;
}

/// Create, empty re-plan, in-place update, drift both ways, replacements, destroy: the
/// same with either copy method.
async fn mirror_lifecycle(method: &str) {
    let h = Harness::start().await;
    create_and_replan(&h, method).await;
    a_new_source_is_an_update_in_place(&h, method).await;
    drift_in_ecr_is_planned_and_repaired(&h).await;
    tag_and_repository_replace_and_destroy_untags(&h, method).await;
}

/// Create: the digest in state is the one ECR serves, and the image is the source's arm64
/// image (same image config); a second plan shows no changes.
async fn create_and_replan(h: &Harness, method: &str) {
    let (index_digest, platforms) = h.seed_index("upstream/app", "1.0", 11).await;
    let arm64 = &platforms[1];
    h.config(&image(&format!(
        r#"
  docker_source = "{{source}}/upstream/app:1.0"
  repository    = "mirror/app"
  tag           = "stable"
  platform      = "linux/arm64/v8"
  copy_method   = "{method}"
"#
    )));
    let run = h.apply().await;
    run.stdout_has("1 added");
    let served = h
        .ecr_manifest(REPO, "stable")
        .await
        .expect("the tag exists in ECR");
    assert_eq!(h.attr("test", "image_digest").await, served.digest);
    assert_eq!(
        served.config_digest().as_deref(),
        Some(arm64.config_digest.as_str())
    );
    assert_eq!(h.attr("test", "source_digest").await, index_digest);
    if method == "registry" {
        // Digests are preserved: ECR serves the source's arm64 manifest itself.
        assert_eq!(served.digest, arm64.manifest_digest);
    }
    let ecr = h.world.ecr_host();
    assert_eq!(
        h.attr("test", "image_uri").await,
        format!("{ecr}/{REPO}:stable")
    );
    assert_eq!(h.attr("test", "id").await, format!("{ecr}/{REPO}:stable"));
    assert_eq!(
        h.attr("test", "image_uri_digest").await,
        format!("{ecr}/{REPO}@{}", served.digest)
    );
    assert_eq!(h.attr("test", "registry_id").await, "123456789012");

    let (run, changes) = h.plan().await;
    assert!(!changes, "second plan is not empty:\n{}", run.stdout);
}

/// A new `docker_source` is an in-place update that mirrors the new image to the same tag.
async fn a_new_source_is_an_update_in_place(h: &Harness, method: &str) {
    let other = h.seed_image("upstream/other", "2.0", 12).await;
    h.config(&image(&format!(
        r#"
  docker_source = "{{source}}/upstream/other:2.0"
  repository    = "mirror/app"
  tag           = "stable"
  copy_method   = "{method}"
"#
    )));
    let (run, changes) = h.plan().await;
    assert!(changes);
    run.stdout_has("updated in-place");
    run.stdout_has("0 to add, 1 to change, 0 to destroy");
    h.apply().await;
    let served = h.ecr_manifest(REPO, "stable").await.unwrap();
    assert_eq!(
        served.config_digest().as_deref(),
        Some(other.config_digest.as_str())
    );
    assert_eq!(h.attr("test", "image_digest").await, served.digest);
    assert_eq!(h.attr("test", "source_digest").await, other.manifest_digest);
    let (_, changes) = h.plan().await;
    assert!(!changes);
}

/// The tag deleted, then re-pointed, outside Terraform: each shows in the next plan, and
/// apply restores the mirror.
async fn drift_in_ecr_is_planned_and_repaired(h: &Harness) {
    h.delete_ecr_tag(REPO, "stable").await;
    let (run, changes) = h.plan().await;
    assert!(changes);
    run.stdout_has("1 to add, 0 to change, 0 to destroy");
    h.apply().await;
    assert!(h.ecr_manifest(REPO, "stable").await.is_some());
    let (_, changes) = h.plan().await;
    assert!(!changes);

    // Re-pointed: planned as a re-mirror that shows the digest changing.
    let mirrored = h.attr("test", "image_digest").await;
    let intruder = standin::images::push_image(
        &h.world.ecr_client(),
        REPO,
        Some("stable"),
        &standin::images::Spec::small(99),
    )
    .await
    .unwrap();
    let (run, changes) = h.plan().await;
    assert!(changes);
    run.stdout_has(&intruder.manifest_digest);
    run.stdout_has("updated in-place");
    h.apply().await;
    assert_eq!(
        h.ecr_manifest(REPO, "stable").await.unwrap().digest,
        mirrored
    );
    let (_, changes) = h.plan().await;
    assert!(!changes);
}

/// A new tag, then another repository, replace the mirror (the new one made, the old one
/// removed); destroy removes the tag from ECR and the resource from state.
async fn tag_and_repository_replace_and_destroy_untags(h: &Harness, method: &str) {
    h.config(&image(&format!(
        r#"
  docker_source = "{{source}}/upstream/other:2.0"
  repository    = "mirror/app"
  tag           = "v2"
  copy_method   = "{method}"
"#
    )));
    let (run, changes) = h.plan().await;
    assert!(changes);
    run.stdout_has("must be replaced");
    h.apply().await;
    assert!(h.ecr_manifest(REPO, "v2").await.is_some());
    assert!(h.ecr_tag(REPO, "stable").is_none());

    h.create_repository("mirror/other");
    h.config(&image(&format!(
        r#"
  docker_source = "{{source}}/upstream/other:2.0"
  repository    = "mirror/other"
  tag           = "v2"
  copy_method   = "{method}"
"#
    )));
    let (run, changes) = h.plan().await;
    assert!(changes);
    run.stdout_has("must be replaced");
    h.apply().await;
    assert!(h.ecr_tag("mirror/other", "v2").is_some());
    assert!(h.ecr_tag(REPO, "v2").is_none());

    h.destroy().await;
    assert!(h.ecr_tag("mirror/other", "v2").is_none());
    assert!(h.resources().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_tag_platform_and_keep_remotely() {
    let h = Harness::start().await;
    let engine = support::engine_images(&h).await;
    let (_, platforms) = h.seed_index("upstream/app", "3.1", 21).await;
    h.config(&image(
        r#"
  docker_source = "{source}/upstream/app:3.1"
  repository    = "mirror/app"
  platform      = "linux/amd64"
  keep_remotely = true
"#,
    ));

    h.apply().await;
    // Without `tag`, the source's tag is used.
    assert_eq!(h.attr("test", "tag").await, "3.1");
    let served = h
        .ecr_manifest(REPO, "3.1")
        .await
        .expect("mirrored under the source tag");
    assert_eq!(
        served.config_digest().as_deref(),
        Some(platforms[0].config_digest.as_str())
    );
    let (_, changes) = h.plan().await;
    assert!(!changes);

    // keep_remotely: destroy leaves the image in ECR.
    h.destroy().await;
    assert!(h.resources().await.is_empty());
    assert_eq!(h.ecr_tag(REPO, "3.1"), Some(served.digest));

    // The local tags the provider created are gone; the user's own images are untouched.
    support::assert_engine_left_nothing(&h, &engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_remirror_in_place() {
    let h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 31).await;
    let with_build = |build: &str| {
        image(&format!(
            r#"
  docker_source = "{{source}}/upstream/app:1.0"
  repository    = "mirror/app"
  triggers      = {{ build = "{build}" }}
"#
        ))
    };
    h.config(&with_build("1"));
    h.apply().await;
    h.config(&with_build("2"));
    let (run, changes) = h.plan().await;
    assert!(changes);
    run.stdout_has("1 to change");
    let manifest_puts = || {
        h.ecr_requests()
            .iter()
            .filter(|r| r.starts_with("PUT ") && r.contains("/manifests/"))
            .count()
    };
    let before = manifest_puts();
    h.apply().await;
    assert_eq!(
        manifest_puts(),
        before + 1,
        "the update did not push the manifest"
    );
    let (_, changes) = h.plan().await;
    assert!(!changes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_source_mirrored_for_two_platforms_in_parallel() {
    let h = Harness::start().await;
    let (_, platforms) = h.seed_index("upstream/app", "1.0", 32).await;
    h.config(support::TWO_PLATFORMS);
    h.apply().await;
    for (tag, image) in [("amd64", &platforms[0]), ("arm64", &platforms[1])] {
        let served = h.ecr_manifest(REPO, tag).await.expect("mirrored");
        assert_eq!(
            served.config_digest().as_deref(),
            Some(image.config_digest.as_str()),
            "{tag}"
        );
        assert_eq!(h.attr(tag, "image_digest").await, served.digest);
    }
    let (_, changes) = h.plan().await;
    assert!(!changes);
}

/// `-replace` with `create_before_destroy`: the new instance mirrors the tag, then the
/// deposed one is destroyed; that destroy leaves the tag to the new mirror. A later destroy
/// (another run) still untags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_before_destroy_replacement_keeps_the_mirror() {
    for (method, seed) in [("docker", 33), ("registry", 34)] {
        let h = Harness::start().await;
        h.seed_image("upstream/app", "1.0", seed).await;
        h.config(&image(&format!(
            r#"
  docker_source = "{{source}}/upstream/app:1.0"
  repository    = "mirror/app"
  copy_method   = "{method}"

  lifecycle {{
    create_before_destroy = true
  }}
"#
        )));
        h.apply().await;
        let digest = h.attr("test", "image_digest").await;

        let run = h
            .terraform(&[
                "apply",
                "-replace=ecrmirror_image.test",
                "-auto-approve",
                "-input=false",
                "-no-color",
            ])
            .await;
        assert!(run.success, "{method}: {}", run.output());
        run.stdout_has("1 added, 0 changed, 1 destroyed");
        assert_eq!(h.ecr_tag(REPO, "1.0"), Some(digest.clone()), "{method}");
        assert_eq!(h.attr("test", "image_digest").await, digest);
        let (run, changes) = h.plan().await;
        assert!(!changes, "{method}: {}", run.stdout);

        h.destroy().await;
        assert!(h.ecr_tag(REPO, "1.0").is_none(), "{method}");
    }
}

/// The id of the local image `reference` names, if any.
async fn local_image(reference: &str) -> Option<String> {
    let output = tokio::process::Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", reference])
        .output()
        .await
        .unwrap();
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// The Docker method leaves the user's engine as it found it: the user's own tag of the
/// source and their other images keep naming what they named while another platform is
/// mirrored; several platforms of one source mirrored at once leave nothing behind; and a
/// later mirror of the same source pinned by digest goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_engine_is_left_as_it_was() {
    let h = Harness::start().await;
    let engine = support::engine_images(&h).await;
    let (index, platforms) = h.seed_index("upstream/app", "1.0", 36).await;
    let source = h.source_ref("upstream/app:1.0");
    // The user's own: the source pulled by hand (this machine's platform) and tagged.
    docker(&["pull", &source]).await;
    let own = format!("{}/my/own:keep", h.world.source_host());
    docker(&["tag", &source, &own]).await;
    let (theirs, mine) = (local_image(&source).await, local_image(&own).await);
    assert!(theirs.is_some());

    h.config(&image(
        r#"
  docker_source = "{source}/upstream/app:1.0"
  repository    = "mirror/app"
  tag           = "arm64"
  platform      = "linux/arm64/v8"
"#,
    ));
    h.apply().await;
    assert_eq!(local_image(&source).await, theirs, "the user's tag moved");
    assert_eq!(local_image(&own).await, mine, "the user's image changed");
    assert_eq!(
        local_image(&platforms[1].config_digest).await,
        None,
        "the arm64 image was left behind"
    );
    h.destroy().await;

    // On an engine without the user's images: both platforms at once leave nothing.
    docker(&["rmi", &own, &source]).await;
    h.config(support::TWO_PLATFORMS);
    h.apply().await;
    for image in &platforms {
        assert_eq!(local_image(&image.config_digest).await, None, "left behind");
    }
    support::assert_engine_left_nothing(&h, &engine).await;

    // The same source pinned by digest, afterwards.
    h.config(&image(&format!(
        r#"
  docker_source = "{{source}}/upstream/app@{index}"
  repository    = "mirror/app"
  tag           = "pinned"
"#
    )));
    h.apply().await;
    assert!(h.ecr_tag(REPO, "pinned").is_some());
}
