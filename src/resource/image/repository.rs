//! What a plan says about the repository a mirror is created in: nothing when it exists; a
//! warning on `repository` when ECR will create it on push from a creation template, or
//! when it is missing and nothing creates it (the apply fails unless another resource of the
//! run makes it first). Asked once per repository for the life of the process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tf_provider::value::Value;
use tokio::sync::OnceCell;

use super::apply::existing_or_created_on_push;
use super::state::ImageState;
use crate::clients::Clients;
use crate::error::Error;

/// A repository of a registry (`None`: the provider's own).
type Key = (Option<String>, String);

/// The plans' answers (the warning, if any), by repository.
#[derive(Default)]
pub(crate) struct RepositoryChecks {
    answers: Mutex<HashMap<Key, Arc<OnceCell<Option<Error>>>>>,
}

impl RepositoryChecks {
    /// The warning for a plan that creates a mirror of `config` (in its `repository` of its
    /// `registry_id`), if any. Nothing is asked while the repository, its registry or the
    /// provider's registry are unknown.
    pub(crate) async fn warning(&self, clients: &Clients, config: &ImageState) -> Option<Error> {
        let Value::Value(repository) = &config.repository else {
            return None;
        };
        let registry_id = match &config.registry_id {
            Value::Value(id) => Some(id.clone()),
            Value::Null => None,
            Value::Unknown => return None,
        };
        if clients.pending.registry {
            return None;
        }
        let cell = {
            let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
            answers
                .entry((registry_id.clone(), repository.clone()))
                .or_default()
                .clone()
        };
        cell.get_or_init(|| async {
            match existing_or_created_on_push(clients, registry_id.as_deref(), repository).await {
                Ok(found) => found.created_on_push.map(|prefix| Error::CreatedOnPush {
                    repository: repository.clone(),
                    prefix,
                }),
                Err(err @ Error::RepositoryNotFound { .. }) => Some(err),
                Err(err) => {
                    tracing::debug!(repository, "no repository check at plan: {err}");
                    None
                }
            }
        })
        .await
        .clone()
    }
}
