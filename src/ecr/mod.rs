//! The ECR API adapter: authorization tokens (cached per registry for the life of the
//! process), repository and image queries, untagging. AWS SDK types stop here.
//!
//! Tag lookups go through `lookups`, which batches them per repository; `setup` configures
//! the SDK (profile, region, endpoint, retries, proxy and CAs).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_ecr::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ecr::operation::batch_delete_image::BatchDeleteImageError;
use aws_sdk_ecr::operation::batch_get_image::BatchGetImageError;
use aws_sdk_ecr::operation::describe_repositories::DescribeRepositoriesError;
use aws_sdk_ecr::operation::list_images::ListImagesError;
use aws_sdk_ecr::types::{ImageFailureCode, ImageIdentifier};
use base64::Engine;
use tokio::sync::Mutex;

mod lookups;
mod settings;
mod setup;

use lookups::Lookups;
pub use settings::Mounting;

use crate::error::{AwsRefusal, Error, Result};
use crate::manifest::Fetched;
use crate::secret::Secret;

/// Tokens are renewed when less than this is left of them.
const TOKEN_RENEW_MARGIN: Duration = Duration::from_secs(15 * 60);

/// Credentials for pushing to one ECR registry.
#[derive(Clone, Debug)]
pub struct RegistryLogin {
    /// Host (and port) of the registry, from `proxyEndpoint`.
    pub host: String,
    /// `https://<host>` (as `proxyEndpoint` gives it).
    pub endpoint: String,
    pub username: String,
    pub password: Secret,
    expires_at: SystemTime,
}

/// What ECR says about a tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagLookup {
    /// The tag exists and names this manifest digest.
    Found { digest: String },
    /// ECR confirmed that the tag (or its whole repository) does not exist.
    Missing,
}

/// An ECR repository, as `DescribeRepositories` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repository {
    /// The account id of the registry that holds it.
    pub registry_id: String,
    pub name: String,
    pub tags: TagMutability,
    /// Its encryption (`AES256`, or the type and KMS key): ECR mounts blobs only between
    /// repositories encrypted alike.
    pub encryption: String,
    /// `Some(prefix)`: it does not exist yet, and ECR creates it on the first push from the
    /// repository creation template of that prefix.
    pub created_on_push: Option<String>,
}

/// A repository's encryption, as one word: `AES256`, or `<type> <KMS key>`.
fn encryption_of(config: &aws_sdk_ecr::types::EncryptionConfiguration) -> String {
    match config.kms_key() {
        Some(key) => format!("{} {key}", config.encryption_type().as_str()),
        None => config.encryption_type().as_str().to_string(),
    }
}

/// Whether a repository's tags may be overwritten (`imageTagMutability` and its exclusion
/// filters). ECR refuses any push to an existing immutable tag, even of the manifest the tag
/// already names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TagMutability {
    #[default]
    Mutable,
    Immutable,
    /// Immutable, except tags matching one of these wildcard filters.
    ImmutableExcept(Vec<String>),
    /// Mutable, except tags matching one of these wildcard filters.
    MutableExcept(Vec<String>),
}

impl TagMutability {
    fn of(repository: &aws_sdk_ecr::types::Repository) -> TagMutability {
        use aws_sdk_ecr::types::ImageTagMutability as M;
        let filters = || {
            repository
                .image_tag_mutability_exclusion_filters()
                .iter()
                .map(|f| f.filter().to_string())
                .collect()
        };
        match repository.image_tag_mutability() {
            Some(M::Immutable) => TagMutability::Immutable,
            Some(M::ImmutableWithExclusion) => TagMutability::ImmutableExcept(filters()),
            Some(M::MutableWithExclusion) => TagMutability::MutableExcept(filters()),
            _ => TagMutability::Mutable,
        }
    }

    /// Whether `tag`, once it exists, cannot be overwritten.
    pub fn immutable(&self, tag: &str) -> bool {
        let matches = |filters: &[String]| {
            filters
                .iter()
                .any(|filter| wildmatch::WildMatch::new(filter).matches(tag))
        };
        match self {
            TagMutability::Mutable => false,
            TagMutability::Immutable => true,
            TagMutability::ImmutableExcept(filters) => !matches(filters),
            TagMutability::MutableExcept(filters) => matches(filters),
        }
    }
}

/// The manifest media types BatchGetImage may answer with: those the provider reads.
fn accepted_media_types() -> Vec<String> {
    crate::manifest::ACCEPTED
        .iter()
        .map(|t| t.to_string())
        .collect()
}

/// The ECR API with a per-registry token cache.
pub struct Ecr {
    client: aws_sdk_ecr::Client,
    /// The API's address, for diagnostics.
    endpoint: Arc<str>,
    token: Mutex<Option<RegistryLogin>>,
    lookups: Arc<Lookups>,
    settings: settings::Settings,
}

impl Ecr {
    /// Wraps a configured SDK client.
    pub fn new(client: aws_sdk_ecr::Client, endpoint: &str) -> Ecr {
        Ecr {
            client,
            endpoint: endpoint.into(),
            token: Mutex::new(None),
            lookups: Arc::default(),
            settings: Default::default(),
        }
    }

    /// Push credentials for `registry_id` (the caller's own registry when `None`).
    ///
    /// One token serves every registry the identity may reach; its `proxyEndpoint` names the
    /// caller's registry, whose host is `<account>.dkr.ecr.<region>.amazonaws.com`, so another
    /// account's registry is the same host with that account's id.
    pub async fn login(&self, registry_id: Option<&str>) -> Result<RegistryLogin> {
        let mut login = self.own_login().await?;
        if let Some(id) = registry_id {
            login.host = host_of_registry_id(&login.host, id);
            let scheme = login.endpoint.split("://").next().unwrap_or("https");
            login.endpoint = format!("{scheme}://{}", login.host);
        }
        Ok(login)
    }

    /// Push credentials for `registry_id` after ECR's registry refused `stale`, the ones
    /// [`Ecr::login`] gave (a token that expired or was revoked): the cached token is dropped
    /// and GetAuthorizationToken asked again, unless another mirror renewed it already.
    pub(crate) async fn renew_login(
        &self,
        registry_id: Option<&str>,
        stale: &RegistryLogin,
    ) -> Result<RegistryLogin> {
        {
            let mut cached = self.token.lock().await;
            if cached
                .as_ref()
                .is_some_and(|login| login.password.expose() == stale.password.expose())
            {
                *cached = None;
            }
        }
        tracing::info!(registry = %stale.host, "ECR's registry refused the push credentials; asking GetAuthorizationToken for new ones");
        self.login(registry_id).await
    }

    async fn own_login(&self) -> Result<RegistryLogin> {
        let mut cached = self.token.lock().await;
        if let Some(login) = cached.as_ref() {
            if login.expires_at > SystemTime::now() + TOKEN_RENEW_MARGIN {
                return Ok(login.clone());
            }
        }
        let output = self
            .client
            .get_authorization_token()
            .send()
            .await
            .map_err(|err| aws_error(&self.endpoint, "GetAuthorizationToken", &err))?;
        let data = output
            .authorization_data()
            .first()
            .ok_or_else(|| Error::Aws {
                operation: "GetAuthorizationToken",
                cause: "The response holds no authorization data.".into(),
                refusal: AwsRefusal::Other,
            })?;
        let login = decode_login(
            data.authorization_token().unwrap_or_default(),
            data.proxy_endpoint().unwrap_or_default(),
            data.expires_at()
                .and_then(|t| SystemTime::try_from(*t).ok())
                .unwrap_or_else(|| SystemTime::now() + Duration::from_secs(3600)),
        )?;
        *cached = Some(login.clone());
        Ok(login)
    }

    /// Confirms that `repository` exists; returns the registry that holds it and its tag
    /// mutability.
    pub async fn repository(
        &self,
        registry_id: Option<&str>,
        repository: &str,
    ) -> Result<Repository> {
        let result = self
            .client
            .describe_repositories()
            .repository_names(repository)
            .set_registry_id(registry_id.map(str::to_string))
            .send()
            .await;
        match result {
            Ok(output) => output
                .repositories()
                .first()
                .and_then(|repo| {
                    Some(Repository {
                        registry_id: repo.registry_id()?.to_string(),
                        name: repository.to_string(),
                        tags: TagMutability::of(repo),
                        encryption: repo
                            .encryption_configuration()
                            .map(encryption_of)
                            .unwrap_or_else(|| "AES256".into()),
                        created_on_push: None,
                    })
                })
                .ok_or_else(|| Error::Aws {
                    operation: "DescribeRepositories",
                    cause: format!("The answer does not describe `{repository}`."),
                    refusal: AwsRefusal::Other,
                }),
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(DescribeRepositoriesError::RepositoryNotFoundException(_))
                ) =>
            {
                Err(Error::RepositoryNotFound {
                    repository: repository.to_string(),
                    registry_id: registry_id.map(str::to_string),
                    host: None,
                    templates: crate::error::TemplateLookup::NotAsked,
                })
            }
            Err(err) => Err(aws_error(&self.endpoint, "DescribeRepositories", &err)),
        }
    }

    /// What `repository:tag` names in ECR now. Lookups for one repository made at the same
    /// time share `DescribeImages` calls (`lookups`).
    pub async fn lookup_tag(
        &self,
        registry_id: Option<&str>,
        repository: &str,
        tag: &str,
    ) -> Result<TagLookup> {
        self.lookups
            .lookup(&self.client, &self.endpoint, registry_id, repository, tag)
            .await
    }

    /// The manifest ECR serves for `repository:tag`; `None` when there is none.
    pub(crate) async fn tagged_manifest(
        &self,
        registry_id: Option<&str>,
        repository: &str,
        tag: &str,
    ) -> Result<Option<Fetched>> {
        let result = self
            .client
            .batch_get_image()
            .repository_name(repository)
            .image_ids(ImageIdentifier::builder().image_tag(tag).build())
            .set_accepted_media_types(Some(accepted_media_types()))
            .set_registry_id(registry_id.map(str::to_string))
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(BatchGetImageError::RepositoryNotFoundException(_))
                ) =>
            {
                return Ok(None)
            }
            Err(err) => return Err(aws_error(&self.endpoint, "BatchGetImage", &err)),
        };
        let Some(image) = output.images().first() else {
            return Ok(None);
        };
        let (Some(digest), Some(body)) = (
            image.image_id().and_then(|id| id.image_digest()),
            image.image_manifest(),
        ) else {
            return Ok(None);
        };
        Fetched::parse(digest.to_string(), bytes::Bytes::from(body.to_string()))
            .map(Some)
            .map_err(|cause| Error::Aws {
                operation: "BatchGetImage",
                cause,
                refusal: AwsRefusal::Other,
            })
    }

    /// Which of `digests` (manifests) `repository` holds; a repository that is gone holds
    /// none.
    pub(crate) async fn held_manifests(
        &self,
        registry_id: Option<&str>,
        repository: &str,
        digests: &[String],
    ) -> Result<std::collections::BTreeSet<String>> {
        let mut held = std::collections::BTreeSet::new();
        // BatchGetImage takes at most 100 image ids.
        for chunk in digests.chunks(100) {
            let result = self
                .client
                .batch_get_image()
                .repository_name(repository)
                .set_image_ids(Some(
                    chunk
                        .iter()
                        .map(|d| ImageIdentifier::builder().image_digest(d).build())
                        .collect(),
                ))
                .set_accepted_media_types(Some(accepted_media_types()))
                .set_registry_id(registry_id.map(str::to_string))
                .send()
                .await;
            match result {
                Ok(output) => held.extend(
                    output
                        .images()
                        .iter()
                        .filter_map(|i| i.image_id()?.image_digest().map(str::to_string)),
                ),
                Err(err)
                    if matches!(
                        err.as_service_error(),
                        Some(BatchGetImageError::RepositoryNotFoundException(_))
                    ) =>
                {
                    return Ok(held)
                }
                Err(err) => return Err(aws_error(&self.endpoint, "BatchGetImage", &err)),
            }
        }
        Ok(held)
    }

    /// Every tag of `repository` with the digest it names (`ListImages`, every page); a
    /// repository that is gone has none.
    pub(crate) async fn tags(
        &self,
        registry_id: Option<&str>,
        repository: &str,
    ) -> Result<Vec<(String, String)>> {
        let mut tags = Vec::new();
        let mut pages = self
            .client
            .list_images()
            .repository_name(repository)
            .set_registry_id(registry_id.map(str::to_string))
            .filter(
                aws_sdk_ecr::types::ListImagesFilter::builder()
                    .tag_status(aws_sdk_ecr::types::TagStatus::Tagged)
                    .build(),
            )
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            match page {
                Ok(page) => tags.extend(page.image_ids().iter().filter_map(|id| {
                    Some((id.image_tag()?.to_string(), id.image_digest()?.to_string()))
                })),
                Err(err)
                    if matches!(
                        err.as_service_error(),
                        Some(ListImagesError::RepositoryNotFoundException(_))
                    ) =>
                {
                    return Ok(Vec::new())
                }
                Err(err) => return Err(aws_error(&self.endpoint, "ListImages", &err)),
            }
        }
        Ok(tags)
    }

    /// Removes `tag` from `repository`; a tag or repository already gone is success.
    pub async fn untag(
        &self,
        registry_id: Option<&str>,
        repository: &str,
        tag: &str,
    ) -> Result<()> {
        self.untag_all(registry_id, repository, &[tag.to_string()])
            .await
    }

    /// Removes `tags` from `repository` (100 to a call, as ECR takes them); tags or a
    /// repository already gone are success.
    pub(crate) async fn untag_all(
        &self,
        registry_id: Option<&str>,
        repository: &str,
        tags: &[String],
    ) -> Result<()> {
        for chunk in tags.chunks(100) {
            self.untag_chunk(registry_id, repository, chunk).await?;
        }
        Ok(())
    }

    async fn untag_chunk(
        &self,
        registry_id: Option<&str>,
        repository: &str,
        tags: &[String],
    ) -> Result<()> {
        let ids = tags
            .iter()
            .map(|tag| ImageIdentifier::builder().image_tag(tag).build())
            .collect();
        let result = self
            .client
            .batch_delete_image()
            .repository_name(repository)
            .set_image_ids(Some(ids))
            .set_registry_id(registry_id.map(str::to_string))
            .send()
            .await;
        match result {
            Ok(output) => {
                let failure = output
                    .failures()
                    .iter()
                    .find(|f| !matches!(f.failure_code(), Some(ImageFailureCode::ImageNotFound)));
                match failure {
                    Some(failure) => Err(Error::Aws {
                        operation: "BatchDeleteImage",
                        cause: format!(
                            "{}: {}",
                            failure
                                .failure_code()
                                .map(|c| c.as_str())
                                .unwrap_or("unknown failure"),
                            failure.failure_reason().unwrap_or_default()
                        ),
                        refusal: AwsRefusal::Other,
                    }),
                    None => Ok(()),
                }
            }
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(BatchDeleteImageError::RepositoryNotFoundException(_))
                ) =>
            {
                Ok(())
            }
            Err(err) => Err(aws_error(&self.endpoint, "BatchDeleteImage", &err)),
        }
    }
}

/// Decodes `base64(AWS:<password>)` and the proxy endpoint into push credentials.
fn decode_login(
    token: &str,
    proxy_endpoint: &str,
    expires_at: SystemTime,
) -> Result<RegistryLogin> {
    let malformed = |what: &str| Error::Aws {
        operation: "GetAuthorizationToken",
        cause: format!("The authorization data is malformed: {what}."),
        refusal: AwsRefusal::Other,
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| malformed("the token is not base64"))?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed("the token is not text"))?;
    let (username, password) = decoded
        .split_once(':')
        .ok_or_else(|| malformed("the token is not user:password"))?;
    let endpoint = proxy_endpoint.trim_end_matches('/');
    let (scheme, host) = endpoint.split_once("://").unwrap_or(("https", endpoint));
    if host.is_empty() {
        return Err(malformed("no proxyEndpoint"));
    }
    Ok(RegistryLogin {
        host: host.to_string(),
        endpoint: format!("{scheme}://{host}"),
        username: username.to_string(),
        password: Secret::new(password),
        expires_at,
    })
}

/// The registry host of account `registry_id`, given the caller's own ECR host.
fn host_of_registry_id(own_host: &str, registry_id: &str) -> String {
    match own_host.split_once('.') {
        Some((account, rest))
            if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) =>
        {
            format!("{registry_id}.{rest}")
        }
        _ => own_host.to_string(),
    }
}

/// A failed API call: a network failure when no answer came, else what ECR answered (the
/// whole cause chain, no credentials).
fn aws_error<E>(endpoint: &str, operation: &'static str, err: &SdkError<E>) -> Error
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    let network = match err {
        SdkError::DispatchFailure(failure) => failure
            .as_connector_error()
            .and_then(|e| crate::network::network_error("the ECR API", endpoint, None, e))
            .or_else(|| {
                failure
                    .is_timeout()
                    .then(|| crate::network::timed_out("the ECR API", endpoint, None))
            }),
        SdkError::TimeoutError(_) => Some(crate::network::timed_out("the ECR API", endpoint, None)),
        _ => None,
    };
    network.unwrap_or_else(|| Error::Aws {
        operation,
        cause: aws_cause(err),
        refusal: refusal(err),
    })
}

/// What a failed call ran into, in a sentence: ECR's error code, message and request id
/// when it answered, else the chain of causes. Never the SDK's `Debug` output (bodies,
/// headers, extensions), which says nothing to a user.
fn aws_cause<E>(err: &SdkError<E>) -> String
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    use aws_types::request_id::RequestId;
    let request = err
        .request_id()
        .map(|id| format!(" (request id {id})"))
        .unwrap_or_default();
    match err.as_service_error() {
        Some(answer) => {
            let code = answer.code().unwrap_or("an error without a code");
            match answer.message() {
                Some(message) => format!("ECR answered {code}: {message}{request}"),
                None => format!("ECR answered {code}{request}"),
            }
        }
        None => format!("{}{request}", crate::error::chain(err)),
    }
}

/// What a failed call ran into: ECR's error code when it answered, else whether loading
/// the credentials failed (the SDK's error type, somewhere in the cause chain).
fn refusal<E, R>(err: &SdkError<E, R>) -> AwsRefusal
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    if let Some(code) = err.as_service_error().and_then(ProvideErrorMetadata::code) {
        return AwsRefusal::of_code(code);
    }
    let credentials = std::error::Error::source(err).is_some_and(|source| {
        crate::error::causes(source).any(|cause| cause.is::<CredentialsError>())
    });
    if credentials {
        AwsRefusal::Credentials
    } else {
        AwsRefusal::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `DescribeImages` failing with ECR's error `code`, as the SDK hands it over.
    fn answered(
        code: &str,
    ) -> SdkError<aws_sdk_ecr::operation::describe_images::DescribeImagesError> {
        use aws_sdk_ecr::operation::describe_images::DescribeImagesError;
        let meta = aws_sdk_ecr::error::ErrorMetadata::builder()
            .code(code)
            .message(format!("what ECR says about {code}"))
            .build();
        let mut raw = aws_smithy_runtime_api::http::Response::new(
            400.try_into().unwrap(),
            aws_smithy_types::body::SdkBody::from(format!("{{\"__type\":\"{code}\"}}")),
        );
        raw.headers_mut().insert("x-amzn-requestid", "4f1c-request");
        SdkError::service_error(DescribeImagesError::generic(meta), raw)
    }

    #[test]
    fn every_ecr_error_reads_as_its_code_message_and_request_id_then_the_hint() {
        let cases = [
            (
                "UnrecognizedClientException",
                AwsRefusal::Credentials,
                "credentials",
            ),
            (
                "ExpiredTokenException",
                AwsRefusal::Credentials,
                "sign in again",
            ),
            ("AccessDeniedException", AwsRefusal::Access, "IAM policy"),
            ("RepositoryNotFoundException", AwsRefusal::Other, "region"),
            ("ThrottlingException", AwsRefusal::Other, "apply again"),
            ("ServerException", AwsRefusal::Other, "apply again"),
            ("InvalidParameterException", AwsRefusal::Other, "region"),
        ];
        for (code, kind, advice) in cases {
            let error = aws_error("http://ecr", "DescribeImages", &answered(code));
            let Error::Aws {
                operation,
                cause,
                refusal,
            } = &error
            else {
                panic!("{code}: {error:?}");
            };
            assert_eq!(*operation, "DescribeImages");
            assert_eq!(*refusal, kind, "{code}");
            assert_eq!(
                cause,
                &format!(
                    "ECR answered {code}: what ECR says about {code} (request id 4f1c-request)"
                )
            );
            let detail = error.detail();
            assert!(detail.starts_with(cause.as_str()), "{detail}");
            assert!(detail.contains(advice), "{code}: {detail}");
            assert!(detail.lines().count() <= 3, "{code}: {detail}");
            for noise in [
                "SdkBody",
                "headers",
                "extensions",
                "Response {",
                "{\"__type",
            ] {
                assert!(!detail.contains(noise), "{code}: {noise} in {detail}");
            }
        }
    }

    #[test]
    fn a_call_without_an_answer_reads_as_its_causes() {
        let err: SdkError<aws_sdk_ecr::operation::describe_images::DescribeImagesError> =
            SdkError::construction_failure("no region was set");
        let error = aws_error("http://ecr", "DescribeImages", &err);
        assert_eq!(
            error.detail().lines().next(),
            Some("failed to construct request: no region was set")
        );
        assert!(!error.detail().contains("ConstructionFailure"));
    }

    #[test]
    fn tag_mutability_follows_the_exclusion_filters() {
        let filters = || vec!["latest".to_string(), "dev-*".to_string()];
        assert!(!TagMutability::Mutable.immutable("1.0"));
        assert!(TagMutability::Immutable.immutable("latest"));
        let except = TagMutability::ImmutableExcept(filters());
        assert!(!except.immutable("latest"));
        assert!(!except.immutable("dev-7"));
        assert!(except.immutable("1.0"));
        let only = TagMutability::MutableExcept(filters());
        assert!(only.immutable("dev-7"));
        assert!(!only.immutable("1.0"));
    }

    #[test]
    fn login_is_decoded_from_token_and_endpoint() {
        let token = base64::engine::general_purpose::STANDARD.encode("AWS:s3cr3t");
        let login = decode_login(
            &token,
            "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(login.host, "123456789012.dkr.ecr.eu-west-1.amazonaws.com");
        assert_eq!(login.username, "AWS");
        assert_eq!(login.password.expose(), "s3cr3t");
        assert!(!format!("{login:?}").contains("s3cr3t"));
    }

    #[test]
    fn other_accounts_registries_share_the_region_host() {
        assert_eq!(
            host_of_registry_id(
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
                "210987654321"
            ),
            "210987654321.dkr.ecr.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            host_of_registry_id("127.0.0.1:5000", "210987654321"),
            "127.0.0.1:5000"
        );
    }

    #[test]
    fn malformed_tokens_are_errors_without_the_token() {
        let err = decode_login("bm90LWEtcGFpcg==", "https://x", SystemTime::now()).unwrap_err();
        assert!(err.to_string().contains("GetAuthorizationToken"));
        assert!(!err.detail().contains("bm90"));
    }
}
