//! The stand-in world checked against the real AWS SDK and real registries: the emulator
//! answers as ECR does, its registry demands ECR's credentials, and its faults fire.

use aws_sdk_ecr::error::ProvideErrorMetadata;
use aws_sdk_ecr::types::ImageIdentifier;
use standin::faults::Rule;
use standin::images::{push_image, Spec};
use standin::World;

async fn world() -> (World, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let world = World::start(dir.path()).await.expect("world starts");
    (world, dir)
}

async fn sdk(world: &World) -> aws_sdk_ecr::Client {
    aws_sdk_ecr::Client::new(&world.sdk_config().await)
}

fn tag(tag: &str) -> ImageIdentifier {
    ImageIdentifier::builder().image_tag(tag).build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repositories_and_images_through_the_sdk() {
    let (world, _dir) = world().await;
    let ecr = sdk(&world).await;

    let created = ecr
        .create_repository()
        .repository_name("team/app")
        .send()
        .await
        .unwrap();
    assert_eq!(
        created.repository().unwrap().repository_uri(),
        Some(format!("{}/team/app", world.ecr_host()).as_str())
    );
    let again = ecr
        .create_repository()
        .repository_name("team/app")
        .send()
        .await
        .unwrap_err();
    assert_eq!(again.code(), Some("RepositoryAlreadyExistsException"));
    let missing = ecr
        .describe_repositories()
        .repository_names("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Some("RepositoryNotFoundException"));

    let pushed = push_image(
        &world.ecr_client(),
        "team/app",
        Some("1.0"),
        &Spec::small(1),
    )
    .await
    .unwrap();

    let described = ecr
        .describe_images()
        .repository_name("team/app")
        .image_ids(tag("1.0"))
        .send()
        .await
        .unwrap();
    let detail = &described.image_details()[0];
    assert_eq!(detail.image_digest(), Some(pushed.manifest_digest.as_str()));
    assert_eq!(detail.image_tags(), ["1.0".to_string()]);

    let listed = ecr
        .list_images()
        .repository_name("team/app")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.image_ids().len(), 1);

    let got = ecr
        .batch_get_image()
        .repository_name("team/app")
        .image_ids(tag("1.0"))
        .image_ids(tag("2.0"))
        .send()
        .await
        .unwrap();
    let manifest: serde_json::Value =
        serde_json::from_str(got.images()[0].image_manifest().unwrap()).unwrap();
    assert_eq!(manifest["config"]["digest"], pushed.config_digest.as_str());
    assert_eq!(got.failures().len(), 1);

    let deleted = ecr
        .batch_delete_image()
        .repository_name("team/app")
        .image_ids(tag("1.0"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.image_ids().len(), 1);
    let gone = ecr
        .describe_images()
        .repository_name("team/app")
        .image_ids(tag("1.0"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Some("ImageNotFoundException"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_demands_a_token_and_an_existing_repository() {
    let (world, _dir) = world().await;
    let anonymous = standin::client::Client::new(&world.ecr.endpoint(), None);
    world.ecr.state.create_repository("app");
    assert!(push_image(&anonymous, "app", Some("1"), &Spec::small(2))
        .await
        .is_err());
    let wrong = standin::client::Client::new(
        &world.ecr.endpoint(),
        Some(("AWS".into(), "not-a-token".into())),
    );
    assert!(push_image(&wrong, "app", Some("1"), &Spec::small(2))
        .await
        .is_err());
    let err = push_image(
        &world.ecr_client(),
        "never-created",
        Some("1"),
        &Spec::small(2),
    )
    .await
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("does not exist in the registry"),
        "{err:#}"
    );
    push_image(&world.ecr_client(), "app", Some("1"), &Spec::small(2))
        .await
        .expect("a valid token pushes to an existing repository");

    world.ecr.state.set_bad_tokens(true);
    assert!(
        push_image(&world.ecr_client(), "app", Some("2"), &Spec::small(3))
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_fire_for_the_api_and_the_registry() {
    let (world, _dir) = world().await;
    let ecr = sdk(&world).await;
    world.ecr.state.front().faults.add(Rule {
        count: 1,
        status: Some(500),
        error_type: Some("ServerException".into()),
        message: Some("injected".into()),
        ..Rule::on("DescribeRepositories")
    });
    let failed = ecr.describe_repositories().send().await.unwrap_err();
    assert_eq!(failed.code(), Some("ServerException"));
    ecr.describe_repositories()
        .send()
        .await
        .expect("a counted fault fires only its count");

    world.source.faults.add(Rule {
        count: 1,
        status: Some(429),
        retry_after: Some(7),
        ..Rule::on("registry")
    });
    let response = reqwest::get(format!("http://{}/v2/", world.source_host()))
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    let response = reqwest::get(format!("http://{}/v2/", world.source_host()))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(world.source.log.lock().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creation_templates_create_repositories_on_push_as_ecr_does() {
    use aws_sdk_ecr::types::{ImageTagMutability, RctAppliedFor};
    let (world, _dir) = world().await;
    let ecr = sdk(&world).await;
    let registry = world.ecr_client();

    // No template: a push to a missing repository is refused.
    let refused = push_image(&registry, "mirror/app", Some("1"), &Spec::small(3)).await;
    assert!(format!("{:#}", refused.unwrap_err()).contains("NAME_UNKNOWN"));

    for (prefix, applied_for) in [
        ("mirror", RctAppliedFor::CreateOnPush),
        ("mirror/team", RctAppliedFor::Replication),
        ("ROOT", RctAppliedFor::CreateOnPush),
    ] {
        ecr.create_repository_creation_template()
            .prefix(prefix)
            .applied_for(applied_for)
            .image_tag_mutability(if prefix == "mirror" {
                ImageTagMutability::Immutable
            } else {
                ImageTagMutability::Mutable
            })
            .send()
            .await
            .unwrap();
    }
    let again = ecr
        .create_repository_creation_template()
        .prefix("mirror")
        .applied_for(RctAppliedFor::CreateOnPush)
        .send()
        .await
        .unwrap_err();
    assert_eq!(again.code(), Some("TemplateAlreadyExistsException"));
    let listed = ecr
        .describe_repository_creation_templates()
        .max_results(2)
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await;
    assert_eq!(listed.len(), 3, "every template, over pages of 2");

    // `mirror/team/app` is covered by `mirror` (the `mirror/team` template is not applied
    // for CREATE_ON_PUSH): created immutable, as that template says.
    push_image(&registry, "mirror/team/app", Some("1"), &Spec::small(3))
        .await
        .expect("the push creates the repository");
    let described = ecr
        .describe_repositories()
        .repository_names("mirror/team/app")
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.repositories()[0].image_tag_mutability(),
        Some(&ImageTagMutability::Immutable)
    );
    // `other` falls to ROOT.
    push_image(&registry, "other", Some("1"), &Spec::small(3))
        .await
        .expect("ROOT creates any other repository");

    ecr.delete_repository_creation_template()
        .prefix("ROOT")
        .send()
        .await
        .unwrap();
    let gone = ecr
        .delete_repository_creation_template()
        .prefix("ROOT")
        .send()
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Some("TemplateNotFoundException"));
    let refused = push_image(&registry, "another", Some("1"), &Spec::small(3)).await;
    assert!(refused.is_err(), "without ROOT, `another` is not created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_mount_only_as_ecr_allows() {
    use aws_sdk_ecr::types::{EncryptionConfiguration, EncryptionType};
    let (world, _dir) = world().await;
    let ecr = sdk(&world).await;
    let registry = world.ecr_client();
    for name in ["a", "b"] {
        ecr.create_repository()
            .repository_name(name)
            .send()
            .await
            .unwrap();
    }
    ecr.create_repository()
        .repository_name("sealed")
        .encryption_configuration(
            EncryptionConfiguration::builder()
                .encryption_type(EncryptionType::Kms)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let setting = ecr
        .get_account_setting()
        .name("BLOB_MOUNTING")
        .send()
        .await
        .unwrap();
    assert_eq!(setting.value(), Some("DISABLED"), "ECR's default");

    // A blob uploaded into `a` but referenced by no image there.
    let loose = registry.put_blob("a", b"loose".to_vec()).await.unwrap();
    let pushed = push_image(&registry, "a", Some("1"), &Spec::small(4))
        .await
        .unwrap();
    let layer = &pushed.layer_digests[0];
    assert_eq!(
        registry.mount("b", layer, "a").await.unwrap(),
        202,
        "disabled"
    );

    ecr.put_account_setting()
        .name("BLOB_MOUNTING")
        .value("ENABLED")
        .send()
        .await
        .unwrap();
    assert_eq!(
        registry.mount("b", &loose, "a").await.unwrap(),
        202,
        "unreferenced"
    );
    assert_eq!(
        registry.mount("sealed", layer, "a").await.unwrap(),
        202,
        "other encryption"
    );
    assert_eq!(
        registry.mount("b", layer, "a").await.unwrap(),
        201,
        "mounted"
    );
    assert!(world.ecr.state.has_blob("b", layer).await);
    let invalid = ecr
        .put_account_setting()
        .name("BLOB_MOUNTING")
        .value("SOMETIMES")
        .send()
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Some("ValidationException"));
}
