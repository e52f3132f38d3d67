//! The clients `configure` builds once and every resource instance of the process shares:
//! the ECR API, the distribution clients, the two transfers, source credentials and the
//! provider's default copy method.

use std::sync::{Arc, OnceLock};

use aws_config::{BehaviorVersion, Region};
use aws_runtime::env_config::file::EnvConfigFiles;
use aws_types::os_shim_internal::{Env, Fs};

use crate::credentials::{AuthBlock, SourceAuth};
use crate::distribution::Distribution;
use crate::ecr::Ecr;
use crate::error::{Error, Result};
use crate::transfer::docker::DockerTransfer;
use crate::transfer::registry::RegistryTransfer;
use crate::transfer::{CopyMethod, Transfer};

/// What `configure` builds; shared by every resource instance of the process.
pub struct Clients {
    pub ecr: Ecr,
    pub distribution: Arc<Distribution>,
    pub docker: DockerTransfer,
    pub registry: RegistryTransfer,
    /// The provider's `copy_method`, else [`CopyMethod::default`] (see [`Clients::method`]).
    pub default_method: CopyMethod,
    /// The provider arguments Terraform does not know yet (a plan's).
    pub pending: Pending,
    pub source_auth: SourceAuth,
}

impl Clients {
    /// The error for a question a data source cannot answer while `what` (provider
    /// arguments) is pending.
    pub fn pending_error(what: &str) -> Error {
        Error::Environment {
            summary: format!("The provider's {what} is not known yet"),
            detail: format!("The provider block's {what} comes from a value Terraform knows only after apply, and this data source must be read now. Give the provider a value known at plan (a variable, a literal, another data source), or apply the resources it comes from first (`terraform apply -target=...`)."),
        }
    }

    /// The provider's `copy_method` as a plan knows it: `None` while it is pending.
    pub fn method(&self) -> Option<CopyMethod> {
        (!self.pending.copy_method).then_some(self.default_method)
    }

    /// The transfer that copies with `method`.
    pub fn transfer(&self, method: CopyMethod) -> &dyn Transfer {
        match method {
            CopyMethod::Docker => &self.docker,
            CopyMethod::Registry => &self.registry,
        }
    }
}

/// Clients set once `configure` has run.
pub type SharedClients = Arc<OnceLock<Arc<Clients>>>;

/// The clients `configure` set, or [`Error::NotConfigured`] before it ran.
pub fn configured(clients: &SharedClients) -> Result<Arc<Clients>> {
    clients.get().cloned().ok_or(Error::NotConfigured)
}

/// The provider block's settings, checked and typed.
#[derive(Debug, Default)]
pub struct Settings {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub docker_host: Option<String>,
    pub default_method: CopyMethod,
    pub registry_auth: Vec<AuthBlock>,
    /// The arguments Terraform does not know yet.
    pub pending: Pending,
}

/// Provider arguments whose values Terraform does not know yet: in a plan, before the
/// resources they come from exist (`copy_method = terraform_data.m.output`). What depends on
/// them is planned unknown, never as their default; the apply, for which Terraform
/// configures the provider again with every value known, checks and uses them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pending {
    /// `region` or `profile`: which registry, and whose, the mirrors live in. Nothing asks
    /// ECR anything while it is pending.
    pub registry: bool,
    /// `copy_method`: the default copy method.
    pub copy_method: bool,
    /// `registry_auth`: the source credentials (plans then ask sources nothing).
    pub registry_auth: bool,
}

/// Checks that `profile` exists in the AWS config or credentials file.
async fn check_profile(profile: &str) -> Result<()> {
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

/// The AWS SDK configuration: the named profile, the region, our HTTP client (proxies, CAs).
async fn load_aws(settings: &Settings) -> Result<aws_config::SdkConfig> {
    if let Some(profile) = &settings.profile {
        check_profile(profile).await?;
    }
    let http = crate::network::aws_http_client()?;
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
    if let Some(profile) = &settings.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    let sdk = with_retries(loader.load().await);
    // A pending region is known at apply; until then nothing asks ECR anything.
    if sdk.region().is_none() && !settings.pending.registry {
        return Err(Error::Config {
            attribute: "region",
            summary: "No AWS region".into(),
            detail: "Set `region` in the provider block, or AWS_REGION, or a `region` in the AWS profile.".into(),
        });
    }
    Ok(sdk)
}

/// How often an ECR API call is tried, unless AWS_MAX_ATTEMPTS or the profile says.
const ECR_ATTEMPTS: u32 = 6;

/// `sdk` with the SDK's adaptive retries (a client-side rate limit that slows down under
/// throttling, then exponential backoff with jitter) and [`ECR_ATTEMPTS`] tries: many mirrors
/// at once make ECR throttle its API in bursts, which the default three tries do not outlast.
/// Retry settings the user made (AWS_RETRY_MODE, AWS_MAX_ATTEMPTS, the profile's
/// `retry_mode`/`max_attempts`) are kept; only the SDK's default (standard mode, three tries)
/// is replaced.
fn with_retries(sdk: aws_config::SdkConfig) -> aws_config::SdkConfig {
    use aws_config::retry::{RetryConfig, RetryMode};
    let defaulted = sdk
        .retry_config()
        .is_none_or(|r| r.mode() == RetryMode::Standard && r.max_attempts() == 3);
    if !defaulted {
        return sdk;
    }
    sdk.into_builder()
        .retry_config(RetryConfig::adaptive().with_max_attempts(ECR_ATTEMPTS))
        .build()
}

impl Clients {
    /// Builds the clients for the provider block's `settings`. Nothing is contacted but the
    /// AWS configuration files; engines and registries are reached on first use.
    pub async fn build(settings: Settings) -> Result<Clients> {
        let sdk = load_aws(&settings).await?;
        let distribution = Arc::new(Distribution::new());
        Ok(Clients {
            ecr: Ecr::new(
                aws_sdk_ecr::Client::new(&sdk),
                &crate::network::ecr_endpoint(&sdk),
            ),
            registry: RegistryTransfer::new(distribution.clone()),
            docker: DockerTransfer::new(settings.docker_host, distribution.clone()),
            distribution,
            default_method: settings.default_method,
            pending: settings.pending,
            source_auth: SourceAuth::new(settings.registry_auth),
        })
    }
}
