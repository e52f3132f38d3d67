//! Tag lookups for one repository share calls: while a `DescribeImages` for a repository is
//! in flight, the lookups that arrive wait and go together in the next one (up to 100 tags,
//! the API's limit). A plan of many mirrors into one repository (Terraform refreshes ten at
//! a time) then makes a few calls instead of one per tag, and a lone lookup waits for
//! nothing.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_ecr::operation::describe_images::DescribeImagesError;
use aws_sdk_ecr::types::ImageIdentifier;

use super::{aws_error, TagLookup};
use crate::error::{AwsRefusal, Error, Result};

/// A repository: `(registry id, name)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct RepositoryKey {
    registry_id: Option<String>,
    repository: String,
}

/// Tags waiting to be looked up, each with where its answer goes.
type Waiting = Vec<(String, tokio::sync::oneshot::Sender<Result<TagLookup>>)>;

/// Tag lookups by repository: whether a call is in flight, and the lookups for the next.
#[derive(Default)]
pub(super) struct Lookups {
    queues: std::sync::Mutex<HashMap<RepositoryKey, (bool, Waiting)>>,
}

/// Most image ids `DescribeImages` takes in one call.
const TAGS_PER_CALL: usize = 100;

impl Lookups {
    /// What `repository:tag` names: the answer of the next call for its repository.
    pub(super) async fn lookup(
        self: &Arc<Self>,
        client: &aws_sdk_ecr::Client,
        endpoint: &Arc<str>,
        registry_id: Option<&str>,
        repository: &str,
        tag: &str,
    ) -> Result<TagLookup> {
        let key = RepositoryKey {
            registry_id: registry_id.map(str::to_string),
            repository: repository.to_string(),
        };
        let (answer, answered) = tokio::sync::oneshot::channel();
        let start = {
            let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
            let (in_flight, waiting) = queues.entry(key.clone()).or_default();
            waiting.push((tag.to_string(), answer));
            !std::mem::replace(in_flight, true)
        };
        if start {
            tokio::spawn(send_lookups(
                client.clone(),
                endpoint.clone(),
                self.clone(),
                key,
            ));
        }
        answered.await.unwrap_or_else(|_| {
            Err(Error::Aws {
                operation: "DescribeImages",
                cause: "The lookup ended without an answer.".into(),
                refusal: AwsRefusal::Other,
            })
        })
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
        let at = Repository {
            client: &client,
            endpoint: &endpoint,
            registry_id: key.registry_id.as_deref(),
            name: &key.repository,
        };
        let found = describe_tags(at, &tags).await;
        for (tag, answer) in batch {
            let _ = answer.send(found.get(&tag).cloned().unwrap_or(Ok(TagLookup::Missing)));
        }
    }
}

/// Where lookups go: the API, and the repository whose tags they ask about.
#[derive(Clone, Copy)]
struct Repository<'a> {
    client: &'a aws_sdk_ecr::Client,
    endpoint: &'a str,
    registry_id: Option<&'a str>,
    name: &'a str,
}

/// What each of `tags` of the repository names: one `DescribeImages` call, or one per tag
/// when a tag is missing (ECR then fails the whole call).
async fn describe_tags(at: Repository<'_>, tags: &[String]) -> HashMap<String, Result<TagLookup>> {
    let Repository {
        client,
        endpoint,
        registry_id,
        name: repository,
    } = at;
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
            describe_each(at, tags).await
        }
        Err(err) => every(Err(aws_error(endpoint, "DescribeImages", &err))),
    }
}

/// What each of `tags` names, one `DescribeImages` call per tag, all at once.
async fn describe_each(at: Repository<'_>, tags: &[String]) -> HashMap<String, Result<TagLookup>> {
    let each = tags.iter().map(|tag| async move {
        let one = std::slice::from_ref(tag);
        let mut answer = Box::pin(describe_tags(at, one)).await;
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
