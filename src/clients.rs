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
    /// The provider's `copy_method`, else [`CopyMethod::default`].
    pub default_method: CopyMethod,
    pub source_auth: SourceAuth,
    /// The ECR tags mirrors of this process (one Terraform run) made or adopted.
    pub mirrored: MirroredTags,
}

/// One ECR tag: the registry's account id, the repository, the tag.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TagKey {
    pub registry_id: String,
    pub repository: String,
    pub tag: String,
}

/// The ECR tags this provider process mirrored. Terraform runs one provider process per run,
/// so a destroy that finds its tag here is the deposed instance of a `create_before_destroy`
/// replacement (or another resource of the configuration took the tag): the tag now belongs
/// to the mirror made in this run, and the destroy must not untag it.
#[derive(Debug, Default)]
pub struct MirroredTags {
    tags: std::sync::Mutex<std::collections::HashSet<TagKey>>,
}

impl MirroredTags {
    /// Records that a mirror of this run now owns `tag`.
    pub fn insert(&self, tag: TagKey) {
        self.tags
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tag);
    }

    /// Whether a mirror of this run owns `tag`.
    pub fn contains(&self, tag: &TagKey) -> bool {
        self.tags
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(tag)
    }
}

impl Clients {
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
    if sdk.region().is_none() {
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
            source_auth: SourceAuth::new(settings.registry_auth),
            mirrored: MirroredTags::default(),
        })
    }
}
