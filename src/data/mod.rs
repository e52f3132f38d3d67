//! Terraform data sources: read-only questions to the registries, answered without
//! transferring anything. `source` asks a source registry what a reference names now
//! (`ecrmirror_source`); `source_tags` reads a source repository's tag list and chooses a
//! family of tags from it (`ecrmirror_source_tags`, through [`crate::tags`]); `image` asks
//! ECR what a tag holds (`ecrmirror_image`). tf-provider types stop here, as in
//! [`crate::resource`].

pub mod image;
pub mod source;
pub mod source_tags;

use std::future::Future;
use std::sync::Arc;

use tf_provider::Diagnostics;

use crate::clients::{configured, Clients, SharedClients};
use crate::error::Result;
use crate::terraform::Diagnose;

/// A data source's read: `ask`, with the clients `configure` set; its error (or the
/// provider not configured yet) reported on `diags`.
pub(crate) async fn answered<S, Fut>(
    clients: &SharedClients,
    diags: &mut Diagnostics,
    ask: impl FnOnce(Arc<Clients>) -> Fut,
) -> Option<S>
where
    Fut: Future<Output = Result<S>>,
{
    let answer = match configured(clients) {
        Ok(clients) => ask(clients).await,
        Err(err) => Err(err),
    };
    answer.map_err(|err| err.report(diags)).ok()
}
