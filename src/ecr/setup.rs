//! How the ECR API is reached: the AWS SDK's configuration (the named profile, the region,
//! endpoint overrides), its retries, and its HTTP client (the proxy from the environment, the
//! system's CA certificates plus `AWS_CA_BUNDLE`'s, as the AWS CLI does).

use aws_config::{BehaviorVersion, Region};
use aws_runtime::env_config::file::EnvConfigFiles;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_http_client::Connector;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_types::os_shim_internal::{Env, Fs};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::Ecr;
use crate::error::{Error, Result};
use crate::retry::ECR_API_TRIES;

impl Ecr {
    /// The ECR API for the named `profile` and `region` (the SDK's default chain for what is
    /// not named). Nothing is contacted but the AWS configuration files. `pending`: the
    /// region or profile is not known yet (a plan's): a missing region is no error then.
    pub(crate) async fn connect(
        profile: Option<&str>,
        region: Option<&str>,
        pending: bool,
    ) -> Result<Ecr> {
        let sdk = sdk_config(profile, region, pending).await?;
        Ok(Ecr::new(aws_sdk_ecr::Client::new(&sdk), &endpoint(&sdk)))
    }
}

/// Where the profile the SDK is to use was named.
#[derive(Clone, Copy)]
enum Named {
    /// The provider's `profile` argument.
    Argument,
    /// The `AWS_PROFILE` environment variable (no `profile` argument).
    Environment,
}

/// Checks that `profile` exists in the AWS config or credentials file, whether the provider
/// block or `AWS_PROFILE` names it: the SDK would otherwise fail later, at the first call,
/// with less to go on.
async fn check_profile(profile: &str, named: Named) -> Result<()> {
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
            "{}Neither the AWS config file (AWS_CONFIG_FILE, default ~/.aws/config) nor the credentials file (AWS_SHARED_CREDENTIALS_FILE, default ~/.aws/credentials) defines it. Profiles found: {}.{}",
            match named {
                Named::Argument => "",
                Named::Environment => "The environment variable AWS_PROFILE names it (the provider block sets no `profile`). ",
            },
            if known.is_empty() { "none".to_string() } else { known.join(", ") },
            match named {
                Named::Argument => " Leave `profile` out to use the AWS SDK's default chain (environment credentials, AWS_PROFILE, an instance or task role).",
                Named::Environment => " Unset AWS_PROFILE to use the rest of the default chain (environment credentials, an instance or task role), or name an existing profile.",
            }
        ),
    })
}

/// The AWS SDK configuration: the named `profile`, the `region`, our HTTP client (proxies,
/// CAs). `pending`: the region or profile is not known yet (a plan's), and nothing asks ECR
/// anything until it is.
async fn sdk_config(
    profile: Option<&str>,
    region: Option<&str>,
    pending: bool,
) -> Result<aws_config::SdkConfig> {
    match profile {
        Some(profile) => check_profile(profile, Named::Argument).await?,
        None => {
            if let Some(profile) = std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()) {
                check_profile(&profile, Named::Environment).await?;
            }
        }
    }
    let http = http_client()?;
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
    if let Some(profile) = profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_string()));
    }
    let sdk = with_ecr_retries(loader.load().await);
    if sdk.region().is_none() && !pending {
        return Err(Error::Config {
            attribute: "region",
            summary: "No AWS region".into(),
            detail: "Set `region` in the provider block, or AWS_REGION, or a `region` in the AWS profile.".into(),
        });
    }
    Ok(sdk)
}

/// `sdk` with the SDK's adaptive retries (a client-side rate limit that slows down under
/// throttling, then exponential backoff with jitter) and [`ECR_API_TRIES`] tries: many mirrors
/// at once make ECR throttle its API in bursts, which the default three tries do not outlast.
/// Retry settings the user made (AWS_RETRY_MODE, AWS_MAX_ATTEMPTS, the profile's
/// `retry_mode`/`max_attempts`) are kept; only the SDK's default (standard mode, three tries)
/// is replaced.
fn with_ecr_retries(sdk: aws_config::SdkConfig) -> aws_config::SdkConfig {
    use aws_config::retry::{RetryConfig, RetryMode};
    let defaulted = sdk
        .retry_config()
        .is_none_or(|r| r.mode() == RetryMode::Standard && r.max_attempts() == 3);
    if !defaulted {
        return sdk;
    }
    sdk.into_builder()
        .retry_config(RetryConfig::adaptive().with_max_attempts(ECR_API_TRIES))
        .build()
}

/// The address of the ECR API the SDK calls for `sdk`: an endpoint override
/// (`AWS_ENDPOINT_URL_ECR`, `AWS_ENDPOINT_URL`, the profile's `endpoint_url`), else the
/// region's public endpoint.
fn endpoint(sdk: &aws_types::SdkConfig) -> String {
    let ignored = std::env::var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let from_env = std::env::var("AWS_ENDPOINT_URL_ECR")
        .ok()
        .filter(|v| !v.is_empty() && !ignored);
    from_env
        .or_else(|| sdk.endpoint_url().map(str::to_string))
        .unwrap_or_else(|| {
            let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
            format!("https://api.ecr.{region}.amazonaws.com")
        })
}

/// The certificates of `AWS_CA_BUNDLE`, checked, when it is set.
fn aws_ca_bundle() -> Result<Option<Vec<u8>>, Error> {
    match std::env::var_os("AWS_CA_BUNDLE").filter(|p| !p.is_empty()) {
        Some(path) => read_ca_bundle(std::path::Path::new(&path)).map(Some),
        None => Ok(None),
    }
}

/// The PEM certificates in `path`, each checked (the TLS layer would panic on a bad one).
fn read_ca_bundle(path: &std::path::Path) -> Result<Vec<u8>, Error> {
    let shown = path.to_string_lossy().into_owned();
    let unusable = |why: String| {
        Error::Environment {
        summary: "AWS_CA_BUNDLE is unusable".into(),
        detail: format!(
            "{why} AWS_CA_BUNDLE must name a file of PEM certificates (-----BEGIN CERTIFICATE-----) to trust for the ECR API; fix the file or unset the variable."
        ),
    }
    };
    let pem = std::fs::read(path).map_err(|e| unusable(format!("Cannot read {shown}: {e}.")))?;
    let mut roots = rustls::RootCertStore::empty();
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| unusable(format!("{shown} is not valid PEM: {e}.")))?;
        roots.add(cert).map_err(|e| {
            unusable(format!(
                "{shown} holds a certificate that cannot be used: {e}."
            ))
        })?;
        count += 1;
    }
    if count == 0 {
        return Err(unusable(format!("{shown} holds no certificate.")));
    }
    Ok(pem)
}

/// The HTTP client for the ECR API: ring for TLS (the one crypto backend compiled in), the
/// proxy from the environment, the system's roots plus `AWS_CA_BUNDLE`'s.
fn http_client() -> Result<SharedHttpClient, Error> {
    let mut trust = TrustStore::default();
    if let Some(pem) = aws_ca_bundle()? {
        trust = trust.with_pem_certificate(pem);
    }
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| Error::Environment {
            summary: "Cannot set up TLS for the ECR API".into(),
            detail: format!("{e}"),
        })?;
    Ok(
        aws_smithy_http_client::Builder::new().build_with_connector_fn(
            move |settings, components| {
                let mut builder = Connector::builder()
                    .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                    .tls_context(context.clone())
                    .proxy_config(ProxyConfig::from_env());
                builder.set_connector_settings(settings.cloned());
                if let Some(components) = components {
                    builder.set_sleep_impl(components.sleep_impl());
                }
                builder.build()
            },
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_ca_bundle_is_a_clear_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.pem");
        std::fs::write(&bad, "not a certificate\n").unwrap();
        let err = read_ca_bundle(&bad).unwrap_err();
        let missing = read_ca_bundle(&dir.path().join("missing.pem")).unwrap_err();
        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let unusable = read_ca_bundle(&broken).unwrap_err();
        assert!(
            unusable.detail().contains("cannot be used"),
            "{}",
            unusable.detail()
        );
        assert!(
            err.detail().contains("holds no certificate"),
            "{}",
            err.detail()
        );
        assert!(
            missing.detail().contains("Cannot read"),
            "{}",
            missing.detail()
        );
    }
}
