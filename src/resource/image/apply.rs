//! Apply orchestration for `ecrmirror_image`: mirror, read back, untag.
//!
//! Order of a mirror: ECR login (cached) → repository check (nothing is pulled for a missing
//! repository) → credential check → transfer → the digest confirmed by ECR itself. The whole of it runs under
//! the `timeouts` limit.

use std::future::Future;

use tf_provider::value::Value;

use super::plan::{timeout, Operation};
use super::state::{ImageState, PrivateData};
use crate::credentials::Credentials;
use crate::ecr::TagLookup;
use crate::error::{display_duration, Error, Result};
use crate::provider::Clients;
use crate::reference::{check_repository, check_tag, Platform, SourceRef};
use crate::transfer::{Job, Target};

/// A known string argument, or an error naming it.
fn known<'a>(value: &'a Value<String>, attribute: &'static str) -> Result<&'a str> {
    match value {
        Value::Value(text) => Ok(text),
        _ => Err(Error::Invalid {
            attribute,
            detail: format!("`{attribute}` has no known value at apply time."),
        }),
    }
}

fn invalid(attribute: &'static str) -> impl Fn(String) -> Error {
    move |detail| Error::Invalid { attribute, detail }
}

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

/// Mirrors `planned.docker_source` into ECR; returns the new state and private data.
pub async fn mirror(
    clients: &Clients,
    planned: &ImageState,
    operation: Operation,
) -> Result<(ImageState, PrivateData)> {
    limited(planned, operation, mirror_now(clients, planned)).await
}

async fn mirror_now(clients: &Clients, planned: &ImageState) -> Result<(ImageState, PrivateData)> {
    let source = SourceRef::parse(known(&planned.docker_source, "docker_source")?)
        .map_err(invalid("docker_source"))?;
    let repository = known(&planned.repository, "repository")?;
    check_repository(repository).map_err(invalid("repository"))?;
    let tag = match &planned.tag {
        Value::Value(tag) => tag.clone(),
        _ => source
            .default_tag()
            .ok_or_else(|| Error::Invalid {
                attribute: "tag",
                detail: "`docker_source` is pinned by digest only, so there is no tag to copy: set `tag`.".into(),
            })?
            .to_string(),
    };
    check_tag(&tag).map_err(invalid("tag"))?;
    let platform = match &planned.platform {
        Value::Value(text) => Some(Platform::parse(text).map_err(invalid("platform"))?),
        _ => None,
    };
    let registry_id = planned.registry_id.as_ref_option().map(String::as_str);

    let login = clients.ecr.login(registry_id).await?;
    let registry = clients
        .ecr
        .repository_registry(registry_id, repository)
        .await?;
    clients.registry.check_login(&login).await?;
    let target = Target {
        host: login.host.clone(),
        repository: repository.to_string(),
        tag: tag.clone(),
    };
    let job = Job {
        source: &source,
        platform: platform.as_ref(),
        source_credentials: clients.source_auth.for_registry(source.registry()),
        target: target.clone(),
        target_credentials: Credentials::Basic {
            server: login.host.clone(),
            username: login.username.clone(),
            password: login.password.clone(),
        },
    };
    let copied = clients.transfer.copy(&job).await?;

    let digest = match clients
        .ecr
        .lookup_tag(Some(&registry), repository, &tag)
        .await?
    {
        TagLookup::Found { digest } => digest,
        TagLookup::Missing => {
            return Err(Error::Push {
                target: target.to_string(),
                cause: "The push finished, but ECR does not list the tag.".into(),
            })
        }
    };
    if let Some(pushed) = &copied.pushed_digest {
        if pushed != &digest {
            tracing::warn!(%target, pushed, confirmed = %digest, "ECR serves another digest than the push reported");
        }
    }
    let state = ImageState {
        tag: Value::Value(tag),
        registry_id: Value::Value(registry),
        id: Value::Value(target.to_string()),
        image_uri: Value::Value(target.to_string()),
        image_uri_digest: Value::Value(format!("{}@{digest}", target.name())),
        image_digest: Value::Value(digest.clone()),
        source_digest: copied
            .source_digest
            .or_else(|| source.digest().map(str::to_string))
            .map_or(Value::Null, Value::Value),
        ..planned.clone()
    };
    Ok((
        state,
        PrivateData {
            pushed_digest: Some(digest),
        },
    ))
}

/// Reads the tag back from ECR: `None` when ECR confirms it is gone, else the state with
/// the digest ECR serves now.
pub async fn read(clients: &Clients, state: &ImageState) -> Result<Option<ImageState>> {
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
