//! The stand-in source registries that take bearer tokens only, checked as clients meet
//! them: a token service that takes only the OAuth2 exchange of a refresh token refuses
//! anonymous and basic-credential `GET`s and a wrong refresh token, and its tokens open the
//! registry.

use serde_json::Value;
use standin::images::{push_image, Spec};
use standin::token::SERVICE;
use standin::{SourceAuth, World};

const REFRESH: &str = "standin-refresh-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_service_takes_the_oauth2_exchange_only() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::start_with(dir.path(), SourceAuth::RefreshToken(REFRESH.into()))
        .await
        .expect("world starts");
    // The world's own client pushes with the refresh token.
    let pushed = push_image(
        &world.source_client(None),
        "private/app",
        Some("1.0"),
        &Spec::small(1),
    )
    .await
    .expect("pushing with the refresh token");

    let http = reqwest::Client::new();
    let base = format!("http://{}", world.source_host());
    let manifest = format!("{base}/v2/private/app/manifests/1.0");
    let asked = http.get(&manifest).send().await.unwrap();
    assert_eq!(asked.status(), 401);
    let challenge = asked.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with(&format!("Bearer realm=\"{base}/token\"")),
        "{challenge}"
    );

    // No token for nobody, nor for a user and password.
    let token = format!("{base}/token?service={SERVICE}&scope=repository:private/app:pull");
    let anonymous = http.get(&token).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let basic = http
        .get(&token)
        .basic_auth("someone", Some(REFRESH))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);

    let exchange = |refresh: &'static str| {
        http.post(format!("{base}/token")).form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("service", SERVICE),
            ("scope", "repository:private/app:pull"),
            ("client_id", "a-test"),
        ])
    };
    let wrong = exchange("not-the-refresh-token").send().await.unwrap();
    assert_eq!(wrong.status(), 400);
    let said: Value = wrong.json().await.unwrap();
    assert_eq!(said["error"], "invalid_grant");

    let right: Value = exchange(REFRESH)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = right["access_token"].as_str().expect("an access token");
    let served = http
        .get(&manifest)
        .bearer_auth(access)
        .header("accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(
        served.headers()["docker-content-digest"],
        pushed.manifest_digest.as_str()
    );

    // What the token service saw, without the refresh token itself.
    let issuer = world.issuer.as_ref().expect("a token service");
    let exchanges = issuer.exchanges();
    assert!(exchanges.iter().any(|e| !e.accepted));
    let taken = exchanges.iter().filter(|e| e.accepted).count();
    assert!(taken >= 2, "{exchanges:?}");
    assert!(!format!("{exchanges:?}").contains(REFRESH));
    assert!(issuer.issued().contains(&access.to_string()));
}
