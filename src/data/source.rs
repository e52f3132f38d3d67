//! `ecrmirror_source`: what a source reference names now (its digest, media type and
//! platforms, and a platform's manifest), asked with manifest requests only, with the
//! resource's credentials; no Docker engine, nothing mirrored. A read is one `HEAD`, plus
//! one manifest `GET` by digest the first time this machine sees the digest
//! ([`source::describe`], [`crate::cache`]): the schema says what each attribute costs.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{AttributeConstraint, AttributeType, Block, Description, Schema};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{DataSource, Diagnostics};

use crate::clients::SharedClients;
use crate::error::{Error, Result};
use crate::reference::{Platform, SourceRef};
use crate::schema::{attribute, attributes, string};
use crate::source::{self, Unresolved};
use crate::terraform::{parsed, Diagnose};

/// The data source's state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct SourceState {
    pub(crate) docker_source: Value<String>,
    pub(crate) platform: Value<String>,
    pub(crate) digest: Value<String>,
    pub(crate) platform_digest: Value<String>,
    pub(crate) platforms: Value<Vec<Value<String>>>,
    pub(crate) media_type: Value<String>,
}

/// `ecrmirror_source`.
pub(crate) struct SourceDataSource {
    clients: SharedClients,
}

impl SourceDataSource {
    /// The data source, using the clients `configure` will set.
    pub(crate) fn new(clients: SharedClients) -> SourceDataSource {
        SourceDataSource { clients }
    }
}

/// The schema of `ecrmirror_source`.
pub fn schema() -> Schema {
    use AttributeConstraint::{Computed, Optional, Required};
    Schema {
        version: 0,
        block: Block {
            version: 0,
            attributes: attributes(vec![
                ("docker_source", string(Required, "Image reference to look up, as Docker reads it: `nginx`, `nginx:1.27`, `ghcr.io/org/app:v1`, `nginx@sha256:…`. Credentials are the resource's: the provider's `registry_auth` blocks, else the Docker config file, else anonymous.")),
                ("platform", string(Optional, "Platform whose image to look up in a multi-platform source, as `os/arch[/variant]`, e.g. `linux/arm64/v8`. A source without it is an error that lists the platforms it holds.")),
                ("digest", string(Computed, "`sha256:…` digest of what `docker_source` names now: a multi-platform index or an image manifest. Equal to the `source_digest` a mirror of it records. Costs one `HEAD` request per read, which Docker Hub does not count as a pull.")),
                ("platform_digest", string(Computed, "Digest of the image manifest for `platform` (null without `platform`), from the index's entry for it: the platform's manifest is not fetched. For a single-image source of that platform, equal to `digest`. Equal to the `image_digest` of a registry-method mirror with the same `platform`. Costs what `platforms` costs.")),
                ("platforms", attribute(AttributeType::List(Box::new(AttributeType::String)), Computed, "Platforms the source holds images for, as `os/arch[/variant]`, in the index's order (attestation entries, `unknown/unknown`, left out). A single image lists its own platform, read from its config. Needs the body `digest` names (the index; or the image's manifest and config): one manifest `GET` by that digest (a pull on Docker Hub) the first time this machine sees the digest, then none, from the provider's cache (see the data source's description).")),
                ("media_type", string(Computed, "Media type of what `docker_source` names, as the registry's `Content-Type` gives it, e.g. `application/vnd.oci.image.index.v1+json`. From the same `HEAD` as `digest`.")),
            ]),
            blocks: Default::default(),
            description: Description::markdown("What a source image reference names now, without mirroring it: its digest (to pin, to feed `triggers`, or to compare with a mirror), its platforms, and a platform's manifest digest. Asks the source registry with manifest requests only; no Docker engine is needed.\n\nEvery attribute is read at every plan. A read costs one `HEAD` of the reference (`digest`, `media_type`), which Docker Hub does not count as a pull; what a digest names never changes, so its manifest (and a single image's config) is fetched once per digest, with one `GET` by that digest, and kept in a cache on this machine. A tag that has not moved costs no pull; one that moved costs one. The cache is `$ECRMIRROR_CACHE_DIR`, else `$XDG_CACHE_HOME/terraform-provider-ecrmirror`, else `~/.cache/terraform-provider-ecrmirror` (`%LOCALAPPDATA%\\terraform-provider-ecrmirror` on Windows); every entry is checked against its digest when read, and deleting it is always safe."),
            deprecated: false,
        },
    }
}

/// The arguments parsed: the source, and the platform when one is asked.
fn arguments(config: &SourceState) -> (Result<Option<SourceRef>>, Result<Option<Platform>>) {
    let source = match parsed(&config.docker_source, "docker_source", SourceRef::parse) {
        Ok(Value::Null) => Err(Error::Invalid {
            attribute: "docker_source",
            detail: "`docker_source` is required and cannot be null.".into(),
        }),
        other => other.map(Value::as_option),
    };
    let platform = parsed(&config.platform, "platform", Platform::parse).map(Value::as_option);
    (source, platform)
}

#[async_trait]
impl DataSource for SourceDataSource {
    type State<'a> = SourceState;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(schema())
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: SourceState) -> Option<()> {
        let (source, platform) = arguments(&config);
        for error in [source.err(), platform.err()].into_iter().flatten() {
            error.report(diags);
        }
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        config: SourceState,
        _meta: ValueEmpty,
    ) -> Option<SourceState> {
        super::answered(&self.clients, diags, |clients| async move {
            look_up(&clients, &config).await
        })
        .await
    }
}

/// Asks the source registry about `config.docker_source`.
async fn look_up(clients: &crate::clients::Clients, config: &SourceState) -> Result<SourceState> {
    let (source, platform) = arguments(config);
    let (source, platform) = (source?, platform?);
    let source = source.ok_or_else(|| Error::Invalid {
        attribute: "docker_source",
        detail: "`docker_source` has no known value.".into(),
    })?;
    if clients.pending.registry_auth {
        return Err(crate::clients::Clients::pending_error("`registry_auth`"));
    }
    let credentials = clients.source_auth.for_host(source.host());
    let described = match source::describe(
        &clients.distribution,
        &source,
        platform.as_ref(),
        credentials.as_ref(),
    )
    .await
    {
        Ok(described) => described,
        Err(Unresolved::PlatformMissing { held }) => {
            return Err(Error::PlatformMissing {
                attribute: "platform",
                reference: source.to_string(),
                wanted: platform.map(|p| p.to_string()).unwrap_or_default(),
                held,
                hint: "Set `platform` to one of the platforms the source holds, or leave it out to look up the whole source.".into(),
            })
        }
        Err(Unresolved::Failed(err)) => return Err(err),
    };
    Ok(SourceState {
        digest: Value::Value(described.digest),
        platform_digest: described.platform_digest.map_or(Value::Null, Value::Value),
        platforms: Value::Value(described.platforms.into_iter().map(Value::Value).collect()),
        media_type: Value::Value(described.media_type),
        ..config.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_attribute_is_documented() {
        crate::schema::assert_documented(&schema());
    }

    #[test]
    fn bad_arguments_are_errors_on_their_attributes() {
        let config = SourceState {
            docker_source: Value::Value("Nginx".into()),
            platform: Value::Value("linux".into()),
            ..Default::default()
        };
        let (source, platform) = arguments(&config);
        assert_eq!(source.unwrap_err().attribute(), Some("docker_source"));
        assert_eq!(platform.unwrap_err().attribute(), Some("platform"));
        let unknown = SourceState {
            docker_source: Value::Unknown,
            ..Default::default()
        };
        let (source, platform) = arguments(&unknown);
        assert!(matches!(source, Ok(None)));
        assert!(matches!(platform, Ok(None)));
    }
}
