//! ECR as it is today: a repository creation template applied for `CREATE_ON_PUSH` makes ECR
//! create a missing repository on the first push (the plan says so on `repository`; both
//! methods push), and without one the missing repository is the error it was, whose hint
//! names templates. Blobs are mounted across repositories only where the registry's
//! `BLOB_MOUNTING` setting allows, which the stand-in enforces as ECR does: a family of
//! images mirrored at once uploads its shared base once.

mod support;

use standin::ecr::{Encryption, TagMutability, Template};
use standin::front::Logged;
use standin::images::{push_image, Spec};
use support::{image, Harness};

/// A mirror of `upstream/app:1` into `repository` by `method`.
fn mirror(repository: &str, method: &str) -> String {
    image(&format!(
        r#"
  docker_source = "{{source}}/upstream/app:1"
  repository    = "{repository}"
  tag           = "{method}"
  copy_method   = "{method}"
"#
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_repository_under_a_create_on_push_template_is_created_by_both_methods() {
    let h = Harness::start().await;
    h.seed_image("upstream/app", "1", 501).await;
    let ecr = &h.world.ecr.state;
    ecr.put_template(Template {
        tags: TagMutability::immutable(),
        ..Template::create_on_push("pushed")
    });
    for method in ["registry", "docker"] {
        let repository = format!("pushed/{method}");
        h.config(&mirror(&repository, method));
        let (plan, changes) = h.plan().await;
        assert!(changes);
        plan.stdout_has(&format!(
            "ECR will create repository {repository} on push, from template `pushed`"
        ));
        let applied = h.apply().await;
        applied.stdout_has("Apply complete! Resources: 1 added");
        assert!(h.ecr_tag(&repository, method).is_some(), "{method}");
        // Created with the template's settings.
        let created = ecr
            .tag_mutability(&repository)
            .expect("the repository exists");
        assert_eq!(created, TagMutability::immutable(), "{method}");
        let (again, changes) = h.plan().await;
        assert!(!changes, "{method}: {}", again.output());
        assert!(!again.output().contains("will create repository"));
        h.destroy().await;
        assert_eq!(h.ecr_tag(&repository, method), None);
    }
    // One question about templates per provider process that needed it.
    assert!(ecr.calls()["DescribeRepositoryCreationTemplates"] >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_repository_without_a_template_is_an_error_that_names_templates() {
    let h = Harness::start().await;
    h.seed_image("upstream/app", "1", 502).await;
    // A template for other names, and one applied for replication only.
    h.world
        .ecr
        .state
        .put_template(Template::create_on_push("elsewhere"));
    h.world.ecr.state.put_template(Template {
        applied_for: vec!["REPLICATION".into()],
        ..Template::create_on_push("ROOT")
    });
    for method in ["registry", "docker"] {
        h.config(&mirror("absent/app", method));
        let (plan, _) = h.plan().await;
        plan.stdout_has("ECR repository absent/app does not exist");
        h.clear_logs();
        let failed = h.apply_fails().await;
        failed.stderr_has("ECR repository absent/app does not exist");
        failed.stderr_has("no repository creation template applied for CREATE_ON_PUSH covers");
        failed.stderr_has("create-repository-creation-template");
        assert_eq!(
            h.source_requests(),
            Vec::<String>::new(),
            "{method}: nothing pulled"
        );
    }
    // IAM refuses the question: said, and the repository is still missing.
    h.ecr_faults().add(standin::faults::Rule {
        count: 10,
        error_type: Some("AccessDeniedException".into()),
        message: Some(
            "User is not authorized to perform: ecr:DescribeRepositoryCreationTemplates".into(),
        ),
        ..standin::faults::Rule::on("DescribeRepositoryCreationTemplates")
    });
    h.config(&mirror("absent/app", "registry"));
    let failed = h.apply_fails().await;
    failed.stderr_has("Whether ECR would create it on push is not known");
    failed.stderr_has("IAM refused ecr:DescribeRepositoryCreationTemplates");
}

/// `count` images of one family: a shared base layer of `base` bytes under two layers of
/// their own, each under `upstream/app-<n>:1`; returns the base's digest.
async fn seed_family(h: &Harness, count: usize, base: usize) -> String {
    let mut base_digest = String::new();
    for n in 0..count {
        let spec = Spec {
            layer_size: 16 * 1024,
            ..Spec::small(600 + n as u64).on_base(77, base)
        };
        let pushed = push_image(
            &h.source_client(),
            &format!("upstream/app-{n}"),
            Some("1"),
            &spec,
        )
        .await
        .expect("seeding the family");
        base_digest = pushed.layer_digests[0].clone();
    }
    base_digest
}

/// `count` registry-method mirrors of the family, each into its own repository
/// `<prefix>/<n>`.
fn family_config(count: usize, prefix: &str) -> String {
    format!(
        r#"
provider "ecrmirror" {{
  copy_method = "registry"
}}

resource "ecrmirror_image" "m" {{
  for_each      = toset([for n in range({count}) : tostring(n)])
  docker_source = "{{source}}/upstream/app-${{each.key}}:1"
  repository    = "{prefix}/${{each.key}}"
  tag           = "1"
}}
"#
    )
}

/// What ECR's registry saw of blob `digest`: uploads that committed it (`PUT ?digest=`) and
/// mounts it answered with `201`.
fn fate(log: &[Logged], digest: &str) -> (usize, usize) {
    let query_has = |l: &Logged, what: &str| {
        l.query
            .as_deref()
            .is_some_and(|q| q.replace("%3A", ":").contains(what))
    };
    let uploads = log
        .iter()
        .filter(|l| {
            l.method == "PUT" && l.status == 201 && query_has(l, &format!("digest={digest}"))
        })
        .count();
    let mounts = log
        .iter()
        .filter(|l| {
            l.method == "POST" && l.status == 201 && query_has(l, &format!("mount={digest}"))
        })
        .count();
    (uploads, mounts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_family_uploads_its_base_once_where_the_registry_mounts_and_per_repository_elsewhere() {
    const COUNT: usize = 8;
    let h = Harness::start().await;
    let base = seed_family(&h, COUNT, 1 << 20).await;
    let ecr = &h.world.ecr.state;
    for n in 0..COUNT {
        ecr.create_repository(&format!("off/{n}"));
        ecr.create_repository(&format!("on/{n}"));
    }

    // Disabled (ECR's default): every repository gets its own upload, and no mount is made.
    h.config(&family_config(COUNT, "off"));
    h.clear_logs();
    h.apply_parallel(COUNT).await;
    let log = ecr.front().log.lock().unwrap().clone();
    assert_eq!(
        fate(&log, &base),
        (COUNT, 0),
        "disabled: uploads, not mounts"
    );
    let disabled_bytes: u64 = log.iter().map(|l| l.bytes).sum();

    // Enabled: uploaded once, mounted into every other repository, though all ran at once.
    ecr.put_account_setting("BLOB_MOUNTING", "ENABLED");
    h.config(&family_config(COUNT, "on"));
    h.clear_logs();
    h.apply_parallel(COUNT).await;
    let log = ecr.front().log.lock().unwrap().clone();
    assert_eq!(
        fate(&log, &base),
        (1, COUNT - 1),
        "enabled: one upload, the rest mounted"
    );
    let enabled_bytes: u64 = log.iter().map(|l| l.bytes).sum();
    assert!(
        enabled_bytes + (COUNT as u64 - 2) * (1 << 20) < disabled_bytes,
        "enabled {enabled_bytes} bytes, disabled {disabled_bytes}"
    );
    for n in 0..COUNT {
        assert!(
            ecr.has_blob(&format!("on/{n}"), &base).await,
            "on/{n} holds the base"
        );
    }
    let (_, changes) = h.plan().await;
    assert!(!changes);

    // IAM refuses GetAccountSetting: mounts are tried, and where ECR declines one (the
    // setting is disabled again) its upload session takes the blob, with no second POST.
    ecr.put_account_setting("BLOB_MOUNTING", "DISABLED");
    h.ecr_faults().add(standin::faults::Rule {
        count: 10,
        error_type: Some("AccessDeniedException".into()),
        ..standin::faults::Rule::on("GetAccountSetting")
    });
    for n in 0..COUNT {
        ecr.create_repository(&format!("unknown/{n}"));
    }
    h.config(&family_config(COUNT, "unknown"));
    h.clear_logs();
    h.apply_parallel(COUNT).await;
    let log = ecr.front().log.lock().unwrap().clone();
    assert_eq!(fate(&log, &base), (COUNT, 0), "declined mounts: uploads");
    let tried = log
        .iter()
        .filter(|l| l.query.as_deref().is_some_and(|q| q.contains("mount=")))
        .count();
    assert!(tried >= COUNT - 1, "mounts were tried: {tried}");
    let begun = log.iter().filter(|l| l.method == "POST").count();
    let committed = log
        .iter()
        .filter(|l| l.method == "PUT" && l.path.contains("/blobs/uploads/"))
        .count();
    assert_eq!(begun, committed, "one POST per blob committed");

    // A repository encrypted otherwise cannot mount: the base is uploaded there.
    ecr.put_account_setting("BLOB_MOUNTING", "ENABLED");
    ecr.create_repository("enc/0");
    ecr.create_encrypted_repository(
        "enc/1",
        Encryption::kms("arn:aws:kms:eu-west-1:123456789012:key/k"),
    );
    h.config(&family_config(2, "enc"));
    h.clear_logs();
    h.apply_parallel(2).await;
    let log = ecr.front().log.lock().unwrap().clone();
    assert_eq!(fate(&log, &base), (2, 0), "unlike encryption: each uploads");
    let mount_tried = log
        .iter()
        .any(|l| l.query.as_deref().is_some_and(|q| q.contains("mount=")));
    assert!(
        !mount_tried,
        "no mount is tried between repositories encrypted otherwise"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docker_engine_mounts_only_where_the_registry_allows() {
    let h = Harness::start().await;
    seed_family(&h, 2, 256 << 10).await;
    let ecr = &h.world.ecr.state;
    let config = |prefix: &str| {
        format!(
            r#"
provider "ecrmirror" {{
  copy_method = "docker"
}}

resource "ecrmirror_image" "m" {{
  for_each      = toset(["0", "1"])
  docker_source = "{{source}}/upstream/app-${{each.key}}:1"
  repository    = "{prefix}/${{each.key}}"
  tag           = "1"
}}
"#
        )
    };
    // The engine pushes one image after the other (one source at a time, -parallelism=1),
    // so for the second it knows the registry holds the base in the first repository.
    for (setting, prefix) in [("DISABLED", "off"), ("ENABLED", "on")] {
        ecr.put_account_setting("BLOB_MOUNTING", setting);
        ecr.create_repository(&format!("{prefix}/0"));
        ecr.create_repository(&format!("{prefix}/1"));
        h.config(&config(prefix));
        h.clear_logs();
        h.apply_parallel(1).await;
        let log = ecr.front().log.lock().unwrap().clone();
        let tries: Vec<&Logged> = log
            .iter()
            .filter(|l| l.method == "POST")
            .filter(|l| l.query.as_deref().is_some_and(|q| q.contains("mount=")))
            .collect();
        let mounted = tries.iter().filter(|l| l.status == 201).count();
        assert!(
            !tries.is_empty(),
            "{setting}: the engine tries to mount the base"
        );
        if setting == "DISABLED" {
            assert_eq!(mounted, 0, "a disabled registry mounts nothing");
        } else {
            assert!(mounted >= 1, "an enabled registry mounts the base");
        }
        for n in 0..2 {
            let tag = h.ecr_tag(&format!("{prefix}/{n}"), "1");
            assert!(tag.is_some(), "{setting}: {prefix}/{n} mirrored");
        }
        h.destroy().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_mirror_holds_the_others_up_no_longer_than_half_their_time() {
    const COUNT: usize = 4;
    let h = Harness::start().await;
    let base = seed_family(&h, COUNT, 256 << 10).await;
    let ecr = &h.world.ecr.state;
    ecr.put_account_setting("BLOB_MOUNTING", "ENABLED");
    for n in 0..COUNT {
        ecr.create_repository(&format!("slow/{n}"));
    }
    // The mirror into slow/0 reaches the base first (the others' sources answer late), and
    // its uploads crawl.
    for n in 1..COUNT {
        h.source_faults().add(standin::faults::Rule {
            count: 100,
            delay_ms: 1000,
            ..standin::faults::Rule::on(&format!("registry:GET:/v2/upstream/app-{n}/manifests"))
        });
    }
    h.ecr_faults().add(standin::faults::Rule {
        count: 100,
        delay_ms: 7000,
        ..standin::faults::Rule::on("registry:PUT:/v2/slow/0/blobs")
    });
    h.config(&format!(
        r#"
provider "ecrmirror" {{
  copy_method = "registry"
}}

resource "ecrmirror_image" "first" {{
  docker_source = "{{source}}/upstream/app-0:1"
  repository    = "slow/0"
  tag           = "1"
}}

resource "ecrmirror_image" "m" {{
  for_each      = toset([for n in range(1, {COUNT}) : tostring(n)])
  docker_source = "{{source}}/upstream/app-${{each.key}}:1"
  repository    = "slow/${{each.key}}"
  tag           = "1"
  timeouts {{
    create = "5s"
  }}
}}
"#
    ));
    h.apply_parallel(COUNT).await;
    let log = ecr.front().log.lock().unwrap().clone();
    for n in 1..COUNT {
        assert!(h.ecr_tag(&format!("slow/{n}"), "1").is_some(), "slow/{n}");
        let uploaded = log.iter().any(|l| {
            l.method == "PUT"
                && l.path.starts_with(&format!("/v2/slow/{n}/blobs/uploads/"))
                && l.query
                    .as_deref()
                    .is_some_and(|q| q.replace("%3A", ":").contains(&base))
        });
        assert!(
            uploaded,
            "slow/{n} stopped waiting and uploaded the base itself"
        );
    }
}
