//! Apply orchestration for `ecrmirror_image`: mirror (or adopt), import, read back, untag.
//!
//! Order of a mirror: ECR login (cached) and repository check at once (nothing is pulled for
//! a missing repository) → adoption check (when ECR already holds the source's image, nothing is
//! transferred) → credential check (Docker method; the registry method's first request to
//! ECR is the check) → transfer → the digest confirmed by ECR itself. The whole of it runs
//! under the `timeouts` limit.

use std::future::Future;

use tf_provider::value::Value;

use super::config::{self, known, Arguments, Mirror};
use super::plan::{timeout, Operation};
use super::state::{ImageState, PrivateData};
use crate::clients::Clients;
use crate::credentials::Credentials;
use crate::ecr::TagLookup;
use crate::error::{display_duration, Error, Result};
use crate::manifest::{select, Selected};
use crate::reference::{registry_of_host, ImportId, Platform, SourceRef};
use crate::transfer::{CopyMethod, Job, Target};

/// Runs `work` under the limit `timeouts` sets for `operation`.
async fn limited<T>(
    state: &ImageState,
    operation: Operation,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let limit = timeout(&state.timeouts, operation)?;
    tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
        Err(Error::Timeout {
            kind: operation.name(),
            limit: display_duration(limit),
        })
    })
}

/// Whether a mirror may adopt what ECR already holds instead of copying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adopt {
    /// When ECR's tag already holds the source's image (same image config for the
    /// platform), record it without transferring anything.
    IfSame,
    /// Copy in any case (triggers, a tag re-pointed in ECR, a new source).
    Never,
}

/// Mirrors `planned.docker_source` into ECR; returns the new state and private data.
pub async fn mirror(
    clients: &Clients,
    planned: &ImageState,
    operation: Operation,
    adopt: Adopt,
) -> Result<(ImageState, PrivateData)> {
    limited(planned, operation, mirror_now(clients, planned, adopt)).await
}

async fn mirror_now(
    clients: &Clients,
    planned: &ImageState,
    adopt: Adopt,
) -> Result<(ImageState, PrivateData)> {
    let Mirror {
        source,
        repository,
        tag,
        platform,
        method,
        registry_id,
    } = Arguments::parse(planned, clients.default_method).mirror()?;
    let (repository, registry_id) = (repository.as_str(), registry_id.as_deref());

    // Two independent ECR calls, one round trip: the token (cached after the first) and the
    // repository check (nothing is asked of the source for a missing repository).
    let (login, registry) = tokio::join!(
        clients.ecr.login(registry_id),
        clients.ecr.repository_registry(registry_id, repository)
    );
    let (login, registry) = (login?, registry?);
    let target = Target {
        host: login.host.clone(),
        repository: repository.to_string(),
        tag: tag.clone(),
    };
    let source_credentials = clients.source_auth.for_registry(source.registry());

    let adopted = match adopt {
        Adopt::IfSame => {
            let wanted = Wanted {
                registry: &registry,
                target: &target,
                source: &source,
                platform: platform.as_ref(),
                credentials: source_credentials.as_ref(),
            };
            if method == CopyMethod::Registry {
                adoptable_as_copy(clients, &wanted).await
            } else {
                adoptable(clients, &wanted).await
            }
        }
        Adopt::Never => None,
    };
    let (digest, source_digest) = match adopted {
        Some(found) => {
            tracing::info!(%target, "ECR already holds the source image; nothing transferred");
            found
        }
        None => {
            // A Docker engine retries a refused push for about a minute: ask first. The
            // registry method's own first request to ECR tells a refusal apart (TargetDenied).
            if method == CopyMethod::Docker {
                clients.registry.check_login(&login).await?;
            }
            let job = Job {
                source: &source,
                platform: platform.as_ref(),
                source_credentials,
                target: target.clone(),
                target_credentials: Credentials::Basic {
                    server: login.host.clone(),
                    username: login.username.clone(),
                    password: login.password.clone(),
                },
            };
            let copied = clients.transfer(method).copy(&job).await?;
            let digest = confirmed_digest(clients, &registry, &target).await?;
            if let Some(pushed) = &copied.pushed_digest {
                if pushed != &digest {
                    tracing::warn!(%target, pushed, confirmed = %digest, "ECR serves another digest than the push reported");
                }
            }
            let source_digest = copied
                .source_digest
                .or_else(|| source.digest().map(str::to_string));
            (digest, source_digest)
        }
    };
    let state = ImageState {
        tag: Value::Value(tag),
        registry_id: Value::Value(registry),
        copy_method: Value::Value(method.to_string()),
        ..mirrored_state(planned.clone(), &target, &digest, source_digest.clone())
    };
    Ok((
        state,
        PrivateData {
            pushed_digest: Some(digest),
            source_digest,
        },
    ))
}

/// `state` with the computed attributes of a mirror at `target` with `digest`.
fn mirrored_state(
    state: ImageState,
    target: &Target,
    digest: &str,
    source_digest: Option<String>,
) -> ImageState {
    ImageState {
        id: Value::Value(target.to_string()),
        image_uri: Value::Value(target.to_string()),
        image_uri_digest: Value::Value(format!("{}@{digest}", target.name())),
        image_digest: Value::Value(digest.to_string()),
        source_digest: source_digest.map_or(Value::Null, Value::Value),
        ..state
    }
}

/// The digest ECR serves for `target` now that it was pushed.
async fn confirmed_digest(clients: &Clients, registry: &str, target: &Target) -> Result<String> {
    match clients
        .ecr
        .lookup_tag(Some(registry), &target.repository, &target.tag)
        .await?
    {
        TagLookup::Found { digest } => Ok(digest),
        TagLookup::Missing => Err(Error::Push {
            target: target.to_string(),
            cause: "The push finished, but ECR does not list the tag.".into(),
        }),
    }
}

/// What an adoption check compares.
struct Wanted<'a> {
    registry: &'a str,
    target: &'a Target,
    source: &'a SourceRef,
    platform: Option<&'a Platform>,
    credentials: Option<&'a Credentials>,
}

/// For a copy through Docker: when ECR's tag already holds the image the source holds for
/// the platform (the same image config; Docker re-compresses layers, so manifests differ),
/// its digest and the source's digest. Manifest requests only; any failure to tell means a
/// normal copy.
async fn adoptable(clients: &Clients, wanted: &Wanted<'_>) -> Option<(String, Option<String>)> {
    let platform = wanted
        .platform
        .cloned()
        .unwrap_or_else(Platform::engine_default);
    let ecr = &clients.ecr;
    let (registry, repository) = (Some(wanted.registry), &wanted.target.repository);
    let (digest, body) = ecr
        .manifest(registry, repository, Some(&wanted.target.tag), None)
        .await
        .ok()??;
    let target_config = match select(body.as_bytes(), &platform) {
        Selected::Config(config) => config,
        Selected::Manifest(platform_digest) => {
            let (_, body) = ecr
                .manifest(registry, repository, None, Some(&platform_digest))
                .await
                .ok()??;
            match select(body.as_bytes(), &platform) {
                Selected::Config(config) => config,
                _ => return None,
            }
        }
        Selected::Missing => return None,
    };
    let found = clients
        .registry
        .source_config(wanted.source, &platform, wanted.credentials)
        .await;
    source_holds(wanted, found, &target_config).map(|source| (digest, Some(source)))
}

/// For a registry-to-registry copy, which preserves digests: when ECR's tag already names
/// the manifest the copy would push, its digest and the source's digest.
async fn adoptable_as_copy(
    clients: &Clients,
    wanted: &Wanted<'_>,
) -> Option<(String, Option<String>)> {
    let (digest, _) = clients
        .ecr
        .manifest(
            Some(wanted.registry),
            &wanted.target.repository,
            Some(&wanted.target.tag),
            None,
        )
        .await
        .ok()??;
    let found = clients
        .registry
        .source_copy_digest(wanted.source, wanted.platform, wanted.credentials)
        .await;
    source_holds(wanted, found, &digest).map(|source| (digest, Some(source)))
}

/// The source's digest when the source answered `found` = `(its digest, what it holds)` and
/// holds `held`, what ECR holds; `None` (a normal copy) otherwise, a failed question included.
fn source_holds(
    wanted: &Wanted<'_>,
    found: Result<(String, Option<String>)>,
    held: &str,
) -> Option<String> {
    match found {
        Ok((source_digest, Some(holds))) if holds == held => Some(source_digest),
        Ok(_) => None,
        Err(err) => {
            tracing::debug!(source = %wanted.source, "no adoption check: {err}");
            None
        }
    }
}

/// Imports `id` (`REPOSITORY:TAG` or `<registry host>/<repository>:<tag>`): the state of the
/// tag as ECR holds it, with no `docker_source` (nothing says where it came from).
pub async fn import(clients: &Clients, id: &str) -> Result<(ImageState, PrivateData)> {
    let failed = |cause: String| Error::Import {
        id: id.to_string(),
        cause,
    };
    let parsed = ImportId::parse(id).map_err(failed)?;
    let login = clients.ecr.login(None).await?;
    let registry_id = match &parsed.host {
        None => None,
        Some(host) if *host == login.host => None,
        Some(host) => Some(registry_of_host(host).ok_or_else(|| {
            failed(format!(
                "`{host}` is not an ECR registry this provider reaches (its own is `{}`).",
                login.host
            ))
        })?),
    };
    let (login, registry) = tokio::join!(
        clients.ecr.login(registry_id),
        clients
            .ecr
            .repository_registry(registry_id, &parsed.repository)
    );
    let (login, registry) = (login?, registry?);
    let digest = match clients
        .ecr
        .lookup_tag(Some(&registry), &parsed.repository, &parsed.tag)
        .await?
    {
        TagLookup::Found { digest } => digest,
        TagLookup::Missing => {
            return Err(failed(format!(
                "ECR has no tag `{}` in repository `{}`.",
                parsed.tag, parsed.repository
            )))
        }
    };
    let target = Target {
        host: login.host.clone(),
        repository: parsed.repository.clone(),
        tag: parsed.tag.clone(),
    };
    let state = ImageState {
        repository: Value::Value(parsed.repository),
        tag: Value::Value(parsed.tag),
        registry_id: Value::Value(registry),
        keep_remotely: Value::Value(false),
        track_source: Value::Value(false),
        ..mirrored_state(ImageState::default(), &target, &digest, None)
    };
    Ok((
        state,
        PrivateData {
            pushed_digest: Some(digest),
            source_digest: None,
        },
    ))
}

/// What a read found, and what it could not check.
pub struct Read {
    /// `None` when ECR confirms the tag (or its repository) is gone.
    pub state: Option<ImageState>,
    /// Problems that do not stop the plan (an unreachable source with `track_source`).
    pub warnings: Vec<Error>,
}

/// Reads the tag back from ECR, and with `track_source` the source tag's digest (one
/// `HEAD`). Without `track_source` the source registry is never contacted.
pub async fn read(clients: &Clients, state: &ImageState) -> Result<Read> {
    let mut warnings = Vec::new();
    let mut found = read_ecr(clients, state)
        .await?
        .map(ImageState::with_defaults);
    if let Some(state) = found.as_mut() {
        if state.track_source == Value::Value(true) {
            if let Err(err) = track(clients, state).await {
                warnings.push(err);
            }
        }
    }
    Ok(Read {
        state: found,
        warnings,
    })
}

/// Records in `state.source_digest` what the source tag names now.
async fn track(clients: &Clients, state: &mut ImageState) -> Result<()> {
    let Value::Value(source) = config::source(&state.docker_source)? else {
        return Ok(());
    };
    let credentials = clients.source_auth.for_registry(source.registry());
    let digest = clients
        .registry
        .source_digest(&source, credentials.as_ref())
        .await?;
    state.source_digest = Value::Value(digest);
    Ok(())
}

async fn read_ecr(clients: &Clients, state: &ImageState) -> Result<Option<ImageState>> {
    let (Value::Value(repository), Value::Value(tag)) = (&state.repository, &state.tag) else {
        return Ok(Some(state.clone()));
    };
    let registry_id = state.registry_id.as_ref_option().map(String::as_str);
    match clients.ecr.lookup_tag(registry_id, repository, tag).await? {
        TagLookup::Missing => Ok(None),
        TagLookup::Found { digest } => {
            let suffix = format!("/{repository}:{tag}");
            let image_uri_digest = match &state.image_uri {
                Value::Value(uri) => match uri.strip_suffix(&suffix) {
                    Some(host) => Value::Value(format!("{host}/{repository}@{digest}")),
                    None => state.image_uri_digest.clone(),
                },
                _ => state.image_uri_digest.clone(),
            };
            Ok(Some(ImageState {
                image_digest: Value::Value(digest),
                image_uri_digest,
                ..state.clone()
            }))
        }
    }
}

/// Removes the tag from ECR unless `keep_remotely`.
pub async fn delete(clients: &Clients, state: &ImageState) -> Result<()> {
    if state.keep_remotely == Value::Value(true) {
        return Ok(());
    }
    let repository = known(&state.repository, "repository")?;
    let tag = known(&state.tag, "tag")?;
    let registry_id = state.registry_id.as_ref_option().map(String::as_str);
    limited(
        state,
        Operation::Delete,
        clients.ecr.untag(registry_id, repository, tag),
    )
    .await
}
