//! Talking to a registry's distribution API directly, not through the Docker engine.
//!
//! Before a push the provider checks ECR's credentials with one `GET /v2/`, as `docker login`
//! does: a Docker engine retries a refused upload for about a minute before it gives up,
//! while this answers at once.

use std::time::Duration;

use crate::ecr::RegistryLogin;
use crate::error::{Error, Result};

/// How long the credential check may take before it is skipped (the push then reports).
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP client for registries.
pub struct Registry {
    http: reqwest::Client,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    /// A client with the system's trusted roots.
    pub fn new() -> Registry {
        Registry {
            http: reqwest::Client::builder()
                .timeout(CHECK_TIMEOUT)
                .user_agent(concat!(
                    "terraform-provider-ecrmirror/",
                    env!("CARGO_PKG_VERSION")
                ))
                .build()
                .unwrap_or_default(),
        }
    }

    /// Fails with [`Error::TargetDenied`] when the registry refuses `login`. Other failures
    /// (network, server errors) are left for the push itself to report.
    pub async fn check_login(&self, login: &RegistryLogin) -> Result<()> {
        let url = format!("{}/v2/", login.endpoint);
        let response = self
            .http
            .get(&url)
            .basic_auth(&login.username, Some(login.password.expose()))
            .send()
            .await;
        match response {
            Ok(response) if matches!(response.status().as_u16(), 401 | 403) => {
                Err(Error::TargetDenied {
                    registry: login.host.clone(),
                    cause: format!(
                        "The registry answered {} to the credentials GetAuthorizationToken returned.",
                        response.status()
                    ),
                })
            }
            Ok(_) => Ok(()),
            Err(err) => {
                tracing::debug!(registry = %login.host, "credential check skipped: {err}");
                Ok(())
            }
        }
    }
}
