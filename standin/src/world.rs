//! A whole stand-in world: one source registry and one ECR emulator.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::backend::Backend;
use crate::client::Client;
use crate::ecr::{EcrEmulator, ACCOUNT, REGION};
use crate::front::{self, BasicAuth, Front, Gate};
use crate::token::{BearerGate, Grant, TokenIssuer};

/// How the source registry authenticates pulls.
pub enum SourceAuth {
    /// Anonymous pulls.
    Anonymous,
    /// Basic auth with this user.
    Basic(BasicAuth),
    /// Docker Hub's bearer-token flow; tokens are issued to this user.
    Token(BasicAuth),
    /// The bearer-token flow whose token service takes only the OAuth2 exchange of this
    /// refresh token (an identity token in the Docker config file, as `az acr login` leaves
    /// one): no basic credentials, no anonymous tokens.
    RefreshToken(String),
}

/// A running world; everything stops when it is dropped.
pub struct World {
    pub source: Arc<Front>,
    pub source_addr: SocketAddr,
    /// The source registry's token service, when it takes bearer tokens only.
    pub issuer: Option<Arc<TokenIssuer>>,
    /// The refresh token the source's token service takes ([`SourceAuth::RefreshToken`]),
    /// which [`World::source_client`] uses.
    source_refresh: Option<String>,
    source_router: axum::Router,
    pub ecr: EcrEmulator,
    dir: PathBuf,
    ecr_generation: u32,
}

impl World {
    /// Starts a world under `dir` whose source registry is anonymous.
    pub async fn start(dir: &Path) -> Result<World> {
        World::start_with(dir, SourceAuth::Anonymous).await
    }

    /// Starts a world whose source registry authenticates as `source_auth` says.
    pub async fn start_with(dir: &Path, source_auth: SourceAuth) -> Result<World> {
        let source_backend = Backend::start(&dir.join("source")).await?;
        let mut source_refresh = None;
        let (basic, grant) = match source_auth {
            SourceAuth::Anonymous => (None, None),
            SourceAuth::Basic(auth) => (Some(auth), None),
            SourceAuth::Token(user) => (None, Some(Grant::Basic(user))),
            SourceAuth::RefreshToken(token) => {
                source_refresh = Some(token.clone());
                (None, Some(Grant::RefreshToken(token)))
            }
        };
        let issuer = grant.map(TokenIssuer::new);
        let gate = match (&issuer, basic) {
            (Some(issuer), _) => Some(Box::new(BearerGate(issuer.clone())) as Box<dyn Gate>),
            (None, Some(basic)) => Some(Box::new(basic) as Box<dyn Gate>),
            (None, None) => None,
        };
        let source = Front::new(source_backend, gate);
        let source_router = match &issuer {
            Some(issuer) => issuer.router().merge(front::router(source.clone())),
            None => front::router(source.clone()),
        };
        let source_addr = front::serve(source_router.clone()).await?;
        if let Some(issuer) = &issuer {
            issuer.set_realm(format!("http://{source_addr}/token"));
        }
        let ecr_backend = Backend::start(&dir.join("ecr")).await?;
        let ecr = EcrEmulator::start(ecr_backend).await?;
        Ok(World {
            source,
            source_addr,
            issuer,
            source_refresh,
            source_router,
            ecr,
            dir: dir.to_path_buf(),
            ecr_generation: 0,
        })
    }

    /// Replaces the ECR emulator and its registry with new, empty ones (a fresh target for
    /// benchmarks: no blob to mount from another repository). Its address changes.
    pub async fn fresh_ecr(&mut self) -> Result<()> {
        self.ecr_generation += 1;
        let backend =
            Backend::start(&self.dir.join(format!("ecr-{}", self.ecr_generation))).await?;
        self.ecr = EcrEmulator::start(backend).await?;
        Ok(())
    }

    /// Serves the source registry over HTTPS too, on another port; returns it.
    pub async fn serve_source_tls(&self, tls: Arc<rustls::ServerConfig>) -> Result<u16> {
        Ok(crate::tls::serve_tls(self.source_router.clone(), tls)
            .await?
            .port())
    }

    /// `127.0.0.1:<port>` of the source registry, as image references name it.
    pub fn source_host(&self) -> String {
        self.source_addr.to_string()
    }

    /// `127.0.0.1:<port>` of the ECR registry (and API).
    pub fn ecr_host(&self) -> String {
        self.ecr.addr.to_string()
    }

    /// A client for the source registry, with basic credentials `auth`; for a source whose
    /// token service takes a refresh token only, with that token.
    pub fn source_client(&self, auth: Option<(String, String)>) -> Client {
        let client = Client::new(&format!("http://{}", self.source_addr), auth);
        match &self.source_refresh {
            Some(token) => client.with_refresh_token(token),
            None => client,
        }
    }

    /// A client for the ECR registry, holding a fresh token.
    pub fn ecr_client(&self) -> Client {
        let password = self.ecr.state.issue_token();
        Client::new(&self.ecr.endpoint(), Some(("AWS".to_string(), password)))
    }

    /// The directory the world keeps its registries in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes an AWS config and credentials file for a named profile whose `endpoint_url` is
    /// the emulator; returns the variables that point the SDK at them.
    pub fn write_aws_profile(&self, profile: &str) -> Result<Vec<(String, String)>> {
        let aws = self.dir.join("aws");
        std::fs::create_dir_all(&aws)?;
        let section = if profile == "default" {
            "default".to_string()
        } else {
            format!("profile {profile}")
        };
        std::fs::write(
            aws.join("config"),
            format!(
                "[{section}]\nregion = {REGION}\nendpoint_url = {}\n",
                self.ecr.endpoint()
            ),
        )
        .context("writing the AWS config file")?;
        std::fs::write(
            aws.join("credentials"),
            format!(
                "[{profile}]\naws_access_key_id = AKIDSTANDIN{ACCOUNT}\naws_secret_access_key = standin-secret\n"
            ),
        )?;
        Ok(vec![
            (
                "AWS_CONFIG_FILE".into(),
                aws.join("config").display().to_string(),
            ),
            (
                "AWS_SHARED_CREDENTIALS_FILE".into(),
                aws.join("credentials").display().to_string(),
            ),
        ])
    }

    /// An AWS SDK configuration for the emulator (static keys, no retries), for tests that
    /// call the ECR API directly.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http)
            .region(aws_config::Region::new(REGION))
            .endpoint_url(self.ecr.endpoint())
            .credentials_provider(aws_credential_types::Credentials::new(
                format!("AKIDSTANDIN{ACCOUNT}"),
                "standin-secret",
                None,
                None,
                "standin",
            ))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await
    }

    /// Environment that points the AWS SDK at the emulator with static credentials.
    pub fn aws_env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), format!("AKIDSTANDIN{ACCOUNT}")),
            ("AWS_SECRET_ACCESS_KEY".into(), "standin-secret".into()),
            ("AWS_REGION".into(), REGION.into()),
            ("AWS_ENDPOINT_URL_ECR".into(), self.ecr.endpoint()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ]
    }
}
