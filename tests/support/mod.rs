//! The end-to-end harness: a stand-in world, a Terraform working directory, and the real
//! `terraform` binary driving the real provider binary (through a `dev_overrides` CLI config).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;
use standin::{SourceAuth, World};
use tempfile::TempDir;

/// Variables of this machine that would change where the provider's connections go or whom
/// they trust: every run starts with them empty (tests that need one set it).
const HERMETIC: &[&str] = &[
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "AWS_CA_BUNDLE",
];

/// The output of one `terraform` run.
pub struct Run {
    pub success: bool,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout and stderr together.
    pub fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Asserts that stdout shows `text`, however Terraform wrapped or aligned it.
    pub fn stdout_has(&self, text: &str) -> &Run {
        assert!(
            words(&self.stdout).contains(&words(text)),
            "stdout lacks {text:?}:\n{}",
            self.stdout
        );
        self
    }

    /// Asserts that stderr shows `text`, however Terraform wrapped or aligned it.
    pub fn stderr_has(&self, text: &str) -> &Run {
        assert!(
            words(&self.stderr).contains(&words(text)),
            "stderr lacks {text:?}:\n{}",
            self.stderr
        );
        self
    }
}

/// `text` with every run of whitespace one space.
fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A configuration of one `ecrmirror_image.test` with `arguments` (HCL, one per line; `{source}`
/// stands for the source registry's host), under a provider block with no settings.
pub fn image(arguments: &str) -> String {
    format!(
        "provider \"ecrmirror\" {{}}\n\nresource \"ecrmirror_image\" \"test\" {{\n{}\n}}\n",
        arguments.trim_matches('\n')
    )
}

/// A provider block with the source registry's credentials for `username` in a
/// `registry_auth` block, whose password comes from the sensitive variable
/// `source_password` (set it with `h.var`); `{source}` stands for the source's host.
pub fn provider_with_registry_auth(username: &str) -> String {
    format!(
        r#"
variable "source_password" {{
  type      = string
  sensitive = true
}}

provider "ecrmirror" {{
  registry_auth {{
    address  = "{{source}}"
    username = "{username}"
    password = var.source_password
  }}
}}
"#
    )
}

/// Asserts that, since the logs were last cleared, nothing was pushed to ECR (no request
/// but reads) nor pulled from the source (no blob served).
pub fn assert_no_transfer(h: &Harness) {
    assert_ecr_untouched(h);
    let pulled: Vec<String> = h
        .source_requests()
        .into_iter()
        .filter(|r| r.contains("/blobs/"))
        .collect();
    assert!(pulled.is_empty(), "the source served blobs: {pulled:?}");
}

/// Asserts that, since the logs were last cleared, ECR received nothing but reads.
fn assert_ecr_untouched(h: &Harness) {
    let pushed: Vec<String> = h
        .ecr_requests()
        .into_iter()
        .filter(|r| !r.starts_with("GET ") && !r.starts_with("HEAD "))
        .collect();
    assert!(pushed.is_empty(), "ECR received: {pushed:?}");
}

/// Asserts that, since the logs were last cleared, ECR received nothing but reads and the
/// source served no blob of `images` (other blobs, such as signatures, may have been read).
pub fn assert_not_pulled(h: &Harness, images: &[&standin::images::Pushed]) {
    assert_ecr_untouched(h);
    let blobs: Vec<&String> = images
        .iter()
        .flat_map(|image| image.layer_digests.iter().chain([&image.config_digest]))
        .collect();
    let pulled: Vec<String> = h
        .source_requests()
        .into_iter()
        .filter(|r| blobs.iter().any(|blob| r.contains(blob.as_str())))
        .collect();
    assert!(pulled.is_empty(), "the source served the image: {pulled:?}");
}

/// `docker <args>`, which must succeed; its output.
pub async fn docker(args: &[&str]) -> String {
    let output = tokio::process::Command::new("docker")
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "docker {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The Docker engine's images under this world's registries (`<host>/…`), one
/// `repository:tag@digest id` line each. Taken before a run and after it, the difference is
/// what the run left: an engine that outlives the tests holds images of earlier worlds (a
/// soak's provider killed mid-copy cannot clean up), whose ports a new world can be given
/// again.
pub async fn engine_images(h: &Harness) -> std::collections::BTreeSet<String> {
    let hosts = [h.world.ecr_host(), h.world.source_host()];
    let listed = docker(&[
        "images",
        "--digests",
        "--format",
        "{{.Repository}}:{{.Tag}}@{{.Digest}} {{.ID}}",
    ])
    .await;
    listed
        .lines()
        .filter(|line| {
            hosts
                .iter()
                .any(|host| line.starts_with(&format!("{host}/")))
        })
        .map(str::to_string)
        .collect()
}

/// Asserts that the engine holds no image under this world's registries beyond `before`
/// ([`engine_images`] at the test's start).
pub async fn assert_engine_left_nothing(h: &Harness, before: &std::collections::BTreeSet<String>) {
    let now = engine_images(h).await;
    let left: Vec<&String> = now.difference(before).collect();
    assert!(
        left.is_empty(),
        "left behind in the Docker engine: {left:?}"
    );
}

/// Two mirrors of the source's two-platform `upstream/app:1.0` into `mirror/app`, one per
/// platform, made in parallel.
pub const TWO_PLATFORMS: &str = r#"
provider "ecrmirror" {}

resource "ecrmirror_image" "amd64" {
  docker_source = "{source}/upstream/app:1.0"
  repository    = "mirror/app"
  tag           = "amd64"
  platform      = "linux/amd64"
}

resource "ecrmirror_image" "arm64" {
  docker_source = "{source}/upstream/app:1.0"
  repository    = "mirror/app"
  tag           = "arm64"
  platform      = "linux/arm64/v8"
}
"#;

/// One test's world and Terraform working directory.
pub struct Harness {
    pub world: World,
    dir: TempDir,
    env: Vec<(String, String)>,
    source_login: Option<(String, String)>,
}

fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_terraform-provider-ecrmirror"))
        .parent()
        .expect("the provider binary has a directory")
        .to_path_buf()
}

impl Harness {
    /// A world with an anonymous source registry.
    pub async fn start() -> Harness {
        Harness::start_with(SourceAuth::Anonymous).await
    }

    /// A world whose source registry authenticates as `source_auth` says.
    pub async fn start_with(source_auth: SourceAuth) -> Harness {
        let dir = tempfile::Builder::new()
            .prefix("ecrmirror-e2e-")
            .tempdir()
            .expect("temp dir");
        let source_login = match &source_auth {
            SourceAuth::Basic(a) | SourceAuth::Token(a) => {
                Some((a.username.clone(), a.password.clone()))
            }
            // The world's own client knows the refresh token.
            SourceAuth::Anonymous | SourceAuth::RefreshToken(_) => None,
        };
        let world = World::start_with(&dir.path().join("world"), source_auth)
            .await
            .expect("the stand-in world starts");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let docker_config = dir.path().join("docker-config");
        std::fs::create_dir_all(&docker_config).unwrap();
        let cli_config = dir.path().join("terraformrc");
        std::fs::write(
            &cli_config,
            format!(
                "provider_installation {{\n  dev_overrides {{\n    \"techtospeech/ecrmirror\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
                provider_dir().display()
            ),
        )
        .unwrap();
        let mut env = world.aws_env();
        env.push((
            "TF_CLI_CONFIG_FILE".into(),
            cli_config.display().to_string(),
        ));
        env.push(("TF_IN_AUTOMATION".into(), "1".into()));
        env.push(("CHECKPOINT_DISABLE".into(), "1".into()));
        env.push(("DOCKER_CONFIG".into(), docker_config.display().to_string()));
        // Each test's own cache of source manifests, so that no test reads another's.
        let cache = dir.path().join("cache");
        env.push(("ECRMIRROR_CACHE_DIR".into(), cache.display().to_string()));
        env.push(("TF_VAR_repository".into(), "mirror/app".into()));
        world.ecr.state.create_repository("mirror/app");
        Harness {
            world,
            dir,
            env,
            source_login,
        }
    }

    /// The Terraform working directory.
    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// The Docker config directory the provider reads (`DOCKER_CONFIG`).
    pub fn docker_config(&self) -> PathBuf {
        self.dir.path().join("docker-config")
    }

    /// The provider's cache of source manifests and configs (`ECRMIRROR_CACHE_DIR`).
    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// Sets (or replaces) an environment variable for later runs.
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.to_string(), value.to_string()));
    }

    /// Removes an environment variable for later runs.
    pub fn unset_env(&mut self, name: &str) {
        self.env.retain(|(k, _)| k != name);
    }

    /// Sets a Terraform variable for later runs; `None` unsets it.
    pub fn var(&mut self, name: &str, value: Option<&str>) {
        let key = format!("TF_VAR_{name}");
        match value {
            Some(value) => self.set_env(&key, value),
            None => self.unset_env(&key),
        }
    }

    /// Uses `tests/testdata/<name>.tf` as the configuration.
    pub fn use_config(&self, name: &str) {
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/testdata")
            .join(format!("{name}.tf"));
        std::fs::write(self.work().join("main.tf"), std::fs::read(source).unwrap()).unwrap();
    }

    /// Uses `hcl` as the configuration, after the `terraform` block that names the provider;
    /// `{source}` in it stands for the source registry's host. A test that writes its HCL
    /// this way shows the configuration it tests.
    pub fn config(&self, hcl: &str) {
        let header = "terraform {\n  required_providers {\n    ecrmirror = {\n      source = \"techtospeech/ecrmirror\"\n    }\n  }\n}\n";
        let hcl = hcl.replace("{source}", &self.world.source_host());
        std::fs::write(self.work().join("main.tf"), format!("{header}{hcl}")).unwrap();
    }

    /// `<source registry>/<repository>:<tag>`.
    pub fn source_ref(&self, rest: &str) -> String {
        format!("{}/{rest}", self.world.source_host())
    }

    /// Runs `terraform <args>` in the working directory.
    pub async fn terraform(&self, args: &[&str]) -> Run {
        self.terraform_in(&self.work(), args).await
    }

    /// Runs `terraform <args>` in `dir`, with this harness's environment.
    pub async fn terraform_in(&self, dir: &Path, args: &[&str]) -> Run {
        let output = self
            .command(dir, args)
            .output()
            .await
            .expect("terraform runs");
        Run {
            success: output.status.success(),
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// `terraform <args>` in `dir`, with this harness's environment and nothing of the
    /// machine's that would change where connections go: the one place a command is built.
    fn command(&self, dir: &Path, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("terraform");
        command
            .args(args)
            .current_dir(dir)
            .env_remove("TF_LOG")
            .env_remove("DOCKER_HOST")
            .env_remove("AWS_PROFILE")
            .stdin(Stdio::null());
        for name in HERMETIC {
            command.env_remove(name);
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    /// `terraform apply` that must succeed.
    pub async fn apply(&self) -> Run {
        let run = self
            .terraform(&["apply", "-auto-approve", "-input=false", "-no-color"])
            .await;
        assert!(run.success, "apply failed:\n{}", run.output());
        run
    }

    /// `terraform apply -parallelism=<n>` that must succeed.
    pub async fn apply_parallel(&self, n: usize) -> Run {
        let parallelism = format!("-parallelism={n}");
        let run = self
            .terraform(&[
                "apply",
                "-auto-approve",
                "-input=false",
                "-no-color",
                &parallelism,
            ])
            .await;
        assert!(run.success, "apply failed:\n{}", run.output());
        run
    }

    /// `terraform apply` that must fail.
    pub async fn apply_fails(&self) -> Run {
        let run = self
            .terraform(&["apply", "-auto-approve", "-input=false", "-no-color"])
            .await;
        assert!(!run.success, "apply should have failed:\n{}", run.output());
        run
    }

    /// `terraform plan`: the run and whether it plans changes.
    pub async fn plan(&self) -> (Run, bool) {
        let run = self
            .terraform(&["plan", "-detailed-exitcode", "-input=false", "-no-color"])
            .await;
        assert!(
            run.code == 0 || run.code == 2,
            "plan failed:\n{}",
            run.output()
        );
        let changes = run.code == 2;
        (run, changes)
    }

    /// `terraform plan` that must fail (a plan error).
    pub async fn plan_fails(&self) -> Run {
        let run = self.terraform(&["plan", "-input=false", "-no-color"]).await;
        assert!(!run.success, "plan should have failed:\n{}", run.output());
        run
    }

    /// Writes `content` to `name` in the working directory (a file the configuration reads).
    pub fn file(&self, name: &str, content: &str) {
        std::fs::write(self.work().join(name), content).unwrap();
    }

    /// `terraform state rm ecrmirror_image.<name>`, which must succeed: the state forgets the
    /// mirror, ECR keeps it (a lost state, or the start of an import).
    pub async fn forget(&self, name: &str) {
        let address = format!("ecrmirror_image.{name}");
        let run = self
            .terraform(&["state", "rm", "-no-color", &address])
            .await;
        assert!(run.success, "state rm failed:\n{}", run.output());
    }

    /// `terraform destroy` that must succeed.
    pub async fn destroy(&self) -> Run {
        let run = self
            .terraform(&["destroy", "-auto-approve", "-input=false", "-no-color"])
            .await;
        assert!(run.success, "destroy failed:\n{}", run.output());
        run
    }

    /// The state's resources (`terraform show -json`).
    pub async fn resources(&self) -> Vec<Value> {
        let run = self.terraform(&["show", "-json", "-no-color"]).await;
        assert!(run.success, "show failed:\n{}", run.output());
        let json: Value = serde_json::from_str(&run.stdout).expect("show prints JSON");
        json.pointer("/values/root_module/resources")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    /// One attribute of `ecrmirror_image.<name>` in state.
    pub async fn attr(&self, name: &str, attribute: &str) -> String {
        let resources = self.resources().await;
        let resource = resources
            .iter()
            .find(|r| r["address"] == format!("ecrmirror_image.{name}"))
            .unwrap_or_else(|| panic!("ecrmirror_image.{name} is not in state"));
        resource["values"][attribute]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The root module's outputs (`terraform output -json`), by name, as their values.
    pub async fn outputs(&self) -> serde_json::Map<String, Value> {
        let run = self.terraform(&["output", "-json", "-no-color"]).await;
        assert!(run.success, "output failed:\n{}", run.output());
        let json: Value = serde_json::from_str(&run.stdout).expect("output prints JSON");
        json.as_object()
            .into_iter()
            .flatten()
            .map(|(name, output)| (name.clone(), output["value"].clone()))
            .collect()
    }

    /// The raw state file, as written on disk.
    pub fn state_file(&self) -> String {
        std::fs::read_to_string(self.work().join("terraform.tfstate")).unwrap_or_default()
    }
}

/// Seeding and reading back images.
impl Harness {
    /// Pushes a linux/amd64 + linux/arm64/v8 index to the source registry under
    /// `repository:tag`; returns the index digest and each platform's image.
    pub async fn seed_index(
        &self,
        repository: &str,
        tag: &str,
        seed: u64,
    ) -> (String, Vec<standin::images::Pushed>) {
        let specs = [
            standin::images::Spec::small(seed),
            standin::images::Spec::small(seed).for_platform("arm64", Some("v8")),
        ];
        standin::images::push_index(&self.source_client(), repository, tag, &specs)
            .await
            .expect("seeding an index")
    }

    /// Pushes one linux/amd64 image to the source registry under `repository:tag`.
    pub async fn seed_image(
        &self,
        repository: &str,
        tag: &str,
        seed: u64,
    ) -> standin::images::Pushed {
        standin::images::push_image(
            &self.source_client(),
            repository,
            Some(tag),
            &standin::images::Spec::small(seed),
        )
        .await
        .expect("seeding an image")
    }

    /// A client for the source registry (with the test credentials when it needs them).
    pub fn source_client(&self) -> standin::client::Client {
        self.world.source_client(self.source_login.clone())
    }

    /// The digest ECR's `repository:tag` names, if any, as the emulator holds it.
    pub fn ecr_tag(&self, repository: &str, tag: &str) -> Option<String> {
        self.world.ecr.state.tag_digest(repository, tag)
    }

    /// The manifest ECR serves for `repository:tag`, if any.
    pub async fn ecr_manifest(
        &self,
        repository: &str,
        tag: &str,
    ) -> Option<standin::client::Manifest> {
        self.world
            .ecr_client()
            .manifest(repository, tag)
            .await
            .expect("reading the ECR registry")
    }
}

/// The world's state and faults, as tests see and steer them.
impl Harness {
    /// Faults the ECR registry injects into the requests that match them.
    pub fn ecr_faults(&self) -> &standin::faults::Faults {
        &self.world.ecr.state.front().faults
    }

    /// Faults the source registry injects into the requests that match them.
    pub fn source_faults(&self) -> &standin::faults::Faults {
        &self.world.source.faults
    }

    /// How often each ECR API operation was called.
    pub fn ecr_calls(&self) -> std::collections::BTreeMap<String, u64> {
        self.world.ecr.state.calls()
    }

    /// Every ECR token the emulator issued.
    pub fn ecr_tokens(&self) -> Vec<String> {
        self.world.ecr.state.issued_tokens()
    }

    /// Makes ECR's registry refuse (or again accept) the tokens it issues.
    pub fn set_bad_tokens(&self, bad: bool) {
        self.world.ecr.state.set_bad_tokens(bad);
    }

    /// Makes the ECR tokens issued so far expire once `requests` more registry requests
    /// have passed with one (tokens issued later work).
    pub fn expire_ecr_tokens_after(&self, requests: u64) {
        self.world.ecr.state.expire_tokens_after(requests);
    }

    /// How often ECR tokens expired so.
    pub fn ecr_token_expirations(&self) -> u64 {
        self.world.ecr.state.expirations()
    }

    /// Creates an ECR repository, as someone outside Terraform would.
    pub fn create_repository(&self, name: &str) {
        self.world.ecr.state.create_repository(name);
    }

    /// Sets a repository's `imageTagMutability` (and exclusion filters), as
    /// `aws ecr put-image-tag-mutability` would.
    pub fn set_tag_mutability(&self, repository: &str, setting: &str, exclusions: &[&str]) {
        self.world.ecr.state.set_tag_mutability(
            repository,
            standin::ecr::TagMutability {
                setting: setting.to_string(),
                exclusions: exclusions.iter().map(|e| e.to_string()).collect(),
            },
        );
    }

    /// Deletes an ECR tag, as someone outside Terraform would.
    pub async fn delete_ecr_tag(&self, repository: &str, tag: &str) {
        self.world
            .ecr
            .state
            .delete_tag(repository, tag)
            .await
            .expect("deleting the tag");
    }

    /// Deletes the manifest `digest` (and its tags) from ECR, as someone outside Terraform
    /// would.
    pub async fn delete_ecr_manifest(&self, repository: &str, digest: &str) {
        self.world
            .ecr
            .state
            .delete_manifest(repository, digest)
            .await
            .expect("deleting the manifest");
    }

    /// Whether ECR's `repository` holds the blob `digest`.
    pub async fn ecr_has_blob(&self, repository: &str, digest: &str) -> bool {
        self.world.ecr.state.has_blob(repository, digest).await
    }
}

/// Request logs of the world's registries, to prove what was (not) transferred.
impl Harness {
    /// Forgets the requests both registries (and the source's token service) have seen so
    /// far.
    pub fn clear_logs(&self) {
        self.world.source.log.lock().unwrap().clear();
        if let Some(issuer) = &self.world.issuer {
            issuer.clear_exchanges();
        }
        self.world.ecr.state.front().log.lock().unwrap().clear();
    }

    /// `METHOD path` of every request the source registry saw since the last clear.
    pub fn source_requests(&self) -> Vec<String> {
        logged(&self.world.source.log.lock().unwrap())
    }

    /// `METHOD path` of every request the ECR registry saw since the last clear.
    pub fn ecr_requests(&self) -> Vec<String> {
        logged(&self.world.ecr.state.front().log.lock().unwrap())
    }
}

fn logged(log: &[standin::front::Logged]) -> Vec<String> {
    log.iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// Sends `signal` (`INT`, `KILL`, …) to `target`: a pid, or `-<pgid>` for a process group.
pub async fn kill(signal: &str, target: &str) {
    let status = tokio::process::Command::new("kill")
        .args([&format!("-{signal}"), "--", target])
        .status()
        .await
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {target}");
}

impl Harness {
    /// Starts `terraform <args>` in a process group of its own (so a test can interrupt the
    /// whole group, as a terminal's Ctrl-C does) and returns it running.
    pub fn spawn_terraform(&self, args: &[&str]) -> tokio::process::Child {
        self.command(&self.work(), args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("terraform starts")
    }
}
