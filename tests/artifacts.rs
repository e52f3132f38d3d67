//! Sources that are not container images (a Helm chart, as `helm push` makes it): a Docker
//! engine cannot pull them, which the plan says on `copy_method`, naming the method that
//! mirrors them; the registry method mirrors them with their digests.

mod support;

use support::{assert_no_transfer, image, Harness};

/// The chart `charts/app:0.1.0` mirrored into `mirror/charts/app`, with `more`.
fn chart(more: &str) -> String {
    image(&format!(
        r#"
  docker_source = "{{source}}/charts/app:0.1.0"
  repository    = "mirror/charts/app"
{more}
"#
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helm_chart_is_refused_at_plan_by_docker_and_mirrored_by_the_registry_method() {
    let h = Harness::start().await;
    let pushed = standin::images::push_helm_chart(&h.source_client(), "charts/app", "0.1.0", 5)
        .await
        .unwrap();
    h.world.ecr.state.create_repository("mirror/charts/app");
    h.clear_logs();

    // The default method: the plan warns, on copy_method, that the engine cannot pull it
    // (a warning: an error would block `terraform destroy`, which plans every create).
    h.config(&chart(""));
    let (run, _) = h.plan().await;
    run.stdout_has("Warning: A Docker engine cannot pull")
        .stdout_has("it is a Helm chart, not a container image")
        .stdout_has("application/vnd.cncf.helm.config.v1+json")
        .stdout_has("the mirror fails before anything is pulled")
        .stdout_has("copy_method = \"registry\"")
        .stdout_has("copy_method");
    assert_no_transfer(&h);

    // Applied anyway, it fails before anything is pulled or pushed, and state stays empty.
    h.clear_logs();
    let run = h.apply_fails().await;
    run.stderr_has("A Docker engine cannot pull")
        .stderr_has("Nothing was pulled or pushed")
        .stderr_has("copy_method = \"registry\"");
    assert_no_transfer(&h);
    assert!(h.ecr_tag("mirror/charts/app", "0.1.0").is_none());
    assert!(h.resources().await.is_empty());
    h.destroy().await;

    // The registry method mirrors it, digest and all.
    h.config(&chart("  copy_method   = \"registry\""));
    h.apply().await;
    assert_eq!(h.attr("test", "image_digest").await, pushed.manifest_digest);
    assert_eq!(
        h.ecr_tag("mirror/charts/app", "0.1.0").as_deref(),
        Some(pushed.manifest_digest.as_str())
    );
    let (run, changes) = h.plan().await;
    assert!(!changes, "{}", run.output());
}
