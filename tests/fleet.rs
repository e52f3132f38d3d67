//! A fleet whose configuration changes: many mirrors applied in parallel through real
//! Terraform while their `for_each` keys are renamed, with ECR checked against state after
//! every apply.

mod support;

use std::collections::BTreeMap;

use standin::faults::Rule;
use support::{Harness, Run};

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

/// Runs a configuration whose provider block (`provider`, inside the braces) takes an
/// argument from `terraform_data.p.output`, whose input is `value` (unknown at plan until it
/// exists, and again whenever `var.round` replaces it), and one mirror of
/// `upstream/app:1.0` into `mirror/app` with `mirror`'s further arguments: each round plans
/// and applies successfully, state agrees with ECR, and the next plan is empty. Returns the
/// plan of the second round, made with the argument unknown and the mirror in state.
async fn applied_with_a_provider_argument_unknown_at_plan(
    h: &mut Harness,
    value: &str,
    provider: &str,
    mirror: &str,
) -> Run {
    let mut last = None;
    for round in ["1", "2"] {
        h.var("round", Some(round));
        h.config(&format!(
            r#"
variable "round" {{
  type = string
}}

resource "terraform_data" "p" {{
  input            = "{value}"
  triggers_replace = var.round
}}

provider "ecrmirror" {{
{provider}
}}

resource "ecrmirror_image" "test" {{
  docker_source = "{{source}}/upstream/app:1.0"
  repository    = "mirror/app"
{mirror}
}}
"#
        ));
        let (planned, changes) = h.plan().await;
        assert!(changes, "round {round}: no changes planned");
        planned.stdout_has("(known after apply)");
        h.apply().await;
        let digest = h.attr("test", "image_digest").await;
        assert_eq!(h.ecr_tag(REPO, "1.0"), Some(digest), "round {round}");
        let (plan, changes) = h.plan().await;
        assert!(
            !changes,
            "round {round}: the plan after apply is not empty:\n{}",
            plan.stdout
        );
        last = Some(planned);
    }
    last.expect("two rounds ran")
}

/// `copy_method` known only at apply: the plan does not take the default for it, and the
/// arguments that need the registry method (`platforms`, `copy_referrers`) are checked when
/// it is known.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_copy_method_is_planned_unknown() {
    let mut h = Harness::start().await;
    h.seed_index("upstream/app", "1.0", 41).await;
    applied_with_a_provider_argument_unknown_at_plan(
        &mut h,
        "registry",
        "  copy_method = terraform_data.p.output",
        "  platforms      = [\"linux/amd64\"]\n  copy_referrers = true",
    )
    .await;
    assert_eq!(h.attr("test", "copy_method").await, "registry");
}

/// `region` known only at apply (and no region anywhere else): no plan fails for the want
/// of one, and a plan with the region pending asks no registry but plans the mirror anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_region_is_planned_unknown() {
    let mut h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 42).await;
    h.unset_env("AWS_REGION");
    applied_with_a_provider_argument_unknown_at_plan(
        &mut h,
        standin::ecr::REGION,
        "  region = terraform_data.p.output",
        "  copy_method = \"registry\"",
    )
    .await;
}

/// `profile` known only at apply, the ECR endpoint named by that profile alone: a plan
/// with the profile pending never asks the default chain's registry about the mirror.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_profile_is_planned_unknown() {
    let mut h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 43).await;
    for (name, value) in h.world.write_aws_profile("mirrors").unwrap() {
        h.set_env(&name, &value);
    }
    h.unset_env("AWS_ENDPOINT_URL_ECR");
    applied_with_a_provider_argument_unknown_at_plan(
        &mut h,
        "mirrors",
        "  profile = terraform_data.p.output",
        "  copy_method = \"registry\"",
    )
    .await;
}

/// `docker_host` known only at apply: the Docker method uses it then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_docker_host_is_used_at_apply() {
    let mut h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 44).await;
    applied_with_a_provider_argument_unknown_at_plan(
        &mut h,
        "unix:///var/run/docker.sock",
        "  docker_host = terraform_data.p.output",
        "  copy_method = \"docker\"",
    )
    .await;
}

/// `registry_auth` whose password is known only at apply, for a source that refuses
/// anonymous pulls: plans ask the source nothing with half-known credentials (no refusal
/// shown with `track_source`), and the apply pulls with them, by either method.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_registry_auth_is_used_at_apply() {
    let mut h = Harness::start_with(standin::SourceAuth::Basic(standin::front::BasicAuth {
        username: "puller".into(),
        password: "pull-secret".into(),
    }))
    .await;
    h.seed_image("upstream/app", "1.0", 45).await;
    for method in ["registry", "docker"] {
        let run = applied_with_a_provider_argument_unknown_at_plan(
            &mut h,
            "pull-secret",
            "  registry_auth {\n    address  = \"{source}\"\n    username = \"puller\"\n    password = terraform_data.p.output\n  }",
            &format!("  copy_method = \"{method}\"\n  track_source = true"),
        )
        .await;
        assert!(
            !run.output().contains("refused"),
            "{method}: {}",
            run.output()
        );
    }
}

/// A null element in `platforms` is an error on `platforms` at plan; nothing is copied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_null_in_platforms_fails_at_plan() {
    let h = Harness::start().await;
    h.seed_index("upstream/app", "1.0", 46).await;
    h.config(&support::image(
        r#"
  docker_source = "{source}/upstream/app:1.0"
  repository    = "mirror/app"
  copy_method   = "registry"
  platforms     = ["linux/amd64", null]
"#,
    ));
    let run = h.terraform(&["plan", "-input=false", "-no-color"]).await;
    assert!(!run.success, "the plan should fail:\n{}", run.output());
    run.stderr_has("Invalid platforms");
    run.stderr_has("`platforms` holds a null element");
    run.stderr_has("platforms = [\"linux/amd64\", null]");
    assert!(h.ecr_requests().is_empty(), "{:?}", h.ecr_requests());
}

/// A second ECR (another region's, say) beside the harness's, with `mirror/app`, and AWS
/// profiles `one` and `two` whose `endpoint_url`s name the two.
async fn two_registries(h: &mut Harness) -> standin::ecr::EcrEmulator {
    let backend = standin::backend::Backend::start(&h.world.dir().join("ecr-two"))
        .await
        .expect("the second ECR's registry starts");
    let two = standin::ecr::EcrEmulator::start(backend)
        .await
        .expect("the second ECR starts");
    two.state.create_repository(REPO);
    let aws = h.world.dir().join("aws-two-registries");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(
        aws.join("config"),
        format!(
            "[profile one]\nendpoint_url = {}\n\n[profile two]\nendpoint_url = {}\n",
            h.world.ecr.endpoint(),
            two.endpoint()
        ),
    )
    .unwrap();
    std::fs::write(aws.join("credentials"), "").unwrap();
    h.set_env("AWS_CONFIG_FILE", &aws.join("config").display().to_string());
    h.set_env(
        "AWS_SHARED_CREDENTIALS_FILE",
        &aws.join("credentials").display().to_string(),
    );
    h.unset_env("AWS_ENDPOINT_URL_ECR");
    two
}

/// The mirror `ecrmirror_image.test` of `upstream/app:1.0` by `method`, made through the
/// provider alias `alias` (`one` or `two`).
fn through(alias: &str, method: &str) -> String {
    format!(
        r#"
provider "ecrmirror" {{
  alias   = "one"
  profile = "one"
}}

provider "ecrmirror" {{
  alias   = "two"
  profile = "two"
}}

resource "ecrmirror_image" "test" {{
  provider      = ecrmirror.{alias}
  docker_source = "{{source}}/upstream/app:1.0"
  repository    = "mirror/app"
  copy_method   = "{method}"
}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_moved_to_another_registry_is_recorded_there_registry() {
    a_mirror_moved_to_another_registry_is_recorded_there("registry").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_moved_to_another_registry_is_recorded_there_docker() {
    a_mirror_moved_to_another_registry_is_recorded_there("docker").await;
}

/// A mirror moved from `provider = ecrmirror.one` to `ecrmirror.two`: when registry two's
/// tag holds another image, the plan is an update that plans `id`, `image_uri` and
/// `image_uri_digest` anew and warns that registry one's copy stays; the apply copies it
/// there and records registry two. Moved back to one, which holds the same image, it is
/// recorded there without a transfer. A destroy through a provider that cannot reach the
/// mirror's registry leaves both registries' tags and warns.
async fn a_mirror_moved_to_another_registry_is_recorded_there(method: &str) {
    let mut h = Harness::start().await;
    let two = two_registries(&mut h).await;
    let (one_host, two_host) = (h.world.ecr_host(), two.addr.to_string());
    h.seed_image("upstream/app", "1.0", 51).await;
    let token = two.state.issue_token();
    let client = standin::client::Client::new(&two.endpoint(), Some(("AWS".into(), token)));
    let other = standin::images::push_image(
        &client,
        REPO,
        Some("1.0"),
        &standin::images::Spec::small(52),
    )
    .await
    .unwrap();

    h.config(&through("one", method));
    h.apply().await;
    let in_one = h
        .ecr_tag(REPO, "1.0")
        .expect("registry one holds the mirror");
    assert_eq!(h.attr("test", "id").await, format!("{one_host}/{REPO}:1.0"));

    // To registry two, whose tag holds another image.
    h.config(&through("two", method));
    let (plan, changes) = h.plan().await;
    assert!(changes, "moving registry plans nothing:\n{}", plan.stdout);
    plan.stdout_has("1 to change");
    plan.stdout_has("id = \"");
    plan.stdout_has("-> (known after apply)");
    plan.stdout_has(&format!(
        "The mirror mirror/app:1.0 moves to the registry {two_host}"
    ));
    plan.stdout_has(&format!("The copy in {one_host} stays as it is"));
    h.apply().await;
    let in_two = two
        .state
        .tag_digest(REPO, "1.0")
        .expect("registry two holds it");
    assert_ne!(
        in_two, other.manifest_digest,
        "registry two's tag was not mirrored"
    );
    assert_eq!(h.attr("test", "image_digest").await, in_two);
    assert_eq!(h.attr("test", "id").await, format!("{two_host}/{REPO}:1.0"));
    assert_eq!(
        h.attr("test", "image_uri").await,
        format!("{two_host}/{REPO}:1.0")
    );
    assert_eq!(
        h.attr("test", "image_uri_digest").await,
        format!("{two_host}/{REPO}@{in_two}")
    );
    assert_eq!(
        h.ecr_tag(REPO, "1.0"),
        Some(in_one.clone()),
        "registry one's copy stays"
    );
    let (plan, changes) = h.plan().await;
    assert!(!changes, "{}", plan.stdout);

    // Back to registry one, which holds the same image: recorded, nothing transferred.
    h.config(&through("one", method));
    h.clear_logs();
    let (plan, changes) = h.plan().await;
    assert!(changes);
    plan.stdout_has(&format!("moves to the registry {one_host}"));
    h.apply().await;
    assert_eq!(h.attr("test", "id").await, format!("{one_host}/{REPO}:1.0"));
    assert_eq!(h.attr("test", "image_digest").await, in_one);
    assert_eq!(
        h.attr("test", "image_uri_digest").await,
        format!("{one_host}/{REPO}@{in_one}")
    );
    let pushes: Vec<_> = h
        .ecr_requests()
        .into_iter()
        .filter(|r| r.starts_with("PUT ") || r.starts_with("POST "))
        .collect();
    assert!(pushes.is_empty(), "registry one held the image: {pushes:?}");
    let (plan, changes) = h.plan().await;
    assert!(!changes, "{}", plan.stdout);

    // A destroy through registry two's provider cannot reach registry one's mirror.
    h.config(&through("two", method));
    let run = h.destroy().await;
    run.stdout_has(&format!("mirror/app:1.0 stays in the registry {one_host}"));
    assert_eq!(h.ecr_tag(REPO, "1.0"), Some(in_one));
    assert_eq!(two.state.tag_digest(REPO, "1.0"), Some(in_two));
}

/// 26 mirrors of one two-platform index, each to its own tag of one repository, applied at
/// `-parallelism=20`: each platform's manifest is pushed to ECR once (the other mirrors find
/// it there), every mirror succeeds, and ECR's tags all name the index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_of_one_index_push_its_platform_manifests_once() {
    let h = Harness::start().await;
    let (index, platforms) = h.seed_index("upstream/multi", "v1", 940).await;
    h.config(
        r#"
provider "ecrmirror" {}

resource "ecrmirror_image" "alias" {
  for_each      = toset([for n in range(26) : "t${n}"])
  docker_source = "{source}/upstream/multi:v1"
  repository    = "mirror/app"
  tag           = each.key
  copy_method   = "registry"
}
"#,
    );
    h.apply_parallel(20).await;
    let tags = h.world.ecr.state.tags(REPO);
    assert_eq!(tags.len(), 26, "{tags:?}");
    assert!(tags.values().all(|digest| *digest == index), "{tags:?}");
    let requests = h.ecr_requests();
    for platform in &platforms {
        let pushes = requests
            .iter()
            .filter(|r| {
                r.starts_with("PUT ")
                    && r.ends_with(&format!("/manifests/{}", platform.manifest_digest))
            })
            .count();
        assert_eq!(
            pushes, 1,
            "{} pushed {pushes} times",
            platform.manifest_digest
        );
    }
    let (_, changes) = h.plan().await;
    assert!(!changes, "the fleet is settled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_mirrors_of_one_source_never_lose_its_image_to_each_other() {
    // Many mirrors of one source by the Docker engine at once, into several repositories and
    // tags: one mirror's clean-up must not remove the image another is tagging or pushing
    // (a careful-user trial saw one apply in four fail with "could not find image from tag"
    // on a loaded machine).
    let h = Harness::start().await;
    h.seed_image("upstream/same", "1", 91).await;
    for n in 0..3 {
        h.create_repository(&format!("dock/{n}"));
    }
    for round in 0..6 {
        h.config(&format!(
            r#"
provider "ecrmirror" {{
  copy_method = "docker"
}}

resource "ecrmirror_image" "m" {{
  for_each      = toset([for n in range(16) : "r{round}-${{n}}"])
  docker_source = "{{source}}/upstream/same:1"
  repository    = "dock/${{tonumber(split("-", each.key)[1]) % 3}}"
  tag           = each.key
}}
"#
        ));
        h.apply_parallel(16).await;
        // ECR holds exactly the mirrors state holds, repository by repository.
        let resources = h.resources().await;
        for n in 0..3 {
            let repository = format!("dock/{n}");
            let in_state: BTreeMap<String, String> = resources
                .iter()
                .map(|r| &r["values"])
                .filter(|v| v["repository"] == repository.as_str())
                .map(|v| {
                    let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
                    (text("tag"), text("image_digest"))
                })
                .collect();
            assert_eq!(
                h.world.ecr.state.tags(&repository),
                in_state,
                "round {round}: {repository}"
            );
        }
    }
    // The image the provider brought in is gone once the last mirror of it is done.
    let images = support::docker(&["images", "-q", "--filter", "reference=*/upstream/same*"]).await;
    assert_eq!(
        images.trim(),
        "",
        "no image of the source is left in the engine"
    );
}
