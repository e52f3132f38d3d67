//! The data sources through real Terraform: `ecrmirror_source` answers what the source
//! registry serves, with manifest requests only and no Docker engine, and spends no pull on
//! a tag that has not moved (a `HEAD`, and bodies from its cache by digest); `ecrmirror_image`
//! answers what ECR's tag holds, as the resource names it. Missing tags, platforms and
//! unreachable registries are errors that say so.

mod support;

use serde_json::json;
use standin::faults::Rule;
use support::Harness;

/// A provider whose Docker engine address answers nothing: a data source that used an
/// engine would fail.
const NO_ENGINE: &str = r#"
provider "ecrmirror" {
  docker_host = "tcp://127.0.0.1:9"
}
"#;

/// `ecrmirror_source` data sources named `name` of `source` (under `{source}`) and
/// `platform`, with every attribute as an output.
fn source_lookup(name: &str, source: &str, platform: Option<&str>) -> String {
    let platform = platform.map_or(String::new(), |p| format!("  platform      = \"{p}\"\n"));
    format!(
        r#"
data "ecrmirror_source" "{name}" {{
  docker_source = "{{source}}/{source}"
{platform}}}

output "{name}" {{
  value = data.ecrmirror_source.{name}
}}
"#
    )
}

/// Asserts what the lookups `index` (a two-platform index, whole), `arm` (an index's
/// linux/arm64/v8: the index's digest and the platform's) and `single` (one linux/amd64
/// image) answered.
fn assert_lookups(
    outputs: &serde_json::Map<String, serde_json::Value>,
    index: &str,
    (arm_index, arm_image): (&str, &str),
    single: &str,
) {
    assert_eq!(outputs["index"]["digest"], json!(index));
    assert_eq!(
        outputs["index"]["platforms"],
        json!(["linux/amd64", "linux/arm64/v8"])
    );
    assert_eq!(
        outputs["index"]["media_type"],
        json!("application/vnd.docker.distribution.manifest.list.v2+json")
    );
    assert_eq!(outputs["index"]["platform_digest"], json!(null));
    assert_eq!(outputs["arm"]["digest"], json!(arm_index));
    assert_eq!(outputs["arm"]["platform_digest"], json!(arm_image));
    assert_eq!(outputs["single"]["digest"], json!(single));
    assert_eq!(outputs["single"]["platforms"], json!(["linux/amd64"]));
    assert_eq!(
        outputs["single"]["media_type"],
        json!("application/vnd.docker.distribution.manifest.v2+json")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_lookups_answer_what_the_registry_serves_without_blobs_or_engine() {
    let h = Harness::start().await;
    let (index, images) = h.seed_index("upstream/multi", "1.0", 91).await;
    let single = h.seed_image("upstream/single", "2.0", 92).await;
    h.config(&format!(
        "{NO_ENGINE}{}{}{}",
        source_lookup("index", "upstream/multi:1.0", None),
        source_lookup("arm", "upstream/multi:1.0", Some("linux/arm64/v8")),
        source_lookup("single", "upstream/single:2.0", None),
    ));
    h.clear_logs();
    h.apply().await;
    assert_lookups(
        &h.outputs().await,
        &index,
        (&index, &images[1].manifest_digest),
        &single.manifest_digest,
    );
    // Manifests only; the one blob is the single image's config, which names its platform.
    let blobs: Vec<String> = h
        .source_requests()
        .into_iter()
        .filter(|r| r.contains("/blobs/"))
        .collect();
    assert!(
        blobs.iter().all(|r| r.ends_with(&single.config_digest)),
        "the source served more than a config: {blobs:?}"
    );
    assert!(
        h.ecr_requests().is_empty(),
        "ECR was asked: {:?}",
        h.ecr_requests()
    );

    // The upstream tag moves: the next plan reads the new digest.
    let moved = h.seed_image("upstream/single", "2.0", 93).await;
    h.apply().await;
    assert_eq!(
        h.outputs().await["single"]["digest"],
        json!(moved.manifest_digest)
    );
}

/// The source registry's requests of `method` for `kind` (`/manifests/`, `/blobs/`) since
/// the logs were last cleared, sorted. A manifest `GET` is what Docker Hub counts as a pull;
/// a `HEAD` is free.
fn requests(h: &Harness, method: &str, kind: &str) -> Vec<String> {
    let mut requests: Vec<String> = h
        .source_requests()
        .into_iter()
        .filter(|r| r.starts_with(&format!("{method} ")) && r.contains(kind))
        .collect();
    requests.sort();
    requests
}

/// `METHOD /v2/<repository>/manifests/<reference>`, as the request log writes it.
fn manifest(method: &str, repository: &str, reference: &str) -> String {
    format!("{method} /v2/{repository}/manifests/{reference}")
}

/// The cache entry of `digest` in the provider's cache.
fn cache_entry(h: &Harness, digest: &str) -> std::path::PathBuf {
    h.cache_dir()
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_tag_that_has_not_moved_costs_one_head_and_no_manifest_get() {
    let h = Harness::start().await;
    // One repository per lookup, so that no two lookups share a body in one run.
    let (index, _) = h.seed_index("upstream/multi", "1.0", 101).await;
    let (arm_index, arm_images) = h.seed_index("upstream/arm", "1.0", 102).await;
    let single = h.seed_image("upstream/single", "2.0", 103).await;
    let amd = h.seed_image("upstream/amd", "2.0", 104).await;
    h.config(&format!(
        "{NO_ENGINE}{}{}{}{}",
        source_lookup("index", "upstream/multi:1.0", None),
        source_lookup("arm", "upstream/arm:1.0", Some("linux/arm64/v8")),
        source_lookup("single", "upstream/single:2.0", None),
        source_lookup("amd", "upstream/amd:2.0", Some("linux/amd64")),
    ));
    let heads = vec![
        manifest("HEAD", "upstream/amd", "2.0"),
        manifest("HEAD", "upstream/arm", "1.0"),
        manifest("HEAD", "upstream/multi", "1.0"),
        manifest("HEAD", "upstream/single", "2.0"),
    ];

    // The first read of each digest: one HEAD of the tag, then one GET by the digest it
    // named; an index's platform is named by its entry, not asked for.
    h.clear_logs();
    h.apply().await;
    let outputs = h.outputs().await;
    assert_lookups(
        &outputs,
        &index,
        (&arm_index, &arm_images[1].manifest_digest),
        &single.manifest_digest,
    );
    assert_eq!(
        outputs["amd"]["platform_digest"],
        json!(amd.manifest_digest)
    );
    assert_eq!(requests(&h, "HEAD", "/manifests/"), heads);
    assert_eq!(
        requests(&h, "GET", "/manifests/"),
        vec![
            manifest("GET", "upstream/amd", &amd.manifest_digest),
            manifest("GET", "upstream/arm", &arm_index),
            manifest("GET", "upstream/multi", &index),
            manifest("GET", "upstream/single", &single.manifest_digest),
        ]
    );
    assert_eq!(
        requests(&h, "GET", "/blobs/"),
        vec![
            format!("GET /v2/upstream/amd/blobs/{}", amd.config_digest),
            format!("GET /v2/upstream/single/blobs/{}", single.config_digest),
        ],
        "an image's config is read once, for its platform"
    );

    // Nothing moved: the next plan asks each tag with a HEAD, and nothing else.
    h.clear_logs();
    let (_, changes) = h.plan().await;
    assert!(!changes);
    assert_eq!(requests(&h, "HEAD", "/manifests/"), heads);
    assert_eq!(requests(&h, "GET", "/manifests/"), Vec::<String>::new());
    assert_eq!(requests(&h, "GET", "/blobs/"), Vec::<String>::new());

    // Two tags move upstream: the next read shows their new digests, with one GET each, by
    // the new digest.
    let moved = h.seed_image("upstream/single", "2.0", 105).await;
    let (moved_index, moved_images) = h.seed_index("upstream/arm", "1.0", 106).await;
    h.clear_logs();
    h.apply().await;
    let outputs = h.outputs().await;
    assert_eq!(outputs["single"]["digest"], json!(moved.manifest_digest));
    assert_eq!(outputs["arm"]["digest"], json!(moved_index));
    assert_eq!(
        outputs["arm"]["platform_digest"],
        json!(moved_images[1].manifest_digest)
    );
    assert_eq!(outputs["index"]["digest"], json!(index));
    assert_eq!(requests(&h, "HEAD", "/manifests/"), heads);
    assert_eq!(
        requests(&h, "GET", "/manifests/"),
        vec![
            manifest("GET", "upstream/arm", &moved_index),
            manifest("GET", "upstream/single", &moved.manifest_digest),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_cache_entry_is_fetched_again_and_the_answer_stays_right() {
    let h = Harness::start().await;
    let (index, _) = h.seed_index("upstream/multi", "1.0", 107).await;
    let single = h.seed_image("upstream/single", "2.0", 108).await;
    h.config(&format!(
        "{NO_ENGINE}{}{}",
        source_lookup("index", "upstream/multi:1.0", None),
        source_lookup("single", "upstream/single:2.0", None),
    ));
    h.apply().await;
    let before = h.outputs().await;
    for digest in [&index, &single.manifest_digest, &single.config_digest] {
        assert!(cache_entry(&h, digest).is_file(), "{digest} is not cached");
    }

    // Someone alters the index's entry into another valid index (of another platform),
    // cuts the image's manifest short and damages its config.
    let altered = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": single.manifest_digest,
            "size": 1,
            "platform": {"os": "linux", "architecture": "s390x"}
        }]
    });
    std::fs::write(cache_entry(&h, &index), altered.to_string()).unwrap();
    let manifest_entry = cache_entry(&h, &single.manifest_digest);
    let bytes = std::fs::read(&manifest_entry).unwrap();
    std::fs::write(&manifest_entry, &bytes[..bytes.len() / 2]).unwrap();
    let config_entry = cache_entry(&h, &single.config_digest);
    let mut bytes = std::fs::read(&config_entry).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&config_entry, &bytes).unwrap();

    // Each is fetched again by its digest, and the answers are what the registry serves.
    h.clear_logs();
    h.apply().await;
    assert_eq!(h.outputs().await, before);
    assert_eq!(
        requests(&h, "GET", "/manifests/"),
        vec![
            manifest("GET", "upstream/multi", &index),
            manifest("GET", "upstream/single", &single.manifest_digest),
        ]
    );
    assert_eq!(
        requests(&h, "GET", "/blobs/"),
        vec![format!(
            "GET /v2/upstream/single/blobs/{}",
            single.config_digest
        )]
    );

    // The entries are whole again: the next plan fetches nothing.
    h.clear_logs();
    let (_, changes) = h.plan().await;
    assert!(!changes);
    assert_eq!(requests(&h, "GET", "/manifests/"), Vec::<String>::new());
    assert_eq!(requests(&h, "GET", "/blobs/"), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_whose_head_names_no_digest_is_asked_with_a_get() {
    let mut h = Harness::start().await;
    let (index, _) = h.seed_index("upstream/multi", "1.0", 109).await;
    h.source_faults().add(Rule {
        without_headers: vec!["docker-content-digest".into()],
        ..Rule::on("registry:HEAD:/manifests/")
    });
    h.config(&format!(
        "{NO_ENGINE}{}",
        source_lookup("index", "upstream/multi:1.0", Some("linux/amd64"))
    ));
    h.set_env("TF_LOG", "DEBUG");
    h.clear_logs();
    let run = h.apply().await;
    let outputs = h.outputs().await;
    assert_eq!(outputs["index"]["digest"], json!(index));
    assert_eq!(
        outputs["index"]["platforms"],
        json!(["linux/amd64", "linux/arm64/v8"])
    );
    assert_eq!(
        requests(&h, "HEAD", "/manifests/"),
        vec![manifest("HEAD", "upstream/multi", "1.0")]
    );
    assert_eq!(
        requests(&h, "GET", "/manifests/"),
        vec![manifest("GET", "upstream/multi", "1.0")]
    );
    run.stderr_has("names no Docker-Content-Digest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_lookups_that_cannot_answer_are_errors_that_say_why() {
    let h = Harness::start().await;
    h.seed_index("upstream/multi", "1.0", 94).await;

    h.config(&format!(
        "{NO_ENGINE}{}",
        source_lookup("gone", "upstream/multi:9.9", None)
    ));
    let run = h.apply_fails().await;
    run.stderr_has("upstream/multi:9.9 was not found")
        .stderr_has("Check `docker_source`");

    h.config(&format!(
        "{NO_ENGINE}{}",
        source_lookup("s390x", "upstream/multi:1.0", Some("linux/s390x"))
    ));
    let run = h.apply_fails().await;
    run.stderr_has("has no image for platform linux/s390x")
        .stderr_has("The source holds these platforms: linux/amd64, linux/arm64/v8.");

    h.config(&format!(
        "{NO_ENGINE}{}",
        source_lookup("bad", "upstream/multi:1.0", Some("linux"))
    ));
    let run = h.terraform(&["validate", "-no-color"]).await;
    assert!(!run.success, "{}", run.output());
    run.stderr_has("Invalid platform")
        .stderr_has("`linux` is not a platform");

    h.config(
        r#"
provider "ecrmirror" {}

data "ecrmirror_source" "unreachable" {
  docker_source = "127.0.0.1:9/upstream/app:1.0"
}
"#,
    );
    let run = h.apply_fails().await;
    run.stderr_has("Cannot reach the source registry at http://127.0.0.1:9");
    assert!(
        !run.stderr.contains("panic"),
        "the provider panicked:\n{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_lookup_reads_a_mirror_another_configuration_owns() {
    let h = Harness::start().await;
    h.seed_index("upstream/app", "1.0", 95).await;
    h.config(&format!(
        r#"{NO_ENGINE}
resource "ecrmirror_image" "shared" {{
  docker_source = "{{source}}/upstream/app:1.0"
  repository    = "mirror/app"
  copy_method   = "registry"
}}
"#
    ));
    h.apply().await;
    let digest = h.attr("shared", "image_digest").await;
    let uri = h.attr("shared", "image_uri").await;
    let pinned = h.attr("shared", "image_uri_digest").await;

    // Another working directory, as another stack: it reads the mirror, owning nothing.
    let reader = h.work().join("reader");
    std::fs::create_dir_all(&reader).unwrap();
    let hcl = format!(
        r#"terraform {{
  required_providers {{
    ecrmirror = {{ source = "techtospeech/ecrmirror" }}
  }}
}}
{NO_ENGINE}
data "ecrmirror_image" "app" {{
  repository = "mirror/app"
  tag        = "1.0"
}}

output "app" {{
  value = data.ecrmirror_image.app
}}
"#
    );
    std::fs::write(reader.join("main.tf"), hcl).unwrap();
    h.clear_logs();
    let run = h
        .terraform_in(
            &reader,
            &["apply", "-auto-approve", "-input=false", "-no-color"],
        )
        .await;
    assert!(run.success, "{}", run.output());
    let run = h
        .terraform_in(&reader, &["output", "-json", "-no-color"])
        .await;
    let outputs: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let app = &outputs["app"]["value"];
    assert_eq!(app["image_digest"], json!(digest));
    assert_eq!(app["image_uri"], json!(uri));
    assert_eq!(app["image_uri_digest"], json!(pinned));
    assert_eq!(app["registry_id"], json!("123456789012"));
    assert_eq!(h.ecr_tag("mirror/app", "1.0"), Some(digest));
    assert!(
        h.source_requests().is_empty() && h.ecr_requests().is_empty(),
        "a lookup transferred something"
    );

    // A tag or a repository that does not exist is an error naming it.
    let missing = |repository: &str, tag: &str| {
        std::fs::read_to_string(reader.join("main.tf"))
            .unwrap()
            .replace("\"mirror/app\"", &format!("\"{repository}\""))
            .replace("\"1.0\"", &format!("\"{tag}\""))
    };
    std::fs::write(reader.join("main.tf"), missing("mirror/app", "9.9")).unwrap();
    let run = h
        .terraform_in(&reader, &["plan", "-input=false", "-no-color"])
        .await;
    assert!(!run.success, "{}", run.output());
    run.stderr_has("ECR has no tag 9.9 in repository mirror/app")
        .stderr_has("apply that one first");
    std::fs::write(reader.join("main.tf"), missing("mirror/none", "9.9")).unwrap();
    let run = h
        .terraform_in(&reader, &["plan", "-input=false", "-no-color"])
        .await;
    assert!(!run.success, "{}", run.output());
    run.stderr_has("ECR repository mirror/none does not exist");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_source_is_looked_up_with_the_resources_credentials() {
    let user = standin::front::BasicAuth {
        username: "mirror-bot".into(),
        password: "s3cr3t-lookup-pass".into(),
    };
    let mut h = Harness::start_with(standin::SourceAuth::Token(user)).await;
    let (index, _) = h.seed_index("private/app", "1.0", 97).await;
    let lookup = r#"
data "ecrmirror_source" "private" {
  docker_source = "{source}/private/app:1.0"
}

output "digest" {
  value = data.ecrmirror_source.private.digest
}
"#;

    // Without credentials the registry refuses, and the error says how to give some.
    h.config(&format!("provider \"ecrmirror\" {{}}\n{lookup}"));
    let run = h.apply_fails().await;
    run.stderr_has("The source registry refused to serve")
        .stderr_has("registry_auth");

    h.var("source_password", Some("s3cr3t-lookup-pass"));
    h.config(&format!(
        "{}{lookup}",
        support::provider_with_registry_auth("mirror-bot")
    ));
    let run = h.apply().await;
    assert_eq!(h.outputs().await["digest"], json!(index));
    assert!(!run.output().contains("s3cr3t-lookup-pass"));
    assert!(!h.state_file().contains("s3cr3t-lookup-pass"));
}

/// A fleet of lookups whose tags name few images (`for_each` over tags) read in parallel
/// from a cold cache: each tag costs its `HEAD`, each image one `GET` in all, not one per
/// lookup that met it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_lookups_of_one_image_fetch_it_once() {
    let h = Harness::start().await;
    let (index, _) = h.seed_index("fleet/app", "i0", 83).await;
    let single = h.seed_image("fleet/app", "s0", 84).await;
    for n in 1..10 {
        h.seed_index("fleet/app", &format!("i{n}"), 83).await;
        h.seed_image("fleet/app", &format!("s{n}"), 84).await;
    }
    h.config(
        r#"
provider "ecrmirror" {}

data "ecrmirror_source" "fleet" {
  for_each      = toset([for n in range(10) : "i${n}"])
  docker_source = "{source}/fleet/app:${each.key}"
}

data "ecrmirror_source" "single" {
  for_each      = toset([for n in range(10) : "s${n}"])
  docker_source = "{source}/fleet/app:${each.key}"
  platform      = "linux/amd64"
}
"#,
    );
    h.clear_logs();
    let run = h
        .terraform(&["plan", "-input=false", "-no-color", "-parallelism=20"])
        .await;
    assert!(run.success, "{}", run.output());
    assert_eq!(requests(&h, "HEAD", "/manifests/").len(), 20);
    assert_eq!(
        requests(&h, "GET", "/manifests/"),
        vec![
            manifest("GET", "fleet/app", &index),
            manifest("GET", "fleet/app", &single.manifest_digest),
        ]
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
    );
    assert_eq!(
        requests(&h, "GET", "/blobs/"),
        vec![format!("GET /v2/fleet/app/blobs/{}", single.config_digest)]
    );
}
