//! `ecrmirror-bench --provider-dir DIR [--rounds N] [--quick]`: the mirror benchmark behind
//! `make bench`. In one invocation and one stand-in world it times, in alternating rounds
//! with a fresh, empty ECR registry and no local image before each: the seed module's shell loop
//! (docker pull, `aws ecr get-login-password | docker login`, docker tag, docker push),
//! `terraform apply` with `copy_method = "docker"` and with `"registry"`, and `skopeo copy`
//! as the outside reference; on a 4 KiB image (each method's fixed cost), a 5-layer image of
//! about 40 MiB and a 1 GiB single-layer image. It writes medians, ratios and the provider's peak RSS to BENCHMARKS.md, the
//! medians to bench/results.json (for bench/chart.py), and checks that re-applying with
//! nothing to do uploads nothing. Times are compared only within this run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use standin::images::{push_image, Spec};
use standin::{runner, World};

const METHODS: [&str; 4] = [
    "seed loop",
    "terraform docker",
    "terraform registry",
    "skopeo",
];

struct Options {
    provider_dir: PathBuf,
    rounds: usize,
    quick: bool,
}

fn options() -> Result<Options> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut options = Options {
        provider_dir: PathBuf::new(),
        rounds: 3,
        quick: false,
    };
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--provider-dir" => {
                options.provider_dir =
                    PathBuf::from(args.get(i + 1).context("--provider-dir DIR")?);
                i += 1;
            }
            "--rounds" => {
                options.rounds = args.get(i + 1).context("--rounds N")?.parse()?;
                i += 1;
            }
            "--quick" => options.quick = true,
            other => bail!("unknown argument {other}"),
        }
        i += 1;
    }
    if !options
        .provider_dir
        .join("terraform-provider-ecrmirror")
        .exists()
    {
        bail!("--provider-dir must hold the release build of terraform-provider-ecrmirror");
    }
    options.provider_dir = options.provider_dir.canonicalize()?;
    Ok(options)
}

/// Runs a command to its end; fails with its output when it fails.
async fn run(mut command: tokio::process::Command) -> Result<()> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("starting {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// The highest peak RSS (VmHWM, KiB) of the provider processes `terraform` runs now.
fn provider_peak_kib(terraform: u32) -> u64 {
    runner::providers(terraform)
        .into_iter()
        .map(runner::peak_rss_kib)
        .max()
        .unwrap_or(0)
}

/// `terraform apply` of bench/main.tf mirroring `source` into `repository` by `copy_method`.
fn apply_args(source: &str, repository: &str, copy_method: &str) -> Vec<String> {
    let mut args = referrers_args(source, repository, false);
    args.push(format!("-var=copy_method={copy_method}"));
    args
}

/// `terraform apply` of bench/main.tf mirroring `source` into `repository` registry to
/// registry, with or without its referrers.
fn referrers_args(source: &str, repository: &str, copy_referrers: bool) -> Vec<String> {
    vec![
        "apply".into(),
        "-auto-approve".into(),
        "-input=false".into(),
        "-no-color".into(),
        format!("-var=source_image={source}"),
        format!("-var=repository={repository}"),
        format!("-var=copy_referrers={copy_referrers}"),
    ]
}

struct Bench {
    world: World,
    dir: PathBuf,
    env: Vec<(String, String)>,
    /// The provider's cache of manifests by digest, emptied before every timed run.
    cache: PathBuf,
}

impl Bench {
    /// A new, empty ECR registry, and the provider's cache emptied: each run starts as cold
    /// as `skopeo copy` does.
    async fn fresh(&mut self) -> Result<()> {
        self.world.fresh_ecr().await?;
        match std::fs::remove_dir_all(&self.cache) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err.into()),
            _ => Ok(()),
        }
    }

    fn command(&self, program: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(program);
        command
            .envs(self.world.aws_env())
            .envs(self.env.iter().cloned())
            .current_dir(&self.dir);
        command
    }

    /// No local copy of `references` (the next round starts cold).
    async fn forget(&self, references: &[&str]) {
        for reference in references {
            let _ = self
                .command("docker")
                .args(["rmi", "-f", reference])
                .output()
                .await;
        }
    }

    /// `skopeo copy` of `source` to `target` in ECR's registry, pushing with `token`.
    fn skopeo_copy(&self, token: &str, source: &str, target: &str) -> tokio::process::Command {
        let mut command = self.command("skopeo");
        command.args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--dest-creds",
            &format!("AWS:{token}"),
            &format!("docker://{source}"),
            &format!("docker://{target}"),
        ]);
        command
    }

    async fn terraform(&self, work: &Path, args: &[&str]) -> Result<()> {
        let mut command = self.command("terraform");
        command.current_dir(work).args(args);
        run(command).await
    }

    /// One copy of `source` into a new repository of a new, empty ECR registry by `method`;
    /// returns its wall time and, for the provider, its peak RSS in KiB.
    async fn once(
        &mut self,
        method: &str,
        source: &str,
        repository: &str,
    ) -> Result<(Duration, u64)> {
        self.fresh().await?;
        self.world.ecr.state.create_repository(repository);
        let host = self.world.ecr_host();
        let target = format!("{host}/{repository}:bench");
        self.forget(&[source, &target]).await;
        let work = self.dir.join(repository.replace('/', "-"));
        std::fs::create_dir_all(&work)?;
        let peak = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        match method {
            "seed loop" => {
                let script = format!(
                    "set -e; docker pull -q {source} >/dev/null; \
                     aws ecr get-login-password --region eu-west-1 --endpoint-url {endpoint} \
                       | docker login --username AWS --password-stdin {host} >/dev/null 2>&1; \
                     docker tag {source} {target}; docker push -q {target} >/dev/null",
                    endpoint = self.world.ecr.endpoint()
                );
                let mut command = self.command("bash");
                command.args(["-c", &script]);
                run(command).await?;
            }
            "skopeo" => {
                let token = self.world.ecr.state.issue_token();
                run(self.skopeo_copy(&token, source, &target)).await?;
            }
            terraform => {
                let args = match terraform.strip_prefix("terraform ") {
                    Some(SIGNED_WITH) => {
                        let mut args = referrers_args(source, repository, true);
                        args.push("-var=copy_method=registry".into());
                        args
                    }
                    Some(copy_method) => apply_args(source, repository, copy_method),
                    None => bail!("unknown method {terraform}"),
                };
                std::fs::copy(
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/main.tf"),
                    work.join("main.tf"),
                )?;
                let mut command = self.command("terraform");
                command
                    .current_dir(&work)
                    .args(args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                let child = command.spawn().context("starting terraform")?;
                let pid = child.id().unwrap_or_default();
                let watching = Arc::new(AtomicBool::new(true));
                let watcher = {
                    let (peak, watching) = (peak.clone(), watching.clone());
                    tokio::spawn(async move {
                        while watching.load(Ordering::SeqCst) {
                            peak.fetch_max(provider_peak_kib(pid), Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    })
                };
                let output = child.wait_with_output().await;
                watching.store(false, Ordering::SeqCst);
                let _ = watcher.await;
                let output = output?;
                if !output.status.success() {
                    bail!(
                        "terraform apply failed:\n{}\n{}",
                        String::from_utf8_lossy(&output.stdout),
                        String::from_utf8_lossy(&output.stderr)
                    );
                }
            }
        }
        let elapsed = started.elapsed();
        self.forget(&[source, &target]).await;
        Ok((elapsed, peak.load(Ordering::SeqCst)))
    }

    /// Re-applies the last terraform mirror of `copy_method` and counts the uploads it made.
    async fn noop_uploads(
        &self,
        repository: &str,
        source: &str,
        copy_method: &str,
    ) -> Result<usize> {
        let work = self.dir.join(repository.replace('/', "-"));
        self.world.ecr.state.front().log.lock().unwrap().clear();
        let args = apply_args(source, repository, copy_method);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.terraform(&work, &args).await?;
        let log = self.world.ecr.state.front().log.lock().unwrap();
        Ok(log
            .iter()
            .filter(|r| matches!(r.method.as_str(), "POST" | "PATCH" | "PUT"))
            .count())
    }
}

/// The `once` method of a registry copy with `copy_referrers = true`.
const SIGNED_WITH: &str = "registry with referrers";

/// Times a signed two-platform image (an index signature, an SBOM by cosign's tag, an
/// attestation per platform, a signature on each attestation) copied registry to registry
/// without and with `copy_referrers`, in alternating rounds; returns the report's rows and
/// how many referrers the image has.
async fn signed_case(bench: &mut Bench, rounds: usize) -> Result<(String, usize)> {
    use standin::images::{push_index, push_referrer, Artifact, Scheme};
    let client = bench.world.source_client(None);
    bench.world.source.serve_referrers(true);
    let specs = [
        Spec {
            layers: 3,
            layer_size: 4 << 20,
            ..Spec::small(11)
        },
        Spec {
            layers: 3,
            layer_size: 4 << 20,
            ..Spec::small(11)
        }
        .for_platform("arm64", Some("v8")),
    ];
    let (index, images) = push_index(&client, "bench/signed", "1", &specs).await?;
    let refer = |subject: String, artifact, scheme, seed| {
        let client = client.clone();
        async move { push_referrer(&client, "bench/signed", &subject, artifact, scheme, seed).await }
    };
    let mut referrers = vec![
        refer(index.clone(), Artifact::Signature, Scheme::Subject, 1).await?,
        refer(index.clone(), Artifact::Sbom, Scheme::CosignTag, 2).await?,
    ];
    for (n, image) in images.iter().enumerate() {
        let seed = n as u64;
        let attestation = refer(
            image.manifest_digest.clone(),
            Artifact::Attestation,
            Scheme::Subject,
            10 + seed,
        )
        .await?;
        let signature = refer(
            attestation.manifest_digest.clone(),
            Artifact::Signature,
            Scheme::Subject,
            20 + seed,
        )
        .await?;
        referrers.push(attestation);
        referrers.push(signature);
    }
    let source = format!("{}/bench/signed:1", bench.world.source_host());
    let mut times: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    for round in 0..rounds {
        let mut order = ["terraform registry", "terraform registry with referrers"];
        if round % 2 == 1 {
            order.reverse();
        }
        for method in order {
            let repository = format!("bench/signed-{}-{round}", method.replace(' ', "-"));
            let (elapsed, _) = bench.once(method, &source, &repository).await?;
            eprintln!(
                "bench: signed round {round} {method}: {:.2}s",
                elapsed.as_secs_f64()
            );
            times.entry(method).or_default().push(elapsed);
        }
    }
    let without = median(times.get_mut("terraform registry").context("times")?).as_secs_f64();
    let with = median(
        times
            .get_mut("terraform registry with referrers")
            .context("times")?,
    )
    .as_secs_f64();
    let rows = format!(
        "| `copy_referrers = false` | {without:.2} s | 1.00 |\n| `copy_referrers = true` | {with:.2} s | {:.2} |\n",
        with / without
    );
    Ok((rows, referrers.len()))
}

/// How many images the family workload mirrors, how many at once, and their layers.
const FAMILY: usize = 20;
const FAMILY_AT_ONCE: usize = 10;
const FAMILY_BASE: usize = 24 << 20;
const FAMILY_OWN: usize = 1 << 20;

/// The family workload: [`FAMILY`] images sharing a base layer of [`FAMILY_BASE`] bytes under
/// two layers of [`FAMILY_OWN`] of their own, each mirrored into its own repository of a
/// fresh ECR, by one `terraform apply -parallelism=10` and by `skopeo copy` 10 at a time,
/// with ECR's `BLOB_MOUNTING` enabled and disabled. Returns the report's rows (time, and the
/// bytes ECR's registry received, against one base plus the images' own layers).
async fn family_case(bench: &mut Bench, rounds: usize) -> Result<String> {
    let client = bench.world.source_client(None);
    for n in 0..FAMILY {
        let spec = Spec {
            layers: 2,
            layer_size: FAMILY_OWN,
            ..Spec::small(300 + n as u64)
        }
        .on_base(9, FAMILY_BASE);
        push_image(&client, &format!("bench/family-{n}"), Some("1"), &spec).await?;
    }
    let floor = (FAMILY_BASE + FAMILY * 2 * FAMILY_OWN) as f64;
    let mut rows = String::new();
    for setting in ["ENABLED", "DISABLED"] {
        let mut results: BTreeMap<&str, (Vec<Duration>, Vec<u64>)> = BTreeMap::new();
        for round in 0..rounds {
            let mut order = ["terraform registry", "skopeo"];
            if round % 2 == 1 {
                order.reverse();
            }
            for method in order {
                let (elapsed, bytes) = bench.family_once(method, setting).await?;
                eprintln!(
                    "bench: family {setting} round {round} {method}: {:.2}s, {:.1} MiB",
                    elapsed.as_secs_f64(),
                    bytes as f64 / (1 << 20) as f64
                );
                let entry = results.entry(method).or_default();
                entry.0.push(elapsed);
                entry.1.push(bytes);
            }
        }
        let mut skopeo = results.get("skopeo").cloned().context("skopeo")?;
        let skopeo_time = median(&mut skopeo.0).as_secs_f64();
        for method in ["terraform registry", "skopeo"] {
            let (mut times, mut bytes) = results.get(method).cloned().context("times")?;
            let time = median(&mut times).as_secs_f64();
            bytes.sort();
            let sent = bytes[bytes.len() / 2] as f64;
            rows.push_str(&format!(
                "| {setting} | {method} | {time:.2} s | {:.2} | {:.1} MiB | {:.2} |\n",
                time / skopeo_time,
                sent / (1 << 20) as f64,
                sent / floor
            ));
        }
    }
    Ok(rows)
}

impl Bench {
    /// The family mirrored once by `method` into a fresh ECR whose `BLOB_MOUNTING` is
    /// `setting`: the wall time and the bytes ECR's registry received.
    async fn family_once(&mut self, method: &str, setting: &str) -> Result<(Duration, u64)> {
        self.fresh().await?;
        let ecr = self.world.ecr.state.clone();
        ecr.put_account_setting("BLOB_MOUNTING", setting);
        for n in 0..FAMILY {
            ecr.create_repository(&format!("family/{n}"));
        }
        let source_host = self.world.source_host();
        let host = self.world.ecr_host();
        let started = Instant::now();
        if method == "skopeo" {
            let token = ecr.issue_token();
            let at_once = Arc::new(tokio::sync::Semaphore::new(FAMILY_AT_ONCE));
            let mut copies = tokio::task::JoinSet::new();
            for n in 0..FAMILY {
                let command = self.skopeo_copy(
                    &token,
                    &format!("{source_host}/bench/family-{n}:1"),
                    &format!("{host}/family/{n}:bench"),
                );
                let at_once = at_once.clone();
                copies.spawn(async move {
                    let _slot = at_once.acquire_owned().await?;
                    run(command).await
                });
            }
            while let Some(copied) = copies.join_next().await {
                copied??;
            }
        } else {
            let work = self.dir.join(format!("family-{setting}"));
            let _ = std::fs::remove_dir_all(&work);
            std::fs::create_dir_all(&work)?;
            std::fs::copy(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/family/main.tf"),
                work.join("main.tf"),
            )?;
            let parallelism = format!("-parallelism={FAMILY_AT_ONCE}");
            let source_var = format!("-var=source_host={source_host}");
            let images_var = format!("-var=images={FAMILY}");
            self.terraform(
                &work,
                &[
                    "apply",
                    "-auto-approve",
                    "-input=false",
                    "-no-color",
                    &parallelism,
                    &source_var,
                    &images_var,
                ],
            )
            .await?;
        }
        let elapsed = started.elapsed();
        let bytes = ecr
            .front()
            .log
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.bytes)
            .sum();
        Ok((elapsed, bytes))
    }
}

/// Times no-op `terraform plan`s with 1 and 100 resources: mirrors, mirrors with `verify`
/// (of `source`, signed by the key `key_pem`), and the same shape made of `terraform_data`
/// (no provider to start). Returns the report's rows.
async fn plan_overhead(bench: &Bench, source: &str, key_pem: &str, runs: usize) -> Result<String> {
    let repository = "bench/plan";
    bench.world.ecr.state.create_repository(repository);
    let mut rows = String::new();
    for n in [1, 100] {
        let mut medians = Vec::new();
        for (file, verified) in [
            ("baseline.tf", false),
            ("mirrors.tf", false),
            ("mirrors.tf", true),
        ] {
            let work = bench.dir.join(format!("plan-{n}-{file}-{verified}"));
            std::fs::create_dir_all(&work)?;
            std::fs::write(work.join("cosign.pub"), key_pem)?;
            std::fs::copy(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../bench/plan")
                    .join(file),
                work.join("main.tf"),
            )?;
            let vars = [
                format!("-var=source_image={source}"),
                format!("-var=repository={repository}"),
                format!("-var=n={n}"),
                format!("-var=verified={verified}"),
            ];
            let mut apply = vec!["apply", "-auto-approve", "-input=false", "-no-color"];
            apply.extend(vars.iter().map(String::as_str));
            bench.terraform(&work, &apply).await?;
            let mut plan = vec!["plan", "-input=false", "-no-color", "-detailed-exitcode"];
            plan.extend(vars.iter().map(String::as_str));
            let mut times = Vec::new();
            for _ in 0..runs {
                let started = Instant::now();
                bench.terraform(&work, &plan).await?;
                times.push(started.elapsed());
            }
            medians.push(median(&mut times).as_secs_f64());
        }
        let (baseline, mirrors, verified) = (medians[0], medians[1], medians[2]);
        let target = 1.5 * baseline + 0.1;
        rows.push_str(&format!(
            "| {n} | {baseline:.3} s | {mirrors:.3} s | {:.2} | {target:.3} s | {} | {verified:.3} s | {:.2} |\n",
            mirrors / baseline,
            if mirrors <= target { "met" } else { "missed" },
            verified / mirrors,
        ));
    }
    Ok(rows)
}

/// How many mirrors the verify case plans.
const VERIFIED: usize = 20;

/// The first plan of [`VERIFIED`] new mirrors of signed images, without and with `verify`,
/// alternating; returns the report's rows.
async fn verify_case(
    bench: &mut Bench,
    key: &standin::sigstore::Key,
    rounds: usize,
) -> Result<String> {
    let client = bench.world.source_client(None);
    let repository = "bench/verify";
    for n in 0..VERIFIED {
        let tag = format!("v{n}");
        let image = push_image(
            &client,
            "bench/verified",
            Some(&tag),
            &Spec::small(700 + n as u64),
        )
        .await?;
        standin::sigstore::push_signature(
            &client,
            "bench/verified",
            &image.manifest_digest,
            &image.manifest_digest,
            &standin::sigstore::Signer::Key(key),
        )
        .await?;
    }
    let source = format!("{}/bench/verified", bench.world.source_host());
    let mut times: BTreeMap<bool, Vec<Duration>> = BTreeMap::new();
    for round in 0..rounds {
        for verified in [round % 2 == 1, round % 2 == 0] {
            bench.fresh().await?;
            bench.world.ecr.state.create_repository(repository);
            let work = bench.dir.join(format!("verify-{round}-{verified}"));
            std::fs::create_dir_all(&work)?;
            std::fs::write(work.join("cosign.pub"), key.public_pem())?;
            let verify = if verified {
                "  verify {\n    keys = [file(\"cosign.pub\")]\n  }\n"
            } else {
                ""
            };
            std::fs::write(
                work.join("main.tf"),
                format!(
                    "terraform {{\n  required_providers {{\n    ecrmirror = {{\n      source = \"techtospeech/ecrmirror\"\n    }}\n  }}\n}}\n\n\
                     resource \"ecrmirror_image\" \"m\" {{\n  for_each      = toset([for n in range({VERIFIED}) : \"v${{n}}\"])\n  \
                     docker_source = \"{source}:${{each.key}}\"\n  repository    = \"{repository}\"\n  copy_method   = \"registry\"\n{verify}}}\n"
                ),
            )?;
            let started = Instant::now();
            bench
                .terraform(&work, &["plan", "-input=false", "-no-color"])
                .await?;
            times.entry(verified).or_default().push(started.elapsed());
        }
    }
    let without = median(times.get_mut(&false).context("plans without verify")?);
    let with = median(times.get_mut(&true).context("plans with verify")?);
    Ok(format!(
        "| without `verify` | {:.2} s | 1.00 |\n| with `verify` | {:.2} s | {:.2} |\n",
        without.as_secs_f64(),
        with.as_secs_f64(),
        with.as_secs_f64() / without.as_secs_f64()
    ))
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[tokio::main]
async fn main() -> Result<()> {
    let options = options()?;
    // Asked first: what this run writes (results.json, the chart) must not make the tree it
    // measured read as changed.
    let commit = runner::commit();
    let scratch = runner::scratch_dir("ecrmirror-bench")?;
    let world = World::start(&scratch.join("world")).await?;
    let dir = scratch.join("work");
    std::fs::create_dir_all(&dir)?;
    let env = runner::terraform_env(&scratch, &options.provider_dir)?;
    let cache = runner::cache_dir(&scratch);
    let mut bench = Bench {
        world,
        dir,
        env,
        cache,
    };

    // The tiny image shows each tool's fixed cost (start, plan, login, manifests); what the
    // others take beyond it is the copying.
    let mut images = vec![
        (
            TINY,
            Spec {
                layers: 1,
                layer_size: 4 << 10,
                ..Spec::small(3)
            },
        ),
        (
            "5 layers, 40 MiB",
            Spec {
                layers: 5,
                layer_size: 8 << 20,
                ..Spec::small(1)
            },
        ),
    ];
    if !options.quick {
        images.push((
            "1 layer, 1 GiB",
            Spec {
                layers: 1,
                layer_size: 1 << 30,
                ..Spec::small(2)
            },
        ));
    }

    let client = bench.world.source_client(None);
    let mut medians: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    let mut table = String::new();
    let mut peaks: BTreeMap<String, u64> = BTreeMap::new();
    let mut noops = Vec::new();
    for (label, spec) in &images {
        eprintln!("bench: seeding {label}");
        push_image(&client, "bench/source", Some(label_tag(label)), spec).await?;
        let source = format!(
            "{}/bench/source:{}",
            bench.world.source_host(),
            label_tag(label)
        );
        let mut times: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
        for round in 0..options.rounds {
            // Alternate the order, so no method always runs first (or last).
            let mut order: Vec<&str> = METHODS.to_vec();
            order.rotate_left(round % METHODS.len());
            for method in order {
                let repository = format!(
                    "bench/{}-{}-{round}",
                    label_tag(label),
                    method.replace(' ', "-")
                );
                let (elapsed, peak) = bench.once(method, &source, &repository).await?;
                eprintln!(
                    "bench: {label} round {round} {method}: {:.2}s",
                    elapsed.as_secs_f64()
                );
                if round + 1 == options.rounds {
                    if let Some(copy_method) = method.strip_prefix("terraform ") {
                        let uploads = bench
                            .noop_uploads(&repository, &source, copy_method)
                            .await?;
                        noops.push(format!("| {label} | `{copy_method}` | {uploads} |"));
                    }
                }
                times.entry(method).or_default().push(elapsed);
                if peak > 0 {
                    let key = format!("{method}, {label}");
                    let entry = peaks.entry(key).or_default();
                    *entry = (*entry).max(peak);
                }
            }
        }
        let seed = median(times.get_mut("seed loop").context("seed loop times")?);
        let skopeo = median(times.get_mut("skopeo").context("skopeo times")?);
        for method in METHODS {
            let m = median(times.get_mut(method).context("times")?);
            medians
                .entry(label.to_string())
                .or_default()
                .insert(method.to_string(), m.as_secs_f64());
            table.push_str(&format!(
                "| {label} | {method} | {:.2} s | {:.2} | {:.2} |\n",
                m.as_secs_f64(),
                m.as_secs_f64() / seed.as_secs_f64(),
                m.as_secs_f64() / skopeo.as_secs_f64()
            ));
        }
    }

    eprintln!("bench: signed image");
    let (signed_rows, referrer_count) = signed_case(&mut bench, options.rounds).await?;

    eprintln!("bench: family of images");
    let family_rows = family_case(&mut bench, options.rounds).await?;

    eprintln!("bench: verify");
    let key = standin::sigstore::Key::p256()?;
    let verify_rows = verify_case(&mut bench, &key, options.rounds).await?;

    eprintln!("bench: plan overhead");
    let small = client
        .require_manifest("bench/source", "small")
        .await?
        .digest;
    standin::sigstore::push_signature(
        &client,
        "bench/source",
        &small,
        &small,
        &standin::sigstore::Signer::Key(&key),
    )
    .await?;
    let small_source = format!("{}/bench/source:small", bench.world.source_host());
    let plan_rows = plan_overhead(&bench, &small_source, &key.public_pem(), 5).await?;

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let results = root.join("bench/results.json");
    std::fs::write(&results, serde_json::to_string_pretty(&medians)?)?;
    let chart = root.join("benchmarks.png");
    let drawn = std::process::Command::new("python3")
        .arg(root.join("bench/chart.py"))
        .arg(&results)
        .arg(&chart)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let peak_rows: String = peaks
        .iter()
        .map(|(k, v)| format!("| {k} | {:.1} MiB |\n", *v as f64 / 1024.0))
        .collect();
    let report = format!(
        "# Benchmarks\n\n\
         Measured at commit `{commit}` with `{invocation}`. \
         Made by `make bench` ({rounds} alternating rounds per image, a fresh, empty ECR registry \
         and no local image before each, all in one run against the local stand-in world on this \
         machine: 2 cores). Medians; ratios are to the seed module's loop and to `skopeo copy` \
         measured in the same run.\n\n\
         | image | method | median | ÷ seed loop | ÷ skopeo |\n|---|---|---|---|---|\n{table}\n\
         {single}\n\n\
         {chart}\n\n\
         ## Fixed cost and copying\n\n\
         Each method's median for the {TINY} image is its fixed cost: {fixed}. The time a method \
         takes beyond it grows with the image, and is what the copying itself costs:\n\n\
         | image | method | beyond the tiny image | ÷ skopeo |\n|---|---|---|---|\n{copies}\n\
         ## Provider peak RSS (VmHWM)\n\n| run | peak |\n|---|---|\n{peak_rows}\n\
         ## Re-applying with nothing to do\n\nUploads (POST/PATCH/PUT to ECR's registry) made by a second `terraform apply`:\n\n\
         | image | copy_method | uploads |\n|---|---|---|\n{noops}\n\n\
         ## Supply chain: a signed image\n\nA two-platform image (2 × 12 MiB) with \
         {referrer_count} referrers (a signature and an SBOM of the index, an attestation of each \
         platform, a signature of each attestation), copied registry to registry without and \
         with `copy_referrers`, {rounds} alternating rounds each, a fresh ECR each time. \
         Medians; the ratio is the cost of the referrers relative to the image copy alone.\n\n\
         | mirror | median | ÷ without |\n|---|---|---|\n{signed_rows}\n\
         ## A family of images\n\n{FAMILY} images that share a {base} MiB base layer under two \
         {own} MiB layers of their own, each mirrored into its own repository of a fresh ECR: one \
         `terraform apply -parallelism={FAMILY_AT_ONCE}` against `skopeo copy` {FAMILY_AT_ONCE} at \
         a time, with the registry's `BLOB_MOUNTING` setting enabled and disabled; {rounds} \
         alternating rounds, medians. Bytes are what ECR's registry received (its request log); \
         the last column divides them by one base plus the images' own layers ({floor} MiB). \
         Targets with mounting enabled: at most 0.5× skopeo's time and 1.2× those bytes.\n\n\
         | BLOB_MOUNTING | method | median | ÷ skopeo | received | ÷ one base + own layers |\n|---|---|---|---|---|---|\n{family_rows}\n\
         ## Verify, then mirror\n\nThe first `terraform plan` of {VERIFIED} new mirrors of \
         {VERIFIED} small images (each signed by a key: cosign's `.sig` tag), without and with \
         `verify {{ keys = [...] }}`: with it, the plan verifies each source (its digest, its \
         signature tag, its referrers, the signature's payload); {rounds} alternating rounds, a \
         fresh provider cache each, medians.\n\n\
         | plan | median | ÷ without |\n|---|---|---|\n{verify_rows}\n\
         ## Plan overhead\n\nMedian of 5 no-op `terraform plan`s (refresh included) with N \
         resources: `terraform_data` (Terraform alone) against `ecrmirror_image` (Terraform \
         starts the provider, which reads each tag from ECR), and the same mirrors with `verify` \
         (a plan with nothing to copy verifies nothing: the keys are parsed). Target: under 1.5× \
         the baseline plus 100 ms.\n\n\
         | N | terraform_data | ecrmirror_image | ratio | target | | with `verify` | ÷ without |\n|---|---|---|---|---|---|---|---|\n{plan_rows}",
        rounds = options.rounds,
        invocation = match std::env::args().skip(3).collect::<Vec<_>>().join(" ") {
            args if args.is_empty() => "make bench".to_string(),
            args => format!("make bench BENCH_ARGS=\"{args}\""),
        },
        single = medians
            .get("5 layers, 40 MiB")
            .and_then(|times| Some(times.get("terraform registry")? / times.get("skopeo")?))
            .map(|ratio| format!(
                "One 40 MiB image by the registry method, side by side with `skopeo copy` (whole \
                 `terraform apply`, Terraform's own start and plan included): {ratio:.2}× skopeo; \
                 target at most 1.00×: {}.",
                if ratio <= 1.0 { "met" } else { "missed" }
            ))
            .unwrap_or_default(),
        base = FAMILY_BASE >> 20,
        own = FAMILY_OWN >> 20,
        floor = (FAMILY_BASE + FAMILY * 2 * FAMILY_OWN) >> 20,
        chart = if drawn {
            "![median time relative to the seed loop and to skopeo](benchmarks.png)"
        } else {
            "(no chart: bench/chart.py needs matplotlib)"
        },
        noops = noops.join("\n"),
        copies = copy_rows(&images.iter().map(|(label, _)| *label).collect::<Vec<_>>(), &medians),
        fixed = medians
            .get(TINY)
            .map(|times| {
                METHODS
                    .iter()
                    .map(|m| format!("{m} {:.2} s", times.get(*m).unwrap_or(&0.0)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default(),
    );
    std::fs::write(root.join("BENCHMARKS.md"), report)?;
    eprintln!("bench: wrote BENCHMARKS.md");
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

/// The image that shows fixed costs.
const TINY: &str = "1 layer, 4 KiB";

fn label_tag(label: &str) -> &'static str {
    if label == TINY {
        "tiny"
    } else if label.contains("GiB") {
        "large"
    } else {
        "small"
    }
}

/// Rows of the copy-time table: each method's median beyond its own median for the tiny
/// image, and that as a ratio to skopeo's.
fn copy_rows(labels: &[&str], medians: &BTreeMap<String, BTreeMap<String, f64>>) -> String {
    let Some(fixed) = medians.get(TINY) else {
        return String::new();
    };
    let mut rows = String::new();
    for label in labels.iter().filter(|label| **label != TINY) {
        let Some(times) = medians.get(*label) else {
            continue;
        };
        let beyond =
            |method: &str| times.get(method).unwrap_or(&0.0) - fixed.get(method).unwrap_or(&0.0);
        let skopeo = beyond("skopeo");
        for method in METHODS {
            rows.push_str(&format!(
                "| {label} | {method} | {:.2} s | {:.2} |\n",
                beyond(method),
                beyond(method) / skopeo
            ));
        }
    }
    rows
}
