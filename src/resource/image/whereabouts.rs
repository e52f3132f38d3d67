//! Where a mirror in state lives: the registry is part of a mirror's identity, and a
//! resource moved to another provider alias, region, profile or account finds its tag's
//! name in another registry, which may hold anything. Plan, read and destroy ask this first.

use tf_provider::value::Value;

use super::state::ImageState;
use crate::clients::Clients;
use crate::error::{Error, Result};

/// Where a mirror in state lives, against the registry this provider configuration reaches.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Whereabouts {
    /// In this provider's registry (or state records no host yet).
    Here,
    /// In another registry: the host state records, and this provider's.
    Moved { from: String, to: String },
    /// Not known until apply: the provider's `region` or `profile` is pending.
    Pending,
}

impl Whereabouts {
    /// The warning that says where the mirror goes and what stays, when it moved.
    pub(crate) fn warning(&self, state: &ImageState, destroyed: bool) -> Option<Error> {
        let Whereabouts::Moved { from, to } = self else {
            return None;
        };
        Some(Error::Relocated {
            repository: state
                .repository
                .as_ref_option()
                .cloned()
                .unwrap_or_default(),
            tag: state.tag.as_ref_option().cloned().unwrap_or_default(),
            from: from.clone(),
            to: to.clone(),
            destroyed,
        })
    }
}

/// Where the mirror `prior` lives, as a plan of `config` asks it: against the registry of
/// the account the configuration names, else this provider's own (a `registry_id` state
/// computed belongs to the account the mirror was made with, which a changed `profile` may
/// have left). Here when the provider is not configured yet, when `registry_id` is unknown
/// (a change of it replaces the mirror), or when ECR cannot be asked (the apply asks again).
pub(crate) async fn at_plan(
    clients: Option<&std::sync::Arc<Clients>>,
    prior: &ImageState,
    config: &ImageState,
) -> Whereabouts {
    let Some(clients) = clients.filter(|_| !config.registry_id.is_unknown()) else {
        return Whereabouts::Here;
    };
    let registry_id = config.registry_id.as_ref_option().map(String::as_str);
    whereabouts(clients, prior, registry_id)
        .await
        .unwrap_or_else(|err| {
            tracing::debug!("where the mirror lives is asked again at apply: {err}");
            Whereabouts::Here
        })
}

/// Where the mirror `state` records lives: the registry is part of a mirror's identity, and
/// a resource moved to another provider alias, region, profile or account finds its tag's
/// name in another registry, which may hold anything. `registry_id`: the account whose
/// registry the mirror is to be in (`None`: this provider configuration's own).
pub(crate) async fn whereabouts(
    clients: &Clients,
    state: &ImageState,
    registry_id: Option<&str>,
) -> Result<Whereabouts> {
    if clients.pending.registry {
        return Ok(Whereabouts::Pending);
    }
    let (Value::Value(id), Value::Value(repository), Value::Value(tag)) =
        (&state.id, &state.repository, &state.tag)
    else {
        return Ok(Whereabouts::Here);
    };
    let Some(from) = id.strip_suffix(&format!("/{repository}:{tag}")) else {
        return Ok(Whereabouts::Here);
    };
    let to = clients.ecr.login(registry_id).await?.host;
    Ok(if from == to {
        Whereabouts::Here
    } else {
        Whereabouts::Moved {
            from: from.to_string(),
            to,
        }
    })
}
