//! The provider: its schema, its block checked into [`Settings`], and its registration of
//! the resources. `configure` hands the settings to [`Clients::build`].

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{AttributeConstraint, Block, Description, NestedBlock, Schema};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, DynamicDataSource, DynamicResource, Provider};

use crate::clients::{Clients, Pending, Settings, SharedClients};
use crate::credentials::{normalize_address, AuthBlock};
use crate::data::image::ImageDataSource;
use crate::data::source::SourceDataSource;
use crate::data::source_tags::SourceTagsDataSource;
use crate::error::Error;
use crate::resource::image::ImageResource;
use crate::schema::{secret, string};
use crate::secret::Secret;
use crate::terraform::Diagnose;

/// The provider block.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ProviderConfig {
    pub region: Value<String>,
    pub profile: Value<String>,
    pub docker_host: Value<String>,
    pub copy_method: Value<String>,
    pub registry_auth: Value<Vec<RegistryAuthBlock>>,
}

/// One `registry_auth` block.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RegistryAuthBlock {
    pub address: Value<String>,
    pub username: Value<String>,
    pub password: Value<String>,
}

impl std::fmt::Debug for RegistryAuthBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuthBlock")
            .field("address", &self.address)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The `ecrmirror` provider.
#[derive(Default)]
pub struct EcrMirrorProvider {
    clients: SharedClients,
}

/// The provider block's schema.
pub fn provider_schema() -> Schema {
    let registry_auth = Block {
        version: 1,
        attributes: [
            (
                "address",
                string(
                    AttributeConstraint::Required,
                    "Registry host (and port), e.g. `ghcr.io` or `registry-1.docker.io`. Docker Hub also matches `docker.io` and `index.docker.io`.",
                ),
            ),
            (
                "username",
                string(AttributeConstraint::Required, "User name for the registry."),
            ),
            (
                "password",
                secret(
                    AttributeConstraint::Required,
                    "Password or access token for the registry. Never stored in state or shown in plans.",
                ),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        blocks: HashMap::new(),
        description: Description::markdown(
            "Credentials for a source registry. Registries without a block use the Docker config file (`auths`, `credHelpers`, `credsStore`), else anonymous pulls.",
        ),
        deprecated: false,
    };
    Schema {
        version: 1,
        block: Block {
            version: 1,
            attributes: [
                (
                    "region",
                    string(
                        AttributeConstraint::Optional,
                        "AWS region of the ECR registry. Default: the AWS default chain (`AWS_REGION`, then the profile's `region`).",
                    ),
                ),
                (
                    "profile",
                    string(
                        AttributeConstraint::Optional,
                        "Named AWS profile (static keys, SSO or assume-role) to take credentials and settings from. Default: `AWS_PROFILE`, else the AWS SDK's default chain (environment credentials, the `default` profile, an instance or task role). A profile that neither the AWS config nor the credentials file defines is an error that lists the profiles found, whether `profile` or `AWS_PROFILE` names it; leave `profile` out where credentials come from the environment (CI).",
                    ),
                ),
                (
                    "copy_method",
                    string(
                        AttributeConstraint::Optional,
                        "Default `copy_method` of every `ecrmirror_image`: `\"docker\"` (pull and push through a Docker engine) or `\"registry\"` (copy registry to registry, no engine, digests preserved). Default `\"docker\"`.",
                    ),
                ),
                (
                    "docker_host",
                    string(
                        AttributeConstraint::Optional,
                        "Docker Engine address, e.g. `unix:///var/run/docker.sock` or `tcp://127.0.0.1:2375`. Default: `DOCKER_HOST`, else the local socket.",
                    ),
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            blocks: [(
                "registry_auth".to_string(),
                NestedBlock::List(registry_auth),
            )]
            .into_iter()
            .collect(),
            description: Description::markdown(
                "Mirrors third-party container images into Amazon ECR, with the pushed digest in state.",
            ),
            deprecated: false,
        },
    }
}

/// An error on the provider block's `attribute`.
fn invalid_setting(attribute: &'static str, detail: String) -> Error {
    Error::Config {
        attribute,
        summary: format!("Invalid {attribute}"),
        detail,
    }
}

/// Checks the provider block and types it; every error found, each on its attribute.
/// Validation and `configure` both read the block through here.
pub(crate) fn settings(config: &ProviderConfig) -> Result<Settings, Vec<Error>> {
    let mut errors = Vec::new();
    let auth_blocks = config.registry_auth.as_ref_option().into_iter().flatten();
    let mut settings = Settings {
        docker_host: config.docker_host.as_ref_option().cloned(),
        region: config.region.as_ref_option().cloned(),
        profile: config.profile.as_ref_option().cloned(),
        pending: Pending {
            registry: config.region.is_unknown() || config.profile.is_unknown(),
            copy_method: config.copy_method.is_unknown(),
            registry_auth: config.registry_auth.is_unknown()
                || auth_blocks.clone().any(|block| {
                    block.address.is_unknown()
                        || block.username.is_unknown()
                        || block.password.is_unknown()
                }),
        },
        ..Default::default()
    };
    if let Some(host) = &settings.docker_host {
        let known = ["unix://", "tcp://", "http://", "https://", "ssh://"];
        if !known.iter().any(|scheme| host.starts_with(scheme)) {
            errors.push(invalid_setting("docker_host", format!(
                "`{host}` is not a Docker Engine address: use `unix:///path/to/docker.sock` or `tcp://host:port`."
            )));
        }
    }
    if let Value::Value(method) = &config.copy_method {
        match method.parse() {
            Ok(method) => settings.default_method = method,
            Err(detail) => errors.push(invalid_setting("copy_method", detail)),
        }
    }
    for (attribute, value) in [("region", &settings.region), ("profile", &settings.profile)] {
        if value.as_ref().is_some_and(|v| v.trim().is_empty()) {
            errors.push(invalid_setting(
                attribute,
                format!(
                    "`{attribute}` cannot be empty; leave it out to use the AWS default chain."
                ),
            ));
        }
    }
    // A null where a value is required, and two blocks for one registry, are errors: no
    // empty username sent, no silent choice between two passwords.
    let mut named = std::collections::HashMap::new();
    for (index, block) in auth_blocks.clone().enumerate() {
        let fields = [
            ("address", block.address.is_null()),
            ("username", block.username.is_null()),
            ("password", block.password.is_null()),
        ];
        for (field, _) in fields.into_iter().filter(|(_, null)| *null) {
            errors.push(Error::Config {
                attribute: "registry_auth",
                summary: format!("Invalid registry_auth {field}"),
                detail: format!("`{field}` of registry_auth block {index} is required and cannot be null: give the registry's {field}, or remove the block to use the Docker config file's credentials."),
            });
        }
        if let Value::Value(address) = &block.address {
            let host = normalize_address(address);
            if let Some(first) = named.insert(host.clone(), index) {
                errors.push(Error::Config {
                    attribute: "registry_auth",
                    summary: "Duplicate registry_auth address".into(),
                    detail: format!("registry_auth blocks {first} and {index} both name the registry `{host}`; only one set of credentials can serve it. Remove one of them."),
                });
            }
        }
    }
    // Pending credentials are not half-used: a plan asks the sources nothing until apply.
    for block in auth_blocks.filter(|_| !settings.pending.registry_auth) {
        settings.registry_auth.push(AuthBlock {
            address: block.address.as_ref_option().cloned().unwrap_or_default(),
            username: block.username.as_ref_option().cloned().unwrap_or_default(),
            password: Secret::new(block.password.as_ref_option().cloned().unwrap_or_default()),
        });
    }
    if errors.is_empty() {
        Ok(settings)
    } else {
        Err(errors)
    }
}

#[async_trait]
impl Provider for EcrMirrorProvider {
    type Config<'a> = ProviderConfig;
    type MetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(provider_schema())
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::Config<'a>) -> Option<()> {
        if let Err(errors) = settings(&config) {
            for error in errors {
                error.report(diags);
            }
        }
        for (index, block) in config.registry_auth.unwrap_or_default().iter().enumerate() {
            if matches!(&block.address, Value::Value(a) if a.trim().is_empty()) {
                diags.error(
                    "Invalid registry_auth address",
                    "`address` cannot be empty: name the registry host, e.g. `ghcr.io`.",
                    AttributePath::new("registry_auth")
                        .index(index as i64)
                        .attribute("address"),
                );
            }
        }
        Some(())
    }

    async fn configure<'a>(
        &self,
        diags: &mut Diagnostics,
        _terraform_version: String,
        config: Self::Config<'a>,
    ) -> Option<()> {
        let built = match settings(&config) {
            Ok(settings) => Clients::build(settings).await.map_err(|err| vec![err]),
            Err(errors) => Err(errors),
        };
        match built {
            Ok(clients) => {
                let _ = self.clients.set(Arc::new(clients));
                Some(())
            }
            Err(errors) => {
                for error in errors {
                    error.report(diags);
                }
                None
            }
        }
    }

    fn get_resources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicResource>>> {
        Some(
            [(
                "image".to_string(),
                Box::new(ImageResource::new(self.clients.clone())) as Box<dyn DynamicResource>,
            )]
            .into_iter()
            .collect(),
        )
    }

    fn get_data_sources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicDataSource>>> {
        Some(
            [
                (
                    "source".to_string(),
                    Box::new(SourceDataSource::new(self.clients.clone()))
                        as Box<dyn DynamicDataSource>,
                ),
                (
                    "image".to_string(),
                    Box::new(ImageDataSource::new(self.clients.clone())) as _,
                ),
                (
                    "source_tags".to_string(),
                    Box::new(SourceTagsDataSource::new(self.clients.clone())) as _,
                ),
            ]
            .into_iter()
            .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_host_scheme_is_checked() {
        let config = ProviderConfig {
            docker_host: Value::Value("/var/run/docker.sock".into()),
            ..Default::default()
        };
        let errors = settings(&config).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].attribute(), Some("docker_host"));
    }

    #[test]
    fn registry_auth_debug_hides_the_password() {
        let block = RegistryAuthBlock {
            address: Value::Value("ghcr.io".into()),
            username: Value::Value("me".into()),
            password: Value::Value("hunter2".into()),
        };
        assert!(!format!("{block:?}").contains("hunter2"));
    }

    #[test]
    fn every_attribute_and_block_is_documented() {
        crate::schema::assert_documented(&provider_schema());
    }
}
