//! `copy_method = "docker"`: pull, tag and push through the Docker Engine API (bollard).
//!
//! Every stream is drained to its end and an error inside it is a failure. The local tags this
//! method creates are removed afterwards; images and tags the user had before are left as
//! they were.

use async_trait::async_trait;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{CreateImageOptions, PushImageOptions, TagImageOptions};
use bollard::Docker;
use futures_util::{Stream, StreamExt};
use tokio::sync::OnceCell;

use std::sync::Arc;
use std::time::Duration;

use super::{Copied, Job, Target, Transfer};
use crate::credentials::Credentials;
use crate::distribution::Distribution;
use crate::ecr::RegistryLogin;
use crate::error::{Error, Result};
use crate::locks::Locks;
use crate::manifest::Fetched;
use crate::reference::{Platform, SourceRef};
use crate::retry::{backoff, engine_backoff, retrying, ENGINE_TRIES, TRIES};
use crate::source::{self, Resolved, Unresolved, Wanted};
use answer::{says, Said};
use cleanup::{remove, Cleanup, SourceUses};

/// How long the credential check may take before it is skipped (the push then reports).
const LOGIN_CHECK_TIMEOUT: Duration = Duration::from_secs(30);

mod answer;
mod cleanup;

/// The Docker engine transfer. The engine is reached on first use, so plans, reads and
/// destroys work on machines without one.
pub struct DockerTransfer {
    host: Option<String>,
    /// Asks the source what it holds, and ECR whether it takes the push credentials.
    distribution: Arc<Distribution>,
    engine: OnceCell<Docker>,
    /// One lock per local source reference. Mirrors of the same source (other tags, other
    /// platforms) run in parallel in one apply; pulling one platform re-points the local
    /// reference another mirror is about to inspect, so each pull, check and tag, and each
    /// clean-up, holds the reference's lock.
    source_locks: Locks<String>,
    /// One lock per target repository (`host/repository`): the engine pushing the same layers
    /// into one repository several times at once makes registries fail (docker-registry
    /// answers 500); one at a time, the later pushes find the layers there.
    push_locks: Locks<String>,
    /// One lock per target (`host/repository:tag`): mirrors to one tag (a configuration
    /// error the plan warns about) must not re-point the local tag another is pushing.
    target_locks: Locks<String>,
    /// The mirrors using each local source reference (see [`SourceUses`]).
    source_uses: Arc<SourceUses>,
}

impl DockerTransfer {
    /// A transfer through the engine at `host` (`unix://…`, `tcp://…`), else `DOCKER_HOST`,
    /// else the local socket.
    pub fn new(host: Option<String>, distribution: Arc<Distribution>) -> DockerTransfer {
        DockerTransfer {
            host,
            distribution,
            engine: OnceCell::new(),
            source_locks: Locks::default(),
            push_locks: Locks::default(),
            target_locks: Locks::default(),
            source_uses: Arc::default(),
        }
    }

    fn host_name(&self) -> String {
        self.host
            .clone()
            .or_else(|| std::env::var("DOCKER_HOST").ok())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string())
    }

    async fn engine(&self) -> Result<&Docker> {
        self.engine
            .get_or_try_init(|| async {
                let unreachable = |err: bollard::errors::Error| Error::DockerUnreachable {
                    host: self.host_name(),
                    cause: unreached(&err),
                };
                let docker = match &self.host {
                    Some(host) => Docker::connect_with_host(host),
                    None => Docker::connect_with_defaults(),
                }
                .map_err(unreachable)?;
                let docker = docker.negotiate_version().await.map_err(unreachable)?;
                docker.ping().await.map_err(unreachable)?;
                Ok(docker)
            })
            .await
    }

    /// Pulls `job`'s source, again when [`wait_before_next`] says.
    async fn pull(
        &self,
        docker: &Docker,
        job: &Job<'_>,
        cleanup: &Cleanup,
    ) -> Result<Option<String>> {
        let what = format!("the pull of {}", job.source);
        retrying(
            &what,
            || self.pull_clearing(docker, job, cleanup),
            wait_before_next,
        )
        .await
    }

    /// Pulls `job`'s source, once more after clearing a digest reference the engine cannot
    /// overwrite (a leftover of an earlier pull) when that reference is not the user's.
    async fn pull_clearing(
        &self,
        docker: &Docker,
        job: &Job<'_>,
        cleanup: &Cleanup,
    ) -> Result<Option<String>> {
        match self.pull_once(docker, job).await {
            Err(err)
                if cleanup.previous_source.is_none()
                    && says(&err.to_string(), Said::CannotOverwrite) =>
            {
                let reference = &cleanup.source_ref;
                tracing::info!(%reference, "clearing a leftover digest reference: {err}");
                let _ = remove(docker, reference).await;
                self.pull_once(docker, job).await
            }
            result => result,
        }
        .map_err(|err| self.pull_error(job, err))
    }

    async fn pull_once(
        &self,
        docker: &Docker,
        job: &Job<'_>,
    ) -> std::result::Result<Option<String>, bollard::errors::Error> {
        let reference = local_reference(job);
        let options = CreateImageOptions {
            from_image: Some(reference.clone()),
            platform: job.platform.map(ToString::to_string).unwrap_or_default(),
            ..Default::default()
        };
        let credentials = job.source_credentials.as_ref().map(to_bollard);
        let stream = docker.create_image(Some(options), None, credentials);
        drain(stream, |info| info.status.clone(), pulled_digest, |err| err).await
    }

    /// The error's text when the engine answered (told apart by [`answer`]); the engine
    /// being out of reach otherwise.
    fn engine_answer(&self, err: bollard::errors::Error) -> std::result::Result<String, Error> {
        let cause = err.to_string();
        if matches!(
            err,
            bollard::errors::Error::DockerStreamError { .. }
                | bollard::errors::Error::DockerResponseServerError { .. }
        ) {
            Ok(cause)
        } else {
            Err(Error::DockerUnreachable {
                host: self.host_name(),
                cause: unreached(&err),
            })
        }
    }

    fn pull_error(&self, job: &Job<'_>, err: bollard::errors::Error) -> Error {
        let reference = job.source.to_string();
        let cause = match self.engine_answer(err) {
            Ok(cause) => cause,
            Err(unreachable) => return unreachable,
        };
        let said = |meaning| says(&cause, meaning);
        if said(Said::NoPlatform) {
            tracing::debug!(source = %reference, "the engine found no image for the platform: {cause}");
            Error::PlatformMissing {
                attribute: "platform",
                reference,
                wanted: job
                    .platform
                    .cloned()
                    .unwrap_or_else(Platform::engine_default)
                    .to_string(),
                held: Vec::new(),
                hint: platform_hint(job.platform.is_some()),
            }
        } else if said(Said::Throttled) {
            Error::RateLimited { reference, cause }
        } else if said(Said::NameUnknown) || said(Said::NotFound) {
            Error::SourceNotFound { reference, cause }
        } else if said(Said::Denied) {
            Error::SourceDenied {
                reference,
                cause,
                with_credentials: job.source_credentials.is_some(),
            }
        } else {
            Error::Docker {
                action: format!("pull {reference}"),
                cause,
            }
        }
    }

    /// Pushes `job`'s target, again when [`wait_before_next`] says: the engine retries a layer upload
    /// itself, but not a refused manifest, and a second push sends only what ECR lacks.
    async fn push(&self, docker: &Docker, job: &Job<'_>) -> Result<Option<String>> {
        let what = format!("the push of {}", job.target);
        retrying(&what, || self.push_once(docker, job), wait_before_next).await
    }

    async fn push_once(&self, docker: &Docker, job: &Job<'_>) -> Result<Option<String>> {
        let target = &job.target;
        let options = PushImageOptions {
            tag: Some(target.tag.clone()),
            platform: None,
        };
        let credentials = to_bollard(&job.target_credentials);
        let stream = docker.push_image(&target.name(), Some(options), Some(credentials));
        drain(
            stream,
            |info| info.status.clone(),
            pushed_digest,
            |err| self.push_error(target, err),
        )
        .await
    }

    fn push_error(&self, target: &Target, err: bollard::errors::Error) -> Error {
        let cause = match self.engine_answer(err) {
            Ok(cause) => cause,
            Err(unreachable) => return unreachable,
        };
        if says(&cause, Said::NameUnknown) {
            Error::RepositoryNotFound {
                repository: target.repository.clone(),
                registry_id: None,
                host: Some(target.host.clone()),
                templates: crate::error::TemplateLookup::NotAsked,
            }
        } else if says(&cause, Said::Denied) {
            Error::TargetDenied {
                host: target.host.clone(),
                cause,
            }
        } else {
            Error::Push {
                target: target.to_string(),
                cause,
            }
        }
    }

    /// Checks that the pulled image is the requested platform (an engine may ignore
    /// `platform` for a single-platform image) and returns its id and repo digests.
    async fn inspect_pulled(
        &self,
        docker: &Docker,
        job: &Job<'_>,
    ) -> Result<(String, Vec<String>)> {
        let reference = local_reference(job);
        let image = docker
            .inspect_image(&reference)
            .await
            .map_err(|err| Error::Docker {
                action: format!("inspect the pulled image {reference}"),
                cause: err.to_string(),
            })?;
        if let Some(platform) = job.platform {
            let os = image.os.clone().unwrap_or_default();
            let arch = image.architecture.clone().unwrap_or_default();
            let variant = image.variant.clone();
            if !platform.matches(&os, &arch, variant.as_deref()) {
                let got = match variant.filter(|v| !v.is_empty()) {
                    Some(v) => format!("{os}/{arch}/{v}"),
                    None => format!("{os}/{arch}"),
                };
                return Err(Error::PlatformMissing {
                    attribute: "platform",
                    reference: job.source.to_string(),
                    wanted: platform.to_string(),
                    held: vec![got],
                    hint: platform_hint(true),
                });
            }
        }
        let id = image.id.ok_or_else(|| Error::Docker {
            action: format!("inspect the pulled image {reference}"),
            cause: "The engine reported no image id.".into(),
        })?;
        Ok((id, image.repo_digests.unwrap_or_default()))
    }

    /// Pull, check and tag the image as the target; returns the source digest. `cleanup`
    /// records what to undo.
    async fn stage(
        &self,
        docker: &Docker,
        job: &Job<'_>,
        cleanup: &mut Cleanup,
    ) -> Result<(Option<String>, String)> {
        let previous = docker
            .inspect_image(&local_reference(job))
            .await
            .ok()
            .and_then(|image| image.id);
        cleanup.join(&self.source_uses, previous);
        tracing::debug!(source = %job.source, target = %job.target, "pulling");
        cleanup.pulled = true;
        let streamed_digest = self.pull(docker, job, cleanup).await?;
        let (image_id, repo_digests) = self.inspect_pulled(docker, job).await?;
        // Pulled by the platform's digest, the stream names that manifest; the source's own
        // digest (an index's) is the resolution's.
        let source_digest = match job.resolved {
            Some(resolved) => Some(resolved.named.digest.clone()),
            None => streamed_digest.or_else(|| digest_from_repo_digests(job.source, &repo_digests)),
        };
        Ok((source_digest, image_id))
    }

    /// Tags `image_id` as the target and pushes it; returns the digest the push reported.
    async fn tag_and_push(
        &self,
        docker: &Docker,
        job: &Job<'_>,
        image_id: &str,
        cleanup: &mut Cleanup,
    ) -> Result<Option<String>> {
        self.tag_as_target(docker, job, image_id, cleanup).await?;
        let repository = self.push_locks.of(job.target.name());
        let _pushing = repository.lock().await;
        tracing::debug!(target = %job.target, "pushing");
        self.push(docker, job).await
    }

    /// Tags `image_id` as the target, noting the user's image of that tag, if any. The
    /// caller holds the target's lock until the tag is undone: another mirror to the same
    /// tag must not re-point it before this one's push.
    async fn tag_as_target(
        &self,
        docker: &Docker,
        job: &Job<'_>,
        image_id: &str,
        cleanup: &mut Cleanup,
    ) -> Result<()> {
        let target_ref = job.target.to_string();
        if let Ok(previous) = docker.inspect_image(&target_ref).await {
            cleanup.previous_target = previous.id;
            cleanup.previous_target_digests = previous.repo_digests.unwrap_or_default();
        }
        docker
            .tag_image(
                image_id,
                Some(TagImageOptions {
                    repo: Some(job.target.name()),
                    tag: Some(job.target.tag.clone()),
                }),
            )
            .await
            .map_err(|err| Error::Docker {
                action: format!("tag the image as {target_ref}"),
                cause: err.to_string(),
            })?;
        cleanup.tagged = Some(image_id.to_string());
        Ok(())
    }
}

/// Why the engine could not be reached: the innermost cause (`Connection refused (os error
/// 111)`), not the HTTP client's wrapping of it (`Error in the hyper legacy client: …`).
fn unreached(err: &bollard::errors::Error) -> String {
    let root = crate::error::causes(err)
        .last()
        .map(|cause| cause.to_string())
        .unwrap_or_default();
    if root.is_empty() {
        err.to_string()
    } else {
        root
    }
}

/// When to try a pull or push that failed with `err` (its `tries`th failure) again: after
/// a backoff when a registry throttled the engine or failed on its side (up to [`TRIES`] in
/// all), after a longer wait when the engine went out of reach mid-copy (up to
/// [`ENGINE_TRIES`], waiting 2 s, 4 s, 8 s and 16 s in between); never for a refusal.
fn wait_before_next(err: &Error, tries: u32) -> Option<Duration> {
    match err {
        Error::DockerUnreachable { .. } if tries < ENGINE_TRIES => Some(engine_backoff(tries)),
        Error::Push { cause, .. }
        | Error::RateLimited { cause, .. }
        | Error::Docker { cause, .. }
            if tries < TRIES && answer::transient(cause) =>
        {
            Some(backoff(tries))
        }
        _ => None,
    }
}

/// Refuses, before anything is pulled, a source that is no container image (a Helm chart,
/// a WebAssembly module): an engine cannot pull it.
fn cannot_pull(source: &SourceRef, resolved: &Resolved) -> Result<()> {
    match resolved.image().artifact() {
        None => Ok(()),
        Some(kind) => Err(engine_cannot_pull(source, kind, false)),
    }
}

/// What `source` names when it is not a container image (see [`Fetched::artifact`]): one
/// `HEAD`, and the manifest it names from the cache, else one `GET` by digest that the cache
/// keeps for the apply's own resolve, so the plan's question costs no pull of its own.
async fn artifact(
    distribution: &Distribution,
    source: &SourceRef,
    credentials: Option<&Credentials>,
) -> Result<Option<String>> {
    match source::resolve(distribution, source, Wanted::Named, credentials).await {
        Ok(resolved) => Ok(resolved.named.artifact().map(str::to_string)),
        Err(Unresolved::Failed(err)) => Err(err),
        Err(Unresolved::PlatformMissing { .. }) => Ok(None),
    }
}

/// The error for `source`, an OCI artifact of `kind`, with this method (`at_plan`: the
/// plan's warning).
fn engine_cannot_pull(source: &SourceRef, kind: &str, at_plan: bool) -> Error {
    Error::EngineCannotPull {
        reference: source.to_string(),
        name: crate::manifest::artifact_name(kind),
        kind: kind.to_string(),
        at_plan,
    }
}

/// What to do about a platform the source lacks, for this method; `asked`: whether the
/// configuration names the platform (else it is the engine's own).
fn platform_hint(asked: bool) -> String {
    if asked {
        "Set `platform` to one the source holds, or leave it unset to mirror the Docker engine's own platform.".into()
    } else {
        "Set `platform` to one the source holds: left unset, the Docker engine mirrors its own platform.".into()
    }
}

#[async_trait]
impl Transfer for DockerTransfer {
    /// The image the engine would pull: for `platform`, else for the engine's own platform.
    /// Only a platform the configuration names is refused here; the engine's own may be
    /// another machine's (a remote `docker_host`), so the pull decides that case, and a
    /// source the provider cannot ask itself (credentials only the engine has) is left to
    /// the pull too.
    async fn resolve(
        &self,
        source: &SourceRef,
        platform: Option<&Platform>,
        credentials: Option<&Credentials>,
    ) -> Result<Option<Resolved>> {
        let default = Platform::engine_default();
        let wanted = match platform {
            Some(platform) => Wanted::Platform(platform),
            None => Wanted::Default(&default),
        };
        match source::resolve(&self.distribution, source, wanted, credentials).await {
            Ok(resolved) => {
                cannot_pull(source, &resolved)?;
                Ok(Some(resolved))
            }
            Err(Unresolved::PlatformMissing { held }) if platform.is_some() => {
                Err(Error::PlatformMissing {
                    attribute: "platform",
                    reference: source.to_string(),
                    wanted: platform.map(ToString::to_string).unwrap_or_default(),
                    held,
                    hint: platform_hint(true),
                })
            }
            Err(Unresolved::PlatformMissing { held }) => {
                tracing::debug!(%source, ?held, "the source lacks this machine's platform; the engine decides");
                Ok(None)
            }
            Err(Unresolved::Failed(err)) => {
                tracing::debug!(%source, "the source could not be asked; the pull will: {err}");
                Ok(None)
            }
        }
    }

    /// An engine pulls container images only: a source that names an OCI artifact (a Helm
    /// chart) is refused at plan, on `copy_method`.
    async fn refuses(
        &self,
        source: &SourceRef,
        credentials: Option<&Credentials>,
    ) -> Option<Error> {
        match artifact(&self.distribution, source, credentials).await {
            Ok(None) => None,
            Ok(Some(kind)) => Some(engine_cannot_pull(source, &kind, true)),
            Err(err) => {
                tracing::debug!(%source, "what the source is stays unknown until the apply: {err}");
                None
            }
        }
    }

    /// A Docker push re-compresses layers, so manifests differ: ECR's tag holds the copy
    /// when it is one image manifest with the same image config as the source's image for
    /// the platform, or an index that holds the source's very manifest for it (a registry
    /// copy, or an import of one): pushing the engine's platform's image over that index
    /// would take the other platforms away and give that platform nothing new. (A `platform`
    /// the configuration names asks for that image alone: the apply does not adopt an
    /// index then.)
    fn holds(&self, held: &Fetched, resolved: &Resolved) -> bool {
        let image = resolved.image();
        match held.index() {
            Some(index) => index.manifests.iter().any(|m| m.digest == image.digest),
            None => held.config_digest() == image.config_digest(),
        }
    }

    /// A Docker engine retries a refused push for about a minute: ECR's credentials are
    /// checked first with one `GET /v2/`, as `docker login` does. Only a refusal fails here;
    /// other failures (network, server errors) are left for the push to report.
    async fn preflight(&self, login: &RegistryLogin) -> Result<()> {
        let url = format!("{}/v2/", login.endpoint);
        let response = self
            .distribution
            .http()?
            .get(&url)
            .timeout(LOGIN_CHECK_TIMEOUT)
            .basic_auth(&login.username, Some(login.password.expose()))
            .send()
            .await;
        match response {
            Ok(response) if matches!(response.status().as_u16(), 401 | 403) => {
                Err(Error::TargetDenied {
                    host: login.host.clone(),
                    cause: format!(
                        "The registry answered {} to the credentials GetAuthorizationToken returned.",
                        response.status()
                    ),
                })
            }
            Ok(_) => Ok(()),
            Err(err) => {
                tracing::debug!(registry = %login.host, "credential check skipped: {err}");
                Ok(())
            }
        }
    }

    async fn copy(&self, job: &Job<'_>) -> Result<Copied> {
        let docker = self.engine().await?;
        let lock = self.source_locks.of(local_reference(job));
        let mut cleanup = Cleanup::new(docker, job);
        let staged = {
            let _held = lock.lock().await;
            tracing::debug!(source = %job.source, target = %job.target, "pulling");
            self.stage(docker, job, &mut cleanup).await
        };
        let result = match staged {
            Ok((source_digest, image_id)) => {
                // From tagging to untagging, the local target tag is this mirror's.
                let target = self.target_locks.of(job.target.to_string());
                let _owned = target.lock().await;
                let pushed = self
                    .tag_and_push(docker, job, &image_id, &mut cleanup)
                    .await;
                if let Ok(digest) = &pushed {
                    cleanup.pushed.clone_from(digest);
                }
                cleanup.undo_target().await;
                pushed.map(|pushed_digest| Copied {
                    source_digest,
                    pushed_digest,
                })
            }
            Err(err) => Err(err),
        };
        let _held = lock.lock().await;
        cleanup.undo_source().await;
        result
    }
}

/// The local reference the engine pulls the source by: the digest of the manifest the mirror
/// is (what resolution found), so the user's own tags are never moved; the source reference
/// itself when the provider could not resolve it.
fn local_reference(job: &Job<'_>) -> String {
    match job.resolved {
        Some(resolved) => format!("{}@{}", job.source.name(), resolved.image().digest),
        None => job.source.pull_reference(),
    }
}

/// Drains a progress stream to its end; an error inside it fails the whole operation.
/// Returns the last digest `pick` finds in a status line.
async fn drain<T, E>(
    stream: impl Stream<Item = std::result::Result<T, bollard::errors::Error>>,
    status: impl Fn(&T) -> Option<String>,
    pick: fn(&str) -> Option<String>,
    fail: impl Fn(bollard::errors::Error) -> E,
) -> std::result::Result<Option<String>, E> {
    let mut stream = std::pin::pin!(stream);
    let mut digest = None;
    while let Some(item) = stream.next().await {
        let info = item.map_err(&fail)?;
        if let Some(found) = status(&info).as_deref().and_then(pick) {
            digest = Some(found);
        }
    }
    Ok(digest)
}

/// The digest in a pull status line such as `Digest: sha256:…`.
fn pulled_digest(status: &str) -> Option<String> {
    status
        .strip_prefix("Digest: ")
        .map(|d| d.trim().to_string())
}

/// The digest in a push status line such as `base: digest: sha256:… size: 734`.
fn pushed_digest(status: &str) -> Option<String> {
    let rest = &status[status.find("digest: ")? + "digest: ".len()..];
    let digest = rest.split_whitespace().next()?;
    digest.starts_with("sha256:").then(|| digest.to_string())
}

/// The source digest from an image's `RepoDigests` (`name@sha256:…`).
fn digest_from_repo_digests(source: &SourceRef, repo_digests: &[String]) -> Option<String> {
    if let Some(digest) = source.digest() {
        return Some(digest.to_string());
    }
    repo_digests
        .iter()
        .filter_map(|entry| entry.split_once('@'))
        .find(|(name, _)| name.ends_with(source.repository()))
        .map(|(_, digest)| digest.to_string())
}

fn to_bollard(credentials: &Credentials) -> DockerCredentials {
    match credentials {
        Credentials::Basic {
            server,
            username,
            password,
        } => DockerCredentials {
            username: Some(username.clone()),
            password: Some(password.expose().to_string()),
            serveraddress: Some(server.clone()),
            ..Default::default()
        },
        Credentials::IdentityToken { server, token } => DockerCredentials {
            identitytoken: Some(token.expose().to_string()),
            serveraddress: Some(server.clone()),
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_engine_out_of_reach_mid_copy_is_waited_for_longer_than_a_registry_blip() {
        let unreachable = Error::DockerUnreachable {
            host: "unix:///var/run/docker.sock".into(),
            cause: "connection refused".into(),
        };
        let waits: Vec<_> = (1..=ENGINE_TRIES)
            .map(|attempt| wait_before_next(&unreachable, attempt))
            .collect();
        assert_eq!(waits[0], Some(Duration::from_secs(2)));
        assert_eq!(waits[3], Some(Duration::from_secs(16)));
        assert_eq!(waits[4], None, "five tries in all");
        let throttled = Error::Push {
            target: "r/a:1".into(),
            cause: "toomanyrequests: slow down".into(),
        };
        assert!(wait_before_next(&throttled, 1).is_some_and(|w| w < Duration::from_secs(1)));
        assert_eq!(wait_before_next(&throttled, TRIES), None);
        let refused = Error::Push {
            target: "r/a:1".into(),
            cause: "denied: not allowed".into(),
        };
        assert_eq!(wait_before_next(&refused, 1), None);
    }

    #[test]
    fn pushed_digest_is_read_from_the_status_line() {
        let digest = format!("sha256:{}", "c".repeat(64));
        assert_eq!(
            pushed_digest(&format!("base: digest: {digest} size: 734")),
            Some(digest)
        );
        assert_eq!(pushed_digest("Pushed"), None);
    }

    #[test]
    fn repo_digest_is_matched_by_repository() {
        let source = SourceRef::parse("127.0.0.1:5000/team/app:1").unwrap();
        let found =
            digest_from_repo_digests(&source, &["127.0.0.1:5000/team/app@sha256:abc".to_string()]);
        assert_eq!(found.as_deref(), Some("sha256:abc"));
    }
}
