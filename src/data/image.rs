//! `ecrmirror_image` (data source): what an ECR tag holds now, as the resource's computed
//! attributes name it, for configurations that read a mirror another one owns.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{AttributeConstraint, Block, Description, Schema};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{DataSource, Diagnostics};

use crate::clients::{Clients, SharedClients};
use crate::ecr::TagLookup;
use crate::error::{Error, Result};
use crate::reference::{check_registry_id, check_repository, check_tag};
use crate::schema::{attributes, string};
use crate::terraform::{parsed, Diagnose};
use crate::transfer::Target;

/// The data source's state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct ImageData {
    pub(crate) repository: Value<String>,
    pub(crate) tag: Value<String>,
    pub(crate) registry_id: Value<String>,
    pub(crate) image_digest: Value<String>,
    pub(crate) image_uri: Value<String>,
    pub(crate) image_uri_digest: Value<String>,
}

/// `ecrmirror_image` (data source).
pub(crate) struct ImageDataSource {
    clients: SharedClients,
}

impl ImageDataSource {
    /// The data source, using the clients `configure` will set.
    pub(crate) fn new(clients: SharedClients) -> ImageDataSource {
        ImageDataSource { clients }
    }
}

/// The schema of the `ecrmirror_image` data source.
pub fn schema() -> Schema {
    use AttributeConstraint::{Computed, OptionalComputed, Required};
    Schema {
        version: 0,
        block: Block {
            version: 0,
            attributes: attributes(vec![
                ("repository", string(Required, "Name of the ECR repository; may contain `/`.")),
                ("tag", string(Required, "Tag in the repository. A tag that does not exist is an error naming the repository and the tag.")),
                ("registry_id", string(OptionalComputed, "AWS account id of the registry. Default: the caller's own.")),
                ("image_digest", string(Computed, "`sha256:…` digest of the manifest ECR serves for the tag now.")),
                ("image_uri", string(Computed, "`<registry host>/<repository>:<tag>`.")),
                ("image_uri_digest", string(Computed, "`<registry host>/<repository>@<image_digest>`: the pinned reference to use in task definitions.")),
            ]),
            blocks: Default::default(),
            description: Description::markdown("What an ECR tag holds now, named as the `ecrmirror_image` resource names it: for a configuration that uses a mirror another configuration owns (a task definition reading what a shared mirroring stack made). Reads ECR's API only."),
            deprecated: false,
        },
    }
}

/// A check of one argument.
type Check = fn(&str) -> std::result::Result<(), String>;

/// Every invalid known argument, each on its attribute.
fn check(config: &ImageData) -> Vec<Error> {
    let checks: [(&'static str, &Value<String>, Check); 3] = [
        ("repository", &config.repository, check_repository),
        ("tag", &config.tag, check_tag),
        ("registry_id", &config.registry_id, check_registry_id),
    ];
    checks
        .into_iter()
        .filter_map(|(attribute, value, check)| parsed(value, attribute, check).err())
        .collect()
}

#[async_trait]
impl DataSource for ImageDataSource {
    type State<'a> = ImageData;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(schema())
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: ImageData) -> Option<()> {
        for error in check(&config) {
            error.report(diags);
        }
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        config: ImageData,
        _meta: ValueEmpty,
    ) -> Option<ImageData> {
        super::answered(&self.clients, diags, |clients| async move {
            look_up(&clients, &config).await
        })
        .await
    }
}

/// Asks ECR what `config`'s tag holds.
async fn look_up(clients: &Clients, config: &ImageData) -> Result<ImageData> {
    if let Some(error) = check(config).into_iter().next() {
        return Err(error);
    }
    if clients.pending.registry {
        return Err(Clients::pending_error("`region` or `profile`"));
    }
    let known = |value: &Value<String>, attribute: &'static str| {
        crate::terraform::known(value, attribute).cloned()
    };
    let repository = known(&config.repository, "repository")?;
    let tag = known(&config.tag, "tag")?;
    let registry_id = config.registry_id.as_ref_option().map(String::as_str);
    let (login, holder) = tokio::join!(
        clients.ecr.login(registry_id),
        clients.ecr.repository(registry_id, &repository)
    );
    let (login, holder) = (login?, holder?);
    let target = Target {
        host: login.host,
        repository,
        tag,
        blobs: Default::default(),
    };
    let digest = match clients
        .ecr
        .lookup_tag(Some(&holder.registry_id), &target.repository, &target.tag)
        .await?
    {
        TagLookup::Found { digest } => digest,
        TagLookup::Missing => {
            return Err(Error::TagNotFound {
                repository: target.repository,
                tag: target.tag,
                host: target.host,
            })
        }
    };
    Ok(ImageData {
        registry_id: Value::Value(holder.registry_id),
        image_uri: Value::Value(target.to_string()),
        image_uri_digest: Value::Value(format!("{}@{digest}", target.name())),
        image_digest: Value::Value(digest),
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
        let config = ImageData {
            repository: Value::Value("Bad_Repo".into()),
            tag: Value::Value(".x".into()),
            registry_id: Value::Value("12".into()),
            ..Default::default()
        };
        let attributes: Vec<_> = check(&config).iter().filter_map(Error::attribute).collect();
        assert_eq!(attributes, ["repository", "tag", "registry_id"]);
        let unknown = ImageData {
            repository: Value::Unknown,
            ..Default::default()
        };
        assert!(check(&unknown).is_empty());
    }
}
