//! What a mirror survives: ECR tokens that expire mid-copy, throttling, a provider killed
//! mid-apply, with either copy method.

mod support;

use support::{image, Harness};

const REPO: &str = "mirror/app";

/// `{source}/upstream/app:1.0` into `mirror/app:<tag>` by `method`.
fn app_by(method: &str, tag: &str) -> String {
    image(&format!(
        r#"
  docker_source = "{{source}}/upstream/app:1.0"
  repository    = "mirror/app"
  tag           = "{tag}"
  copy_method   = "{method}"
"#
    ))
}

fn token_requests(h: &Harness) -> u64 {
    h.ecr_calls()
        .get("GetAuthorizationToken")
        .copied()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ecr_token_expiring_mid_copy_is_renewed_once_registry() {
    a_token_expiring_mid_copy_is_renewed_once("registry").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ecr_token_expiring_mid_copy_is_renewed_once_docker() {
    a_token_expiring_mid_copy_is_renewed_once("docker").await;
}

/// The token expires after a few of the copy's registry requests: the mirror asks
/// GetAuthorizationToken once more and completes; the state records what ECR serves. A
/// token refused from the start is asked for once more, not again and again.
async fn a_token_expiring_mid_copy_is_renewed_once(method: &str) {
    let h = Harness::start().await;
    let seeded = h.seed_image("upstream/app", "1.0", 131).await;
    h.config(&app_by(method, "1.0"));
    h.expire_ecr_tokens_after(4);
    h.apply().await;
    assert_eq!(h.ecr_token_expirations(), 1, "the token expired mid-copy");
    assert_eq!(token_requests(&h), 2, "one renewal: {:?}", h.ecr_calls());
    let served = h
        .ecr_manifest(REPO, "1.0")
        .await
        .expect("ECR holds the tag");
    assert_eq!(h.attr("test", "image_digest").await, served.digest);
    if method == "registry" {
        assert_eq!(served.digest, seeded.manifest_digest);
    }
    let (_, changes) = h.plan().await;
    assert!(!changes, "the renewed mirror is settled");

    // Every token refused: one renewal, then the refusal is reported, on the mirror.
    h.set_bad_tokens(true);
    h.config(&app_by(method, "other"));
    let before = token_requests(&h);
    h.apply_fails()
        .await
        .stderr_has("ecrmirror_image.test")
        .stderr_has("ecr:GetAuthorizationToken");
    assert_eq!(token_requests(&h) - before, 2, "asked once, renewed once");
}
