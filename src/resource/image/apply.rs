//! Apply orchestration for `ecrmirror_image`: mirror (or adopt), untag.
//!
//! Order of a mirror: the arguments parsed ([`super::config`]) → ECR login (cached) and
//! repository check at once (nothing is asked of the source for a missing repository) → with
//! `verify`, the source pinned to the digest the plan verified (verified now when the plan
//! could not) → the copy method resolves the source (a platform it lacks stops here) while ECR's tag is read
//! → adoption (when ECR already holds what the method would push, nothing is transferred)
//! → the method's pre-flight → transfer → the digest confirmed by ECR itself. Everything
//! that differs between methods is the [`crate::transfer::Transfer`]'s. The whole of it runs
//! under the `timeouts` limit.

use std::future::Future;

use tf_provider::value::Value;

use super::config::{known, Arguments, Mirror};
use super::owners::{TagKey, TagLedger};
use super::plan::{timeout, Operation};
use super::referrers;
use super::state::{ImageState, PrivateData};
use super::whereabouts::{whereabouts, Whereabouts};
use crate::clients::Clients;
use crate::credentials::Credentials;
use crate::ecr::{RegistryLogin, Repository, TagLookup};
use crate::error::{display_duration, Error, Result, TemplateLookup};
use crate::manifest::Fetched;
use crate::reference::SourceRef;
use crate::retry::Notes;
use crate::source::Resolved;
use crate::transfer::{BlobSharing, Job, Target, Transfer};
use crate::verify::{self, Policy, Verified};

/// Runs `work` under the limit `timeouts` sets for `operation`.
async fn limited<T>(
    state: &ImageState,
    operation: Operation,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let limit = timeout(&state.timeouts, operation)?;
    let retries = Notes::until(std::time::Instant::now() + limit);
    tokio::time::timeout(limit, retries.watch(work))
        .await
        .unwrap_or_else(|_| {
            Err(Error::Timeout {
                operation,
                limit: display_duration(limit),
                retrying: retries.last(),
            })
        })
}

/// Whether a mirror may adopt what ECR already holds instead of copying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Adopt {
    /// When ECR's tag already holds the source's image (same image config for the
    /// platform), record it without transferring anything.
    IfSame,
    /// Copy in any case (triggers, a tag re-pointed in ECR, a new source).
    Never,
}

/// Mirrors `planned.docker_source` into ECR; returns the new state and private data.
pub(crate) async fn mirror(
    clients: &Clients,
    ledger: &TagLedger,
    planned: &ImageState,
    operation: Operation,
    adopt: Adopt,
) -> Result<(ImageState, PrivateData)> {
    limited(
        planned,
        operation,
        mirror_now(clients, ledger, planned, adopt),
    )
    .await
}

/// Where a mirror goes, confirmed by ECR.
struct Destination {
    login: RegistryLogin,
    /// The repository, as ECR describes it (the registry that holds it, its tag mutability).
    repository: Repository,
    target: Target,
}

impl Destination {
    /// The account id of the registry that holds the repository.
    fn registry_id(&self) -> &str {
        &self.repository.registry_id
    }

    /// The tag, as the ledger of this run's tags knows it.
    fn tag_key(&self) -> TagKey {
        TagKey::new(
            Some(self.registry_id()),
            &self.target.repository,
            &self.target.tag,
        )
    }

    /// Whether the target tag cannot be overwritten once it exists.
    fn immutable(&self) -> bool {
        self.repository.tags.immutable(&self.target.tag)
    }
}

/// What a mirror recorded: the digest ECR serves for the tag, the source's, and with
/// `copy_referrers` the referrers ECR holds for it.
struct Mirrored {
    digest: String,
    source_digest: Option<String>,
    referrers: Option<Vec<String>>,
    /// Whether `digest` is a multi-platform index.
    index: bool,
}

async fn mirror_now(
    clients: &Clients,
    ledger: &TagLedger,
    planned: &ImageState,
    adopt: Adopt,
) -> Result<(ImageState, PrivateData)> {
    let mut mirror = Arguments::parse(planned, clients.default_method).mirror()?;
    let mut destination = destination(clients, &mirror).await?;
    // The digest verified is the digest copied: the source is pinned to it.
    let verified = verified(clients, planned, &mirror).await?;
    if let Some(verified) = &verified {
        mirror.source = mirror.source.pinned(&verified.digest);
    }
    // From what ECR's tag holds to the tag recorded as this mirror's, no destroy of the
    // same tag in this run runs in between (a renamed `for_each` key).
    let tag = destination.tag_key();
    let _locked = ledger.lock(&tag).await;
    let transfer = clients.transfer(mirror.method);
    let credentials = clients.source_auth.for_host(mirror.source.host());
    // What the source holds (a platform it lacks stops here, before any transfer) and what
    // ECR's tag holds, at once.
    let (resolved, held) = tokio::join!(
        transfer.resolve(
            &mirror.source,
            mirror.platform.as_ref(),
            credentials.as_ref()
        ),
        held_by_ecr(clients, &destination, adopt),
    );
    let resolved = match (resolved?, &mirror.platforms) {
        (Some(whole), Some(platforms)) => Some(whole.subset(&mirror.source, platforms)?),
        (resolved, _) => resolved,
    };
    let adopted = adoption(
        transfer,
        resolved.as_ref(),
        held.as_ref(),
        adopt,
        &destination,
        &mirror,
    )?;
    let mut job = Job {
        source: &mirror.source,
        platform: mirror.platform.as_ref(),
        resolved: resolved.as_ref(),
        source_credentials: credentials,
        target: destination.target.clone(),
        target_credentials: push_credentials(&destination.login),
    };
    // ECR's registry refusing the credentials mid-copy means, most often, a token that
    // expired or was revoked: each step is tried once more with a fresh one.
    let mut mirrored = match adopted {
        Some(adopted) => {
            tracing::info!(target = %destination.target, "ECR already holds the source image; nothing transferred");
            adopted
        }
        None => match copy(clients, transfer, &job, &destination).await {
            Err(Error::TargetDenied { .. }) => {
                renew(clients, &mirror, &mut destination, &mut job).await?;
                copy(clients, transfer, &job, &destination).await?
            }
            copied => copied?,
        },
    };
    // The referrers follow the image, also when it was adopted (only those ECR lacks).
    if let (true, Some(resolved)) = (mirror.copy_referrers, &resolved) {
        let referrers = match referrers::copy(clients, mirror.method, &job, resolved).await {
            Err(Error::TargetDenied { .. }) => {
                renew(clients, &mirror, &mut destination, &mut job).await?;
                referrers::copy(clients, mirror.method, &job, resolved).await?
            }
            copied => copied?,
        };
        mirrored.referrers = Some(referrers);
    }
    ledger.record(tag);
    let (mut state, private) = recorded(planned, mirror, &destination, mirrored);
    state.verified_by = verified.map_or(Value::Null, |v| Value::Value(v.by));
    Ok((state, private))
}

/// With `verify`: what verified the source. The plan verified it when it could (its digest
/// and `verified_by` are in `planned`); otherwise it is verified now, before anything is
/// transferred.
async fn verified(
    clients: &Clients,
    planned: &ImageState,
    mirror: &Mirror,
) -> Result<Option<Verified>> {
    let Some(policy) = &mirror.verify else {
        return Ok(None);
    };
    if let (Value::Value(digest), Value::Value(by)) = (&planned.source_digest, &planned.verified_by)
    {
        return Ok(Some(Verified {
            digest: digest.clone(),
            by: by.clone(),
        }));
    }
    signed(clients, &mirror.source, policy).await.map(Some)
}

/// What verifies `source` under `policy` (what it names now, or the digest it is pinned
/// to), asked with the source registry's credentials.
pub(crate) async fn signed(
    clients: &Clients,
    source: &SourceRef,
    policy: &Policy,
) -> Result<Verified> {
    let credentials = clients.source_auth.for_host(source.host());
    verify::verify(&clients.distribution, source, credentials.as_ref(), policy).await
}

/// With `verify`, for an update that copies nothing (`verify` changed): verifies the digest
/// the mirror was made from again, and returns what verified it (null without `verify`).
pub(crate) async fn reverified(clients: &Clients, planned: &ImageState) -> Result<Value<String>> {
    let mirror = Arguments::parse(planned, clients.default_method).mirror()?;
    let (Some(policy), Value::Value(digest)) = (&mirror.verify, &planned.source_digest) else {
        return Ok(Value::Null);
    };
    signed(clients, &mirror.source.pinned(digest), policy)
        .await
        .map(|verified| Value::Value(verified.by))
}

/// What ECR's tag already holds of the mirror: `Some` when `held` is what `transfer` would
/// push for `resolved` and `adopt` allows recording it. An immutable tag cannot be pushed
/// again, even with the image it names: when it holds the mirror, that is recorded whatever
/// `adopt` says (a copy would make the same), and any other image is refused here, before a
/// transfer.
fn adoption(
    transfer: &dyn Transfer,
    resolved: Option<&Resolved>,
    held: Option<&Fetched>,
    adopt: Adopt,
    destination: &Destination,
    mirror: &Mirror,
) -> Result<Option<Mirrored>> {
    let immutable = destination.immutable();
    let may_adopt = adopt == Adopt::IfSame || immutable;
    // A `platform` the configuration names asks for that platform's image: an index that
    // holds it (and more) is not that mirror, whichever method holds it otherwise.
    let asked_one = |held: &Fetched, resolved: &Resolved| {
        mirror.platform.is_some()
            && held.index().is_some()
            && held.digest != resolved.image().digest
    };
    match (resolved, held) {
        (Some(resolved), Some(held))
            if may_adopt && transfer.holds(held, resolved) && !asked_one(held, resolved) =>
        {
            Ok(Some(Mirrored {
                digest: held.digest.clone(),
                source_digest: Some(resolved.named.digest.clone()),
                referrers: None,
                index: held.index().is_some(),
            }))
        }
        (_, Some(held)) if immutable => Err(Error::TagImmutable {
            target: destination.target.to_string(),
            held: held.digest.clone(),
            wanted: resolved
                .map(|r| r.image().digest.clone())
                .or_else(|| mirror.source.digest().map(str::to_string))
                .unwrap_or_else(|| format!("the image of {}", mirror.source)),
        }),
        _ => Ok(None),
    }
}

/// The credentials a copy pushes with, from ECR's `login`.
fn push_credentials(login: &RegistryLogin) -> Credentials {
    Credentials::Basic {
        server: login.host.clone(),
        username: login.username.clone(),
        password: login.password.clone(),
    }
}

/// Replaces the push credentials of `destination` and `job`, which ECR's registry refused,
/// with ones from a fresh GetAuthorizationToken.
async fn renew(
    clients: &Clients,
    mirror: &Mirror,
    destination: &mut Destination,
    job: &mut Job<'_>,
) -> Result<()> {
    let login = clients
        .ecr
        .renew_login(mirror.registry_id.as_deref(), &destination.login)
        .await?;
    job.target_credentials = push_credentials(&login);
    destination.login = login;
    Ok(())
}

/// ECR's login (cached after the first), the repository check and whether the registry
/// mounts blobs (asked once), at once: nothing is asked of the source for a missing
/// repository, unless a creation template makes ECR create it on push.
async fn destination(clients: &Clients, mirror: &Mirror) -> Result<Destination> {
    let registry_id = mirror.registry_id.as_deref();
    let (login, repository, mounting) = tokio::join!(
        clients.ecr.login(registry_id),
        existing_or_created_on_push(clients, registry_id, &mirror.repository),
        clients.ecr.mounting(registry_id),
    );
    let login = login?;
    let repository = repository?;
    let target = Target {
        host: login.host.clone(),
        repository: mirror.repository.clone(),
        tag: mirror.tag.clone(),
        blobs: BlobSharing {
            mounting,
            encryption: repository.encryption.clone(),
        },
    };
    Ok(Destination {
        login,
        repository,
        target,
    })
}

/// The repository as ECR describes it; when it is missing, the one ECR creates on the push
/// from the creation template that applies ([`Error::RepositoryNotFound`] when none does, or
/// when the templates could not be asked).
pub(crate) async fn existing_or_created_on_push(
    clients: &Clients,
    registry_id: Option<&str>,
    repository: &str,
) -> Result<Repository> {
    match clients.ecr.repository(registry_id, repository).await {
        Err(Error::RepositoryNotFound {
            repository,
            registry_id,
            host,
            templates: TemplateLookup::NotAsked,
        }) => match clients
            .ecr
            .push_template(registry_id.as_deref(), &repository)
            .await
        {
            Ok(Some(created)) => {
                tracing::info!(%repository, template = ?created.created_on_push, "ECR creates the repository on push from its creation template");
                Ok(created)
            }
            Ok(None) => Err(Error::RepositoryNotFound {
                repository,
                registry_id,
                host,
                templates: TemplateLookup::NoneApplies,
            }),
            Err(why) => Err(Error::RepositoryNotFound {
                repository,
                registry_id,
                host,
                templates: TemplateLookup::Unknown(why),
            }),
        },
        other => other,
    }
}

/// The manifest ECR's tag serves, when adoption may use it or the tag is immutable; any
/// failure to tell means a normal copy (and ECR itself refuses to overwrite an immutable
/// tag).
async fn held_by_ecr(
    clients: &Clients,
    destination: &Destination,
    adopt: Adopt,
) -> Option<Fetched> {
    if adopt == Adopt::Never && !destination.immutable() {
        return None;
    }
    let target = &destination.target;
    clients
        .ecr
        .tagged_manifest(
            Some(destination.registry_id()),
            &target.repository,
            &target.tag,
        )
        .await
        .unwrap_or_else(|err| {
            tracing::debug!(%target, "no adoption check: {err}");
            None
        })
}

/// Pre-flight, the transfer, and the digest ECR then serves.
async fn copy(
    clients: &Clients,
    transfer: &dyn Transfer,
    job: &Job<'_>,
    destination: &Destination,
) -> Result<Mirrored> {
    transfer.preflight(&destination.login).await?;
    let copied = transfer.copy(job).await?;
    let target = &destination.target;
    let digest = confirmed_digest(clients, destination.registry_id(), target).await?;
    // A digest another push left is never recorded as this mirror's.
    if let Some(pushed) = copied.pushed_digest {
        if pushed != digest {
            return Err(Error::TagTaken {
                target: target.to_string(),
                pushed,
                found: digest,
            });
        }
    }
    let source_digest = copied
        .source_digest
        .or_else(|| job.resolved.map(|r| r.named.digest.clone()))
        .or_else(|| job.source.digest().map(str::to_string));
    // An index when ECR serves the source's own index (a method that pushes a manifest of
    // its own pushes one platform's image).
    let index = job
        .resolved
        .is_some_and(|r| r.image().digest == digest && r.image().index().is_some());
    Ok(Mirrored {
        digest,
        source_digest,
        referrers: None,
        index,
    })
}

/// The state and private data that record `mirrored`.
fn recorded(
    planned: &ImageState,
    mirror: Mirror,
    destination: &Destination,
    mirrored: Mirrored,
) -> (ImageState, PrivateData) {
    let state = ImageState {
        tag: Value::Value(mirror.tag),
        registry_id: Value::Value(destination.registry_id().to_string()),
        copy_method: Value::Value(mirror.method.to_string()),
        copy_referrers: Value::Value(mirror.copy_referrers),
        referrer_digests: listed(mirrored.referrers.as_deref()),
        ..mirrored_state(
            planned.clone(),
            &destination.target,
            &mirrored.digest,
            mirrored.source_digest.clone(),
        )
    };
    let private = PrivateData {
        pushed_digest: Some(mirrored.digest),
        source_digest: mirrored.source_digest,
        referrer_digests: mirrored.referrers,
        pushed_index: Some(mirrored.index),
    };
    (state, private)
}

/// `digests` as a state list; null for none (no `copy_referrers`).
pub(super) fn listed(digests: Option<&[String]>) -> Value<Vec<Value<String>>> {
    match digests {
        Some(digests) => Value::Value(digests.iter().cloned().map(Value::Value).collect()),
        None => Value::Null,
    }
}

/// `state` with the computed attributes of a mirror at `target` with `digest`.
pub(super) fn mirrored_state(
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

/// The warning for a plan that mirrors `planned` again into its existing tag, when ECR
/// keeps that tag immutable. Asked only for such plans; a failure to ask is no warning (the
/// apply checks again before any transfer).
pub(crate) async fn immutable_remirror(clients: &Clients, planned: &ImageState) -> Option<Error> {
    let (Value::Value(repository), Value::Value(tag)) = (&planned.repository, &planned.tag) else {
        return None;
    };
    if clients.pending.registry {
        return None;
    }
    let registry_id = planned.registry_id.as_ref_option().map(String::as_str);
    match clients.ecr.repository(registry_id, repository).await {
        Ok(found) if found.tags.immutable(tag) => Some(Error::ImmutableRemirror {
            target: format!("{repository}:{tag}"),
        }),
        Ok(_) => None,
        Err(err) => {
            tracing::debug!(repository, "no tag mutability check at plan: {err}");
            None
        }
    }
}

/// Removes the tag from ECR unless `keep_remotely`, or unless a mirror made in this run
/// holds the tag now (a `create_before_destroy` replacement destroys the deposed instance
/// after the new one mirrored the same tag; a renamed `for_each` key destroys the old
/// instance before or after the new one mirrored it). The question and the untag are one
/// step under the tag's lock, which a mirror of the same tag holds while it makes it.
///
/// A mirror state records in another registry than this provider's is left there, with a
/// warning (returned): this provider configuration cannot reach it, and its registry's tag
/// of the same name is not this mirror's.
pub(crate) async fn delete(
    clients: &Clients,
    ledger: &TagLedger,
    state: &ImageState,
) -> Result<Option<Error>> {
    if state.keep_remotely == Value::Value(true) {
        return Ok(None);
    }
    let registry_id = state.registry_id.as_ref_option().map(String::as_str);
    let whereabouts = whereabouts(clients, state, registry_id).await?;
    if whereabouts != Whereabouts::Here {
        return Ok(whereabouts.warning(state, true));
    }
    let repository = known(&state.repository, "repository")?;
    let tag = known(&state.tag, "tag")?;
    let key = TagKey::new(registry_id, repository, tag);
    let _locked = ledger.lock(&key).await;
    if ledger.mirrored(&key) {
        tracing::info!(
            repository,
            tag,
            "a mirror made in this run holds the tag; it stays"
        );
        return Ok(None);
    }
    limited(state, Operation::Delete, async {
        let platforms = referrers::platform_manifests(clients, state).await?;
        clients.ecr.untag(registry_id, repository, tag).await?;
        referrers::remove_tags(clients, state, platforms).await
    })
    .await
    .map(|()| None)
}

/// Removes the referrer tags a mirror with `copy_referrers` copied, now that the referrers
/// leave with it (`copy_referrers` turned off), under the tag's lock.
pub(crate) async fn drop_referrers(
    clients: &Clients,
    ledger: &TagLedger,
    state: &ImageState,
) -> Result<()> {
    let Some(key) = state.tag_key() else {
        return Ok(());
    };
    let _locked = ledger.lock(&key).await;
    limited(state, Operation::Update, async {
        let platforms = referrers::platform_manifests(clients, state).await?;
        referrers::remove_tags(clients, state, platforms).await
    })
    .await
}
