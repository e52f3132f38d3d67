//! The release as users get it: `make release`'s files served by a provider registry over
//! HTTPS, installed by a real `terraform init` (which checks the signature and checksums),
//! then used for a real apply. A tampered zip or signature makes `terraform init` fail.
//!
//! This builds the release profile (LTO) once, which takes minutes on a cold cache.

mod support;

use std::path::Path;

use standin::provider_registry::{signing_key, ProviderRegistry, Tamper};
use support::Harness;

const VERSION: &str = env!("CARGO_PKG_VERSION");

async fn run(command: &mut tokio::process::Command) -> std::process::Output {
    let output = command.output().await.expect("the command runs");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A throwaway RSA signing key in `home`; returns it ASCII-armored, as CI's secret holds it.
async fn throwaway_key(home: &Path) -> String {
    std::fs::create_dir_all(home).unwrap();
    run(tokio::process::Command::new("gpg")
        .env("GNUPGHOME", home)
        .args([
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "ecrmirror release test <release-test@example.invalid>",
            "rsa2048",
            "sign",
            "never",
        ]))
    .await;
    let armored = run(tokio::process::Command::new("gpg")
        .env("GNUPGHOME", home)
        .args(["--batch", "--armor", "--export-secret-keys"]))
    .await;
    String::from_utf8(armored.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terraform_init_installs_the_signed_release_and_refuses_tampering() {
    let mut h = Harness::start().await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scratch = h.work().join("release");
    let gnupg = scratch.join("gnupg");
    let dist = scratch.join("dist");
    let secret = throwaway_key(&gnupg).await;

    run(
        tokio::process::Command::new(root.join("scripts/release.sh"))
            .env("VERSION", VERSION)
            .env("DIST", &dist)
            .env("GPG_PRIVATE_KEY", &secret)
            .env_remove("GPG_FINGERPRINT"),
    )
    .await;

    // Exactly the Registry's file set.
    let mut files: Vec<String> = std::fs::read_dir(&dist)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let prefix = format!("terraform-provider-ecrmirror_{VERSION}");
    assert_eq!(
        files,
        vec![
            format!("{prefix}_SHA256SUMS"),
            format!("{prefix}_SHA256SUMS.sig"),
            format!("{prefix}_linux_amd64.zip"),
            format!("{prefix}_manifest.json"),
        ]
    );
    let manifest = std::fs::read_to_string(dist.join(format!("{prefix}_manifest.json"))).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(manifest["metadata"]["protocol_versions"][0], "6.0");

    let key = signing_key(&gnupg).unwrap();
    h.seed_image("upstream/app", "1.0", 81).await;
    h.var("source_image", Some(&h.source_ref("upstream/app:1.0")));
    let cli_config = scratch.join("terraformrc");
    std::fs::write(&cli_config, "provider_installation {\n  direct {}\n}\n").unwrap();
    let template =
        std::fs::read_to_string(root.join("tests/testdata/registry_install.tf")).unwrap();

    for tamper in [Tamper::Nothing, Tamper::Zip, Tamper::Signature] {
        let registry = ProviderRegistry::start(&dist, VERSION, key.clone(), tamper)
            .await
            .unwrap();
        let work = scratch.join(format!("{tamper:?}"));
        std::fs::create_dir_all(&work).unwrap();
        std::fs::write(
            work.join("main.tf"),
            template.replace("REGISTRY_HOST", &registry.host()),
        )
        .unwrap();
        let ca = scratch.join(format!("{tamper:?}-ca.pem"));
        std::fs::write(&ca, &registry.ca_pem).unwrap();
        h.set_env("TF_CLI_CONFIG_FILE", &cli_config.display().to_string());
        h.set_env("SSL_CERT_FILE", &ca.display().to_string());

        let init = h
            .terraform_in(&work, &["init", "-no-color", "-input=false"])
            .await;
        match tamper {
            Tamper::Nothing => {
                assert!(init.success, "init failed:\n{}", init.output());
                let lock = std::fs::read_to_string(work.join(".terraform.lock.hcl")).unwrap();
                assert!(
                    lock.contains(&format!("{}/techtospeech/ecrmirror", registry.host())),
                    "{lock}"
                );
                assert!(lock.contains("zh:"), "{lock}");
                let apply = h
                    .terraform_in(
                        &work,
                        &["apply", "-auto-approve", "-no-color", "-input=false"],
                    )
                    .await;
                assert!(apply.success, "apply failed:\n{}", apply.output());
                assert!(h.ecr_manifest("mirror/app", "1.0").await.is_some());
                let plan = h
                    .terraform_in(
                        &work,
                        &["plan", "-detailed-exitcode", "-no-color", "-input=false"],
                    )
                    .await;
                assert_eq!(plan.code, 0, "{}", plan.output());
            }
            Tamper::Zip => {
                assert!(
                    !init.success,
                    "a tampered zip was installed:\n{}",
                    init.output()
                );
                init.stderr_has("checksum");
            }
            Tamper::Signature => {
                assert!(
                    !init.success,
                    "a bad signature was accepted:\n{}",
                    init.output()
                );
                init.stderr_has("signature");
            }
        }
    }
}
