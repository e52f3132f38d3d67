//! The ECR API emulator: AWS JSON 1.1 operations in front of a real registry.
//!
//! One port serves both the API (`POST /` with `X-Amz-Target`) and the registry (`/v2/...`),
//! which demands basic auth `AWS:<token>` with a token from `GetAuthorizationToken` and knows
//! only repositories made with `CreateRepository`. Control routes:
//! `POST /_standin/ecr/bad-tokens` (`true`/`false`): hand out tokens the registry refuses;
//! `POST /_standin/ecr/expire-tokens` (a number `n`): every token handed out so far stops
//! working after `n` more registry requests pass with one (a token expiring mid-copy);
//! `GET /_standin/ecr/calls`: how often each operation was called.
//!
//! Blob uploads answer as ECR's do (aws/containers-roadmap#2831): a `PATCH` is answered
//! `201 Created` where the distribution spec says `202 Accepted`, and its `Range` header
//! stays at the end of the upload's first `PATCH`. Clients that send a blob in one request
//! (Docker, skopeo, a monolithic `PUT`) do not notice; a client that uploads in chunks and
//! checks the spec's answers fails, as it would against ECR.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::backend::Backend;
use crate::front::{self, decode_basic, registry_error, unauthorized, Front, Gate};

mod api;

/// The account id the emulator answers for.
pub const ACCOUNT: &str = "123456789012";

/// The region the emulator says it is in.
pub const REGION: &str = "eu-west-1";

/// Media types a manifest request accepts.
pub const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

pub(crate) struct Repository {
    pub(crate) created_at: f64,
    pub(crate) tags: TagMutability,
    pub(crate) encryption: Encryption,
}

impl Repository {
    /// A repository made now with `tags` and `encryption`.
    pub(crate) fn new(tags: TagMutability, encryption: Encryption) -> Repository {
        Repository {
            created_at: now(),
            tags,
            encryption,
        }
    }
}

/// A repository's `encryptionConfiguration`: blobs are mounted only between repositories
/// whose encryption is the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encryption {
    /// `AES256`, `KMS` or `KMS_DSSE`.
    pub kind: String,
    /// The KMS key, for `KMS` and `KMS_DSSE` (ECR's AWS-managed key when none was named).
    pub key: Option<String>,
}

impl Default for Encryption {
    /// ECR's default: AES-256 with keys ECR manages.
    fn default() -> Encryption {
        Encryption {
            kind: "AES256".into(),
            key: None,
        }
    }
}

impl Encryption {
    /// Encryption with KMS key `key`.
    pub fn kms(key: &str) -> Encryption {
        Encryption {
            kind: "KMS".into(),
            key: Some(key.to_string()),
        }
    }

    /// Reads `encryptionConfiguration` from an API request; ECR's default when absent.
    pub(crate) fn from_input(input: &Value) -> Result<Encryption, String> {
        let Some(config) = input.get("encryptionConfiguration") else {
            return Ok(Encryption::default());
        };
        let kind = config
            .get("encryptionType")
            .and_then(Value::as_str)
            .unwrap_or("AES256")
            .to_string();
        let key = config.get("kmsKey").and_then(Value::as_str);
        match (kind.as_str(), key) {
            ("AES256", None) => Ok(Encryption { kind, key: None }),
            ("AES256", Some(_)) => {
                Err("kmsKey can be set only with encryptionType KMS or KMS_DSSE".into())
            }
            ("KMS" | "KMS_DSSE", key) => Ok(Encryption {
                key: Some(
                    key.map(str::to_string)
                        .unwrap_or_else(|| format!("arn:aws:kms:{REGION}:{ACCOUNT}:alias/aws/ecr")),
                ),
                kind,
            }),
            (other, _) => Err(format!(
                "Invalid parameter at 'encryptionType' failed to satisfy constraint: '{other}'"
            )),
        }
    }

    pub(crate) fn json(&self) -> Value {
        match &self.key {
            Some(key) => json!({"encryptionType": self.kind, "kmsKey": key}),
            None => json!({"encryptionType": self.kind}),
        }
    }
}

/// A repository creation template: the settings ECR gives the repositories it creates for
/// the scenarios in `applied_for` (`CREATE_ON_PUSH`, `PULL_THROUGH_CACHE`, `REPLICATION`)
/// whose names start with `<prefix>/` (`ROOT`: any other).
#[derive(Clone, Debug)]
pub struct Template {
    pub prefix: String,
    pub applied_for: Vec<String>,
    pub tags: TagMutability,
    pub encryption: Encryption,
    pub description: Option<String>,
    pub created_at: f64,
}

impl Template {
    /// A template for `prefix` that creates repositories on push with ECR's defaults.
    pub fn create_on_push(prefix: &str) -> Template {
        Template {
            prefix: prefix.to_string(),
            applied_for: vec!["CREATE_ON_PUSH".into()],
            tags: TagMutability::default(),
            encryption: Encryption::default(),
            description: None,
            created_at: now(),
        }
    }

    /// Whether the template covers repository `name`.
    fn covers(&self, name: &str) -> bool {
        self.prefix == "ROOT"
            || name
                .strip_prefix(&self.prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    }

    pub(crate) fn json(&self) -> Value {
        let (mutability, filters) = self.tags.json();
        let mut template = json!({
            "prefix": self.prefix,
            "appliedFor": self.applied_for,
            "imageTagMutability": mutability,
            "imageTagMutabilityExclusionFilters": filters,
            "encryptionConfiguration": self.encryption.json(),
            "resourceTags": [],
            "createdAt": self.created_at,
            "updatedAt": self.created_at,
        });
        if let Some(description) = &self.description {
            template["description"] = json!(description);
        }
        template
    }
}

/// A repository's `imageTagMutability` and its exclusion filters (`*` wildcards).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagMutability {
    /// `MUTABLE`, `IMMUTABLE`, `IMMUTABLE_WITH_EXCLUSION` or `MUTABLE_WITH_EXCLUSION`.
    pub setting: String,
    pub exclusions: Vec<String>,
}

impl Default for TagMutability {
    /// ECR's default: every tag mutable.
    fn default() -> TagMutability {
        TagMutability {
            setting: "MUTABLE".into(),
            exclusions: Vec::new(),
        }
    }
}

impl TagMutability {
    /// Every tag immutable.
    pub fn immutable() -> TagMutability {
        TagMutability {
            setting: "IMMUTABLE".into(),
            exclusions: Vec::new(),
        }
    }

    /// Reads the setting from an API request (`imageTagMutability`,
    /// `imageTagMutabilityExclusionFilters`); `MUTABLE` when absent.
    pub(crate) fn from_input(input: &Value) -> Result<TagMutability, String> {
        let setting = input
            .get("imageTagMutability")
            .and_then(Value::as_str)
            .unwrap_or("MUTABLE")
            .to_string();
        let exclusions: Vec<String> = input
            .get("imageTagMutabilityExclusionFilters")
            .and_then(Value::as_array)
            .map(|filters| {
                filters
                    .iter()
                    .filter_map(|f| f.get("filter").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let with_exclusion = setting.ends_with("_WITH_EXCLUSION");
        match setting.as_str() {
            "MUTABLE" | "IMMUTABLE" | "IMMUTABLE_WITH_EXCLUSION" | "MUTABLE_WITH_EXCLUSION" => {}
            other => {
                return Err(format!(
                "Invalid parameter at 'imageTagMutability' failed to satisfy constraint: '{other}'"
            ))
            }
        }
        if with_exclusion == exclusions.is_empty() {
            return Err(format!(
                "imageTagMutabilityExclusionFilters {} with imageTagMutability {setting}",
                if with_exclusion {
                    "are required"
                } else {
                    "cannot be used"
                }
            ));
        }
        Ok(TagMutability {
            setting,
            exclusions,
        })
    }

    /// Whether `tag`, once it exists, cannot be overwritten.
    pub fn protects(&self, tag: &str) -> bool {
        let excluded = self.exclusions.iter().any(|f| wildcard(f, tag));
        match self.setting.as_str() {
            "IMMUTABLE" => true,
            "IMMUTABLE_WITH_EXCLUSION" => !excluded,
            "MUTABLE_WITH_EXCLUSION" => excluded,
            _ => false,
        }
    }

    fn json(&self) -> (Value, Value) {
        let filters = self
            .exclusions
            .iter()
            .map(|f| json!({"filterType": "WILDCARD", "filter": f}))
            .collect();
        (json!(self.setting), Value::Array(filters))
    }
}

/// Whether `text` matches `pattern`, whose `*` stands for any run of characters.
fn wildcard(pattern: &str, text: &str) -> bool {
    wildmatch::WildMatch::new(pattern).matches(text)
}

/// The emulator's state.
pub struct Ecr {
    pub(crate) front: Arc<Front>,
    /// The registry's `host:port` as the API advertises it.
    pub(crate) host: Mutex<String>,
    /// Whether the advertised registry speaks HTTPS.
    pub(crate) secure: AtomicBool,
    pub(crate) repositories: Mutex<BTreeMap<String, Repository>>,
    /// Repository creation templates, by prefix.
    pub(crate) templates: Mutex<BTreeMap<String, Template>>,
    /// Account settings (`BLOB_MOUNTING`, …) that were put; the rest have their defaults.
    pub(crate) settings: Mutex<BTreeMap<String, String>>,
    pub(crate) tokens: Mutex<HashSet<String>>,
    pub(crate) issued: Mutex<Vec<String>>,
    pub(crate) bad_tokens: AtomicBool,
    /// Registry requests the tokens handed out so far still pass, when they are to expire.
    pub(crate) expiry: Mutex<Option<u64>>,
    /// How often tokens expired so.
    pub(crate) expirations: AtomicU64,
    pub(crate) counter: AtomicU64,
    pub(crate) calls: Mutex<BTreeMap<String, u64>>,
    /// The `Range` each upload's first `PATCH` was answered with, by upload path.
    pub(crate) first_ranges: Mutex<BTreeMap<String, axum::http::HeaderValue>>,
}

/// A running emulator.
pub struct EcrEmulator {
    pub state: Arc<Ecr>,
    pub addr: std::net::SocketAddr,
    router: Router,
}

impl EcrEmulator {
    /// Starts an emulator over `backend` on `127.0.0.1:0`.
    pub async fn start(backend: Backend) -> Result<EcrEmulator> {
        let state = Arc::new_cyclic(|weak: &std::sync::Weak<Ecr>| Ecr {
            front: Front::new(
                backend,
                Some(Box::new(TokenGate { ecr: weak.clone() }) as Box<dyn Gate>),
            ),
            host: Mutex::new(String::new()),
            secure: AtomicBool::new(false),
            repositories: Mutex::new(BTreeMap::new()),
            templates: Mutex::new(BTreeMap::new()),
            settings: Mutex::new(BTreeMap::new()),
            tokens: Mutex::new(HashSet::new()),
            issued: Mutex::new(Vec::new()),
            bad_tokens: AtomicBool::new(false),
            expiry: Mutex::new(None),
            expirations: AtomicU64::new(0),
            counter: AtomicU64::new(0),
            calls: Mutex::new(BTreeMap::new()),
            first_ranges: Mutex::new(BTreeMap::new()),
        });
        // ECR serves the OCI 1.1 referrers API.
        state.front.serve_referrers(true);
        let router = Router::new()
            .route("/", post(api::api))
            .route("/_standin/ecr/bad-tokens", post(set_bad_tokens))
            .route("/_standin/ecr/expire-tokens", post(expire_tokens))
            .route("/_standin/ecr/calls", get(calls))
            .with_state(state.clone())
            .merge(front::router(state.front.clone()));
        let addr = front::serve(router.clone()).await?;
        *state.host.lock().unwrap() = addr.to_string();
        Ok(EcrEmulator {
            state,
            addr,
            router,
        })
    }

    /// Serves the API and the registry over HTTPS too, on another port; returns it.
    pub async fn serve_tls(&self, tls: Arc<rustls::ServerConfig>) -> Result<u16> {
        Ok(crate::tls::serve_tls(self.router.clone(), tls)
            .await?
            .port())
    }

    /// Makes the API name `https://{host}` as the registry (repository URIs, the
    /// authorization data's proxy endpoint) from now on.
    pub fn advertise_https(&self, host: &str) {
        *self.state.host.lock().unwrap() = host.to_string();
        self.state.secure.store(true, Ordering::SeqCst);
    }

    /// `http://127.0.0.1:<port>`: both the API endpoint and the registry.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Ecr {
    /// The registry front (faults, request log).
    pub fn front(&self) -> &Arc<Front> {
        &self.front
    }

    /// Creates a repository directly, as a test's set-up would with the AWS CLI.
    pub fn create_repository(&self, name: &str) {
        self.repositories
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_insert_with(|| Repository::new(TagMutability::default(), Encryption::default()));
    }

    /// Creates a repository encrypted with `encryption`, as `aws ecr create-repository
    /// --encryption-configuration …` would.
    pub fn create_encrypted_repository(&self, name: &str, encryption: Encryption) {
        self.repositories.lock().unwrap().insert(
            name.to_string(),
            Repository::new(TagMutability::default(), encryption),
        );
    }

    /// Adds (or replaces) a repository creation template, as `aws ecr
    /// create-repository-creation-template` would.
    pub fn put_template(&self, template: Template) {
        self.templates
            .lock()
            .unwrap()
            .insert(template.prefix.clone(), template);
    }

    /// Sets an account setting, as `aws ecr put-account-setting` would
    /// (`BLOB_MOUNTING`: `ENABLED` or `DISABLED`).
    pub fn put_account_setting(&self, name: &str, value: &str) {
        self.settings
            .lock()
            .unwrap()
            .insert(name.to_string(), value.to_string());
    }

    /// An account setting's value: what was put, else ECR's default.
    pub(crate) fn account_setting(&self, name: &str) -> Option<String> {
        if let Some(value) = self.settings.lock().unwrap().get(name) {
            return Some(value.clone());
        }
        match name {
            "BLOB_MOUNTING" => Some("DISABLED".into()),
            "BASIC_SCAN_TYPE_VERSION" => Some("AWS_NATIVE".into()),
            "REGISTRY_POLICY_SCOPE" => Some("V2".into()),
            _ => None,
        }
    }

    /// The template ECR creates repository `name` from when an image is pushed to it: of the
    /// templates applied for `CREATE_ON_PUSH`, the one with the longest prefix `name` starts
    /// with, else `ROOT`.
    pub fn push_template(&self, name: &str) -> Option<Template> {
        let templates = self.templates.lock().unwrap();
        let applies = |t: &&Template| t.applied_for.iter().any(|a| a == "CREATE_ON_PUSH");
        let by_prefix = templates
            .values()
            .filter(applies)
            .filter(|t| t.prefix != "ROOT" && t.covers(name))
            .max_by_key(|t| t.prefix.len());
        by_prefix
            .or_else(|| templates.get("ROOT").filter(|t| applies(t)))
            .cloned()
    }

    /// Creates repository `name` from its push template, as ECR does on the first push to
    /// a missing repository; whether it exists now.
    fn create_on_push(&self, name: &str) -> bool {
        let Some(template) = self.push_template(name) else {
            return false;
        };
        self.repositories
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_insert_with(|| Repository::new(template.tags, template.encryption));
        *self
            .calls
            .lock()
            .unwrap()
            .entry("CreateRepository (on push)".into())
            .or_default() += 1;
        true
    }

    /// The tag mutability of repository `name`, when it exists.
    pub fn tag_mutability(&self, name: &str) -> Option<TagMutability> {
        self.repositories
            .lock()
            .unwrap()
            .get(name)
            .map(|r| r.tags.clone())
    }

    /// The encryption of repository `name`, when it exists.
    pub fn encryption(&self, name: &str) -> Option<Encryption> {
        self.repositories
            .lock()
            .unwrap()
            .get(name)
            .map(|r| r.encryption.clone())
    }

    /// Whether ECR mounts blob `digest` from repository `from` into `into`: blob mounting is
    /// enabled for the registry, both repositories use the same encryption, and an image in
    /// `from` references the blob.
    fn mounts(&self, into: &str, from: &str, digest: &str) -> bool {
        if self.account_setting("BLOB_MOUNTING").as_deref() != Some("ENABLED") {
            return false;
        }
        let same_encryption = matches!(
            (self.encryption(into), self.encryption(from)),
            (Some(a), Some(b)) if a == b
        );
        same_encryption && self.front.backend.referenced(from, digest)
    }

    /// Sets a repository's tag mutability, as `aws ecr put-image-tag-mutability` would.
    pub fn set_tag_mutability(&self, name: &str, tags: TagMutability) {
        if let Some(repository) = self.repositories.lock().unwrap().get_mut(name) {
            repository.tags = tags;
        }
    }

    /// A fresh registry password, valid until the emulator stops.
    pub fn issue_token(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let password = format!("ecr-{nanos:x}-{n}");
        if !self.bad_tokens.load(Ordering::SeqCst) {
            self.tokens.lock().unwrap().insert(password.clone());
        }
        self.issued.lock().unwrap().push(password.clone());
        password
    }

    /// Every registry password handed out so far (to prove none leaks).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.issued.lock().unwrap().clone()
    }

    /// How often each API operation was called.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.calls.lock().unwrap().clone()
    }

    /// Makes the registry refuse every token handed out from now on (a wrong password).
    pub fn set_bad_tokens(&self, bad: bool) {
        self.bad_tokens.store(bad, Ordering::SeqCst);
    }

    /// Makes every token handed out so far stop working once `requests` more registry
    /// requests have passed with one, as a token that expires (or is revoked) mid-copy.
    /// Tokens handed out later work.
    pub fn expire_tokens_after(&self, requests: u64) {
        *self.expiry.lock().unwrap() = Some(requests);
    }

    /// How often tokens expired (see [`Ecr::expire_tokens_after`]).
    pub fn expirations(&self) -> u64 {
        self.expirations.load(Ordering::SeqCst)
    }

    /// Counts one request that passed with a token; `true` when it is the one the tokens
    /// expire at (they are then dropped, and the request refused).
    fn expires_now(&self) -> bool {
        let mut expiry = self.expiry.lock().unwrap();
        match *expiry {
            Some(0) => {
                *expiry = None;
                self.tokens.lock().unwrap().clear();
                self.expirations.fetch_add(1, Ordering::SeqCst);
                true
            }
            Some(n) => {
                *expiry = Some(n - 1);
                false
            }
            None => false,
        }
    }

    /// Removes a tag as `aws ecr batch-delete-image` would (outside Terraform).
    pub async fn delete_tag(&self, repository: &str, tag: &str) -> Result<()> {
        let input = json!({"repositoryName": repository, "imageIds": [{"imageTag": tag}]});
        let response = api::batch_delete_image(self, &input).await?;
        anyhow::ensure!(response.status().is_success(), "untag failed");
        Ok(())
    }

    /// Deletes the manifest `digest` (and its tags), as `aws ecr batch-delete-image
    /// --image-ids imageDigest=…` would (outside Terraform).
    pub async fn delete_manifest(&self, repository: &str, digest: &str) -> Result<()> {
        let input = json!({"repositoryName": repository, "imageIds": [{"imageDigest": digest}]});
        let response = api::batch_delete_image(self, &input).await?;
        anyhow::ensure!(response.status().is_success(), "delete failed");
        Ok(())
    }

    /// The digest `repository:tag` names now, if any.
    pub fn tag_digest(&self, repository: &str, tag: &str) -> Option<String> {
        api::tags(self, repository).get(tag).cloned()
    }

    /// Every tag of `repository` with the digest it names.
    pub fn tags(&self, repository: &str) -> BTreeMap<String, String> {
        api::tags(self, repository)
    }

    /// Whether ECR's registry holds the blob `digest` in `repository`.
    pub async fn has_blob(&self, repository: &str, digest: &str) -> bool {
        self.front
            .backend
            .has_blob(repository, digest)
            .await
            .unwrap_or(false)
    }

    /// ECR's answer to a manifest `PUT` by tag over an existing immutable tag.
    fn refuse_overwrite(&self, method: &str, path: &str, repository: &str) -> Option<Response> {
        let tag = path.rsplit_once("/manifests/")?.1;
        if method != "PUT" || tag.contains(':') {
            return None;
        }
        let protected = self
            .repositories
            .lock()
            .unwrap()
            .get(repository)
            .is_some_and(|r| r.tags.protects(tag));
        if !protected || !api::tags(self, repository).contains_key(tag) {
            return None;
        }
        Some(registry_error(
            StatusCode::BAD_REQUEST,
            "TAG_INVALID",
            &format!("The image tag '{tag}' already exists in the '{repository}' repository and cannot be overwritten because the repository is immutable."),
        ))
    }

    pub(crate) fn has_repository(&self, name: &str) -> bool {
        self.repositories.lock().unwrap().contains_key(name)
    }

    pub(crate) fn repository_json(&self, name: &str, repo: &Repository) -> Value {
        let host = self.host.lock().unwrap().clone();
        let (mutability, filters) = repo.tags.json();
        json!({
            "repositoryArn": format!("arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{name}"),
            "registryId": ACCOUNT,
            "repositoryName": name,
            "repositoryUri": format!("{host}/{name}"),
            "createdAt": repo.created_at,
            "imageTagMutability": mutability,
            "imageTagMutabilityExclusionFilters": filters,
            "encryptionConfiguration": repo.encryption.json(),
        })
    }
}

/// The registry's gate: `AWS:<token>`, an existing repository, and no push to an existing
/// immutable tag (ECR refuses one even with the manifest the tag names).
struct TokenGate {
    ecr: std::sync::Weak<Ecr>,
}

impl Gate for TokenGate {
    fn check(&self, method: &str, authorization: Option<&str>, path: &str) -> Option<Response> {
        let ecr = self.ecr.upgrade()?;
        let realm = format!("https://{}/", ecr.host.lock().unwrap());
        match authorization.and_then(decode_basic) {
            Some((user, pass)) if user == "AWS" && ecr.tokens.lock().unwrap().contains(&pass) => {}
            _ => return Some(unauthorized(&realm)),
        }
        if ecr.expires_now() {
            return Some(unauthorized(&realm));
        }
        let repository = repository_of(path)?;
        // The first upload or manifest push to a missing repository creates it, when a
        // creation template applies for CREATE_ON_PUSH.
        let push = (method == "POST" && path.ends_with("/blobs/uploads/"))
            || (method == "PUT" && path.contains("/manifests/"));
        if ecr.has_repository(&repository) || (push && ecr.create_on_push(&repository)) {
            return ecr.refuse_overwrite(method, path, &repository);
        }
        Some(registry_error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            &format!(
                "The repository with name '{repository}' does not exist in the registry with id '{ACCOUNT}'"
            ),
        ))
    }

    /// A mount (`POST …/blobs/uploads/?mount=<digest>&from=<repository>`) ECR does not allow
    /// becomes a plain upload request, answered with an upload session, as ECR answers it.
    fn query(&self, method: &str, path: &str, query: Option<String>) -> Option<String> {
        let (Some(ecr), Some(into), Some(text)) =
            (self.ecr.upgrade(), repository_of(path), query.as_deref())
        else {
            return query;
        };
        if method != "POST" || !path.ends_with("/blobs/uploads/") {
            return query;
        }
        let value = |name: &str| {
            text.split('&')
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                .map(|v| {
                    v.replace("%3A", ":")
                        .replace("%3a", ":")
                        .replace("%2F", "/")
                })
        };
        let (Some(digest), Some(from)) = (value("mount"), value("from")) else {
            return query;
        };
        if ecr.mounts(&into, &from, &digest) {
            return query;
        }
        let rest: Vec<&str> = text
            .split('&')
            .filter(|pair| !pair.starts_with("mount=") && !pair.starts_with("from="))
            .collect();
        (!rest.is_empty()).then(|| rest.join("&"))
    }

    fn answer(&self, method: &str, path: &str, mut response: Response) -> Response {
        if method != "PATCH" || response.status() != StatusCode::ACCEPTED {
            return response;
        }
        *response.status_mut() = StatusCode::CREATED;
        if let (Some(ecr), Some(range)) = (self.ecr.upgrade(), response.headers().get("range")) {
            let first = ecr
                .first_ranges
                .lock()
                .unwrap()
                .entry(path.to_string())
                .or_insert_with(|| range.clone())
                .clone();
            response.headers_mut().insert("range", first);
        }
        response
    }
}

/// The repository named by a `/v2/<name>/(manifests|blobs|tags)/...` path.
pub fn repository_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v2/")?;
    ["/manifests/", "/blobs/", "/tags/"]
        .iter()
        .filter_map(|marker| rest.rfind(marker).map(|i| rest[..i].to_string()))
        .max_by_key(|name| name.len())
}

pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

async fn set_bad_tokens(State(ecr): State<Arc<Ecr>>, Json(bad): Json<bool>) -> StatusCode {
    ecr.set_bad_tokens(bad);
    StatusCode::NO_CONTENT
}

async fn expire_tokens(State(ecr): State<Arc<Ecr>>, Json(requests): Json<u64>) -> StatusCode {
    ecr.expire_tokens_after(requests);
    StatusCode::NO_CONTENT
}

async fn calls(State(ecr): State<Arc<Ecr>>) -> Json<BTreeMap<String, u64>> {
    Json(ecr.calls())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_mutability_reads_ecr_input_and_matches_wildcards() {
        let input = json!({"imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
            "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD", "filter": "dev-*"}]});
        let tags = TagMutability::from_input(&input).unwrap();
        assert!(!tags.protects("dev-1"));
        assert!(tags.protects("1.0"));
        assert!(!TagMutability::from_input(&json!({})).unwrap().protects("x"));
        assert!(TagMutability::from_input(
            &json!({"imageTagMutability": "IMMUTABLE_WITH_EXCLUSION"})
        )
        .is_err());
        assert!(TagMutability::from_input(&json!({"imageTagMutability": "SOMETIMES"})).is_err());
        assert!(wildcard("a*b*c", "axxbyyc"));
        assert!(!wildcard("a*b", "axxc"));
    }

    #[test]
    fn repository_of_handles_nested_names() {
        assert_eq!(
            repository_of("/v2/team/app/manifests/1.0").as_deref(),
            Some("team/app")
        );
        assert_eq!(
            repository_of("/v2/app/blobs/uploads/").as_deref(),
            Some("app")
        );
        assert_eq!(repository_of("/v2/").as_deref(), None);
    }
}
