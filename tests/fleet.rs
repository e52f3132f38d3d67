//! A fleet whose configuration changes: many mirrors applied in parallel through real
//! Terraform while their `for_each` keys are renamed, with ECR checked against state after
//! every apply.

mod support;

use std::collections::BTreeMap;

use standin::faults::Rule;
use support::Harness;

const REPO: &str = "mirror/app";

/// ECR's tags of the repository must be exactly state's mirrors, digest for digest.
async fn assert_ecr_is_state(h: &Harness, after: &str) {
    let in_state: BTreeMap<String, String> = h
        .resources()
        .await
        .iter()
        .filter(|r| r["type"] == "ecrmirror_image")
        .map(|r| {
            let values = &r["values"];
            (
                values["tag"].as_str().unwrap_or_default().to_string(),
                values["image_digest"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    let in_ecr = h.world.ecr.state.tags(REPO);
    assert_eq!(
        in_state.len(),
        25,
        "after {after}: state holds {in_state:?}"
    );
    assert_eq!(in_ecr, in_state, "after {after}: ECR differs from state");
}

/// 25 mirrors of one repository, their keys renamed four times at `-parallelism=20` (once
/// with the copy method switched too), with ECR slowing its untags and manifest pushes so
/// that a destroy and the create of the same tag overlap: after every apply ECR holds
/// exactly what state holds, and the last plan is empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renamed_for_each_keys_never_lose_a_tag() {
    let mut h = Harness::start().await;
    for s in 0..4 {
        h.seed_image("upstream/app", &format!("s{s}"), 900 + s)
            .await;
    }
    h.use_config("fleet_rename");
    let host = h.world.source_host();
    h.var("source_host", Some(&host));
    h.var("prefix", Some("a"));
    h.var("method", Some("registry"));
    h.apply_parallel(20).await;
    assert_ecr_is_state(&h, "the first apply").await;

    let mut untag = Rule::on("BatchDeleteImage");
    untag.delay_ms = 300;
    h.ecr_faults().add(untag);
    let mut push = Rule::on("registry:PUT:/manifests/");
    push.delay_ms = 300;
    h.ecr_faults().add(push);
    for (prefix, method) in [
        ("b", "registry"),
        ("c", "docker"),
        ("d", "registry"),
        ("e", "registry"),
    ] {
        h.var("prefix", Some(prefix));
        h.var("method", Some(method));
        let run = h.apply_parallel(20).await;
        run.stdout_has("25 added, 0 changed, 25 destroyed");
        assert_ecr_is_state(&h, &format!("the rename to {prefix}* ({method})")).await;
    }
    h.ecr_faults().clear();
    let (run, changes) = h.plan().await;
    assert!(
        !changes,
        "a plan after the renames is not empty:\n{}",
        run.stdout
    );
}
