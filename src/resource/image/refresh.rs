//! What ECR holds of a mirror now: `terraform import` (the tag as ECR holds it) and the read
//! of every refresh (the tag's digest, and with `track_source` the source's).

use tf_provider::value::Value;

use super::apply::{listed, mirrored_state};
use super::config;
use super::referrers;
use super::state::{ImageState, PrivateData};
use super::whereabouts::{whereabouts, Whereabouts};
use crate::clients::Clients;
use crate::ecr::TagLookup;
use crate::error::{Error, Result};
use crate::reference::{EcrHost, ImportId};
use crate::transfer::{BlobSharing, Target};

/// Imports `id` (`REPOSITORY:TAG` or `<registry host>/<repository>:<tag>`): the state of the
/// tag as ECR holds it, with no `docker_source` (nothing says where it came from).
pub(crate) async fn import(clients: &Clients, id: &str) -> Result<(ImageState, PrivateData)> {
    let failed = |cause: String| Error::Import {
        id: id.to_string(),
        cause,
    };
    let parsed = ImportId::parse(id).map_err(failed)?;
    let registry_id = match &parsed.host {
        None => None,
        Some(host) => import_registry_id(clients, host).await?.map_err(failed)?,
    };
    let registry_id = registry_id.as_deref();
    let (login, repository) = tokio::join!(
        clients.ecr.login(registry_id),
        clients.ecr.repository(registry_id, &parsed.repository)
    );
    let (login, registry) = (login?, repository?.registry_id);
    // What ECR holds, with whether it is an index: all an import can know of the mirror
    // (its source and copy method it cannot).
    let Some(held) = clients
        .ecr
        .tagged_manifest(Some(&registry), &parsed.repository, &parsed.tag)
        .await?
    else {
        return Err(failed(format!(
            "ECR has no tag `{}` in repository `{}`.",
            parsed.tag, parsed.repository
        )));
    };
    let digest = held.digest.clone();
    let target = Target {
        host: login.host.clone(),
        repository: parsed.repository.clone(),
        tag: parsed.tag.clone(),
        blobs: BlobSharing::default(),
    };
    let state = ImageState {
        repository: Value::Value(parsed.repository),
        tag: Value::Value(parsed.tag),
        registry_id: Value::Value(registry),
        keep_remotely: Value::Value(false),
        track_source: Value::Value(false),
        copy_referrers: Value::Value(false),
        ..mirrored_state(ImageState::default(), &target, &digest, None)
    };
    Ok((
        state,
        PrivateData {
            pushed_digest: Some(digest),
            source_digest: None,
            referrer_digests: None,
            pushed_index: Some(held.index().is_some()),
        },
    ))
}

/// The account whose registry an import ID's `host` names, when the provider reaches it:
/// its own registry (`None`), or another account's in the same region. Any other host (another
/// region, a host that is not ECR's) is refused with the provider configuration that would
/// import it: the ID must mean the registry it names.
async fn import_registry_id(
    clients: &Clients,
    host: &str,
) -> Result<std::result::Result<Option<String>, String>> {
    let own = clients.ecr.login(None).await?.host;
    if host == own {
        return Ok(Ok(None));
    }
    let Some(named) = EcrHost::parse(host) else {
        return Ok(Err(format!(
            "`{host}` is not an Amazon ECR registry host (`<account>.dkr.ecr.<region>.amazonaws.com`); this provider's registry is `{own}`."
        )));
    };
    if clients.ecr.login(Some(named.registry_id)).await?.host == host {
        return Ok(Ok(Some(named.registry_id.to_string())));
    }
    let alias = named.region.replace('-', "_");
    Ok(Err(format!(
        "`{host}` is the registry of account {} in region {}, and this provider's registry is `{own}`: importing it here would import another registry's tag. Configure a provider for that region (a second `provider \"ecrmirror\"` block with `alias = \"{alias}\"` and `region = \"{}\"`), set `provider = ecrmirror.{alias}` in the resource block, and import again.",
        named.registry_id, named.region, named.region
    )))
}

/// What a read found, and what it could not check.
pub(crate) struct Read {
    /// `None` when ECR confirms the tag (or its repository) is gone.
    pub(crate) state: Option<ImageState>,
    /// Problems that do not stop the plan (an unreachable source with `track_source`).
    pub(crate) warnings: Vec<Error>,
}

/// Reads the tag back from ECR, and with `track_source` the source tag's digest (one
/// `HEAD`). Without `track_source` the source registry is never contacted. A mirror this
/// provider's registry does not hold by its state (it moved registry, or the registry is
/// pending) is kept as state records it: another registry's tag of the same name is not
/// this mirror.
pub(crate) async fn read(clients: &Clients, state: &ImageState) -> Result<Read> {
    let mut warnings = Vec::new();
    let registry_id = state.registry_id.as_ref_option().map(String::as_str);
    if whereabouts(clients, state, registry_id).await? != Whereabouts::Here {
        return Ok(Read {
            state: Some(ImageState::with_defaults(state.clone())),
            warnings,
        });
    }
    let mut found = read_ecr(clients, state)
        .await?
        .map(ImageState::with_defaults);
    if let Some(state) = found.as_mut() {
        if state.track_source == Value::Value(true) {
            if let Err(err) = track(clients, state).await {
                warnings.push(err);
            }
        }
        if state.copy_referrers == Value::Value(true) && state.referrer_digests.is_value() {
            match referrers::now(clients, state).await {
                Ok(digests) => state.referrer_digests = listed(Some(&digests)),
                Err(err) => warnings.push(err),
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
    if clients.pending.registry_auth {
        // Asked at the next plan, with the credentials known.
        return Ok(());
    }
    let credentials = clients.source_auth.for_host(source.host());
    let digest =
        crate::source::digest(&clients.distribution, &source, credentials.as_ref()).await?;
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
