//! Adoption and change detection: import, import blocks, adoption without transfer,
//! upstream tracking, out-of-band changes in ECR, interrupted applies.

mod support;

use standin::faults::Rule;
use support::{assert_no_transfer, image, Harness};

const REPO: &str = "mirror/app";

/// The source's `upstream/app:1.0` mirrored into `mirror/app`.
const APP: &str = r#"
  docker_source = "{source}/upstream/app:1.0"
  repository    = "mirror/app"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_then_apply_transfers_nothing() {
    let h = Harness::start().await;
    h.seed_index("upstream/app", "1.0", 71).await;
    h.config(&image(APP));
    h.apply().await;
    let digest = h.attr("test", "image_digest").await;
    h.forget("test").await;

    // Malformed IDs and missing tags are clear errors.
    let run = h
        .terraform(&["import", "-no-color", "ecrmirror_image.test", "mirror-app"])
        .await;
    assert!(!run.success);
    run.stderr_has("Cannot import mirror-app")
        .stderr_has("has no tag");
    let run = h
        .terraform(&[
            "import",
            "-no-color",
            "ecrmirror_image.test",
            "mirror/app:9.9",
        ])
        .await;
    assert!(!run.success);
    run.stderr_has("ECR has no tag `9.9` in repository `mirror/app`");

    // The full form, as `id` and `image_uri` show it.
    let full = format!("{}/{REPO}:1.0", h.world.ecr_host());
    let run = h
        .terraform(&["import", "-no-color", "ecrmirror_image.test", &full])
        .await;
    assert!(run.success, "{}", run.output());
    assert_eq!(h.attr("test", "image_digest").await, digest);
    assert_eq!(h.attr("test", "docker_source").await, "");

    // The first plan sets docker_source in place; applying it transfers nothing.
    let (run, changes) = h.plan().await;
    assert!(changes);
    run.stdout_has("updated in-place")
        .stdout_has("0 to add, 1 to change, 0 to destroy")
        .stdout_has("+ docker_source");
    h.clear_logs();
    h.apply().await;
    assert_no_transfer(&h);
    assert_eq!(h.attr("test", "image_digest").await, digest);
    let (_, changes) = h.plan().await;
    assert!(!changes);
}

/// An import ID's host means the registry it names: another region's registry, or a host
/// that is not ECR's, is refused (the provider would otherwise import its own registry's tag
/// under another registry's name), with the provider configuration that would import it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_id_naming_another_registry_is_refused() {
    let h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 79).await;
    h.config(&image(APP));
    h.apply().await;
    h.forget("test").await;

    let elsewhere = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mirror/app:1.0";
    let run = h
        .terraform(&["import", "-no-color", "ecrmirror_image.test", elsewhere])
        .await;
    assert!(!run.success, "{}", run.output());
    run.stderr_has(&format!("Cannot import {elsewhere}"))
        .stderr_has("is the registry of account 123456789012 in region eu-west-1")
        .stderr_has(r#"alias = "eu_west_1""#)
        .stderr_has(r#"region = "eu-west-1""#)
        .stderr_has("provider = ecrmirror.eu_west_1");
    assert!(
        h.resources().await.is_empty(),
        "imported another registry's tag"
    );

    let not_ecr = "123456789012.dkr.ecr.not-aws.example.com/mirror/app:1.0";
    let run = h
        .terraform(&["import", "-no-color", "ecrmirror_image.test", not_ecr])
        .await;
    assert!(!run.success, "{}", run.output());
    run.stderr_has("is not an Amazon ECR registry host");
    assert!(h.resources().await.is_empty());

    // The provider's own registry, as `id` shows it, imports.
    let own = format!("{}/{REPO}:1.0", h.world.ecr_host());
    let run = h
        .terraform(&["import", "-no-color", "ecrmirror_image.test", &own])
        .await;
    assert!(run.success, "{}", run.output());
    assert_eq!(h.attr("test", "id").await, own);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_block_generates_configuration() {
    let h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 72).await;
    h.config(&image(APP));
    h.apply().await;
    std::fs::remove_file(h.work().join("terraform.tfstate")).unwrap();

    // An import block and no resource block: the plan writes one.
    h.config(
        r#"
import {
  to = ecrmirror_image.adopted
  id = "mirror/app:1.0"
}
"#,
    );
    let run = h
        .terraform(&[
            "plan",
            "-no-color",
            "-input=false",
            "-generate-config-out=generated.tf",
        ])
        .await;
    let generated = std::fs::read_to_string(h.work().join("generated.tf")).unwrap_or_default();
    assert!(
        generated.contains("resource \"ecrmirror_image\" \"adopted\""),
        "{generated}\n{}",
        run.output()
    );
    assert!(generated.contains("repository"), "{generated}");
    // Nobody can know where the image came from: the plan says what to fill in. (Terraform
    // aligns the `=`s, so the line is read word by word.)
    let null_source =
        |line: &str| line.split_whitespace().collect::<Vec<_>>() == ["docker_source", "=", "null"];
    assert!(generated.lines().any(null_source), "{generated}");
    run.stderr_has("Invalid docker_source")
        .stderr_has("After `terraform import`");

    // Filled in, the import applies without transferring anything.
    let source = format!("  docker_source = \"{}\"", h.source_ref("upstream/app:1.0"));
    let filled: Vec<&str> = generated
        .lines()
        .map(|line| {
            if null_source(line) {
                source.as_str()
            } else {
                line
            }
        })
        .collect();
    let filled = filled.join("\n");
    assert_ne!(filled, generated, "{generated}");
    std::fs::write(h.work().join("generated.tf"), filled).unwrap();
    let (run, _) = h.plan().await;
    run.stdout_has("1 to import");
    h.clear_logs();
    h.apply().await;
    assert_no_transfer(&h);
    let (_, changes) = h.plan().await;
    assert!(!changes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_state_adopts_every_mirror_without_transfer() {
    let h = Harness::start().await;
    h.seed_index("upstream/app", "1.0", 73).await;
    h.config(support::TWO_PLATFORMS);
    h.apply().await;
    let digests = (
        h.attr("amd64", "image_digest").await,
        h.attr("arm64", "image_digest").await,
    );
    std::fs::remove_file(h.work().join("terraform.tfstate")).unwrap();
    h.clear_logs();
    let run = h.apply().await;
    run.stdout_has("2 added");
    assert_no_transfer(&h);
    assert_eq!(h.attr("amd64", "image_digest").await, digests.0);
    assert_eq!(h.attr("arm64", "image_digest").await, digests.1);
    let (_, changes) = h.plan().await;
    assert!(!changes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn track_source_plans_one_update_when_the_tag_moves() {
    let h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 74).await;
    h.config(&image(APP));

    // Without track_source, plans never contact the source registry.
    h.apply().await;
    h.clear_logs();
    let (_, changes) = h.plan().await;
    assert!(!changes);
    assert!(h.source_requests().is_empty(), "{:?}", h.source_requests());

    // With it, each plan makes one HEAD request.
    h.config(&image(
        r#"
  docker_source = "{source}/upstream/app:1.0"
  repository    = "mirror/app"
  track_source  = true
"#,
    ));
    h.apply().await;
    h.clear_logs();
    let (_, changes) = h.plan().await;
    assert!(!changes);
    let images: Vec<String> = h
        .source_requests()
        .into_iter()
        .filter(|r| r.contains("/manifests/") || r.contains("/blobs/"))
        .collect();
    assert_eq!(
        images,
        vec!["HEAD /v2/upstream/app/manifests/1.0".to_string()]
    );

    // The tag moves upstream: exactly one update, which mirrors the new image.
    let moved = h.seed_image("upstream/app", "1.0", 75).await;
    let (run, changes) = h.plan().await;
    assert!(changes);
    run.stdout_has("0 to add, 1 to change, 0 to destroy")
        .stdout_has(&moved.manifest_digest);
    h.apply().await;
    let served = h.ecr_manifest(REPO, "1.0").await.unwrap();
    assert_eq!(served.config_digest(), Some(moved.config_digest.clone()));
    assert_eq!(h.attr("test", "source_digest").await, moved.manifest_digest);
    let (_, changes) = h.plan().await;
    assert!(!changes);

    // An unreachable source is a warning, not an error.
    let mut down = Rule::on("registry");
    down.status = Some(503);
    h.source_faults().add(down);
    let (run, changes) = h.plan().await;
    assert!(!changes);
    run.stdout_has("Warning: Cannot query the source registry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_deleted_outside_terraform_plans_a_create_and_apply_says_why() {
    let h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 76).await;
    h.config(&image(APP));
    h.apply().await;
    let sdk = aws_sdk_ecr::Client::new(&h.world.sdk_config().await);
    sdk.delete_repository()
        .repository_name(REPO)
        .force(true)
        .send()
        .await
        .unwrap();
    let (run, changes) = h.plan().await;
    assert!(changes);
    run.stdout_has("1 to add, 0 to change, 0 to destroy");
    let run = h.apply_fails().await;
    run.stderr_has("ECR repository mirror/app does not exist");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_apply_keeps_what_it_made() {
    let h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 77).await;
    // The manifest push hangs for a while, long enough to interrupt the apply mid-push.
    let mut slow = Rule::on("registry:PUT");
    slow.delay_ms = 4_000;
    h.ecr_faults().add(slow);
    h.config(&image(APP));

    let child = h.spawn_terraform(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    // Wait until the push has started, then Ctrl-C the whole process group, as a terminal does.
    for _ in 0..200 {
        if h.ecr_requests().iter().any(|r| r.starts_with("PUT ")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        h.ecr_requests().iter().any(|r| r.starts_with("PUT ")),
        "the push never started"
    );
    let pgid = child.id().expect("terraform runs");
    support::kill("INT", &format!("-{pgid}")).await;
    let output = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("Interrupt received"), "{stdout}");

    // The provider survived the interrupt and finished: state and ECR agree.
    h.ecr_faults().clear();
    let in_ecr = h.ecr_tag(REPO, "1.0");
    let resources = h.resources().await;
    assert_eq!(
        resources.len(),
        1,
        "the mirror was lost from state:\n{stdout}"
    );
    assert_eq!(Some(h.attr("test", "image_digest").await), in_ecr);
    h.apply().await;
    let (_, changes) = h.plan().await;
    assert!(!changes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_written_before_track_source_plans_no_change() {
    let h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 78).await;
    h.config(&image(APP));
    h.apply().await;

    // Rewrite the state as the first release wrote it: no track_source attribute.
    let path = h.work().join("terraform.tfstate");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let instance = &mut state["resources"][0]["instances"][0];
    assert_eq!(instance["schema_version"], 0);
    let attributes = instance["attributes"].as_object_mut().unwrap();
    assert!(attributes.remove("track_source").is_some());
    state["serial"] = serde_json::json!(state["serial"].as_i64().unwrap() + 1);
    std::fs::write(&path, serde_json::to_string_pretty(&state).unwrap()).unwrap();

    let (run, changes) = h.plan().await;
    assert!(!changes, "{}", run.stdout);
    h.apply().await;
    let (_, changes) = h.plan().await;
    assert!(!changes);
}

/// An import of a registry copy of a multi-platform index, configured as
/// `-generate-config-out` writes it: the import invents no copy method, the plan warns that
/// one platform's image would replace the index (naming `copy_method = "registry"`), and the
/// apply keeps the index, which already holds the source's image for the engine's platform:
/// nothing transferred, ECR's tag unchanged, an empty second plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_index_is_never_replaced_by_one_platform() {
    let h = Harness::start().await;
    let (index, _) = h.seed_index("upstream/app", "1.0", 74).await;
    h.config(&image(
        r#"
  docker_source = "{source}/upstream/app:1.0"
  repository    = "mirror/app"
  copy_method   = "registry"
"#,
    ));
    h.apply().await;
    assert_eq!(h.attr("test", "image_digest").await, index);
    std::fs::remove_file(h.work().join("terraform.tfstate")).unwrap();

    h.config(
        r#"
import {
  to = ecrmirror_image.test
  id = "mirror/app:1.0"
}
"#,
    );
    h.terraform(&[
        "plan",
        "-no-color",
        "-input=false",
        "-generate-config-out=generated.tf",
    ])
    .await;
    let generated = std::fs::read_to_string(h.work().join("generated.tf")).unwrap();
    let line = |name: &str| {
        generated
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|words| words.first() == Some(&name))
            .map(|words| words.join(" "))
    };
    // What the import could not know stays unset, so the provider's default applies.
    assert_eq!(
        line("copy_method").as_deref(),
        Some("copy_method = null"),
        "{generated}"
    );
    let source = format!("docker_source = \"{}\"", h.source_ref("upstream/app:1.0"));
    let filled: Vec<String> = generated
        .lines()
        .map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            ["docker_source", "=", "null"] => source.clone(),
            ["copy_method", "=", "null"] => "copy_method = null".to_string(),
            _ => l.to_string(),
        })
        .collect();
    let filled = filled.join("\n");
    std::fs::write(h.work().join("generated.tf"), &filled).unwrap();

    // The provider's default method is Docker's: one platform. The plan says so.
    let (run, _) = h.plan().await;
    run.stdout_has("1 to import")
        .stdout_has("may replace the multi-platform index in mirror/app:1.0")
        .stdout_has(&index)
        .stdout_has("copy_method = \"registry\"");
    h.clear_logs();
    h.apply().await;
    assert_no_transfer(&h);
    assert_eq!(h.attr("test", "image_digest").await, index);
    assert_eq!(h.attr("test", "copy_method").await, "docker");
    let (run, changes) = h.plan().await;
    assert!(!changes, "{}", run.output());

    // Asked for the registry method, the plan re-mirrors without the warning, and ECR keeps
    // the index (the same digest).
    std::fs::write(
        h.work().join("generated.tf"),
        filled.replace("copy_method = null", "copy_method = \"registry\""),
    )
    .unwrap();
    let (run, changes) = h.plan().await;
    assert!(changes);
    assert!(
        !run.output()
            .contains("may replace the multi-platform index"),
        "{}",
        run.output()
    );
    h.apply().await;
    assert_eq!(h.attr("test", "image_digest").await, index);
}

/// The same import configured for one platform by the registry method: the plan says, on
/// `platform`, that the index will be replaced by that platform's image (which it then is),
/// and with the Docker method and a `platform` it says to leave `platform` out as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_index_asked_for_one_platform_says_it_is_replaced() {
    let h = Harness::start().await;
    let (index, platforms) = h.seed_index("upstream/app", "1.0", 75).await;
    let arm64 = &platforms[1].manifest_digest;
    let mirror = |more: &str| {
        image(&format!(
            "  docker_source = \"{{source}}/upstream/app:1.0\"\n  repository    = \"mirror/app\"\n{more}\n"
        ))
    };
    h.config(&mirror("  copy_method = \"registry\""));
    h.apply().await;
    h.forget("test").await;
    let import = "\nimport {\n  to = ecrmirror_image.test\n  id = \"mirror/app:1.0\"\n}\n";

    h.config(&(mirror("  platform = \"linux/arm64/v8\"") + import));
    let (run, _) = h.plan().await;
    run.stdout_has("may replace the multi-platform index in mirror/app:1.0")
        .stdout_has("set `copy_method = \"registry\"` (in the resource, or the provider's default) and leave `platform` out");

    h.config(
        &(mirror("  copy_method = \"registry\"\n  platform    = \"linux/arm64/v8\"") + import),
    );
    let (run, _) = h.plan().await;
    run.stdout_has(&format!("holds the multi-platform index {index}"))
        .stdout_has("in place of the index")
        .stdout_has("leave `platform` out");
    assert!(
        !run.output().contains("The apply keeps the index"),
        "{}",
        run.output()
    );
    h.apply().await;
    assert_eq!(&h.attr("test", "image_digest").await, arm64);
    assert_eq!(h.ecr_tag("mirror/app", "1.0").as_ref(), Some(arm64));
}
