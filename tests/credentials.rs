//! Credentials: source registries through `registry_auth` and the Docker config file, AWS
//! through a named profile, and no secret ever in state, plan output or logs.

mod support;

use base64::Engine;
use standin::front::BasicAuth;
use standin::SourceAuth;
use support::{image, Harness};

const USER: &str = "mirror-bot";
const PASSWORD: &str = "s3cr3t-source-pass";

fn user() -> BasicAuth {
    BasicAuth {
        username: USER.into(),
        password: PASSWORD.into(),
    }
}

/// The private source's `private/app:1.0` mirrored into `mirror/app`.
const PRIVATE_APP: &str = r#"
  docker_source = "{source}/private/app:1.0"
  repository    = "mirror/app"
"#;

/// `PRIVATE_APP` and `more` arguments, with the source's credentials in a `registry_auth`
/// block whose password comes from a sensitive variable (`TF_VAR_source_password`).
fn with_registry_auth(more: &str) -> String {
    format!(
        r#"{}
resource "ecrmirror_image" "test" {{
  docker_source = "{{source}}/private/app:1.0"
  repository    = "mirror/app"
{more}
}}
"#,
        support::provider_with_registry_auth(USER)
    )
}

/// The source's credentials in the Docker config file's `auths`, as `docker login` writes them.
fn write_docker_login(h: &Harness) {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let config = serde_json::json!({"auths": {h.world.source_host(): {"auth": auth}}});
    std::fs::write(h.docker_config().join("config.json"), config.to_string()).unwrap();
}

fn source_auth() -> SourceAuth {
    SourceAuth::Basic(user())
}

/// A credential helper as `docker login` would configure one (`credHelpers`):
/// `docker-credential-standin`, on the `PATH` Terraform (and so the provider) runs with,
/// answering for the source with `username` and `secret`.
fn install_credential_helper(h: &mut Harness, username: &str, secret: &str) {
    use std::os::unix::fs::PermissionsExt;
    let bin = h.work().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-standin");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{username}\",\"Secret\":\"{secret}\"}}' \"$server\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    h.set_env("PATH", &path);
    let config = serde_json::json!({"credHelpers": {h.world.source_host(): "standin"}});
    std::fs::write(h.docker_config().join("config.json"), config.to_string()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_auth_works_and_no_secret_reaches_state_or_trace_logs() {
    let mut h = Harness::start_with(source_auth()).await;
    h.seed_image("private/app", "1.0", 51).await;
    h.var("source_password", Some(PASSWORD));
    h.config(&with_registry_auth(""));
    h.set_env("TF_LOG", "TRACE");

    let apply = h.apply().await;
    let (plan, changes) = h.plan().await;
    assert!(!changes);
    let destroy = h.destroy().await;

    // The same through the log file tf-provider would otherwise fill with every crate's
    // trace events.
    let log_file = h.work().join("plugin.log");
    h.set_env("PLUGIN_LOG_FILE", &log_file.display().to_string());
    let again = h.apply().await;
    h.destroy().await;
    let file_log = std::fs::read_to_string(&log_file).expect("the provider wrote its log file");
    assert!(file_log.contains("\"@module\":\"ecrmirror\""), "{file_log}");

    let tokens = h.ecr_tokens();
    assert!(!tokens.is_empty(), "no ECR token was handed out");
    // The provider's own trace lines are in the captured log, so the check below reads them.
    assert!(
        apply.stderr.contains("\"@module\":\"ecrmirror\""),
        "no provider logs captured"
    );
    let mut haystacks = vec![
        ("apply output", apply.output()),
        ("plan output", plan.output()),
        ("destroy output", destroy.output()),
        ("state", h.state_file()),
        ("second apply output", again.output()),
        ("plugin log file", file_log),
    ];
    let backup = h.work().join("terraform.tfstate.backup");
    haystacks.push((
        "state backup",
        std::fs::read_to_string(backup).unwrap_or_default(),
    ));
    for (what, text) in &haystacks {
        assert!(
            !text.contains(PASSWORD),
            "the source password is in the {what}"
        );
        for token in &tokens {
            let encoded = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{token}"));
            assert!(
                !text.contains(token.as_str()),
                "an ECR token is in the {what}"
            );
            assert!(
                !text.contains(&encoded),
                "an encoded ECR token is in the {what}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_source_without_credentials_says_how_to_give_them() {
    let h = Harness::start_with(source_auth()).await;
    h.seed_image("private/app", "1.0", 52).await;
    h.config(&image(PRIVATE_APP));
    let run = h.apply_fails().await;
    run.stderr_has("registry_auth");
    assert!(h.resources().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_config_file_credentials_are_used() {
    let h = Harness::start_with(source_auth()).await;
    h.seed_image("private/app", "1.0", 53).await;
    write_docker_login(&h);
    h.config(&image(PRIVATE_APP));
    h.apply().await;
    assert!(h.ecr_manifest("mirror/app", "1.0").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_profile_with_endpoint_url_and_clear_profile_errors() {
    let mut h = Harness::start().await;
    h.seed_image("upstream/app", "1.0", 54).await;
    for name in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "AWS_ENDPOINT_URL_ECR",
    ] {
        h.unset_env(name);
    }
    for (name, value) in h.world.write_aws_profile("standin").unwrap() {
        h.set_env(&name, &value);
    }
    let with_profile = |profile: &str| {
        format!(
            r#"
provider "ecrmirror" {{
  profile = "{profile}"
}}

resource "ecrmirror_image" "test" {{
  docker_source = "{{source}}/upstream/app:1.0"
  repository    = "mirror/app"
}}
"#
        )
    };
    h.config(&with_profile("nope"));
    let run = h.terraform(&["plan", "-input=false", "-no-color"]).await;
    assert!(!run.success);
    run.stderr_has("AWS profile `nope` not found");
    run.stderr_has("Profiles found: standin");

    // AWS_PROFILE, with no `profile` argument, is checked the same way.
    h.config(&image(
        r#"
  docker_source = "{source}/upstream/app:1.0"
  repository    = "mirror/app"
"#,
    ));
    h.set_env("AWS_PROFILE", "gone");
    let run = h.terraform(&["plan", "-input=false", "-no-color"]).await;
    assert!(!run.success);
    run.stderr_has("AWS profile `gone` not found")
        .stderr_has("The environment variable AWS_PROFILE names it")
        .stderr_has("Profiles found: standin")
        .stderr_has("Unset AWS_PROFILE");
    h.set_env("AWS_PROFILE", "standin");
    let (run, changes) = h.plan().await;
    assert!(changes, "{}", run.output());
    h.unset_env("AWS_PROFILE");

    // The profile gives region, keys and the endpoint (`endpoint_url`) of the emulator.
    h.config(&with_profile("standin"));
    h.apply().await;
    assert!(h.ecr_manifest("mirror/app", "1.0").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_region_is_reported_on_region() {
    let mut h = Harness::start().await;
    h.unset_env("AWS_REGION");
    h.set_env("AWS_CONFIG_FILE", "/nonexistent/aws-config");
    h.set_env(
        "AWS_SHARED_CREDENTIALS_FILE",
        "/nonexistent/aws-credentials",
    );
    h.config(&image(
        r#"
  docker_source = "nginx:1.27"
  repository    = "mirror/app"
"#,
    ));
    let run = h.terraform(&["plan", "-input=false", "-no-color"]).await;
    assert!(!run.success);
    run.stderr_has("No AWS region");
    run.stderr_has("AWS_REGION");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_config_credential_helpers_are_used() {
    let mut h = Harness::start_with(source_auth()).await;
    h.seed_image("private/app", "1.0", 55).await;
    install_credential_helper(&mut h, USER, PASSWORD);
    h.config(&image(PRIVATE_APP));
    h.apply().await;
    assert!(h.ecr_manifest("mirror/app", "1.0").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_token_source_is_pulled_tracked_and_adopted() {
    // Docker Hub's flow: 401 with a Bearer challenge, a token from the realm for the
    // registry_auth credentials, then the request again with the token.
    let mut h = Harness::start_with(SourceAuth::Token(user())).await;
    h.seed_image("private/app", "1.0", 56).await;
    h.var("source_password", Some(PASSWORD));
    h.config(&with_registry_auth("  track_source  = true"));
    h.apply().await;
    assert!(h.ecr_manifest("mirror/app", "1.0").await.is_some());

    // track_source's HEAD goes through the same flow: no warning, no change.
    let (run, changes) = h.plan().await;
    assert!(!changes);
    assert!(
        !run.stdout.contains("Warning: Cannot query"),
        "{}",
        run.stdout
    );
    let moved = h.seed_image("private/app", "1.0", 57).await;
    let (run, changes) = h.plan().await;
    assert!(changes);
    run.stdout_has(&moved.manifest_digest);
    h.apply().await;

    // And so do the adoption checks: a lost state is adopted without pulling a blob.
    std::fs::remove_file(h.work().join("terraform.tfstate")).unwrap();
    h.clear_logs();
    h.apply().await;
    let blobs: Vec<_> = h
        .source_requests()
        .into_iter()
        .filter(|r| r.contains("/blobs/"))
        .collect();
    assert!(blobs.is_empty(), "pulled {blobs:?}");
}

/// A `registry_auth` password the source refuses is told apart from missing credentials:
/// the advice is to check the credentials given, not to give some.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_registry_auth_password_says_to_check_it() {
    for method in ["docker", "registry"] {
        let mut h = Harness::start_with(source_auth()).await;
        h.seed_image("private/app", "1.0", 58).await;
        h.var("source_password", Some("not-the-password"));
        h.config(&with_registry_auth(&format!(
            r#"  copy_method   = "{method}""#
        )));
        let run = h.apply_fails().await;
        run.stderr_has("The source registry refused to serve")
            .stderr_has("refused the credentials the provider has for it")
            .stderr_has("check the user name, the password or token");
        assert!(
            !run.stderr.contains("Give credentials"),
            "{method}: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("not-the-password"), "{method}");
        assert!(h.resources().await.is_empty(), "{method}");
    }
}

/// The source sends blob downloads to "storage" on another origin (another port), as
/// Docker Hub and ECR send them to signed storage URLs: the copy follows, the source's
/// credentials go to the source only, and the storage gets no `Authorization`. A redirect to
/// plain HTTP on another host is refused, with the signed URL's secret left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_stay_with_their_registry_when_blob_downloads_are_redirected() {
    let mut h = Harness::start_with(source_auth()).await;
    h.seed_image("private/app", "1.0", 135).await;
    let (storage, storage_addr) = standin::front::beside(&h.world.source.backend, None)
        .await
        .unwrap();
    h.world
        .source
        .redirect_blobs_to(Some(format!("http://{storage_addr}")));
    h.var("source_password", Some(PASSWORD));
    h.config(&with_registry_auth("  copy_method = \"registry\""));
    h.clear_logs();
    h.apply().await;

    let downloads = storage.log.lock().unwrap().clone();
    assert!(
        downloads
            .iter()
            .any(|r| r.method == "GET" && r.status == 200),
        "the blobs came from storage: {downloads:?}"
    );
    assert!(
        downloads.iter().all(|r| !r.authorized),
        "Authorization reached the storage host: {downloads:?}"
    );
    let source = h.world.source.log.lock().unwrap().clone();
    let redirected: Vec<_> = source.iter().filter(|r| r.status == 307).collect();
    assert!(!redirected.is_empty(), "{source:?}");
    assert!(redirected.iter().all(|r| r.authorized));

    // To plain HTTP on a host other than this machine: refused before any connection.
    h.world
        .source
        .redirect_blobs_to(Some("http://storage.example.invalid".into()));
    h.seed_image("private/other", "1.0", 136).await;
    h.config(&format!(
        r#"{}
resource "ecrmirror_image" "other" {{
  docker_source = "{{source}}/private/other:1.0"
  repository    = "mirror/app"
  tag           = "other"
  copy_method   = "registry"
}}
"#,
        support::provider_with_registry_auth(USER)
    ));
    let run = h.apply_fails().await;
    run.stderr_has("over plain HTTP")
        .stderr_has("storage.example.invalid")
        .stderr_has("use plain HTTP for")
        .stderr_has("Have the registry serve and redirect to HTTPS URLs");
    assert!(!run.output().contains("standin-signed-url-secret"));
    assert!(
        !run.output().contains("does not resolve"),
        "{}",
        run.output()
    );
}

/// Where the provider finds the source's credentials, in [`credentials_go_to_their_registry_only`].
#[derive(Clone, Copy, Debug)]
enum Given {
    RegistryAuth,
    DockerConfig,
}

/// A source's credentials (a `registry_auth` block, or the Docker config file's `auths`) go
/// to that source and to no other: a second source that asks for credentials of its own
/// (a `401` with a Basic challenge) never receives the first one's, with either copy
/// method, and its mirror fails saying to give credentials for it. The first source did get
/// them (the check can fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_go_to_their_registry_only() {
    for (method, given) in [
        ("registry", Given::RegistryAuth),
        ("docker", Given::RegistryAuth),
        ("registry", Given::DockerConfig),
        ("docker", Given::DockerConfig),
    ] {
        let mut h = Harness::start_with(source_auth()).await;
        h.seed_image("private/app", "1.0", 140).await;
        // The other source serves the same images, behind another user's password.
        let theirs = BasicAuth {
            username: "someone-else".into(),
            password: "their-password".into(),
        };
        let (other, other_addr) =
            standin::front::beside(&h.world.source.backend, Some(Box::new(theirs)))
                .await
                .unwrap();
        let provider = match given {
            Given::RegistryAuth => {
                h.var("source_password", Some(PASSWORD));
                support::provider_with_registry_auth(USER)
            }
            Given::DockerConfig => {
                write_docker_login(&h);
                String::new()
            }
        };
        h.config(&format!(
            r#"{provider}
resource "ecrmirror_image" "mine" {{
  docker_source = "{{source}}/private/app:1.0"
  repository    = "mirror/app"
  tag           = "mine"
  copy_method   = "{method}"
}}

resource "ecrmirror_image" "theirs" {{
  docker_source = "{other_addr}/private/app:1.0"
  repository    = "mirror/app"
  tag           = "theirs"
  copy_method   = "{method}"
}}
"#
        ));
        h.clear_logs();
        let run = h.apply_fails().await;
        let case = format!("{method}, {given:?}");
        run.stderr_has("The source registry refused to serve")
            .stderr_has(&other_addr.to_string())
            .stderr_has("registry_auth");
        assert!(h.ecr_tag("mirror/app", "mine").is_some(), "{case}");
        assert_eq!(h.ecr_tag("mirror/app", "theirs"), None, "{case}");
        let asked = other.log.lock().unwrap().clone();
        assert!(
            !asked.is_empty(),
            "{case}: the other source was never asked"
        );
        assert!(
            asked.iter().all(|r| !r.authorized && r.status == 401),
            "{case}: the other source received credentials: {asked:#?}"
        );
        let source = h.world.source.log.lock().unwrap().clone();
        assert!(
            source.iter().any(|r| r.authorized && r.status == 200),
            "{case}: the credentials never reached their own source: {source:#?}"
        );
        assert!(!run.output().contains(PASSWORD), "{case}");
    }
}

/// ECR's push password goes to the registry GetAuthorizationToken named and nowhere else:
/// when ECR's registry hands out upload sessions on another origin (an upload service, as
/// the distribution spec allows), the upload goes there without `Authorization` (the
/// session's state in its URL is what that service takes), and the mirror completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ecr_password_goes_to_the_proxy_endpoint_only() {
    let h = Harness::start().await;
    let seeded = h.seed_image("upstream/app", "1.0", 141).await;
    let ecr = h.world.ecr.state.front();
    let (uploads, uploads_addr) = standin::front::beside(&ecr.backend, None).await.unwrap();
    ecr.relocate_uploads_to(Some(format!("http://{uploads_addr}")));
    h.config(&image(
        r#"
  docker_source = "{source}/upstream/app:1.0"
  repository    = "mirror/app"
  copy_method   = "registry"
"#,
    ));
    h.clear_logs();
    h.apply().await;

    let uploaded = uploads.log.lock().unwrap().clone();
    assert!(
        uploaded
            .iter()
            .any(|r| r.method == "PUT" && r.path.contains("/blobs/uploads/") && r.status == 201),
        "the blobs were not uploaded to the upload service: {uploaded:#?}"
    );
    assert!(
        uploaded.iter().all(|r| !r.authorized),
        "ECR's password reached the upload service: {uploaded:#?}"
    );
    let asked = ecr.log.lock().unwrap().clone();
    assert!(
        asked
            .iter()
            .any(|r| r.method == "POST" && r.authorized && r.status == 202),
        "{asked:#?}"
    );
    assert_eq!(
        h.ecr_tag("mirror/app", "1.0"),
        Some(seeded.manifest_digest.clone())
    );
    assert_eq!(h.attr("test", "image_digest").await, seeded.manifest_digest);

    // An upload service over plain HTTP on another machine: refused before any connection.
    ecr.relocate_uploads_to(Some("http://uploads.example.invalid".into()));
    let other = h.seed_image("upstream/app", "2.0", 142).await;
    h.config(&image(
        r#"
  docker_source = "{source}/upstream/app:2.0"
  repository    = "mirror/app"
  copy_method   = "registry"
"#,
    ));
    let run = h.apply_fails().await;
    run.stderr_has("over plain HTTP")
        .stderr_has("uploads.example.invalid")
        .stderr_has("Have the registry serve and redirect to HTTPS URLs");
    assert!(
        !run.output().contains("does not resolve"),
        "{}",
        run.output()
    );
    assert_ne!(h.ecr_tag("mirror/app", "2.0"), Some(other.manifest_digest));
}

/// The identity token (an OAuth2 refresh token) the source's token service takes.
const REFRESH_TOKEN: &str = "standin-refresh-token-7c41d";

/// An identity token the source's token service never issued (a login that expired).
const STALE_REFRESH_TOKEN: &str = "standin-stale-refresh-token-e08b2";

/// A source whose token service takes only the OAuth2 exchange of [`REFRESH_TOKEN`]: no
/// basic credentials, no anonymous tokens (as Azure Container Registry after `az acr login`).
fn refresh_token_source() -> SourceAuth {
    SourceAuth::RefreshToken(REFRESH_TOKEN.into())
}

/// The Docker config file's `auths` holding `token` as the source's identity token, as
/// `docker login` writes it for a registry whose token service hands out refresh tokens.
fn write_identity_token(h: &Harness, token: &str) {
    let config = serde_json::json!({"auths": {h.world.source_host(): {"identitytoken": token}}});
    std::fs::write(h.docker_config().join("config.json"), config.to_string()).unwrap();
}

/// The private source's `private/app:1.0` mirrored by the registry method with
/// `track_source`, and by the Docker engine (which makes the same exchange, as `docker`),
/// and looked up by `ecrmirror_source`, whose digest is an output.
const MIRROR_AND_LOOKUP: &str = r#"
provider "ecrmirror" {}

resource "ecrmirror_image" "test" {
  docker_source = "{source}/private/app:1.0"
  repository    = "mirror/app"
  copy_method   = "registry"
  track_source  = true
}

data "ecrmirror_source" "app" {
  docker_source = "{source}/private/app:1.0"
}

resource "ecrmirror_image" "engine" {
  docker_source = "{source}/private/app:1.0"
  repository    = "mirror/app"
  tag           = "engine"
  copy_method   = "docker"
}

output "digest" {
  value = data.ecrmirror_source.app.digest
}
"#;

/// Asserts that none of `secrets` is in any of `haystacks` (what, text).
fn assert_no_secret(haystacks: &[(&str, String)], secrets: &[String]) {
    for (what, text) in haystacks {
        for secret in secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{secret:?} is in the {what}"
            );
        }
    }
}

/// Mirrors and looks up `private/app:1.0` (seeded with `seed`) through [`MIRROR_AND_LOOKUP`]
/// with the source's identity token wherever the Docker config file gives it, with the
/// provider's trace logs on: the copy, the lookup and `track_source`'s plan all get their
/// tokens by the OAuth2 exchange, and neither the identity token nor a token bought with it
/// reaches output, state or logs.
async fn mirror_and_look_up_with_identity_token(h: &mut Harness, seed: u64) {
    let seeded = h.seed_image("private/app", "1.0", seed).await;
    h.clear_logs();
    h.config(MIRROR_AND_LOOKUP);
    h.set_env("TF_LOG", "TRACE");
    let log_file = h.work().join("plugin.log");
    h.set_env("PLUGIN_LOG_FILE", &log_file.display().to_string());
    let apply = h.apply().await;
    assert_eq!(
        h.ecr_tag("mirror/app", "1.0"),
        Some(seeded.manifest_digest.clone())
    );
    assert!(h.ecr_tag("mirror/app", "engine").is_some());
    assert_eq!(
        h.outputs().await["digest"],
        serde_json::json!(seeded.manifest_digest)
    );
    // track_source's HEAD goes through the same exchange: no warning, no change.
    let (plan, changes) = h.plan().await;
    assert!(!changes, "{}", plan.stdout);
    assert!(
        !plan.stdout.contains("Warning: Cannot query"),
        "{}",
        plan.stdout
    );

    let issuer = h.world.issuer.clone().expect("a token service");
    let exchanges = issuer.exchanges();
    let made_by = |client: &str| {
        exchanges
            .iter()
            .any(|e| e.client_id.as_deref() == Some(client))
    };
    assert!(
        made_by("terraform-provider-ecrmirror") && made_by("docker"),
        "{exchanges:?}"
    );
    for exchange in &exchanges {
        assert!(exchange.accepted, "{exchange:?}");
        assert_eq!(
            exchange.scope.as_deref(),
            Some("repository:private/app:pull")
        );
    }
    let mut secrets = issuer.issued();
    secrets.push(REFRESH_TOKEN.into());
    let haystacks = [
        ("apply output", apply.output()),
        ("plan output", plan.output()),
        ("state", h.state_file()),
        (
            "plugin log file",
            std::fs::read_to_string(&log_file).expect("the provider wrote its log file"),
        ),
    ];
    assert_no_secret(&haystacks, &secrets);
}

/// An `identitytoken` in the Docker config file (what `docker login` saves for a registry
/// whose token service hands out refresh tokens) is used as Docker uses it, as the refresh
/// token of the registry's OAuth2 token exchange, not dropped for anonymous pulls: a private
/// image is mirrored by the registry method, looked up, and tracked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_config_identity_token_is_exchanged_for_tokens_as_docker_does() {
    let mut h = Harness::start_with(refresh_token_source()).await;
    write_identity_token(&h, REFRESH_TOKEN);
    mirror_and_look_up_with_identity_token(&mut h, 160).await;
}

/// A credential helper that answers with the user `<token>` (Azure's after `az acr login`,
/// Harbor's, Artifactory's) gives an identity token, used as the Docker config file's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_helper_token_login_is_an_identity_token() {
    let mut h = Harness::start_with(refresh_token_source()).await;
    install_credential_helper(&mut h, "<token>", REFRESH_TOKEN);
    mirror_and_look_up_with_identity_token(&mut h, 161).await;
}

/// An identity token the token service refuses (a login that expired or was revoked) is an
/// error that names the registry and says to log in again, not an anonymous pull and not
/// advice to give credentials; neither token is in the output, state or logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_identity_token_says_to_log_in_to_the_registry_again() {
    let mut h = Harness::start_with(refresh_token_source()).await;
    h.seed_image("private/app", "1.0", 162).await;
    write_identity_token(&h, STALE_REFRESH_TOKEN);
    h.config(&image(
        r#"
  docker_source = "{source}/private/app:1.0"
  repository    = "mirror/app"
  copy_method   = "registry"
"#,
    ));
    h.set_env("TF_LOG", "TRACE");
    let log_file = h.work().join("plugin.log");
    h.set_env("PLUGIN_LOG_FILE", &log_file.display().to_string());
    h.clear_logs();
    let run = h.apply_fails().await;
    let host = h.world.source_host();
    run.stderr_has(&format!(
        "The token service of {host} refused the login the Docker config file holds for it"
    ))
    .stderr_has("invalid_grant")
    .stderr_has(&format!("docker login {host}"))
    .stderr_has("az acr login");
    assert!(!run.stderr.contains("Give credentials"), "{}", run.stderr);
    assert_eq!(h.ecr_tag("mirror/app", "1.0"), None);
    assert!(h.resources().await.is_empty());

    // The token service was asked with the identity token, and the registry served nothing.
    let issuer = h.world.issuer.clone().expect("a token service");
    let exchanges = issuer.exchanges();
    assert!(
        !exchanges.is_empty() && exchanges.iter().all(|e| !e.accepted),
        "{exchanges:?}"
    );
    assert!(
        h.world
            .source
            .log
            .lock()
            .unwrap()
            .iter()
            .all(|r| r.status == 401),
        "the source served something"
    );
    let haystacks = [
        ("apply output", run.output()),
        ("state", h.state_file()),
        (
            "plugin log file",
            std::fs::read_to_string(&log_file).unwrap_or_default(),
        ),
    ];
    assert_no_secret(
        &haystacks,
        &[STALE_REFRESH_TOKEN.to_string(), REFRESH_TOKEN.to_string()],
    );
}
