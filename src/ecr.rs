//! The ECR API adapter: authorization tokens (cached per registry for the life of the
//! process), repository and image queries, untagging. AWS SDK types stop here.
//!
//! Tag lookups for one repository share calls: while a `DescribeImages` for a repository is
//! in flight, the lookups that arrive wait and go together in the next one (up to 100 tags,
//! the API's limit). A plan of many mirrors into one repository (Terraform refreshes ten at
//! a time) then makes a few calls instead of one per tag, and a lone lookup waits for
//! nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_ecr::error::{DisplayErrorContext, SdkError};
use aws_sdk_ecr::operation::batch_delete_image::BatchDeleteImageError;
use aws_sdk_ecr::operation::batch_get_image::BatchGetImageError;
use aws_sdk_ecr::operation::describe_images::DescribeImagesError;
use aws_sdk_ecr::operation::describe_repositories::DescribeRepositoriesError;
use aws_sdk_ecr::types::{ImageFailureCode, ImageIdentifier};
use base64::Engine;
use tokio::sync::Mutex;

use crate::error::{Error, Result};
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

/// The ECR API with a per-registry token cache.
pub struct Ecr {
    client: aws_sdk_ecr::Client,
    /// The API's address, for diagnostics.
    endpoint: Arc<str>,
    token: Mutex<Option<RegistryLogin>>,
    lookups: Arc<Lookups>,
}

/// A repository: `(registry id, name)`.
type RepositoryKey = (Option<String>, String);

/// Tags waiting to be looked up, each with where its answer goes.
type Waiting = Vec<(String, tokio::sync::oneshot::Sender<Result<TagLookup>>)>;

/// Tag lookups by repository: whether a call is in flight, and the lookups for the next.
#[derive(Default)]
struct Lookups {
    queues: std::sync::Mutex<HashMap<RepositoryKey, (bool, Waiting)>>,
}

/// Most image ids `DescribeImages` takes in one call.
const TAGS_PER_CALL: usize = 100;

impl Ecr {
    /// Wraps a configured SDK client.
    pub fn new(client: aws_sdk_ecr::Client, endpoint: &str) -> Ecr {
        Ecr {
            client,
            endpoint: endpoint.into(),
            token: Mutex::new(None),
            lookups: Arc::default(),
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
            login.host = host_for_registry(&login.host, id);
            let scheme = login.endpoint.split("://").next().unwrap_or("https");
            login.endpoint = format!("{scheme}://{}", login.host);
        }
        Ok(login)
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

    /// Confirms that `repository` exists; returns the id of the registry that holds it.
    pub async fn repository_registry(
        &self,
        registry_id: Option<&str>,
        repository: &str,
    ) -> Result<String> {
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
                .and_then(|repo| repo.registry_id())
                .map(str::to_string)
                .ok_or_else(|| Error::Aws {
                    operation: "DescribeRepositories",
                    cause: format!("The answer does not describe `{repository}`."),
                }),
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(DescribeRepositoriesError::RepositoryNotFoundException(_))
                ) =>
            {
                Err(Error::RepositoryNotFound {
                    repository: repository.to_string(),
                    registry: registry_id.unwrap_or("of this AWS account").to_string(),
                })
            }
            Err(err) => Err(aws_error(&self.endpoint, "DescribeRepositories", &err)),
        }
    }

    /// What `repository:tag` names in ECR now. Lookups for one repository made at the same
    /// time share `DescribeImages` calls.
    pub async fn lookup_tag(
        &self,
        registry_id: Option<&str>,
        repository: &str,
        tag: &str,
    ) -> Result<TagLookup> {
        let key = (registry_id.map(str::to_string), repository.to_string());
        let (answer, answered) = tokio::sync::oneshot::channel();
        let start = {
            let mut queues = self
                .lookups
                .queues
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let (in_flight, waiting) = queues.entry(key.clone()).or_default();
            waiting.push((tag.to_string(), answer));
            !std::mem::replace(in_flight, true)
        };
        if start {
            tokio::spawn(send_lookups(
                self.client.clone(),
                self.endpoint.clone(),
                self.lookups.clone(),
                key,
            ));
        }
        answered.await.unwrap_or_else(|_| {
            Err(Error::Aws {
                operation: "DescribeImages",
                cause: "The lookup ended without an answer.".into(),
            })
        })
    }

    /// The manifest ECR serves for `repository` at `tag` (or at `digest` when no tag is
    /// given): its digest and body, `None` when there is none.
    pub async fn manifest(
        &self,
        registry_id: Option<&str>,
        repository: &str,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> Result<Option<(String, String)>> {
        let id = ImageIdentifier::builder()
            .set_image_tag(tag.map(str::to_string))
            .set_image_digest(digest.map(str::to_string))
            .build();
        let result = self
            .client
            .batch_get_image()
            .repository_name(repository)
            .image_ids(id)
            .set_accepted_media_types(Some(
                crate::manifest::ACCEPTED
                    .iter()
                    .map(|t| t.to_string())
                    .collect(),
            ))
            .set_registry_id(registry_id.map(str::to_string))
            .send()
            .await;
        match result {
            Ok(output) => Ok(output.images().first().and_then(|image| {
                let digest = image.image_id()?.image_digest()?.to_string();
                Some((digest, image.image_manifest()?.to_string()))
            })),
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(BatchGetImageError::RepositoryNotFoundException(_))
                ) =>
            {
                Ok(None)
            }
            Err(err) => Err(aws_error(&self.endpoint, "BatchGetImage", &err)),
        }
    }

    /// Removes `tag` from `repository`; a tag or repository already gone is success.
    pub async fn untag(
        &self,
        registry_id: Option<&str>,
        repository: &str,
        tag: &str,
    ) -> Result<()> {
        let result = self
            .client
            .batch_delete_image()
            .repository_name(repository)
            .image_ids(ImageIdentifier::builder().image_tag(tag).build())
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
fn host_for_registry(own_host: &str, registry_id: &str) -> String {
    match own_host.split_once('.') {
        Some((account, rest))
            if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) =>
        {
            format!("{registry_id}.{rest}")
        }
        _ => own_host.to_string(),
    }
}

/// Sends the lookups waiting for `key`'s repository, a call at a time, until none is left.
async fn send_lookups(
    client: aws_sdk_ecr::Client,
    endpoint: Arc<str>,
    lookups: Arc<Lookups>,
    key: RepositoryKey,
) {
    loop {
        let batch: Waiting = {
            let mut queues = lookups.queues.lock().unwrap_or_else(|e| e.into_inner());
            let Some((in_flight, waiting)) = queues.get_mut(&key) else {
                return;
            };
            if waiting.is_empty() {
                *in_flight = false;
                queues.remove(&key);
                return;
            }
            let n = waiting.len().min(TAGS_PER_CALL);
            waiting.drain(..n).collect()
        };
        let mut tags: Vec<String> = batch.iter().map(|(tag, _)| tag.clone()).collect();
        tags.sort();
        tags.dedup();
        let found = describe_tags(&client, &endpoint, key.0.as_deref(), &key.1, &tags).await;
        for (tag, answer) in batch {
            let _ = answer.send(found.get(&tag).cloned().unwrap_or(Ok(TagLookup::Missing)));
        }
    }
}

/// What each of `tags` of `repository` names: one `DescribeImages` call, or one per tag when
/// a tag is missing (ECR then fails the whole call).
async fn describe_tags(
    client: &aws_sdk_ecr::Client,
    endpoint: &str,
    registry_id: Option<&str>,
    repository: &str,
    tags: &[String],
) -> HashMap<String, Result<TagLookup>> {
    let result = client
        .describe_images()
        .repository_name(repository)
        .set_image_ids(Some(
            tags.iter()
                .map(|tag| ImageIdentifier::builder().image_tag(tag).build())
                .collect(),
        ))
        .set_registry_id(registry_id.map(str::to_string))
        .send()
        .await;
    let every = |answer: Result<TagLookup>| {
        tags.iter()
            .map(|tag| (tag.clone(), answer.clone()))
            .collect::<HashMap<_, _>>()
    };
    match result {
        Ok(output) => {
            let details = output.image_details();
            tags.iter()
                .map(|tag| {
                    let detail = match tags.len() {
                        1 => details.first(),
                        _ => details
                            .iter()
                            .find(|d| d.image_tags().iter().any(|t| t == tag)),
                    };
                    let answer = match detail.and_then(|d| d.image_digest()) {
                        Some(digest) => TagLookup::Found {
                            digest: digest.to_string(),
                        },
                        None => TagLookup::Missing,
                    };
                    (tag.clone(), Ok(answer))
                })
                .collect()
        }
        Err(err)
            if matches!(
                err.as_service_error(),
                Some(DescribeImagesError::RepositoryNotFoundException(_))
            ) =>
        {
            every(Ok(TagLookup::Missing))
        }
        Err(err)
            if matches!(
                err.as_service_error(),
                Some(DescribeImagesError::ImageNotFoundException(_))
            ) =>
        {
            if tags.len() == 1 {
                return every(Ok(TagLookup::Missing));
            }
            // Which one is missing, ECR does not say: ask for each.
            let each = tags.iter().map(|tag| async move {
                let one = std::slice::from_ref(tag);
                let mut answer = Box::pin(describe_tags(
                    client,
                    endpoint,
                    registry_id,
                    repository,
                    one,
                ))
                .await;
                (
                    tag.clone(),
                    answer.remove(tag).unwrap_or(Ok(TagLookup::Missing)),
                )
            });
            futures_util::future::join_all(each)
                .await
                .into_iter()
                .collect()
        }
        Err(err) => every(Err(aws_error(endpoint, "DescribeImages", &err))),
    }
}

/// A failed API call: a network failure when no answer came, else what ECR answered (the
/// whole cause chain, no credentials).
fn aws_error<E, R>(endpoint: &str, operation: &'static str, err: &SdkError<E, R>) -> Error
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
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
        cause: DisplayErrorContext(err).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
            host_for_registry(
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
                "210987654321"
            ),
            "210987654321.dkr.ecr.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            host_for_registry("127.0.0.1:5000", "210987654321"),
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
