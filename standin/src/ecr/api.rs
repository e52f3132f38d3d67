//! The ECR API operations the emulator serves, answered from its state and the backend
//! registry's storage.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use http_body_util::BodyExt;
use serde_json::{json, Value};

use super::{now, Ecr, Encryption, Repository, Template, ACCOUNT, MANIFEST_TYPES};

/// An ECR error response.
fn api_error(error_type: &str, message: &str) -> Response {
    let status = if error_type == "ServerException" {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::BAD_REQUEST
    };
    api_error_status(status, error_type, message)
}

fn api_error_status(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amzn-errortype", error_type),
        ],
        json!({"__type": error_type, "message": message}).to_string(),
    )
        .into_response()
}

fn api_ok(body: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/x-amz-json-1.1")],
        body.to_string(),
    )
        .into_response()
}

pub(super) async fn api(
    State(ecr): State<Arc<Ecr>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(operation) = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix("AmazonEC2ContainerRegistry_V20150921."))
        .map(str::to_string)
    else {
        return api_error(
            "UnknownOperationException",
            "missing or unknown X-Amz-Target",
        );
    };
    *ecr.calls
        .lock()
        .unwrap()
        .entry(operation.clone())
        .or_default() += 1;
    if let Some(fault) = ecr.front.faults.take(&operation) {
        tokio::time::sleep(fault.delay).await;
        if fault.status.is_some() || fault.error_type.is_some() {
            let error_type = fault.error_type.as_deref().unwrap_or("ServerException");
            let message = fault.message.as_deref().unwrap_or("injected fault");
            let status = fault
                .status
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::BAD_REQUEST);
            return api_error_status(status, error_type, message);
        }
    }
    let input: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
    if let Some(id) = input.get("registryId").and_then(Value::as_str) {
        if id != ACCOUNT {
            return api_error(
                "RepositoryNotFoundException",
                &format!("The registry with id '{id}' is not known to this emulator"),
            );
        }
    }
    let result = match operation.as_str() {
        "GetAuthorizationToken" => Ok(get_authorization_token(&ecr)),
        "CreateRepository" => Ok(create_repository(&ecr, &input)),
        "DescribeRepositories" => Ok(describe_repositories(&ecr, &input)),
        "DeleteRepository" => Ok(delete_repository(&ecr, &input)),
        "PutImageTagMutability" => Ok(put_image_tag_mutability(&ecr, &input)),
        "DescribeImages" => describe_images(&ecr, &input).await,
        "BatchGetImage" => batch_get_image(&ecr, &input).await,
        "BatchDeleteImage" => batch_delete_image(&ecr, &input).await,
        "ListImages" => list_images(&ecr, &input).await,
        "CreateRepositoryCreationTemplate" => Ok(create_template(&ecr, &input)),
        "DescribeRepositoryCreationTemplates" => Ok(describe_templates(&ecr, &input)),
        "DeleteRepositoryCreationTemplate" => Ok(delete_template(&ecr, &input)),
        "GetAccountSetting" => Ok(get_account_setting(&ecr, &input)),
        "PutAccountSetting" => Ok(put_account_setting(&ecr, &input)),
        other => Ok(api_error(
            "UnknownOperationException",
            &format!("the emulator does not serve {other}"),
        )),
    };
    result.unwrap_or_else(|err| api_error("ServerException", &format!("{err:#}")))
}

fn get_authorization_token(ecr: &Ecr) -> Response {
    let password = ecr.issue_token();
    let token = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{password}"));
    let host = ecr.host.lock().unwrap().clone();
    let scheme = if ecr.secure.load(std::sync::atomic::Ordering::SeqCst) {
        "https"
    } else {
        "http"
    };
    api_ok(json!({"authorizationData": [{
        "authorizationToken": token,
        "expiresAt": now() + 12.0 * 3600.0,
        "proxyEndpoint": format!("{scheme}://{host}"),
    }]}))
}

fn repository_name(input: &Value) -> String {
    input
        .get("repositoryName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn not_found(name: &str) -> Response {
    api_error(
        "RepositoryNotFoundException",
        &format!(
            "The repository with name '{name}' does not exist in the registry with id '{ACCOUNT}'"
        ),
    )
}

/// The tag mutability and encryption a repository (or a template's) is asked for; what is
/// invalid in them.
fn settings(input: &Value) -> Result<(super::TagMutability, Encryption), String> {
    Ok((
        super::TagMutability::from_input(input)?,
        Encryption::from_input(input)?,
    ))
}

fn create_repository(ecr: &Ecr, input: &Value) -> Response {
    let name = repository_name(input);
    let mut repositories = ecr.repositories.lock().unwrap();
    if repositories.contains_key(&name) {
        return api_error(
            "RepositoryAlreadyExistsException",
            &format!("The repository with name '{name}' already exists in the registry with id '{ACCOUNT}'"),
        );
    }
    let (tags, encryption) = match settings(input) {
        Ok(settings) => settings,
        Err(message) => return api_error("InvalidParameterException", &message),
    };
    let repo = Repository::new(tags, encryption);
    let body = json!({"repository": ecr.repository_json(&name, &repo)});
    repositories.insert(name, repo);
    api_ok(body)
}

fn describe_repositories(ecr: &Ecr, input: &Value) -> Response {
    let repositories = ecr.repositories.lock().unwrap();
    let names: Vec<String> = match input.get("repositoryNames").and_then(Value::as_array) {
        Some(names) => names
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        None => repositories.keys().cloned().collect(),
    };
    let mut out = Vec::new();
    for name in names {
        match repositories.get(&name) {
            Some(repo) => out.push(ecr.repository_json(&name, repo)),
            None => return not_found(&name),
        }
    }
    api_ok(json!({ "repositories": out }))
}

fn put_image_tag_mutability(ecr: &Ecr, input: &Value) -> Response {
    let name = repository_name(input);
    let tags = match super::TagMutability::from_input(input) {
        Ok(tags) => tags,
        Err(message) => return api_error("InvalidParameterException", &message),
    };
    let mut repositories = ecr.repositories.lock().unwrap();
    let Some(repo) = repositories.get_mut(&name) else {
        return not_found(&name);
    };
    repo.tags = tags;
    let (mutability, filters) = repo.tags.json();
    api_ok(json!({
        "registryId": ACCOUNT,
        "repositoryName": name,
        "imageTagMutability": mutability,
        "imageTagMutabilityExclusionFilters": filters,
    }))
}

fn delete_repository(ecr: &Ecr, input: &Value) -> Response {
    let name = repository_name(input);
    let Some(repo) = ecr.repositories.lock().unwrap().remove(&name) else {
        return not_found(&name);
    };
    let _ = std::fs::remove_dir_all(ecr.front.backend.repository_dir(&name));
    api_ok(json!({"repository": ecr.repository_json(&name, &repo)}))
}

/// The scenarios a repository creation template can be applied for.
const APPLIED_FOR: [&str; 3] = ["CREATE_ON_PUSH", "PULL_THROUGH_CACHE", "REPLICATION"];

fn create_template(ecr: &Ecr, input: &Value) -> Response {
    let Some(prefix) = input.get("prefix").and_then(Value::as_str) else {
        return api_error("InvalidParameterException", "prefix is required");
    };
    let valid_prefix = prefix == "ROOT"
        || (!prefix.is_empty()
            && !prefix.starts_with('/')
            && !prefix.ends_with('/')
            && prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c)));
    if !valid_prefix {
        return api_error(
            "InvalidParameterException",
            &format!("Invalid parameter at 'prefix' failed to satisfy constraint: '{prefix}'"),
        );
    }
    let applied_for: Vec<String> = input
        .get("appliedFor")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if applied_for.is_empty()
        || applied_for
            .iter()
            .any(|a| !APPLIED_FOR.contains(&a.as_str()))
    {
        return api_error(
            "InvalidParameterException",
            &format!("Invalid parameter at 'appliedFor': {applied_for:?}"),
        );
    }
    let (tags, encryption) = match settings(input) {
        Ok(settings) => settings,
        Err(message) => return api_error("InvalidParameterException", &message),
    };
    let mut templates = ecr.templates.lock().unwrap();
    if templates.contains_key(prefix) {
        return api_error(
            "TemplateAlreadyExistsException",
            &format!("A repository creation template with prefix '{prefix}' already exists in the registry with id '{ACCOUNT}'"),
        );
    }
    let template = Template {
        prefix: prefix.to_string(),
        applied_for,
        tags,
        encryption,
        description: input
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string),
        created_at: now(),
    };
    let body = json!({"registryId": ACCOUNT, "repositoryCreationTemplate": template.json()});
    templates.insert(prefix.to_string(), template);
    api_ok(body)
}

/// `DescribeRepositoryCreationTemplates`: those of `prefixes`, else all, by prefix,
/// `maxResults` (default 100) a page.
fn describe_templates(ecr: &Ecr, input: &Value) -> Response {
    let templates = ecr.templates.lock().unwrap();
    let wanted: Option<Vec<&str>> = input
        .get("prefixes")
        .and_then(Value::as_array)
        .map(|p| p.iter().filter_map(Value::as_str).collect());
    let all: Vec<Value> = templates
        .values()
        .filter(|t| {
            wanted
                .as_ref()
                .is_none_or(|w| w.contains(&t.prefix.as_str()))
        })
        .map(Template::json)
        .collect();
    let start: usize = input
        .get("nextToken")
        .and_then(Value::as_str)
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let size = input
        .get("maxResults")
        .and_then(Value::as_u64)
        .unwrap_or(100)
        .clamp(1, 300) as usize;
    let page: Vec<Value> = all.iter().skip(start).take(size).cloned().collect();
    let mut body = json!({"registryId": ACCOUNT, "repositoryCreationTemplates": page});
    if start + size < all.len() {
        body["nextToken"] = json!((start + size).to_string());
    }
    api_ok(body)
}

fn delete_template(ecr: &Ecr, input: &Value) -> Response {
    let prefix = input
        .get("prefix")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match ecr.templates.lock().unwrap().remove(prefix) {
        Some(template) => api_ok(
            json!({"registryId": ACCOUNT, "repositoryCreationTemplate": template.json()}),
        ),
        None => api_error(
            "TemplateNotFoundException",
            &format!("The repository creation template with prefix '{prefix}' does not exist in the registry with id '{ACCOUNT}'"),
        ),
    }
}

fn get_account_setting(ecr: &Ecr, input: &Value) -> Response {
    let name = input
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match ecr.account_setting(name) {
        Some(value) => api_ok(json!({"name": name, "value": value})),
        None => api_error(
            "ValidationException",
            &format!("Invalid parameter at 'name' failed to satisfy constraint: '{name}'"),
        ),
    }
}

fn put_account_setting(ecr: &Ecr, input: &Value) -> Response {
    let name = input
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let value = input
        .get("value")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let valid = match name {
        "BLOB_MOUNTING" => ["ENABLED", "DISABLED"].contains(&value),
        "BASIC_SCAN_TYPE_VERSION" => ["AWS_NATIVE", "CLAIR"].contains(&value),
        "REGISTRY_POLICY_SCOPE" => ["V1", "V2"].contains(&value),
        _ => false,
    };
    if !valid {
        return api_error(
            "ValidationException",
            &format!("Invalid account setting {name}={value}"),
        );
    }
    ecr.put_account_setting(name, value);
    api_ok(json!({"name": name, "value": value}))
}

/// A manifest as the backend serves it.
#[derive(Clone)]
struct Manifest {
    digest: String,
    media_type: String,
    body: String,
}

async fn fetch_manifest(ecr: &Ecr, repository: &str, reference: &str) -> Result<Option<Manifest>> {
    let request = hyper::Request::get(format!("/v2/{repository}/manifests/{reference}"))
        .header("host", "registry")
        .header("accept", MANIFEST_TYPES)
        .body(Body::empty())?;
    let response = ecr.front.backend.send(request).await?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await?.to_bytes();
    if status == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !status.is_success() {
        anyhow::bail!("backend answered {status} for {repository}:{reference}");
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    Ok(Some(Manifest {
        digest: header("docker-content-digest"),
        media_type: header("content-type"),
        body: String::from_utf8_lossy(&body).into_owned(),
    }))
}

/// Every tag of `repository` with the digest it points at, read from the backend's storage.
pub(super) fn tags(ecr: &Ecr, repository: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(ecr.front.backend.tags_dir(repository)) else {
        return out;
    };
    for entry in entries.flatten() {
        let tag = entry.file_name().to_string_lossy().into_owned();
        if let Ok(digest) = std::fs::read_to_string(entry.path().join("current/link")) {
            out.insert(tag, digest.trim().to_string());
        }
    }
    out
}

fn image_size(manifest: &Manifest) -> u64 {
    let parsed: Value = serde_json::from_str(&manifest.body).unwrap_or(json!({}));
    let sizes = |key: &str| {
        parsed
            .get(key)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.get("size").and_then(Value::as_u64))
                    .sum::<u64>()
            })
            .unwrap_or(0)
    };
    sizes("layers") + sizes("manifests")
}

/// Resolves one `imageIds` entry to (digest, tags) or an ECR failure.
fn resolve(
    all_tags: &BTreeMap<String, String>,
    id: &Value,
) -> std::result::Result<String, (&'static str, String)> {
    let tag = id.get("imageTag").and_then(Value::as_str);
    let digest = id.get("imageDigest").and_then(Value::as_str);
    match (tag, digest) {
        (Some(tag), digest) => match all_tags.get(tag) {
            Some(found) if digest.is_none_or(|d| d == found) => Ok(found.clone()),
            Some(_) => Err((
                "ImageTagDoesNotMatchDigest",
                "Given image digest does not match the digest for given tag".to_string(),
            )),
            None => Err(("ImageNotFound", "Requested image not found".to_string())),
        },
        (None, Some(digest)) => Ok(digest.to_string()),
        (None, None) => Err((
            "MissingDigestAndTag",
            "Invalid request parameters: both tag and digest cannot be null".to_string(),
        )),
    }
}

/// The request's `imageIds`, when it names any.
fn image_ids(input: &Value) -> Option<Vec<Value>> {
    input.get("imageIds").and_then(Value::as_array).cloned()
}

fn tags_of(all_tags: &BTreeMap<String, String>, digest: &str) -> Vec<String> {
    all_tags
        .iter()
        .filter(|(_, d)| *d == digest)
        .map(|(t, _)| t.clone())
        .collect()
}

async fn describe_images(ecr: &Ecr, input: &Value) -> Result<Response> {
    let name = repository_name(input);
    if !ecr.has_repository(&name) {
        return Ok(not_found(&name));
    }
    let all_tags = tags(ecr, &name);
    let ids: Vec<Value> = match image_ids(input) {
        Some(ids) => ids,
        None => {
            let digests: std::collections::BTreeSet<&String> = all_tags.values().collect();
            digests
                .into_iter()
                .map(|d| json!({"imageDigest": d}))
                .collect()
        }
    };
    let mut details = Vec::new();
    // Each distinct image is read from the backend once per call (many tags often name one).
    let mut read: BTreeMap<String, Option<Manifest>> = BTreeMap::new();
    for id in &ids {
        let digest = match resolve(&all_tags, id) {
            Ok(digest) => digest,
            Err((_, _)) => {
                return Ok(api_error(
                    "ImageNotFoundException",
                    &format!(
                        "The image with imageId {id} does not exist within the repository with name '{name}' in the registry with id '{ACCOUNT}'"
                    ),
                ))
            }
        };
        if !read.contains_key(&digest) {
            let manifest = fetch_manifest(ecr, &name, &digest).await?;
            read.insert(digest.clone(), manifest);
        }
        let Some(manifest) = read.get(&digest).cloned().flatten() else {
            return Ok(api_error(
                "ImageNotFoundException",
                &format!("The image with imageId {id} does not exist within the repository with name '{name}'"),
            ));
        };
        details.push(json!({
            "registryId": ACCOUNT,
            "repositoryName": name,
            "imageDigest": manifest.digest,
            "imageTags": tags_of(&all_tags, &digest),
            "imageSizeInBytes": image_size(&manifest),
            "imagePushedAt": now(),
            "imageManifestMediaType": manifest.media_type,
        }));
    }
    Ok(api_ok(json!({ "imageDetails": details })))
}

async fn batch_get_image(ecr: &Ecr, input: &Value) -> Result<Response> {
    let name = repository_name(input);
    if !ecr.has_repository(&name) {
        return Ok(not_found(&name));
    }
    let all_tags = tags(ecr, &name);
    let mut images = Vec::new();
    let mut failures = Vec::new();
    for id in image_ids(input).unwrap_or_default() {
        match resolve(&all_tags, &id) {
            Ok(digest) => match fetch_manifest(ecr, &name, &digest).await? {
                Some(manifest) => images.push(json!({
                    "registryId": ACCOUNT,
                    "repositoryName": name,
                    "imageId": {"imageDigest": manifest.digest, "imageTag": id.get("imageTag")},
                    "imageManifest": manifest.body,
                    "imageManifestMediaType": manifest.media_type,
                })),
                None => failures.push(json!({"imageId": id, "failureCode": "ImageNotFound", "failureReason": "Requested image not found"})),
            },
            Err((code, reason)) => {
                failures.push(json!({"imageId": id, "failureCode": code, "failureReason": reason}))
            }
        }
    }
    Ok(api_ok(json!({"images": images, "failures": failures})))
}

pub(super) async fn batch_delete_image(ecr: &Ecr, input: &Value) -> Result<Response> {
    let name = repository_name(input);
    if !ecr.has_repository(&name) {
        return Ok(not_found(&name));
    }
    let mut deleted = Vec::new();
    let mut failures = Vec::new();
    for id in image_ids(input).unwrap_or_default() {
        let all_tags = tags(ecr, &name);
        let digest = match resolve(&all_tags, &id) {
            Ok(digest) => digest,
            Err((code, reason)) => {
                failures.push(json!({"imageId": id, "failureCode": code, "failureReason": reason}));
                continue;
            }
        };
        let untag: Vec<String> = match id.get("imageTag").and_then(Value::as_str) {
            Some(tag) => vec![tag.to_string()],
            None => tags_of(&all_tags, &digest),
        };
        for tag in &untag {
            std::fs::remove_dir_all(ecr.front.backend.tags_dir(&name).join(tag))?;
        }
        if tags_of(&tags(ecr, &name), &digest).is_empty() {
            let request = hyper::Request::delete(format!("/v2/{name}/manifests/{digest}"))
                .header("host", "registry")
                .body(Body::empty())?;
            let response = ecr.front.backend.send(request).await?;
            let status = response.status();
            response.into_body().collect().await?;
            if !status.is_success() && status != StatusCode::NOT_FOUND {
                anyhow::bail!("backend refused to delete {name}@{digest}: {status}");
            }
        }
        deleted.push(json!({"imageDigest": digest, "imageTag": id.get("imageTag")}));
    }
    Ok(api_ok(json!({"imageIds": deleted, "failures": failures})))
}

async fn list_images(ecr: &Ecr, input: &Value) -> Result<Response> {
    let name = repository_name(input);
    if !ecr.has_repository(&name) {
        return Ok(not_found(&name));
    }
    let ids: Vec<Value> = tags(ecr, &name)
        .into_iter()
        .map(|(tag, digest)| json!({"imageDigest": digest, "imageTag": tag}))
        .collect();
    Ok(api_ok(json!({ "imageIds": ids })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_distinguishes_missing_and_mismatched() {
        let mut all = BTreeMap::new();
        all.insert("a".to_string(), "sha256:1".to_string());
        assert_eq!(
            resolve(&all, &json!({"imageTag": "a"})).unwrap(),
            "sha256:1"
        );
        assert_eq!(
            resolve(&all, &json!({"imageTag": "b"})).unwrap_err().0,
            "ImageNotFound"
        );
        assert_eq!(
            resolve(&all, &json!({"imageTag": "a", "imageDigest": "sha256:2"}))
                .unwrap_err()
                .0,
            "ImageTagDoesNotMatchDigest"
        );
    }
}
