//! The provider's adapters against the real local Docker engine and the stand-in world:
//! the ECR adapter (token cache, confirmed absence, idempotent untag) and the Docker
//! transfer (what it reports, and that it leaves the user's own local images alone).

mod support;

use ecrmirror::credentials::Credentials;
use ecrmirror::ecr::{Ecr, TagLookup, TagMutability};
use ecrmirror::error::Error;
use ecrmirror::reference::SourceRef;
use ecrmirror::transfer::docker::DockerTransfer;
use ecrmirror::transfer::{Job, Target, Transfer};
use standin::images::{push_image, Spec};
use standin::World;
use support::docker;

async fn world() -> (World, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let world = World::start(dir.path()).await.expect("world starts");
    world.ecr.state.create_repository("mirror/app");
    (world, dir)
}

async fn ecr(world: &World) -> Ecr {
    Ecr::new(
        aws_sdk_ecr::Client::new(&world.sdk_config().await),
        &world.ecr.endpoint(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecr_adapter_caches_tokens_and_confirms_absence() {
    let (world, _dir) = world().await;
    let ecr = ecr(&world).await;

    let first = ecr.login(None).await.unwrap();
    let second = ecr.login(None).await.unwrap();
    assert_eq!(first.host, world.ecr_host());
    assert_eq!(first.password, second.password);
    assert_eq!(world.ecr.state.calls()["GetAuthorizationToken"], 1);

    let repository = ecr.repository(None, "mirror/app").await.unwrap();
    assert_eq!(repository.registry_id, "123456789012");
    assert_eq!(repository.tags, TagMutability::Mutable);
    world.ecr.state.set_tag_mutability(
        "mirror/app",
        standin::ecr::TagMutability {
            setting: "IMMUTABLE_WITH_EXCLUSION".into(),
            exclusions: vec!["dev-*".into()],
        },
    );
    let repository = ecr.repository(None, "mirror/app").await.unwrap();
    assert_eq!(
        repository.tags,
        TagMutability::ImmutableExcept(vec!["dev-*".into()])
    );
    assert!(repository.tags.immutable("1.0") && !repository.tags.immutable("dev-2"));
    world
        .ecr
        .state
        .set_tag_mutability("mirror/app", Default::default());
    assert!(matches!(
        ecr.repository(None, "missing").await,
        Err(Error::RepositoryNotFound { .. })
    ));
    assert_eq!(
        ecr.lookup_tag(None, "missing", "1").await.unwrap(),
        TagLookup::Missing
    );
    assert_eq!(
        ecr.lookup_tag(None, "mirror/app", "1").await.unwrap(),
        TagLookup::Missing
    );
    let pushed = push_image(
        &world.ecr_client(),
        "mirror/app",
        Some("1"),
        &Spec::small(61),
    )
    .await
    .unwrap();
    assert_eq!(
        ecr.lookup_tag(None, "mirror/app", "1").await.unwrap(),
        TagLookup::Found {
            digest: pushed.manifest_digest
        }
    );
    ecr.untag(None, "mirror/app", "1").await.unwrap();
    ecr.untag(None, "mirror/app", "1")
        .await
        .expect("untagging twice is fine");
    ecr.untag(None, "missing", "1")
        .await
        .expect("a missing repository is fine");
    assert_eq!(
        ecr.lookup_tag(None, "mirror/app", "1").await.unwrap(),
        TagLookup::Missing
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_transfer_reports_digests_and_restores_the_users_tags() {
    let (world, _dir) = world().await;
    let ecr = ecr(&world).await;
    let login = ecr.login(None).await.unwrap();
    let source_client = world.source_client(None);
    let mirrored = push_image(&source_client, "upstream/app", Some("1"), &Spec::small(62))
        .await
        .unwrap();
    push_image(&source_client, "upstream/own", Some("1"), &Spec::small(63))
        .await
        .unwrap();

    // The user has their own image under the very name the mirror uses locally.
    let own = format!("{}/upstream/own:1", world.source_host());
    let target_ref = format!("{}/mirror/app:1", world.ecr_host());
    docker(&["pull", "-q", &own]).await;
    docker(&["tag", &own, &target_ref]).await;
    let own_id = docker(&["image", "inspect", "--format", "{{.Id}}", &target_ref]).await;

    let source = SourceRef::parse(&format!("{}/upstream/app:1", world.source_host())).unwrap();
    let job = Job {
        source: &source,
        platform: None,
        resolved: None,
        source_credentials: None,
        target: Target {
            host: login.host.clone(),
            repository: "mirror/app".into(),
            tag: "1".into(),
            blobs: Default::default(),
        },
        target_credentials: Credentials::Basic {
            server: login.host.clone(),
            username: login.username.clone(),
            password: login.password.clone(),
        },
    };
    let copied = DockerTransfer::new(None, Default::default())
        .copy(&job)
        .await
        .unwrap();
    assert_eq!(
        copied.source_digest.as_deref(),
        Some(mirrored.manifest_digest.as_str())
    );
    let served = world
        .ecr_client()
        .require_manifest("mirror/app", "1")
        .await
        .unwrap();
    assert_eq!(
        copied.pushed_digest.as_deref(),
        Some(served.digest.as_str())
    );
    assert_eq!(served.config_digest(), Some(mirrored.config_digest.clone()));

    // The user's tag points at their image again; the pulled source was removed.
    let after = docker(&["image", "inspect", "--format", "{{.Id}}", &target_ref]).await;
    assert_eq!(after, own_id);
    let listed = docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]).await;
    assert!(
        !listed.contains(&format!("{}/upstream/app", world.source_host())),
        "{listed}"
    );
    docker(&["rmi", &target_ref, &own]).await;
}
