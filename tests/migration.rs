//! The migration guide from `TechToSpeech/ecr-mirror/aws` (docs/guides/) does what it says:
//! an image pushed the way the module pushed it (Docker CLI pull of one platform, login with
//! ECR's token, tag, push) is adopted by the guide's configuration, applied as written but
//! for the source registry's host: nothing uploaded, the module's digest in state, and an
//! empty second plan.

mod support;

use support::{assert_no_transfer, docker, Harness};

const GUIDE: &str = "docs/guides/migrating-from-the-ecr-mirror-module.md";

/// The guide's configuration: its Terraform block with the `removed` block.
fn guide_configuration() -> String {
    let text =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GUIDE))
            .unwrap();
    let start = text
        .find("```terraform\n")
        .expect("the guide has a terraform block");
    let block = &text[start + "```terraform\n".len()..];
    let block = &block[..block.find("```").unwrap()];
    assert!(block.contains("removed {"), "{block}");
    block.to_string()
}

/// What the module's `docker_pullpush.sh` does for `source` into `<ecr>/<repository>:<tag>`,
/// with the Docker CLI and its own config directory; the digest the push reported.
async fn push_as_the_module_did(
    h: &Harness,
    source: &str,
    platform: &str,
    repository: &str,
    tag: &str,
) -> String {
    let config = h.work().join("module-docker-config");
    std::fs::create_dir_all(&config).unwrap();
    let config = config.display().to_string();
    let target = format!("{}/{repository}:{tag}", h.world.ecr_host());
    docker(&["--config", &config, "pull", "--platform", platform, source]).await;
    // aws ecr get-login-password | docker login --username AWS --password-stdin <registry>
    let password = h.world.ecr.state.issue_token();
    let mut login = tokio::process::Command::new("docker")
        .args([
            "--config",
            &config,
            "login",
            "--username",
            "AWS",
            "--password-stdin",
        ])
        .arg(h.world.ecr_host())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = login.stdin.take().unwrap();
        stdin.write_all(password.as_bytes()).await.unwrap();
    }
    let logged_in = login.wait_with_output().await.unwrap();
    assert!(logged_in.status.success(), "docker login: {logged_in:?}");
    docker(&["--config", &config, "tag", source, &target]).await;
    let pushed = docker(&["--config", &config, "push", &target]).await;
    docker(&["rmi", source, &target]).await;
    pushed
        .split_whitespace()
        .find(|word| word.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest in the push's output: {pushed}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_configuration_adopts_what_the_module_pushed() {
    let h = Harness::start().await;
    h.seed_index("library/wordpress", "php7.4-apache", 91).await;
    h.world.ecr.state.create_repository("php_wordpress");
    let source = h.source_ref("library/wordpress:php7.4-apache");
    let pushed =
        push_as_the_module_did(&h, &source, "linux/arm64/v8", "php_wordpress", "base").await;

    let configuration = guide_configuration().replace(
        "docker_source = \"wordpress:php7.4-apache\"",
        &format!("docker_source = \"{source}\""),
    );
    assert!(configuration.contains(&source), "{configuration}");
    std::fs::write(h.work().join("main.tf"), configuration).unwrap();
    h.clear_logs();
    let run = h.apply().await;
    run.stdout_has("1 added");
    assert_no_transfer(&h);
    assert_eq!(h.attr("wordpress", "image_digest").await, pushed);
    assert_eq!(h.attr("wordpress", "registry_id").await, "123456789012");
    let (run, changes) = h.plan().await;
    assert!(!changes, "{}", run.output());
}
