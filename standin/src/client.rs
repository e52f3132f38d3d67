//! A small distribution-API client for pushing test images and reading registries back.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::ecr::MANIFEST_TYPES;

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A manifest read from a registry.
#[derive(Clone, Debug)]
pub struct Manifest {
    pub digest: String,
    pub media_type: String,
    /// The manifest's size in bytes.
    pub size: usize,
    pub json: Value,
}

impl Manifest {
    /// The image config digest of an image manifest.
    pub fn config_digest(&self) -> Option<String> {
        self.json
            .pointer("/config/digest")
            .and_then(Value::as_str)
            .map(str::to_string)
    }
}

/// A client for one registry, e.g. `http://127.0.0.1:5000`: basic auth, or the bearer-token
/// flow when the registry challenges for it (Docker Hub's `GET` with basic credentials, or
/// the OAuth2 exchange of a refresh token).
#[derive(Clone)]
pub struct Client {
    base: String,
    auth: Option<(String, String)>,
    refresh: Option<String>,
    token: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    http: reqwest::Client,
}

impl Client {
    /// A client for `base`, anonymous or with basic credentials.
    pub fn new(base: &str, auth: Option<(String, String)>) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            auth,
            refresh: None,
            token: Default::default(),
            http: reqwest::Client::new(),
        }
    }

    /// This client, getting its bearer tokens by the OAuth2 exchange of `refresh_token`.
    pub fn with_refresh_token(mut self, refresh_token: &str) -> Client {
        self.refresh = Some(refresh_token.to_string());
        self
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let url = if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            url.to_string()
        };
        let builder = self.http.request(method, url);
        if let Some(token) = self.token.lock().unwrap().clone() {
            return builder.bearer_auth(token);
        }
        match &self.auth {
            Some((user, pass)) => builder.basic_auth(user, Some(pass)),
            None => builder,
        }
    }

    /// Sends a request; on a bearer challenge, gets a token from its realm and sends the
    /// request again.
    async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        prepare: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let response = prepare(self.request(method.clone(), url)).send().await?;
        if response.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let Some(realm) = bearer_param(&response, "realm") else {
            return Ok(response);
        };
        let token_request = match &self.refresh {
            Some(refresh) => {
                let mut form = vec![
                    ("grant_type", "refresh_token".to_string()),
                    ("refresh_token", refresh.clone()),
                    ("client_id", "standin".to_string()),
                ];
                for name in ["service", "scope"] {
                    if let Some(value) = bearer_param(&response, name) {
                        form.push((name, value));
                    }
                }
                self.http.post(realm).form(&form)
            }
            None => match &self.auth {
                Some((user, pass)) => self.http.get(realm).basic_auth(user, Some(pass)),
                None => self.http.get(realm),
            },
        };
        let issued: Value = token_request
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let token = issued["token"]
            .as_str()
            .or(issued["access_token"].as_str())
            .context("the token endpoint gave no token")?;
        *self.token.lock().unwrap() = Some(token.to_string());
        Ok(prepare(self.request(method, url)).send().await?)
    }

    /// Uploads a blob (monolithic upload) unless the registry has it; returns its digest.
    pub async fn put_blob(&self, repository: &str, bytes: Vec<u8>) -> Result<String> {
        let digest = digest_of(&bytes);
        // Cheap to clone when a token challenge makes the request go twice.
        let bytes = bytes::Bytes::from(bytes);
        let head = self
            .send(
                reqwest::Method::HEAD,
                &format!("/v2/{repository}/blobs/{digest}"),
                |b| b,
            )
            .await?;
        if head.status().is_success() {
            return Ok(digest);
        }
        let start = self
            .send(
                reqwest::Method::POST,
                &format!("/v2/{repository}/blobs/uploads/"),
                |b| b,
            )
            .await?;
        if !start.status().is_success() {
            bail!(
                "starting an upload to {repository}: {} {}",
                start.status(),
                start.text().await.unwrap_or_default()
            );
        }
        let location = start
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .context("upload without Location")?
            .to_string();
        let separator = if location.contains('?') { '&' } else { '?' };
        let finish = self
            .send(
                reqwest::Method::PUT,
                &format!("{location}{separator}digest={digest}"),
                |b| {
                    b.header("content-type", "application/octet-stream")
                        .body(bytes.clone())
                },
            )
            .await?;
        if !finish.status().is_success() {
            bail!(
                "uploading {digest} to {repository}: {} {}",
                finish.status(),
                finish.text().await.unwrap_or_default()
            );
        }
        Ok(digest)
    }

    /// Asks the registry to mount blob `digest` from repository `from` into `repository`;
    /// the status it answered (`201`: mounted; `202`: an upload session instead).
    pub async fn mount(&self, repository: &str, digest: &str, from: &str) -> Result<u16> {
        let response = self
            .send(
                reqwest::Method::POST,
                &format!("/v2/{repository}/blobs/uploads/?mount={digest}&from={from}"),
                |b| b,
            )
            .await?;
        Ok(response.status().as_u16())
    }

    /// Puts a manifest under `reference` (a tag or digest); returns its digest.
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        body: Vec<u8>,
    ) -> Result<String> {
        Ok(self
            .put_manifest_answered(repository, reference, media_type, body)
            .await?
            .0)
    }

    /// [`Client::put_manifest`], with the `OCI-Subject` the registry answered with (an OCI
    /// 1.1 registry's sign that it took the manifest's `subject` into its referrers API).
    pub async fn put_manifest_answered(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        body: Vec<u8>,
    ) -> Result<(String, Option<String>)> {
        let digest = digest_of(&body);
        let body = bytes::Bytes::from(body);
        let response = self
            .send(
                reqwest::Method::PUT,
                &format!("/v2/{repository}/manifests/{reference}"),
                |b| b.header("content-type", media_type).body(body.clone()),
            )
            .await?;
        if !response.status().is_success() {
            bail!(
                "putting manifest {repository}:{reference}: {} {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
        let subject = response
            .headers()
            .get("oci-subject")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok((digest, subject))
    }

    /// Reads a manifest; `None` when the registry says it is not there.
    pub async fn manifest(&self, repository: &str, reference: &str) -> Result<Option<Manifest>> {
        let response = self
            .send(
                reqwest::Method::GET,
                &format!("/v2/{repository}/manifests/{reference}"),
                |b| b.header("accept", MANIFEST_TYPES),
            )
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            bail!(
                "reading manifest {repository}:{reference}: {}",
                response.status()
            );
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let media_type = header("content-type");
        let bytes = response.bytes().await?;
        Ok(Some(Manifest {
            digest: digest_of(&bytes),
            media_type,
            size: bytes.len(),
            json: serde_json::from_slice(&bytes)?,
        }))
    }

    /// The digests the referrers API lists for `digest`; `None` when the registry serves no
    /// referrers API (404).
    pub async fn referrers(&self, repository: &str, digest: &str) -> Result<Option<Vec<String>>> {
        let response = self
            .send(
                reqwest::Method::GET,
                &format!("/v2/{repository}/referrers/{digest}"),
                |b| b,
            )
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            bail!(
                "listing referrers of {repository}@{digest}: {}",
                response.status()
            );
        }
        let index: Value = response.json().await?;
        Ok(Some(
            index["manifests"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d["digest"].as_str().map(str::to_string))
                .collect(),
        ))
    }

    /// Reads a manifest that must exist.
    pub async fn require_manifest(&self, repository: &str, reference: &str) -> Result<Manifest> {
        self.manifest(repository, reference)
            .await?
            .with_context(|| format!("{repository}:{reference} is not in {}", self.base))
    }
}

/// Parameter `name` (`realm`, `service`, `scope`) of a `WWW-Authenticate: Bearer realm="…",…`
/// challenge.
fn bearer_param(response: &reqwest::Response, name: &str) -> Option<String> {
    let challenge = response.headers().get("www-authenticate")?.to_str().ok()?;
    let rest = challenge.strip_prefix("Bearer ")?;
    let key = format!("{name}=\"");
    let start = rest.find(&key)? + key.len();
    let end = rest[start..].find('"')? + start;
    Some(rest[start..end].to_string())
}
