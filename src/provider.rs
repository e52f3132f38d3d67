//! The provider: its schema, its configuration, and the clients `configure` builds and shares
//! with the resources.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region};
use aws_runtime::env_config::file::EnvConfigFiles;
use aws_types::os_shim_internal::{Env, Fs};
use serde::{Deserialize, Serialize};
use tf_provider::schema::{AttributeConstraint, Block, Description, NestedBlock, Schema};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, DynamicResource, Provider};

use crate::credentials::{RegistryAuth, SourceAuth};
use crate::ecr::Ecr;
use crate::error::Error;
use crate::registry::Registry;
use crate::resource::image::ImageResource;
use crate::schema::{secret, string};
use crate::secret::Secret;
use crate::transfer::docker::DockerTransfer;
use crate::transfer::registry::RegistryTransfer;
use crate::transfer::{Transfer, DEFAULT_METHOD};

/// What `configure` builds; shared by every resource instance of the process.
pub struct Clients {
    pub ecr: Ecr,
    pub registry: Arc<Registry>,
    pub docker: DockerTransfer,
    pub registry_copy: RegistryTransfer,
    /// The provider's `copy_method`, else `docker`.
    pub default_method: String,
    pub source_auth: SourceAuth,
}

impl Clients {
    /// The transfer for a `copy_method` value.
    pub fn transfer(&self, method: &str) -> &dyn Transfer {
        if method == "registry" {
            &self.registry_copy
        } else {
            &self.docker
        }
    }
}

/// Clients set once `configure` has run.
pub type SharedClients = Arc<OnceLock<Arc<Clients>>>;

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

/// Keeps the provider alive through Ctrl-C: Terraform sends SIGINT to its whole process group
/// and then asks the provider to stop over the protocol, after saving what exists.
pub fn ignore_interrupts() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut interrupts) = signal(SignalKind::interrupt()) {
            tokio::spawn(async move {
                while interrupts.recv().await.is_some() {
                    tracing::info!("interrupt received; finishing the operation in flight");
                }
            });
        }
    }
    #[cfg(windows)]
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("interrupt received; finishing the operation in flight");
        }
    });
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
                        "Named AWS profile (static keys, SSO or assume-role) to take credentials and settings from. Default: `AWS_PROFILE`, else `default`.",
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

/// Checks the provider block; returns the errors found.
fn check_config(config: &ProviderConfig) -> Vec<Error> {
    let mut errors = Vec::new();
    if let Value::Value(host) = &config.docker_host {
        let known = ["unix://", "tcp://", "http://", "https://", "ssh://"];
        if !known.iter().any(|scheme| host.starts_with(scheme)) {
            errors.push(Error::Config {
                attribute: "docker_host",
                summary: "Invalid docker_host".into(),
                detail: format!(
                    "`{host}` is not a Docker Engine address: use `unix:///path/to/docker.sock` or `tcp://host:port`."
                ),
            });
        }
    }
    if let Value::Value(method) = &config.copy_method {
        if let Err(detail) = crate::transfer::check_method(method) {
            errors.push(Error::Config {
                attribute: "copy_method",
                summary: "Invalid copy_method".into(),
                detail,
            });
        }
    }
    for (attribute, value) in [("region", &config.region), ("profile", &config.profile)] {
        if matches!(value, Value::Value(v) if v.trim().is_empty()) {
            errors.push(Error::Config {
                attribute,
                summary: format!("Invalid {attribute}"),
                detail: format!(
                    "`{attribute}` cannot be empty; leave it out to use the AWS default chain."
                ),
            });
        }
    }
    errors
}

/// Reports `errors`; registry_auth errors point into the block.
fn report_all(errors: Vec<Error>, diags: &mut Diagnostics) {
    for error in errors {
        error.report(diags);
    }
}

/// Checks that `profile` exists in the AWS config or credentials file.
async fn check_profile(profile: &str) -> Result<(), Error> {
    let profiles =
        aws_config::profile::load(&Fs::real(), &Env::real(), &EnvConfigFiles::default(), None)
            .await
            .map_err(|err| Error::Config {
                attribute: "profile",
                summary: "Cannot read the AWS config files".into(),
                detail: err.to_string(),
            })?;
    if profiles.get_profile(profile).is_some() {
        return Ok(());
    }
    let known: Vec<&str> = profiles.profiles().collect();
    Err(Error::Config {
        attribute: "profile",
        summary: format!("AWS profile `{profile}` not found"),
        detail: format!(
            "Neither the AWS config file (AWS_CONFIG_FILE, default ~/.aws/config) nor the credentials file (AWS_SHARED_CREDENTIALS_FILE, default ~/.aws/credentials) defines it. Profiles found: {}.",
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        ),
    })
}

async fn build_clients(config: ProviderConfig) -> Result<Clients, Error> {
    let profile = config.profile.as_option();
    if let Some(profile) = &profile {
        check_profile(profile).await?;
    }
    let http = crate::network::aws_http_client()?;
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
    if let Some(profile) = profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = config.region.as_option() {
        loader = loader.region(Region::new(region));
    }
    let sdk = loader.load().await;
    if sdk.region().is_none() {
        return Err(Error::Config {
            attribute: "region",
            summary: "No AWS region".into(),
            detail: "Set `region` in the provider block, or AWS_REGION, or a `region` in the AWS profile.".into(),
        });
    }
    let blocks = config
        .registry_auth
        .unwrap_or_default()
        .into_iter()
        .map(|b| RegistryAuth {
            address: b.address.unwrap_or_default(),
            username: b.username.unwrap_or_default(),
            password: Secret::new(b.password.unwrap_or_default()),
        })
        .collect();
    let registry = Arc::new(Registry::new());
    Ok(Clients {
        ecr: Ecr::new(
            aws_sdk_ecr::Client::new(&sdk),
            &crate::network::ecr_endpoint(&sdk),
        ),
        registry_copy: RegistryTransfer::new(registry.clone()),
        registry,
        docker: DockerTransfer::new(config.docker_host.as_option()),
        default_method: config
            .copy_method
            .as_option()
            .unwrap_or_else(|| DEFAULT_METHOD.to_string()),
        source_auth: SourceAuth::new(blocks),
    })
}

#[async_trait]
impl Provider for EcrMirrorProvider {
    type Config<'a> = ProviderConfig;
    type MetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(provider_schema())
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::Config<'a>) -> Option<()> {
        report_all(check_config(&config), diags);
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
        let errors = check_config(&config);
        if !errors.is_empty() {
            report_all(errors, diags);
            return None;
        }
        match build_clients(config).await {
            Ok(clients) => {
                let _ = self.clients.set(Arc::new(clients));
                Some(())
            }
            Err(err) => {
                err.report(diags);
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
        let errors = check_config(&config);
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
        let schema = provider_schema();
        assert!(schema.block.description.content.len() > 10);
        assert_eq!(
            crate::schema::undocumented(&schema.block),
            Vec::<String>::new()
        );
    }
}
