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

/// The newest `GLIBC_x.y` version an ELF binary needs; `None` when it needs none (static).
fn glibc_floor(data: &[u8]) -> Option<Vec<u32>> {
    use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
    let elf = ElfFile64::<object::Endianness>::parse(data).expect("an ELF binary");
    let endian = elf.endian();
    let interpreted = elf
        .elf_program_headers()
        .iter()
        .any(|p| p.p_type(endian) == object::elf::PT_INTERP);
    let sections = elf.elf_header().sections(endian, data).unwrap();
    let mut newest: Option<Vec<u32>> = None;
    if let Some((mut needs, link)) = sections.gnu_verneed(endian, data).unwrap() {
        let strings = sections.strings(endian, data, link).unwrap();
        while let Some((_, mut auxes)) = needs.next().unwrap() {
            while let Some(aux) = auxes.next().unwrap() {
                let name = String::from_utf8_lossy(aux.name(endian, strings).unwrap()).into_owned();
                let Some(version) = name.strip_prefix("GLIBC_") else {
                    continue;
                };
                let version: Vec<u32> = version.split('.').filter_map(|n| n.parse().ok()).collect();
                if newest.as_ref().is_none_or(|n| version > *n) {
                    newest = Some(version);
                }
            }
        }
    }
    assert!(
        newest.is_some() || !interpreted,
        "the binary is dynamically linked but names no glibc version"
    );
    newest
}

/// The first line the provider binary prints when Terraform starts it.
async fn handshake_line(binary: &Path) -> String {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(binary)
        .env(
            "TF_PLUGIN_MAGIC_COOKIE",
            "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2",
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the released binary starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
        .await
        .expect("the handshake within 20 s")
        .unwrap()
        .unwrap_or_default();
    let _ = child.kill().await;
    line
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
    // The binary users get starts wherever Terraform runs: no glibc newer than 2.17.
    let unpacked = scratch.join("unpacked");
    run(tokio::process::Command::new("python3").args([
        "-c",
        // Extracted as Terraform does, with the mode the zip records (so a zip that
        // lost the executable bit fails here, as it would for users).
        "import os, sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nfor i in z.infolist():\n    os.chmod(z.extract(i, sys.argv[2]), (i.external_attr >> 16) & 0o777)",
        &dist
            .join(format!("{prefix}_linux_amd64.zip"))
            .display()
            .to_string(),
        &unpacked.display().to_string(),
    ]))
    .await;
    let binary = unpacked.join(format!("terraform-provider-ecrmirror_v{VERSION}"));
    let floor = glibc_floor(&std::fs::read(&binary).unwrap());
    assert!(
        floor
            .as_ref()
            .is_none_or(|v| v.as_slice() <= [2, 17].as_slice()),
        "the released binary needs glibc {floor:?}, above 2.17"
    );
    let handshake = handshake_line(&binary).await;
    assert!(
        handshake.starts_with("1|6|tcp|127.0.0.1:") && handshake.contains("|grpc|"),
        "not a go-plugin handshake: {handshake:?}"
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
