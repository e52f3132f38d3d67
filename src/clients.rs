//! The clients `configure` builds once and every resource instance of the process shares:
//! the ECR API, the distribution clients, the two transfers, source credentials and the
//! provider's default copy method.

use std::sync::{Arc, OnceLock};

use crate::credentials::{AuthBlock, SourceAuth};
use crate::distribution::Distribution;
use crate::ecr::Ecr;
use crate::error::{Error, Result};
use crate::transfer::docker::DockerTransfer;
use crate::transfer::registry::RegistryTransfer;
use crate::transfer::{CopyMethod, Transfer};

/// What `configure` builds; shared by every resource instance of the process.
pub(crate) struct Clients {
    pub(crate) ecr: Ecr,
    pub(crate) distribution: Arc<Distribution>,
    pub(crate) docker: DockerTransfer,
    pub(crate) registry: RegistryTransfer,
    /// The provider's `copy_method`, else [`CopyMethod::default`] (see [`Clients::method`]).
    pub(crate) default_method: CopyMethod,
    /// The provider arguments Terraform does not know yet (a plan's).
    pub(crate) pending: Pending,
    pub(crate) source_auth: SourceAuth,
}

impl Clients {
    /// The error for a question a data source cannot answer while `what` (provider
    /// arguments) is pending.
    pub(crate) fn pending_error(what: &str) -> Error {
        Error::Environment {
            summary: format!("The provider's {what} is not known yet"),
            detail: format!("The provider block's {what} comes from a value Terraform knows only after apply, and this data source must be read now. Give the provider a value known at plan (a variable, a literal, another data source), or apply the resources it comes from first (`terraform apply -target=...`)."),
        }
    }

    /// The provider's `copy_method` as a plan knows it: `None` while it is pending.
    pub(crate) fn method(&self) -> Option<CopyMethod> {
        (!self.pending.copy_method).then_some(self.default_method)
    }

    /// The transfer that copies with `method`.
    pub(crate) fn transfer(&self, method: CopyMethod) -> &dyn Transfer {
        match method {
            CopyMethod::Docker => &self.docker,
            CopyMethod::Registry => &self.registry,
        }
    }
}

/// Clients set once `configure` has run.
pub(crate) type SharedClients = Arc<OnceLock<Arc<Clients>>>;

/// The clients `configure` set, or [`Error::NotConfigured`] before it ran.
pub(crate) fn configured(clients: &SharedClients) -> Result<Arc<Clients>> {
    clients.get().cloned().ok_or(Error::NotConfigured)
}

/// The provider block's settings, checked and typed.
#[derive(Debug, Default)]
pub(crate) struct Settings {
    pub(crate) region: Option<String>,
    pub(crate) profile: Option<String>,
    pub(crate) docker_host: Option<String>,
    pub(crate) default_method: CopyMethod,
    pub(crate) registry_auth: Vec<AuthBlock>,
    /// The arguments Terraform does not know yet.
    pub(crate) pending: Pending,
}

/// Provider arguments whose values Terraform does not know yet: in a plan, before the
/// resources they come from exist (`copy_method = terraform_data.m.output`). What depends on
/// them is planned unknown, never as their default; the apply, for which Terraform
/// configures the provider again with every value known, checks and uses them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pending {
    /// `region` or `profile`: which registry, and whose, the mirrors live in. Nothing asks
    /// ECR anything while it is pending.
    pub(crate) registry: bool,
    /// `copy_method`: the default copy method.
    pub(crate) copy_method: bool,
    /// `registry_auth`: the source credentials (plans then ask sources nothing).
    pub(crate) registry_auth: bool,
}

impl Clients {
    /// Builds the clients for the provider block's `settings`. Nothing is contacted but the
    /// AWS configuration files; engines and registries are reached on first use.
    pub(crate) async fn build(settings: Settings) -> Result<Clients> {
        let ecr = Ecr::connect(
            settings.profile.as_deref(),
            settings.region.as_deref(),
            settings.pending.registry,
        )
        .await?;
        let distribution = Arc::new(Distribution::new());
        Ok(Clients {
            ecr,
            registry: RegistryTransfer::new(distribution.clone()),
            docker: DockerTransfer::new(settings.docker_host, distribution.clone()),
            distribution,
            default_method: settings.default_method,
            pending: settings.pending,
            source_auth: SourceAuth::new(settings.registry_auth),
        })
    }
}
