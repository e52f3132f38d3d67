//! The life of a mirror through real Terraform, the real provider, a real Docker engine and
//! the stand-in world: create, empty re-plan, update in place, drift, replacement, destroy.

mod support;

use support::Harness;

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
    let mut h = Harness::start().await;
    let (index_digest, platforms) = h.seed_index("upstream/app", "1.0", 11).await;
    let arm64 = &platforms[1];
    h.use_config("basic");
    h.var("source_image", Some(&h.source_ref("upstream/app:1.0")));
    h.var("tag", Some("stable"));
    h.var("platform", Some("linux/arm64/v8"));
    h.var("copy_method", Some(method));

    // Create: the digest in state is the one ECR serves, and the image is the source's
    // arm64 image (same image config).
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

    // A second plan shows no changes.
    let (run, changes) = h.plan().await;
    assert!(!changes, "second plan is not empty:\n{}", run.stdout);

    // A new docker_source is an in-place update that mirrors the new image to the same tag.
    let other = h.seed_image("upstream/other", "2.0", 12).await;
    h.var("source_image", Some(&h.source_ref("upstream/other:2.0")));
    h.var("platform", None);
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

    // The tag deleted outside Terraform: the next plan makes the mirror again.
    h.world.ecr.state.delete_tag(REPO, "stable").await.unwrap();
    let (run, changes) = h.plan().await;
    assert!(changes);
    run.stdout_has("1 to add, 0 to change, 0 to destroy");
    h.apply().await;
    assert!(h.ecr_manifest(REPO, "stable").await.is_some());
    let (_, changes) = h.plan().await;
    assert!(!changes);

    // The tag re-pointed outside Terraform: planned as a re-mirror that shows the digest
    // changing; apply restores the mirror.
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

    // A new tag replaces the mirror: the new tag is made, the old one removed.
    h.var("tag", Some("v2"));
    let (run, changes) = h.plan().await;
    assert!(changes);
    run.stdout_has("must be replaced");
    h.apply().await;
    assert!(h.ecr_manifest(REPO, "v2").await.is_some());
    assert!(h.world.ecr.state.tag_digest(REPO, "stable").is_none());

    // Another repository replaces the mirror too.
    h.world.ecr.state.create_repository("mirror/other");
    h.var("repository", Some("mirror/other"));
    let (run, changes) = h.plan().await;
    assert!(changes);
    run.stdout_has("must be replaced");
    h.apply().await;
    assert!(h.world.ecr.state.tag_digest("mirror/other", "v2").is_some());
    assert!(h.world.ecr.state.tag_digest(REPO, "v2").is_none());

    // Destroy removes the tag from ECR and the resource from state.
    h.destroy().await;
    assert!(h.world.ecr.state.tag_digest("mirror/other", "v2").is_none());
    assert!(h.resources().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_tag_platform_and_keep_remotely() {
    let mut h = Harness::start().await;
    let (_, platforms) = h.seed_index("upstream/app", "3.1", 21).await;
    h.use_config("basic");
    h.var("source_image", Some(&h.source_ref("upstream/app:3.1")));
    h.var("platform", Some("linux/amd64"));
    h.var("keep_remotely", Some("true"));

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
    assert_eq!(
        h.world.ecr.state.tag_digest(REPO, "3.1"),
        Some(served.digest)
    );

    // The local tags the provider created are gone; the user's own images are untouched.
    let images = tokio::process::Command::new("docker")
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .output()
        .await
        .unwrap();
    let listed = String::from_utf8_lossy(&images.stdout);
    assert!(
        !listed.contains(&h.world.ecr_host()),
        "left behind:\n{listed}"
    );
    assert!(
        !listed.contains(&h.world.source_host()),
        "left behind:\n{listed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_remirror_in_place() {
    let mut h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 31).await;
    h.use_config("basic");
    h.var("source_image", Some(&h.source_ref("upstream/app:1.0")));
    h.var("triggers", Some(r#"{"build":"1"}"#));
    h.apply().await;
    h.var("triggers", Some(r#"{"build":"2"}"#));
    let (run, changes) = h.plan().await;
    assert!(changes);
    run.stdout_has("1 to change");
    let manifest_puts = || {
        h.world
            .ecr
            .state
            .front()
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.method == "PUT" && r.path.contains("/manifests/"))
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
    let mut h = Harness::start().await;
    let (_, platforms) = h.seed_index("upstream/app", "1.0", 32).await;
    h.use_config("two_platforms");
    h.var("source_image", Some(&h.source_ref("upstream/app:1.0")));
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
