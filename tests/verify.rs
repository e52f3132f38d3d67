//! `verify`: a source is mirrored only when its publisher signed it, as cosign signs
//! (a key, or keyless through the stand-in's own Fulcio-like CA and Rekor-like log, named
//! by a trusted root the test writes). The plan verifies, an unsigned or wrongly signed
//! source is a plan error on `verify` and nothing is pulled or pushed; the apply copies the
//! digest verified, by digest.

mod support;

use std::time::{Duration, SystemTime};

use standin::sigstore::{push_bundle, push_signature, Identity, Key, Signer, Sigstore};
use support::{assert_not_pulled, Harness};

const ISSUER: &str = "https://token.actions.githubusercontent.com";
const WORKFLOW: &str = "https://github.com/org/app/.github/workflows/release.yml@refs/tags/v1.4.0";

/// `ecrmirror_image.<name>` of `source` (under `{source}/`) into `repository` by `method`,
/// with `verify { <verify> }` and `more` arguments.
fn mirror(
    name: &str,
    source: &str,
    repository: &str,
    method: &str,
    verify: &str,
    more: &str,
) -> String {
    format!(
        r#"
resource "ecrmirror_image" "{name}" {{
  docker_source = "{{source}}/{source}"
  repository    = "{repository}"
  copy_method   = "{method}"
{more}
  verify {{
{verify}
  }}
}}
"#
    )
}

const BY_KEY: &str = r#"    keys = [file("cosign.pub")]"#;

/// A `keyless` identity of `subject_regex` under the trusted root `trusted_root.json`.
fn keyless(issuer: &str, subject_regex: &str) -> String {
    format!(
        r#"    keyless {{
      issuer        = "{issuer}"
      subject_regex = "{subject_regex}"
    }}
    trusted_root = file("trusted_root.json")"#
    )
}

/// Seeds an image at the source (as [`Harness::seed_image`]) and signs it as `signer`.
async fn signed_image(
    h: &Harness,
    repository: &str,
    tag: &str,
    seed: u64,
    signer: &Signer<'_>,
) -> standin::images::Pushed {
    let image = h.seed_image(repository, tag, seed).await;
    sign(h, repository, &image.manifest_digest, signer).await;
    image
}

/// Signs the manifest `digest` of `repository` at the source as cosign does (its `.sig` tag).
async fn sign(h: &Harness, repository: &str, digest: &str, signer: &Signer<'_>) {
    push_signature(&h.source_client(), repository, digest, digest, signer)
        .await
        .unwrap();
}

/// The provider block and `body`.
fn config(body: &str) -> String {
    format!("provider \"ecrmirror\" {{}}\n{body}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_signed_by_the_key_is_mirrored_by_both_methods_with_verified_by() {
    let h = Harness::start().await;
    let key = Key::p256().unwrap();
    let image = signed_image(&h, "upstream/app", "1.4", 41, &Signer::Key(&key)).await;
    h.world.ecr.state.create_repository("mirror/app");
    h.world.ecr.state.create_repository("mirror/app-docker");
    // Two keys, one after the other, as a file of trusted keys holds them: the second signed.
    let other = Key::ed25519().unwrap();
    h.file(
        "cosign.pub",
        &format!("{}{}", other.public_pem(), key.public_pem()),
    );
    h.config(&config(&format!(
        "{}{}",
        mirror(
            "registry",
            "upstream/app:1.4",
            "mirror/app",
            "registry",
            BY_KEY,
            ""
        ),
        mirror(
            "docker",
            "upstream/app:1.4",
            "mirror/app-docker",
            "docker",
            BY_KEY,
            ""
        ),
    )));

    // The plan verifies: the digest to copy and what verified it are known before apply.
    let (run, changes) = h.plan().await;
    assert!(changes);
    let fingerprint = {
        use sha2::Digest;
        let sum = sha2::Sha256::digest(key.public_der());
        let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
        format!("key SHA256:{hex}")
    };
    run.stdout_has(&format!("source_digest = \"{}\"", image.manifest_digest))
        .stdout_has(&format!("verified_by = \"{fingerprint}\""));

    h.apply().await;
    for (name, repository) in [("registry", "mirror/app"), ("docker", "mirror/app-docker")] {
        assert_eq!(h.attr(name, "verified_by").await, fingerprint);
        assert_eq!(h.attr(name, "source_digest").await, image.manifest_digest);
        assert!(h.ecr_tag(repository, "1.4").is_some(), "{repository}");
    }
    assert_eq!(
        h.ecr_tag("mirror/app", "1.4").as_deref(),
        Some(image.manifest_digest.as_str())
    );
    let (run, changes) = h.plan().await;
    assert!(!changes, "{}", run.output());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_key_no_signature_or_another_digest_is_a_plan_error_and_nothing_is_copied() {
    let h = Harness::start().await;
    let (ours, theirs) = (Key::p256().unwrap(), Key::ed25519().unwrap());
    let client = h.source_client();
    let other_key = signed_image(&h, "upstream/app", "other-key", 42, &Signer::Key(&theirs)).await;
    let unsigned = h.seed_image("upstream/app", "unsigned", 43).await;
    let elsewhere = h.seed_image("upstream/app", "elsewhere", 44).await;
    let named = h.seed_image("upstream/app", "named", 45).await;
    // Our key's signature of `elsewhere`, attached to `named`: it names another image.
    push_signature(
        &client,
        "upstream/app",
        &named.manifest_digest,
        &elsewhere.manifest_digest,
        &Signer::Key(&ours),
    )
    .await
    .unwrap();
    h.world.ecr.state.create_repository("mirror/app");
    h.file("cosign.pub", &ours.public_pem());

    let cases = [
        (
            "other-key",
            &other_key,
            "signature by another key than those of `keys`",
        ),
        (
            "unsigned",
            &unsigned,
            "No signature found: neither cosign's",
        ),
        (
            "named",
            &named,
            &*format!(
                "signature whose payload names another image ({})",
                elsewhere.manifest_digest
            ),
        ),
    ];
    for (tag, image, why) in cases {
        for method in ["registry", "docker"] {
            h.config(&config(&mirror(
                "test",
                &format!("upstream/app:{tag}"),
                "mirror/app",
                method,
                BY_KEY,
                "",
            )));
            h.clear_logs();
            let run = h.plan_fails().await;
            run.stderr_has("is not signed as `verify` asks")
                .stderr_has(why)
                .stderr_has("Nothing was pulled or copied")
                .stderr_has("with ecrmirror_image.test")
                .stderr_has("verify");
            run.stderr_has(&format!("What the source names, {}", image.manifest_digest));
            assert_not_pulled(&h, &[image]);
            assert!(h.ecr_tag("mirror/app", tag).is_none());
        }
    }
    // Signed by our key as well: the other signature does not stop it.
    sign(
        &h,
        "upstream/app",
        &other_key.manifest_digest,
        &Signer::Key(&ours),
    )
    .await;
    h.config(&config(&mirror(
        "test",
        "upstream/app:other-key",
        "mirror/app",
        "registry",
        BY_KEY,
        "",
    )));
    h.apply().await;
    assert_eq!(
        h.ecr_tag("mirror/app", "other-key").as_deref(),
        Some(other_key.manifest_digest.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_signatures_pass_only_with_the_identity_the_certificate_and_the_log() {
    let h = Harness::start().await;
    let (sigstore, stranger) = (Sigstore::new().unwrap(), Sigstore::new().unwrap());
    let now = SystemTime::now();
    let expired = Identity {
        not_before: now - Duration::from_secs(3600),
        not_after: now - Duration::from_secs(3000),
        ..Identity::new(ISSUER, WORKFLOW)
    };
    let signers = [
        (
            "good",
            Signer::keyless(&sigstore, Identity::new(ISSUER, WORKFLOW)),
        ),
        (
            "issuer",
            Signer::keyless(
                &sigstore,
                Identity::new("https://accounts.google.com", WORKFLOW),
            ),
        ),
        (
            "subject",
            Signer::keyless(
                &sigstore,
                Identity::new(
                    ISSUER,
                    "https://github.com/evil/app/.github/workflows/release.yml@refs/tags/v1.4.0",
                ),
            ),
        ),
        ("expired", Signer::keyless(&sigstore, expired)),
        (
            "log",
            Signer::Keyless {
                ca: &sigstore,
                log: &stranger,
                identity: Identity::new(ISSUER, WORKFLOW),
                integrated_time: now,
            },
        ),
        // A certificate from a CA the trusted root does not name, logged in its log.
        (
            "ca",
            Signer::Keyless {
                ca: &stranger,
                log: &sigstore,
                identity: Identity::new(ISSUER, WORKFLOW),
                integrated_time: now,
            },
        ),
    ];
    let mut images = std::collections::BTreeMap::new();
    for (n, (tag, signer)) in signers.iter().enumerate() {
        let image = h.seed_image("upstream/app", tag, 50 + n as u64).await;
        sign(&h, "upstream/app", &image.manifest_digest, signer).await;
        images.insert(*tag, image);
    }
    h.world.ecr.state.create_repository("mirror/app");
    h.file("trusted_root.json", &sigstore.trusted_root());
    let verify = keyless(
        ISSUER,
        "^https://github\\\\.com/org/app/\\\\.github/workflows/release\\\\.yml@refs/tags/v",
    );

    let refused = [
        ("issuer", "identity `https://github.com/org/app/.github/workflows/release.yml@refs/tags/v1.4.0` of issuer `https://accounts.google.com` did not match any `keyless` block"),
        ("subject", "identity `https://github.com/evil/app/.github/workflows/release.yml@refs/tags/v1.4.0` of issuer `https://token.actions.githubusercontent.com` did not match any `keyless` block"),
        ("expired", "certificate was not valid when Rekor logged the signature"),
        ("log", "whose Rekor entry is signed by log"),
        ("ca", "certificate does not chain to a Fulcio CA of the trusted root"),
    ];
    for (tag, why) in refused {
        h.config(&config(&mirror(
            "test",
            &format!("upstream/app:{tag}"),
            "mirror/app",
            "registry",
            &verify,
            "",
        )));
        h.clear_logs();
        let run = h.plan_fails().await;
        run.stderr_has("is not signed as `verify` asks")
            .stderr_has(why);
        if tag == "log" {
            run.stderr_has("which the trusted root does not name");
        }
        assert_not_pulled(&h, &[&images[tag]]);
    }

    for method in ["registry", "docker"] {
        h.config(&config(&mirror(
            "test",
            "upstream/app:good",
            "mirror/app",
            method,
            &verify,
            "",
        )));
        h.apply().await;
        assert_eq!(
            h.attr("test", "verified_by").await,
            format!("keyless {ISSUER} {WORKFLOW}")
        );
        let (run, changes) = h.plan().await;
        assert!(!changes, "{}", run.output());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstore_bundles_among_the_referrers_verify_an_index_whose_one_platform_is_mirrored() {
    let h = Harness::start().await;
    let sigstore = Sigstore::new().unwrap();
    let key = Key::p256().unwrap();
    h.world.source.serve_referrers(true);
    let (index, platforms) = h.seed_index("upstream/multi", "2.0", 60).await;
    push_bundle(
        &h.source_client(),
        "upstream/multi",
        &index,
        &index,
        &Signer::keyless(&sigstore, Identity::new(ISSUER, WORKFLOW)),
    )
    .await
    .unwrap();
    h.world.ecr.state.create_repository("mirror/multi");
    h.file("trusted_root.json", &sigstore.trusted_root());
    h.file("cosign.pub", &key.public_pem());
    let arm = &platforms[1].manifest_digest;
    h.config(&config(&mirror(
        "test",
        "upstream/multi:2.0",
        "mirror/multi",
        "registry",
        &format!("{BY_KEY}\n{}", keyless(ISSUER, WORKFLOW)),
        "  platform      = \"linux/arm64/v8\"",
    )));
    h.apply().await;
    assert_eq!(h.attr("test", "source_digest").await, index);
    assert_eq!(h.attr("test", "image_digest").await, *arm);
    assert_eq!(
        h.attr("test", "verified_by").await,
        format!("keyless {ISSUER} {WORKFLOW}")
    );

    // A bundle signed with the key verifies too; the keyless block alone does not take it.
    let (other, _) = h.seed_index("upstream/multi", "2.1", 61).await;
    push_bundle(
        &h.source_client(),
        "upstream/multi",
        &other,
        &other,
        &Signer::Key(&key),
    )
    .await
    .unwrap();
    h.config(&config(&mirror(
        "test",
        "upstream/multi:2.1",
        "mirror/multi",
        "registry",
        &keyless(ISSUER, WORKFLOW),
        "",
    )));
    let run = h.plan_fails().await;
    run.stderr_has("signature by a key, while `verify` names no `keys`");
    h.config(&config(&mirror(
        "test",
        "upstream/multi:2.1",
        "mirror/multi",
        "registry",
        BY_KEY,
        "",
    )));
    h.apply().await;
    assert_eq!(
        h.ecr_tag("mirror/multi", "2.1").as_deref(),
        Some(other.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_digest_verified_is_the_digest_copied_and_a_tag_moved_to_an_unsigned_image_is_refused()
{
    let h = Harness::start().await;
    let key = Key::p256().unwrap();
    let signed = signed_image(&h, "upstream/app", "1", 70, &Signer::Key(&key)).await;
    h.world.ecr.state.create_repository("mirror/app");
    h.file("cosign.pub", &key.public_pem());
    h.config(&config(&mirror(
        "test",
        "upstream/app:1",
        "mirror/app",
        "registry",
        BY_KEY,
        "  track_source  = true",
    )));

    // The plan verifies `signed` and shows its digest; the copy reads the source by that
    // digest: the tag itself is only ever asked for its digest (a HEAD).
    let (run, _) = h.plan().await;
    run.stdout_has(&format!("source_digest = \"{}\"", signed.manifest_digest));
    h.clear_logs();
    h.apply().await;
    assert_eq!(
        h.ecr_tag("mirror/app", "1").as_deref(),
        Some(signed.manifest_digest.as_str())
    );
    assert_eq!(
        h.attr("test", "source_digest").await,
        signed.manifest_digest
    );
    let by_tag: Vec<String> = h
        .source_requests()
        .into_iter()
        .filter(|r| r.contains("/manifests/1") && !r.starts_with("HEAD "))
        .collect();
    assert!(
        by_tag.is_empty(),
        "the tag was read, not its digest: {by_tag:?}"
    );

    // With track_source, the next plan sees the tag moved to an unsigned image: a plan
    // error, and the mirror stays as it is.
    let moved = h.seed_image("upstream/app", "1", 71).await;
    h.clear_logs();
    let run = h.plan_fails().await;
    run.stderr_has("is not signed as `verify` asks")
        .stderr_has(&format!("What the source names, {}", moved.manifest_digest));
    let run = h.apply_fails().await;
    run.stderr_has("is not signed as `verify` asks");
    assert_not_pulled(&h, &[&moved]);
    // A refresh alone records what the tag names now, and that nothing verified it.
    let run = h
        .terraform(&[
            "apply",
            "-refresh-only",
            "-auto-approve",
            "-input=false",
            "-no-color",
        ])
        .await;
    assert!(run.success, "{}", run.output());
    assert_eq!(h.attr("test", "source_digest").await, moved.manifest_digest);
    assert_eq!(h.attr("test", "verified_by").await, "");
    // `terraform destroy` plans the configuration first, and so stops here too; without
    // that plan it destroys, as the diagnostic says.
    let run = h
        .terraform(&["destroy", "-auto-approve", "-input=false", "-no-color"])
        .await;
    assert!(!run.success, "{}", run.output());
    run.stderr_has("is not signed as `verify` asks")
        .stderr_has("terraform destroy -refresh=false");
    let run = h
        .terraform(&[
            "destroy",
            "-auto-approve",
            "-refresh=false",
            "-input=false",
            "-no-color",
        ])
        .await;
    assert!(run.success, "{}", run.output());
    assert!(h.ecr_tag("mirror/app", "1").is_none());
    assert!(h.resources().await.is_empty());
    h.seed_image("upstream/app", "1", 70).await;
    h.apply().await;
    h.seed_image("upstream/app", "1", 71).await;
    assert_eq!(
        h.ecr_tag("mirror/app", "1").as_deref(),
        Some(signed.manifest_digest.as_str())
    );

    // Once the publisher signs it, the mirror follows.
    sign(
        &h,
        "upstream/app",
        &moved.manifest_digest,
        &Signer::Key(&key),
    )
    .await;
    h.apply().await;
    assert_eq!(
        h.ecr_tag("mirror/app", "1").as_deref(),
        Some(moved.manifest_digest.as_str())
    );

    // A saved plan of a new mirror verified the tag's image; the tag then moves to an
    // unsigned image before `terraform apply tfplan`: Terraform plans once more at apply,
    // the provider verifies what the tag names by then, and nothing is copied.
    h.destroy().await;
    h.seed_image("upstream/app", "1", 70).await;
    let run = h
        .terraform(&["plan", "-out=tfplan", "-input=false", "-no-color"])
        .await;
    assert!(run.success, "{}", run.output());
    run.stdout_has(&format!("source_digest = \"{}\"", signed.manifest_digest));
    let unsigned = h.seed_image("upstream/app", "1", 72).await;
    h.clear_logs();
    let run = h
        .terraform(&["apply", "-input=false", "-no-color", "tfplan"])
        .await;
    assert!(!run.success, "{}", run.output());
    run.stderr_has("is not signed as `verify` asks")
        .stderr_has(&format!(
            "What the source names, {}",
            unsigned.manifest_digest
        ));
    assert_not_pulled(&h, &[&unsigned]);
    assert!(h.ecr_tag("mirror/app", "1").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_verified_with_keys_known_only_at_apply_and_bad_input_said_on_its_attribute() {
    let h = Harness::start().await;
    let key = Key::p256().unwrap();
    let mut digests = Vec::new();
    for n in 0..12u64 {
        let image = h
            .seed_image("upstream/fleet", &format!("v{n}"), 80 + n)
            .await;
        sign(
            &h,
            "upstream/fleet",
            &image.manifest_digest,
            &Signer::Key(&key),
        )
        .await;
        digests.push(image.manifest_digest);
    }
    h.world.ecr.state.create_repository("mirror/fleet");
    h.file("cosign.pub", &key.public_pem());
    // The key comes from another resource: unknown at plan, so the apply verifies.
    h.config(&config(
        r#"
resource "terraform_data" "key" {
  input = file("cosign.pub")
}

resource "ecrmirror_image" "fleet" {
  for_each      = toset([for n in range(12) : "v${n}"])
  docker_source = "{source}/upstream/fleet:${each.key}"
  repository    = "mirror/fleet"
  copy_method   = "registry"
  verify {
    keys = [terraform_data.key.output]
  }
}
"#,
    ));
    let (run, _) = h.plan().await;
    run.stdout_has("verified_by = (known after apply)");
    h.apply_parallel(10).await;
    for (n, digest) in digests.iter().enumerate() {
        assert_eq!(
            h.ecr_tag("mirror/fleet", &format!("v{n}")).as_deref(),
            Some(digest.as_str())
        );
    }
    let (run, changes) = h.plan().await;
    assert!(!changes, "{}", run.output());

    // `dynamic` verify and timeouts blocks whose `for_each` Terraform knows only at apply
    // (and not at all in validation, where variables are unknown).
    h.config(&config(
        r#"
variable "verified" {
  type    = bool
  default = true
}

resource "terraform_data" "flag" {
  input = var.verified
}

resource "ecrmirror_image" "dynamic" {
  docker_source = "{source}/upstream/fleet:v0"
  repository    = "mirror/fleet"
  tag           = "dynamic"
  copy_method   = "registry"
  dynamic "verify" {
    for_each = terraform_data.flag.output ? [file("cosign.pub")] : []
    content {
      keys = [verify.value]
    }
  }
  dynamic "timeouts" {
    for_each = terraform_data.flag.output ? ["30m"] : []
    content {
      create = timeouts.value
    }
  }
}
"#,
    ));
    let run = h.terraform(&["validate", "-no-color"]).await;
    assert!(run.success, "{}", run.output());
    h.apply().await;
    assert!(h
        .attr("dynamic", "verified_by")
        .await
        .starts_with("key SHA256:"));
    let (run, changes) = h.plan().await;
    assert!(!changes, "{}", run.output());

    // Bad input: each said at plan, on its attribute.
    let bad = [
        (r#"    keys = ["not a key"]"#, "`keys[0]` is not a PEM public key"),
        ("", "`verify` names no key and no identity"),
        (
            "    keyless {\n      issuer = \"https://accounts.google.com\"\n    }\n    trusted_root = \"{}\"",
            "set `subject` (the signing identity, exactly) or `subject_regex`",
        ),
        (
            "    keyless {\n      issuer        = \"https://accounts.google.com\"\n      subject_regex = \"(\"\n    }\n    trusted_root = \"{}\"",
            "is not a regular expression",
        ),
        (
            "    keyless {\n      issuer        = \"https://accounts.google.com\"\n      subject_regex = \"\"\n    }\n    trusted_root = \"{}\"",
            "would accept anyone the issuer vouches for",
        ),
        (
            "    keyless {\n      issuer  = \"https://accounts.google.com\"\n      subject = \"me@example.com\"\n    }\n    trusted_root = \"not JSON\"",
            "not a Sigstore trusted root",
        ),
    ];
    for (verify, why) in bad {
        h.config(&config(&mirror(
            "bad",
            "upstream/fleet:v0",
            "mirror/fleet",
            "registry",
            verify,
            "",
        )));
        let run = h.plan_fails().await;
        run.stderr_has(why).stderr_has("with ecrmirror_image.bad");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_trusted_root_keyless_uses_the_trusted_root_sigstores_tuf_repository_publishes() {
    let mut h = Harness::start().await;
    let sigstore = Sigstore::new().unwrap();
    let image = signed_image(
        &h,
        "upstream/app",
        "1.4",
        90,
        &Signer::keyless(&sigstore, Identity::new(ISSUER, WORKFLOW)),
    )
    .await;
    h.world.ecr.state.create_repository("mirror/app");
    // The stand-in's "public-good" TUF repository: its first root is what the provider
    // starts from (as it embeds Sigstore's); the root has been rotated once since.
    let tuf_dir = tempfile::tempdir().unwrap();
    let mut repository =
        standin::tuf::TufRepository::new(tuf_dir.path(), &sigstore.trusted_root()).unwrap();
    h.file(
        "first-root.json",
        &String::from_utf8(repository.initial_root().unwrap()).unwrap(),
    );
    repository.rotate_root().unwrap();
    repository.publish(&sigstore.trusted_root()).unwrap();
    let served = standin::tuf::serve(tuf_dir.path()).await.unwrap();
    h.set_env("ECRMIRROR_SIGSTORE_TUF_URL", &served.url());
    h.set_env(
        "ECRMIRROR_SIGSTORE_TUF_ROOT",
        &h.work().join("first-root.json").display().to_string(),
    );
    let verify = format!(
        r#"    keyless {{
      issuer  = "{ISSUER}"
      subject = "{WORKFLOW}"
    }}"#
    );
    h.config(&config(&mirror(
        "test",
        "upstream/app:1.4",
        "mirror/app",
        "registry",
        &verify,
        "",
    )));

    h.apply().await;
    assert_eq!(
        h.attr("test", "verified_by").await,
        format!("keyless {ISSUER} {WORKFLOW}")
    );
    let fetched = served.requests.lock().unwrap().clone();
    for wanted in [
        "GET /2.root.json",
        "GET /3.root.json",
        "GET /timestamp.json",
        "GET /2.snapshot.json",
        "GET /2.targets.json",
    ] {
        assert!(
            fetched.iter().any(|r| r == wanted),
            "{wanted} not in {fetched:?}"
        );
    }
    assert!(fetched
        .iter()
        .any(|r| r.starts_with("GET /targets/") && r.ends_with(".trusted_root.json")));
    // Kept while its timestamp is fresh: the next plans ask the repository nothing.
    served.requests.lock().unwrap().clear();
    h.config(&config(&mirror(
        "test",
        "upstream/app:1.4",
        "mirror/app",
        "docker",
        &verify,
        "",
    )));
    h.apply().await;
    assert!(served.requests.lock().unwrap().is_empty());

    // A repository that serves a tampered target, or whose metadata expired, or that the
    // first root does not sign: a plan error on `verify` that says which, nothing copied.
    let fresh_cache =
        |h: &Harness| drop(std::fs::remove_dir_all(h.cache_dir().join("sigstore-tuf")));
    h.config(&config(&mirror(
        "test",
        "upstream/app:1.4",
        "mirror/app",
        "registry",
        &verify,
        "",
    )));
    repository.tamper_target().unwrap();
    fresh_cache(&h);
    h.clear_logs();
    let run = h.plan_fails().await;
    run.stderr_has("Cannot get Sigstore's trusted root")
        .stderr_has("does not have the SHA-256 the metadata names")
        .stderr_has("set `trusted_root`");
    assert_not_pulled(&h, &[&image]);
    repository.lifetime = Duration::ZERO;
    repository.publish(&sigstore.trusted_root()).unwrap();
    fresh_cache(&h);
    let run = h.plan_fails().await;
    run.stderr_has("timestamp.json has expired");
    let stranger = tempfile::tempdir().unwrap();
    let other = standin::tuf::TufRepository::new(stranger.path(), "{}").unwrap();
    h.file(
        "first-root.json",
        &String::from_utf8(other.initial_root().unwrap()).unwrap(),
    );
    fresh_cache(&h);
    let run = h.plan_fails().await;
    run.stderr_has("2.root.json is not signed by the root before it");
}
