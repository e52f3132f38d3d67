//! `ecrmirror-soak --provider-dir DIR [--seed N] [--mirrors N] [--sources N] [--report FILE]`:
//! the fault soak behind `make soak`. One stand-in world; `--sources` images (every third
//! a two-platform index) mirrored `--mirrors` times (several tags of each, a quarter through
//! Docker, some by platform) with `terraform apply -parallelism=10`, while the world injects
//! a mix of faults drawn from the seed: ECR API throttling bursts and 500s, 429 with
//! Retry-After and 503 on blobs and manifests on both sides, resets and truncated bodies
//! mid-blob, damaged blobs, slow answers, slow untagging, an ECR token that expires mid-run,
//! and the provider killed with SIGKILL mid-apply. The mirrors are one `for_each`; before the
//! second and the third apply a third of its keys are renamed without a `moved` block (so
//! Terraform destroys each old instance and creates its new one, of the same tag, in one
//! apply). The first two applies run under faults; then the faults stop and it applies until
//! a plan is empty. After every apply it checks, from ECR's own state: every mirror in
//! Terraform's state is in ECR with the digest state records; after a successful apply, ECR
//! holds no tag state lacks; no manifest in ECR names a blob or manifest ECR lacks; every
//! provider diagnostic says what to do; a successful apply committed no blob twice to one
//! repository. It writes the figures and the invariants' results to the report (SOAK.md).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use standin::faults::Rule;
use standin::images::{push_image, push_index, Spec};
use standin::{runner, World};

/// The provider's retries by kind, and the words its debug log says each with.
const RETRIES: [(&str, &str); 11] = [
    ("a blob copied again", "retrying a blob"),
    ("a manifest asked for again", "retrying a manifest:"),
    ("a manifest pushed again", "retrying a manifest push"),
    (
        "an image config asked for again",
        "retrying an image config",
    ),
    ("a digest asked for again", "retrying a digest"),
    ("referrers asked for again", "retrying the referrers"),
    ("a cosign tag asked for again", "retrying a cosign tag"),
    (
        "a registry challenge met again",
        "retrying the registry's challenge",
    ),
    ("Docker push again", "retrying the push of"),
    ("Docker pull again", "retrying the pull of"),
    (
        "new ECR token after a refusal",
        "refused the push credentials",
    ),
];

/// Applies after the faults stop before the soak calls the run unconverged.
const CLEAN_APPLIES: usize = 3;

struct Options {
    provider_dir: PathBuf,
    seed: u64,
    mirrors: usize,
    sources: usize,
    report: PathBuf,
    /// Whether the local Docker engine may be restarted mid-apply (`--no-docker-restart`).
    restart_docker: bool,
}

fn options() -> Result<Options> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut options = Options {
        provider_dir: PathBuf::new(),
        seed: 20261202,
        mirrors: 100,
        sources: 30,
        report: PathBuf::from("SOAK.md"),
        restart_docker: std::env::var_os("DOCKER_HOST").is_none(),
    };
    let mut i = 0;
    while i < args.len() {
        let value = || {
            args.get(i + 1)
                .with_context(|| format!("{} needs a value", args[i]))
        };
        match args[i].as_str() {
            "--provider-dir" => options.provider_dir = PathBuf::from(value()?),
            "--seed" => options.seed = value()?.parse()?,
            "--mirrors" => options.mirrors = value()?.parse()?,
            "--sources" => options.sources = value()?.parse()?,
            "--report" => options.report = PathBuf::from(value()?),
            "--no-docker-restart" => {
                options.restart_docker = false;
                i -= 1;
            }
            other => bail!("unknown argument {other}"),
        }
        i += 2;
    }
    if !options
        .provider_dir
        .join("terraform-provider-ecrmirror")
        .exists()
    {
        bail!("--provider-dir must hold a build of terraform-provider-ecrmirror");
    }
    options.provider_dir = options.provider_dir.canonicalize()?;
    Ok(options)
}

/// One mirror of the configuration.
struct Mirror {
    /// Its tag in ECR, and its `for_each` key before any rename.
    name: String,
    source: usize,
    method: &'static str,
    platform: Option<&'static str>,
    /// How often its key was renamed.
    renames: u32,
}

impl Mirror {
    fn repository(&self) -> String {
        format!("soak/s{}", self.source)
    }

    /// Its `for_each` key: `m3`, after renames `m3-r1`, `m3-r2`.
    fn key(&self) -> String {
        match self.renames {
            0 => self.name.clone(),
            n => format!("{}-r{n}", self.name),
        }
    }
}

/// The mirrors: `count` of them over `sources` sources, a quarter through Docker (which
/// takes one platform of an index), a third of the registry copies of an index by platform.
fn mirrors(count: usize, sources: usize) -> Vec<Mirror> {
    (0..count)
        .map(|i| {
            let source = i % sources;
            let index = source.is_multiple_of(3);
            let method = if i.is_multiple_of(4) {
                "docker"
            } else {
                "registry"
            };
            let platform = match (index, method, i % 3) {
                (true, "docker", _) => Some("linux/amd64"),
                (true, _, 0) => Some("linux/arm64/v8"),
                _ => None,
            };
            Mirror {
                name: format!("m{i}"),
                source,
                method,
                platform,
                renames: 0,
            }
        })
        .collect()
}

/// Renames the keys of a third of `mirrors` (drawn from `rng`); returns how many.
fn rename(mirrors: &mut [Mirror], rng: &mut fastrand::Rng) -> usize {
    let count = mirrors.len().div_ceil(3);
    let mut order: Vec<usize> = (0..mirrors.len()).collect();
    rng.shuffle(&mut order);
    for &i in &order[..count] {
        mirrors[i].renames += 1;
    }
    count
}

/// The mirrors as one `for_each` over a map of their keys.
fn configuration(source_host: &str, mirrors: &[Mirror]) -> String {
    let mut hcl = String::from(
        "terraform {\n  required_providers {\n    ecrmirror = {\n      source = \"techtospeech/ecrmirror\"\n    }\n  }\n}\n\nprovider \"ecrmirror\" {}\n\nlocals {\n  mirrors = {\n",
    );
    for m in mirrors {
        hcl.push_str(&format!(
            "    \"{key}\" = {{ source = \"{source_host}/upstream/s{s}:1.0\", repository = \"{repo}\", tag = \"{name}\", method = \"{method}\", platform = {platform} }}\n",
            key = m.key(),
            name = m.name,
            s = m.source,
            repo = m.repository(),
            method = m.method,
            platform = m
                .platform
                .map(|p| format!("\"{p}\""))
                .unwrap_or_else(|| "null".into()),
        ));
    }
    hcl.push_str(
        "  }\n}\n\nresource \"ecrmirror_image\" \"m\" {\n  for_each      = local.mirrors\n  docker_source = each.value.source\n  repository    = each.value.repository\n  tag           = each.value.tag\n  copy_method   = each.value.method\n  platform      = each.value.platform\n}\n",
    );
    hcl
}

/// The faults of one apply, drawn from `rng`.
fn faults(rng: &mut fastrand::Rng) -> Vec<(&'static str, Rule)> {
    let mut rules = Vec::new();
    let api = |rng: &mut fastrand::Rng, target: &str, error_type: &str, status, most| Rule {
        count: rng.u32(1..=most),
        status: Some(status),
        error_type: Some(error_type.into()),
        message: Some("injected by the soak".into()),
        ..Rule::on(target)
    };
    for target in ["DescribeImages", "BatchGetImage", "DescribeRepositories"] {
        rules.push(("ecr", api(rng, target, "ThrottlingException", 400, 6)));
    }
    rules.push(("ecr", api(rng, "DescribeImages", "ServerException", 500, 2)));
    let slow = |rng: &mut fastrand::Rng, target: &str, count, delay_ms| Rule {
        count: rng.u32(count),
        delay_ms: rng.u64(delay_ms),
        ..Rule::on(target)
    };
    // Slow untagging widens the window in which a renamed key's destroy and its new
    // instance's create meet at one tag.
    rules.push(("ecr", slow(rng, "BatchDeleteImage", 3..=10, 100..=400)));
    rules.push((
        "ecr",
        api(rng, "GetAuthorizationToken", "ServerException", 500, 1),
    ));
    let status = |rng: &mut fastrand::Rng, target: &str, status, retry_after, most| Rule {
        count: rng.u32(1..=most),
        status: Some(status),
        retry_after,
        ..Rule::on(target)
    };
    for side in ["source", "ecr"] {
        let (blobs, manifests) = if side == "source" {
            ("registry:GET:/blobs/", "registry:GET:/manifests/")
        } else {
            ("registry:PUT:/blobs/", "registry:PUT:/manifests/")
        };
        let after = Some(rng.u32(1..=2));
        rules.push((side, status(rng, blobs, 429, after, 4)));
        rules.push((side, status(rng, blobs, 503, None, 4)));
        rules.push((side, status(rng, manifests, 429, Some(1), 2)));
        rules.push((side, status(rng, manifests, 503, None, 2)));
    }
    rules.push(("ecr", status(rng, "registry:HEAD:/blobs/", 500, None, 3)));
    rules.push((
        "source",
        Rule {
            count: rng.u32(1..=3),
            truncate: true,
            ..Rule::on("registry:GET:/blobs/")
        },
    ));
    rules.push((
        "source",
        Rule {
            count: rng.u32(1..=2),
            corrupt: true,
            ..Rule::on("registry:GET:/blobs/")
        },
    ));
    rules.push((
        "source",
        slow(rng, "registry:GET:/blobs/", 3..=8, 500..=2500),
    ));
    rules
}

/// What one apply did and found.
#[derive(Default)]
struct Apply {
    label: String,
    /// `for_each` keys renamed just before it.
    renamed: usize,
    success: bool,
    seconds: f64,
    peak_rss_kib: u64,
    peak_fds: u64,
    killed: bool,
    /// The provider's own retries, by kind (from its debug log).
    retries: BTreeMap<String, usize>,
    /// Whether the Docker engine was restarted during it.
    restarted: bool,
    errors: usize,
    /// The diagnostics' summaries (references left out), with how often each was given.
    summaries: BTreeMap<String, usize>,
    violations: Vec<String>,
    held: usize,
}

/// Peak RSS (KiB) and open file descriptors of `pid` now.
fn usage(pid: u32) -> (u64, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    (runner::peak_rss_kib(pid), fds)
}

/// Restarts the local Docker engine (`dockerd`, as scripts/setup.sh started it) with the
/// arguments it runs with, and waits until it answers again.
fn restart_dockerd() -> Result<()> {
    use std::process::Command;
    let pid = String::from_utf8(
        Command::new("pgrep")
            .args(["-x", "dockerd"])
            .output()?
            .stdout,
    )?;
    let pid = pid
        .split_whitespace()
        .next()
        .context("no local dockerd to restart")?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))?;
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Command::new("kill").args(["-TERM", pid]).status()?;
    for _ in 0..300 {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open("/var/log/ecrmirror-dockerd.log")?;
    Command::new("setsid")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting dockerd again")?;
    for _ in 0..300 {
        let up = Command::new("docker")
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if up {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("dockerd did not answer within 30 s of its restart")
}

/// Whether `text` (one diagnostic) has a sentence that says what to do.
fn says_what_to_do(text: &str) -> bool {
    const VERBS: [&str; 24] = [
        "Check", "Give", "Wait", "Start", "Raise", "Point", "Import", "Create", "Apply", "Set",
        "Use", "Remove", "Allow", "Trust", "Run", "List", "Leave", "Pin", "Choose", "Log in",
        "Mirror", "Delete", "Rename", "Make",
    ];
    text.split("\n\n")
        .map(|paragraph| paragraph.split_whitespace().collect::<Vec<_>>().join(" "))
        .any(|paragraph| {
            paragraph
                .split(". ")
                .flat_map(|sentence| sentence.split(": "))
                .chain(paragraph.split("; "))
                .any(|sentence| {
                    VERBS
                        .iter()
                        .any(|verb| sentence.trim_start().starts_with(verb))
                })
        })
}

struct Soak {
    world: World,
    work: PathBuf,
    /// Where each apply's provider log goes.
    logs: PathBuf,
    env: Vec<(String, String)>,
    mirrors: Vec<Mirror>,
}

impl Soak {
    /// Renames a third of the `for_each` keys (drawn from `rng`) and writes the
    /// configuration; returns how many were renamed.
    fn rename(&mut self, rng: &mut fastrand::Rng) -> Result<usize> {
        let renamed = rename(&mut self.mirrors, rng);
        std::fs::write(
            self.work.join("main.tf"),
            configuration(&self.world.source_host(), &self.mirrors),
        )?;
        Ok(renamed)
    }

    fn command(&self, program: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(program);
        command
            .envs(self.world.aws_env())
            .envs(self.env.iter().cloned())
            .current_dir(&self.work)
            .stdin(Stdio::null());
        command
    }

    fn set_faults(&self, rules: Vec<(&'static str, Rule)>) {
        for (side, rule) in rules {
            match side {
                "source" => self.world.source.faults.add(rule),
                _ => self.world.ecr.state.front().faults.add(rule),
            }
        }
    }

    fn clear_faults(&self) {
        self.world.source.faults.clear();
        self.world.ecr.state.front().faults.clear();
    }

    /// How many of the mirrors ECR holds now.
    fn in_ecr(&self) -> usize {
        self.mirrors
            .iter()
            .filter(|m| {
                self.world
                    .ecr
                    .state
                    .tag_digest(&m.repository(), &m.name)
                    .is_some()
            })
            .count()
    }

    /// One `terraform apply`; `kill_at`: SIGKILL the provider once ECR holds that many of
    /// the mirrors; `restart_at`: restart the Docker engine then.
    async fn apply(
        &self,
        label: &str,
        kill_at: Option<usize>,
        restart_at: Option<usize>,
    ) -> Result<Apply> {
        self.world.ecr.state.front().log.lock().unwrap().clear();
        std::fs::create_dir_all(&self.logs)?;
        let provider_log = self
            .logs
            .join(format!("{}.provider.log", label.replace(' ', "-")));
        let mut command = self.command("terraform");
        // The provider's debug lines (its retries) go to a file of their own; Terraform's to
        // another, so stderr holds only the diagnostics.
        command
            .env("TF_LOG_PROVIDER", "DEBUG")
            .env("TF_LOG_PATH", self.logs.join("terraform.log"))
            .env("PLUGIN_LOG_FILE", &provider_log)
            .args([
                "apply",
                "-auto-approve",
                "-input=false",
                "-no-color",
                "-parallelism=10",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let child = command.spawn().context("starting terraform")?;
        let pid = child.id().unwrap_or_default();
        let (mut rss, mut fds, mut killed) = (0, 0, false);
        let mut restart = None;
        let wait = child.wait_with_output();
        tokio::pin!(wait);
        let output = loop {
            tokio::select! {
                output = &mut wait => break output?,
                _ = tokio::time::sleep(Duration::from_millis(50)) => {
                    let held = self.in_ecr();
                    if restart.is_none() && restart_at.is_some_and(|n| held >= n) {
                        eprintln!("soak: restarting the Docker engine");
                        restart = Some(tokio::task::spawn_blocking(restart_dockerd));
                    }
                    let due = kill_at.is_some_and(|n| !killed && held >= n);
                    for provider in runner::providers(pid) {
                        let (r, f) = usage(provider);
                        rss = rss.max(r);
                        fds = fds.max(f);
                        if due {
                            eprintln!("soak: SIGKILL to the provider (pid {provider})");
                            let sent = std::process::Command::new("kill")
                                .args(["-KILL", &provider.to_string()])
                                .status()
                                .context("running kill (Debian package procps)")?;
                            anyhow::ensure!(sent.success(), "kill -KILL {provider} failed");
                            killed = true;
                        }
                    }
                }
            }
        };
        let restarted = match restart {
            Some(restart) => {
                restart.await??;
                true
            }
            None => false,
        };
        // Terraform frames each diagnostic (`╷`, `│ `, `╵`) when its output is no terminal.
        let stderr: String = String::from_utf8_lossy(&output.stderr)
            .lines()
            .map(|line| {
                let line = line.trim_start_matches(['╷', '╵']);
                line.strip_prefix("│ ")
                    .or(line.strip_prefix('│'))
                    .unwrap_or(line)
            })
            .collect::<Vec<_>>()
            .join("\n");
        let log = std::fs::read_to_string(&provider_log).unwrap_or_default();
        let mut retries = BTreeMap::new();
        for (kind, words) in RETRIES {
            let n = log.lines().filter(|line| line.contains(words)).count();
            if n > 0 {
                retries.insert(kind.to_string(), n);
            }
        }
        let mut apply = Apply {
            label: label.to_string(),
            retries,
            success: output.status.success(),
            seconds: started.elapsed().as_secs_f64(),
            peak_rss_kib: rss,
            peak_fds: fds,
            killed,
            restarted,
            ..Apply::default()
        };
        for block in stderr.split("Error: ").skip(1) {
            apply.errors += 1;
            // The summary and the first line of the detail (after the `with …` lines), with
            // the world's addresses left out.
            let (host, ecr) = (self.world.source_host(), self.world.ecr_host());
            let anonymous = |line: &str| {
                line.split(' ')
                    .map(|word| {
                        if word.contains(&host) || word.contains(&ecr) {
                            "…"
                        } else {
                            word
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let mut paragraphs = block.split("\n\n").map(str::trim);
            let summary = anonymous(paragraphs.next().unwrap_or_default());
            let detail = paragraphs
                .find(|p| !p.is_empty() && !p.starts_with("with ") && !p.starts_with("on "))
                .and_then(|p| p.lines().next())
                .map(anonymous)
                .unwrap_or_default();
            let summary = if detail.is_empty() {
                summary
            } else {
                format!("{summary} — {detail}")
            };
            *apply.summaries.entry(summary).or_default() += 1;
            // Terraform's own reports of the crash are not the provider's diagnostics.
            let terraform_own = block.starts_with("Plugin did not respond")
                || block.starts_with("Request cancelled")
                || block.starts_with("Failed to load plugin schemas");
            if !terraform_own && !says_what_to_do(block) {
                apply.violations.push(format!(
                    "a diagnostic says nothing to do: Error: {}",
                    block.lines().take(12).collect::<Vec<_>>().join("\n")
                ));
            }
        }
        eprintln!(
            "soak: {label}: {} in {:.1}s, {} errors{}",
            if apply.success { "succeeded" } else { "failed" },
            apply.seconds,
            apply.errors,
            if apply.killed {
                ", provider killed"
            } else {
                ""
            }
        );
        Ok(apply)
    }

    /// Checks the invariants after an apply; records what breaks them in `apply`.
    async fn check(&self, apply: &mut Apply) -> Result<()> {
        // 1. Every mirror in state is in ECR with the digest state records.
        let show = self
            .command("terraform")
            .args(["show", "-json", "-no-color"])
            .output()
            .await?;
        if !show.status.success() {
            apply
                .violations
                .push("terraform show failed: the state is unreadable".into());
            return Ok(());
        }
        let json: serde_json::Value = serde_json::from_slice(&show.stdout)?;
        let resources = json
            .pointer("/values/root_module/resources")
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default();
        for resource in &resources {
            let values = &resource["values"];
            let (repository, tag) = (
                values["repository"].as_str().unwrap_or_default(),
                values["tag"].as_str().unwrap_or_default(),
            );
            let recorded = values["image_digest"].as_str();
            let held = self.world.ecr.state.tag_digest(repository, tag);
            if held.as_deref() != recorded || recorded.is_none() {
                apply.violations.push(format!(
                    "state records {repository}:{tag} as {recorded:?}, ECR holds {held:?}"
                ));
            } else {
                apply.held += 1;
            }
        }
        // 2. After a successful apply, ECR holds no tag state lacks (a failed one may leave a
        // pushed tag the next apply adopts).
        let repositories: BTreeSet<String> = self.mirrors.iter().map(Mirror::repository).collect();
        if apply.success {
            let recorded: BTreeSet<(String, String)> = resources
                .iter()
                .map(|r| {
                    let value = |name: &str| r["values"][name].as_str().unwrap_or_default();
                    (value("repository").to_string(), value("tag").to_string())
                })
                .collect();
            for repository in &repositories {
                for tag in self.world.ecr.state.tags(repository).into_keys() {
                    if !recorded.contains(&(repository.clone(), tag.clone())) {
                        apply
                            .violations
                            .push(format!("ECR holds {repository}:{tag}, which state lacks"));
                    }
                }
            }
        }
        // 3. No manifest in ECR names a blob or a manifest ECR lacks.
        let client = self.world.ecr_client();
        for repository in &repositories {
            for tag in (0..self.mirrors.len()).map(|i| format!("m{i}")) {
                if self.world.ecr.state.tag_digest(repository, &tag).is_none() {
                    continue;
                }
                let Some(manifest) = client.manifest(repository, &tag).await? else {
                    apply.violations.push(format!(
                        "ECR lists {repository}:{tag} but serves no manifest"
                    ));
                    continue;
                };
                let mut manifests = vec![manifest];
                while let Some(manifest) = manifests.pop() {
                    if let Some(entries) = manifest.json["manifests"].as_array() {
                        for entry in entries {
                            let digest = entry["digest"].as_str().unwrap_or_default();
                            match client.manifest(repository, digest).await? {
                                Some(child) => manifests.push(child),
                                None => apply.violations.push(format!(
                                    "{repository}:{tag} names the manifest {digest}, which ECR lacks"
                                )),
                            }
                        }
                    }
                    let blobs = manifest.json["layers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .chain(std::iter::once(&manifest.json["config"]))
                        .filter_map(|d| d["digest"].as_str());
                    for digest in blobs {
                        if !self.world.ecr.state.has_blob(repository, digest).await {
                            apply.violations.push(format!(
                                "{repository}:{tag} ({}) names the blob {digest}, which ECR lacks",
                                manifest.digest
                            ));
                        }
                    }
                }
            }
        }
        // 4. A successful apply committed no blob twice to one repository.
        if apply.success {
            let log = self.world.ecr.state.front().log.lock().unwrap().clone();
            let mut commits: BTreeMap<(String, String), usize> = BTreeMap::new();
            for request in log.iter().filter(|r| {
                r.method == "PUT" && r.status == 201 && r.path.contains("/blobs/uploads/")
            }) {
                let repository = request.path[4..]
                    .split("/blobs/uploads/")
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let digest = request
                    .query
                    .as_deref()
                    .unwrap_or_default()
                    .split('&')
                    .find_map(|p| p.strip_prefix("digest="))
                    .unwrap_or_default()
                    .replace("%3A", ":");
                *commits.entry((repository, digest)).or_default() += 1;
            }
            for ((repository, digest), n) in commits.into_iter().filter(|(_, n)| *n > 1) {
                apply
                    .violations
                    .push(format!("{digest} was committed {n} times to {repository}"));
            }
        }
        Ok(())
    }
}

/// Seeds `count` sources `upstream/s<i>:1.0`: every third a two-platform index.
async fn seed(world: &World, count: usize) -> Result<()> {
    let client = world.source_client(None);
    for s in 0..count {
        let repository = format!("upstream/s{s}");
        let base = Spec {
            layers: 1 + s % 4,
            layer_size: 64 << 10,
            ..Spec::small(1000 + s as u64)
        };
        if s.is_multiple_of(3) {
            let arm = base.clone().for_platform("arm64", Some("v8"));
            push_index(&client, &repository, "1.0", &[base, arm]).await?;
        } else {
            push_image(&client, &repository, Some("1.0"), &base).await?;
        }
        world.ecr.state.create_repository(&format!("soak/s{s}"));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let options = options()?;
    let scratch = runner::scratch_dir("ecrmirror-soak")?;
    let world = World::start(&scratch.join("world")).await?;
    let work = scratch.join("work");
    std::fs::create_dir_all(&work)?;
    let env = runner::terraform_env(&scratch, &options.provider_dir)?;
    eprintln!("soak: seeding {} sources", options.sources);
    seed(&world, options.sources).await?;
    let mirrors = mirrors(options.mirrors, options.sources);
    std::fs::write(
        work.join("main.tf"),
        configuration(&world.source_host(), &mirrors),
    )?;
    let mut soak = Soak {
        world,
        logs: scratch.join("logs"),
        work,
        env,
        mirrors,
    };

    let mut rng = fastrand::Rng::with_seed(options.seed);
    let started = Instant::now();
    let mut applies: Vec<Apply> = Vec::new();
    for round in 0..2 {
        soak.set_faults(faults(&mut rng));
        // The provider is killed once ECR holds a fifth to three fifths of the mirrors.
        let n = soak.mirrors.len();
        let kill_at = (round == 0).then(|| rng.usize(n / 5..=n * 3 / 5).max(1));
        if round == 0 {
            // After one to four registry requests per mirror.
            let requests = rng.u64(n as u64..=4 * n as u64);
            soak.world.ecr.state.expire_tokens_after(requests);
        }
        // The Docker engine is restarted in the second, once it has added a few mirrors.
        let restart_at = (round == 1 && options.restart_docker).then(|| {
            let held = soak.in_ecr();
            held + rng.usize(1..=((n - held) / 3).max(1))
        });
        let renamed = if round == 1 {
            soak.rename(&mut rng)?
        } else {
            0
        };
        let label = format!("apply {} (faults)", round + 1);
        let mut apply = soak.apply(&label, kill_at, restart_at).await?;
        apply.renamed = renamed;
        soak.clear_faults();
        soak.check(&mut apply).await?;
        applies.push(apply);
    }
    let mut converged_after = None;
    for n in 0..CLEAN_APPLIES {
        let renamed = if n == 0 { soak.rename(&mut rng)? } else { 0 };
        let label = format!("apply {} (no faults)", n + 3);
        let mut apply = soak.apply(&label, None, None).await?;
        apply.renamed = renamed;
        soak.check(&mut apply).await?;
        let plan = soak
            .command("terraform")
            .args(["plan", "-detailed-exitcode", "-input=false", "-no-color"])
            .output()
            .await?;
        let empty = plan.status.code() == Some(0);
        applies.push(apply);
        if empty {
            converged_after = Some(n + 3);
            break;
        }
    }
    let wall = started.elapsed();
    let report = report(&options, &soak, &applies, converged_after, wall);
    std::fs::write(&options.report, &report)?;
    eprintln!("soak: report written to {}", options.report.display());
    let violations: usize = applies.iter().map(|a| a.violations.len()).sum();
    if violations > 0 || converged_after.is_none() {
        bail!("soak: {violations} invariant violations; converged: {converged_after:?}");
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

fn report(
    options: &Options,
    soak: &Soak,
    applies: &[Apply],
    converged_after: Option<usize>,
    wall: Duration,
) -> String {
    let docker = soak.mirrors.iter().filter(|m| m.method == "docker").count();
    let by_platform = soak.mirrors.iter().filter(|m| m.platform.is_some()).count();
    let mut out = format!(
        "# Fault soak\n\nMeasured at commit `{commit}`. Written by `make soak` (`standin/src/bin/soak.rs`); seed **{seed}**. Re-run with \
         `make soak SOAK_ARGS=\"--seed {seed}\"`.\n\n\
         {mirrors} mirrors of {sources} sources (every third a two-platform index) into {sources} ECR \
         repositories: {docker} through Docker, {registry} registry to registry, {by_platform} by platform; \
         one `for_each`, `terraform apply -parallelism=10`. Before the second and the third apply a \
         third of the keys are renamed, without a `moved` block, so Terraform destroys each old \
         instance and creates the new one, of the same tag, in one apply ({renamed} `for_each` keys \
         renamed in all). The first two applies run under faults drawn from the \
         seed; then the faults stop and it applies until a plan is empty. The seed fixes which \
         faults are set and how often each fires; which request meets which fault, and so the \
         figures below, vary with timing from run to run.\n\n",
        seed = options.seed,
        commit = standin::runner::commit(),
        mirrors = soak.mirrors.len(),
        sources = options.sources,
        registry = soak.mirrors.len() - docker,
        renamed = applies.iter().map(|a| a.renamed).sum::<usize>(),
    );
    out.push_str("## Applies\n\n| apply | keys renamed before | result | wall time | errors | provider retries | mirrors held after | provider peak RSS | peak open fds | invariants |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for apply in applies {
        out.push_str(&format!(
            "| {} | {} | {}{} | {:.1} s | {} | {} | {} | {:.1} MiB | {} | {} |\n",
            apply.label,
            apply.renamed,
            if apply.success { "succeeded" } else { "failed" },
            match (apply.killed, apply.restarted) {
                (true, _) => ", provider SIGKILLed",
                (_, true) => ", Docker engine restarted",
                _ => "",
            },
            apply.seconds,
            apply.errors,
            apply.retries.values().sum::<usize>(),
            apply.held,
            apply.peak_rss_kib as f64 / 1024.0,
            apply.peak_fds,
            if apply.violations.is_empty() {
                "held".to_string()
            } else {
                format!("**{} broken**", apply.violations.len())
            }
        ));
    }
    let mut retries: BTreeMap<&String, usize> = BTreeMap::new();
    for apply in applies {
        for (kind, n) in &apply.retries {
            *retries.entry(kind).or_default() += n;
        }
    }
    out.push_str("\nThe provider's own retries (its debug log; the AWS SDK's retries of throttled API calls come on top):\n\n");
    for (kind, n) in retries {
        out.push_str(&format!("- {kind}: {n}\n"));
    }
    out.push_str("\nWhat the failed applies reported (the provider's diagnostics, and Terraform's for the crash):\n\n");
    for apply in applies.iter().filter(|a| !a.summaries.is_empty()) {
        for (summary, n) in &apply.summaries {
            out.push_str(&format!("- {}: {n} × {summary}\n", apply.label));
        }
    }
    out.push_str(&format!(
        "\nConverged (an empty plan) after **{}**; wall time {:.0} s in all.\n\n",
        converged_after
            .map(|n| format!("{n} applies"))
            .unwrap_or_else(|| "no apply (not converged)".into()),
        wall.as_secs_f64()
    ));
    out.push_str("## Faults injected\n\nEach was answered instead of the real answer (and tried again by the provider, or by the next apply).\n\n| where | kind | times |\n|---|---|---|\n");
    let mut total = 0;
    let sides = [
        ("source registry", &soak.world.source.faults),
        ("ECR", &soak.world.ecr.state.front().faults),
    ];
    for (side, faults) in sides {
        for ((target, effect), n) in faults.fired_by_kind() {
            total += n;
            out.push_str(&format!("| {side} | `{target}`: {effect} | {n} |\n"));
        }
    }
    out.push_str(&format!(
        "| ECR | token expired mid-run | {} |\n| provider | SIGKILL mid-apply | {} |\n| Docker engine | restarted mid-apply | {} |\n",
        soak.world.ecr.state.expirations(),
        applies.iter().filter(|a| a.killed).count(),
        applies.iter().filter(|a| a.restarted).count()
    ));
    out.push_str(&format!(
        "\n{total} requests were answered with a fault in all.\n\n"
    ));
    out.push_str(
        "## Invariants\n\nChecked after every apply, from ECR's own state:\n\n\
        1. every mirror in Terraform's state is in ECR with the digest state records;\n\
        2. after a successful apply, ECR holds no tag of the soak's repositories that state lacks \
        (so, with 1, exactly what state holds, renamed keys included);\n\
        3. no manifest in ECR names a blob or a manifest ECR lacks;\n\
        4. every provider diagnostic says what to do;\n\
        5. a successful apply committed no blob twice to one repository;\n\
        6. re-applying converges to an empty plan within 3 applies after the faults stop.\n\n",
    );
    let broken: Vec<&String> = applies.iter().flat_map(|a| &a.violations).collect();
    if broken.is_empty() && converged_after.is_some() {
        out.push_str("All held.\n");
    } else {
        out.push_str("Broken:\n\n");
        for violation in broken {
            out.push_str(&format!("- {violation}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diagnostic_with_a_hint_says_what_to_do() {
        let block = "Cannot query the source registry about 127.0.0.1:43361/upstream/s3:1.0\n\n  with ecrmirror_image.m9,\n  on main.tf line 78, in resource \"ecrmirror_image\" \"m9\":\n  78:   docker_source = \"127.0.0.1:43361/upstream/s3:1.0\"\n\nDownloading a blob from http://127.0.0.1:43361: error sending request: client\nerror (SendRequest): connection closed before message completed\n\nCheck that the source registry is reachable from the machine that runs\nTerraform, and its credentials (`registry_auth` or the Docker config file).\n";
        assert!(says_what_to_do(block));
        assert!(!says_what_to_do(
            "Pushing failed\n\nServer error: code 503\n"
        ));
    }
}
