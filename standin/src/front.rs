//! The HTTP front of a registry: forwarding, basic auth, request log, faults, control routes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use futures_util::StreamExt;
use serde::Serialize;

use crate::backend::Backend;
use crate::faults::{Faults, Rule};

/// Decides whether a request's `Authorization` header is acceptable.
pub trait Gate: Send + Sync {
    /// `None` lets `method path` through; `Some` is the response to send instead.
    fn check(&self, method: &str, authorization: Option<&str>, path: &str) -> Option<Response>;

    /// The answer the client gets for `method path`, made from the backend's: a registry
    /// with its own ways changes it here. Unchanged by default.
    fn answer(&self, _method: &str, _path: &str, response: Response) -> Response {
        response
    }

    /// The query `method path?query` is forwarded with: a registry that declines part of a
    /// request (a blob mount it does not allow) changes it here. Unchanged by default.
    fn query(&self, _method: &str, _path: &str, query: Option<String>) -> Option<String> {
        query
    }
}

/// A fixed basic-auth user, as a source registry that needs `registry_auth` has.
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

impl Gate for BasicAuth {
    fn check(&self, _method: &str, authorization: Option<&str>, _path: &str) -> Option<Response> {
        match authorization.and_then(decode_basic) {
            Some((user, pass)) if user == self.username && pass == self.password => None,
            _ => Some(unauthorized("standin")),
        }
    }
}

/// Decodes a `Basic` authorization header into user and password.
pub fn decode_basic(header: &str) -> Option<(String, String)> {
    let encoded = header.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// A 401 with a basic challenge and a distribution error body.
pub fn unauthorized(realm: &str) -> Response {
    let mut response = registry_error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        "authentication required",
    );
    if let Ok(value) = HeaderValue::from_str(&format!("Basic realm=\"{realm}\"")) {
        response.headers_mut().insert("www-authenticate", value);
    }
    response
}

/// A distribution-style error response.
pub fn registry_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"errors": [{"code": code, "message": message, "detail": null}]});
    (status, Json(body)).into_response()
}

/// One request seen by a front.
#[derive(Clone, Debug, Serialize)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub status: u16,
    /// The query string, if any (a blob upload's `digest=`).
    pub query: Option<String>,
    /// Whether the request carried an `Authorization` header.
    pub authorized: bool,
    /// When it was answered, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The bytes of the request's body (what an upload sent).
    pub bytes: u64,
}

/// The shared state of one front.
pub struct Front {
    pub backend: Backend,
    pub faults: Faults,
    pub log: Mutex<Vec<Logged>>,
    pub gate: Option<Box<dyn Gate>>,
    /// Whether the OCI 1.1 referrers API is served (`GET /v2/<name>/referrers/<digest>`,
    /// and `OCI-Subject` in the answer to a manifest push that has a `subject`). Without
    /// it the front answers 404 there, as distribution 2.8 and many registries do, and
    /// clients fall back to the referrers tag schema.
    pub referrers: AtomicBool,
    /// Where blob downloads are sent (`307` to `<base><path>?X-Amz-Signature=…`), as ECR
    /// and Docker Hub send them to signed storage URLs on other hosts.
    pub blob_storage: Mutex<Option<String>>,
    /// Where blob uploads are sent: the `Location` of an upload session begun here, put on
    /// another origin, as a registry whose uploads go to a separate upload service does.
    pub upload_service: Mutex<Option<String>>,
    /// How many tags a page of a tag list holds (100, as Docker Hub's).
    pub tag_page: std::sync::atomic::AtomicUsize,
    /// The `Link` every page of a tag list names instead of its own next page (a registry
    /// whose pages lead in a circle).
    pub tag_link: Mutex<Option<String>>,
}

impl Front {
    /// A front over `backend`, behind `gate` when there is one.
    pub fn new(backend: Backend, gate: Option<Box<dyn Gate>>) -> Arc<Front> {
        Arc::new(Front {
            backend,
            faults: Faults::default(),
            log: Mutex::new(Vec::new()),
            gate,
            referrers: AtomicBool::new(false),
            blob_storage: Mutex::new(None),
            upload_service: Mutex::new(None),
            tag_page: std::sync::atomic::AtomicUsize::new(100),
            tag_link: Mutex::new(None),
        })
    }

    /// Makes every page of a tag list name `link` as its next page (`None`: its own next).
    pub fn link_tag_pages_to(&self, link: Option<String>) {
        *self.tag_link.lock().unwrap() = link;
    }

    /// One page of the tag list `response` holds whole (docker-registry 2.8 ignores `n` and
    /// `last`): the tags in lexical order after `last`, `n` of them (else the front's page
    /// size), with a `Link` to the next page when there is one, as Docker Hub answers.
    async fn tag_page(&self, path: &str, query: Option<&str>, response: Response) -> Response {
        let (mut parts, body) = response.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, 16 << 20).await else {
            return registry_error(StatusCode::BAD_GATEWAY, "UNAVAILABLE", "tag list");
        };
        let Ok(mut list) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            return Response::from_parts(parts, Body::from(bytes));
        };
        let param = |name: &str| {
            query
                .into_iter()
                .flat_map(|q| q.split('&'))
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                .map(str::to_string)
        };
        let n = param("n")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| self.tag_page.load(Ordering::SeqCst));
        let last = param("last");
        let mut tags: Vec<String> = list["tags"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        tags.sort();
        let rest: Vec<String> = tags
            .into_iter()
            .filter(|t| last.as_deref().is_none_or(|last| t.as_str() > last))
            .collect();
        let page: Vec<String> = rest.iter().take(n).cloned().collect();
        let forced = self.tag_link.lock().unwrap().clone();
        if let Some(link) = forced {
            if let Ok(link) = HeaderValue::from_str(&format!("<{link}>; rel=\"next\"")) {
                parts.headers.insert("link", link);
            }
        } else if rest.len() > page.len() {
            if let Some(last) = page.last() {
                let link = format!("<{path}?n={n}&last={last}>; rel=\"next\"");
                if let Ok(link) = HeaderValue::from_str(&link) {
                    parts.headers.insert("link", link);
                }
            }
        }
        list["tags"] = serde_json::json!(page);
        let body = list.to_string();
        parts.headers.remove("content-length");
        Response::from_parts(parts, Body::from(body))
    }

    /// Serves tag lists `n` tags a page from now on.
    pub fn page_tags(&self, n: usize) {
        self.tag_page.store(n.max(1), Ordering::SeqCst);
    }

    /// Sends blob downloads to `base` (another front over the same backend, say) from now
    /// on; `None` serves them here again.
    pub fn redirect_blobs_to(&self, base: Option<String>) {
        *self.blob_storage.lock().unwrap() = base;
    }

    /// Sends blob uploads to `base` (another front over the same backend, say) from now on:
    /// the `Location` of every upload session begun here names it; `None` keeps them here.
    pub fn relocate_uploads_to(&self, base: Option<String>) {
        *self.upload_service.lock().unwrap() = base;
    }

    /// `response` to `method path`, its `Location` moved to the upload service when it begins
    /// an upload session and uploads go elsewhere.
    fn relocated(&self, method: &str, path: &str, mut response: Response) -> Response {
        let base = self.upload_service.lock().unwrap().clone();
        let Some(base) = base else {
            return response;
        };
        if method != "POST"
            || !path.ends_with("/blobs/uploads/")
            || response.status() != StatusCode::ACCEPTED
        {
            return response;
        }
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .filter(|location| location.starts_with('/'))
            .and_then(|location| HeaderValue::from_str(&format!("{base}{location}")).ok());
        if let Some(location) = location {
            response.headers_mut().insert("location", location);
        }
        response
    }

    /// The redirect for a blob download `method path`, when blob downloads go elsewhere.
    fn blob_redirect(&self, method: &str, path: &str) -> Option<Response> {
        let base = self.blob_storage.lock().unwrap().clone()?;
        if method != "GET" || !path.contains("/blobs/") || path.contains("/blobs/uploads") {
            return None;
        }
        let location = format!("{base}{path}?X-Amz-Signature=standin-signed-url-secret");
        let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
        response
            .headers_mut()
            .insert("location", HeaderValue::from_str(&location).ok()?);
        Some(response)
    }

    /// Serves (or stops serving) the referrers API.
    pub fn serve_referrers(&self, on: bool) {
        self.referrers.store(on, Ordering::SeqCst);
    }

    /// The referrers API's answer for `path`, when it names one and the API is served.
    fn referrers_answer(&self, method: &str, path: &str, query: Option<&str>) -> Option<Response> {
        let (repository, digest) = path.strip_prefix("/v2/")?.rsplit_once("/referrers/")?;
        if method != "GET" {
            return None;
        }
        if !self.referrers.load(Ordering::SeqCst) {
            return Some(registry_error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "this registry serves no referrers API",
            ));
        }
        let wanted = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|pair| pair.strip_prefix("artifactType="))
            .map(|t| t.replace("%2B", "+").replace("%2F", "/"));
        let manifests: Vec<serde_json::Value> = self
            .backend
            .referrers(repository, digest)
            .into_iter()
            .filter(|d| wanted.as_deref().is_none_or(|t| d["artifactType"] == t))
            .collect();
        let body = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        });
        let mut response = (
            StatusCode::OK,
            [("content-type", "application/vnd.oci.image.index.v1+json")],
            body.to_string(),
        )
            .into_response();
        if wanted.is_some() {
            response.headers_mut().insert(
                "oci-filters-applied",
                HeaderValue::from_static("artifactType"),
            );
        }
        Some(response)
    }

    fn record(
        &self,
        method: &str,
        path: &str,
        query: Option<String>,
        status: u16,
        authorized: bool,
        bytes: u64,
    ) {
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        self.log.lock().unwrap().push(Logged {
            method: method.to_string(),
            path: path.to_string(),
            query,
            status,
            authorized,
            at_ms,
            bytes,
        });
    }

    /// Forwards one registry request to the backend, applying gate and faults.
    pub async fn forward(&self, request: Request) -> Response {
        let method = request.method().as_str().to_string();
        let path = request.uri().path().to_string();
        let authorized = request.headers().contains_key("authorization");
        let query = request.uri().query().map(str::to_string);
        // The body's bytes are counted as they pass to the backend.
        let sent = Arc::new(AtomicU64::new(0));
        let (parts, body) = request.into_parts();
        let counter = sent.clone();
        let body = Body::from_stream(body.into_data_stream().map(move |chunk| {
            if let Ok(chunk) = &chunk {
                counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
            chunk
        }));
        let request = Request::from_parts(parts, body);
        let response = self.forward_inner(request, &method, &path).await;
        self.record(
            &method,
            &path,
            query,
            response.status().as_u16(),
            authorized,
            sent.load(Ordering::Relaxed),
        );
        response
    }

    async fn forward_inner(&self, request: Request, method: &str, path: &str) -> Response {
        let (mut corrupt, mut truncate, mut without_headers) = (false, false, Vec::new());
        if let Some(fault) = self.faults.take(&format!("registry:{method}:{path}")) {
            corrupt = fault.corrupt;
            truncate = fault.truncate;
            without_headers = fault.without_headers;
            tokio::time::sleep(fault.delay).await;
            if let Some(status) = fault.status {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
                let message = fault
                    .message
                    .unwrap_or_else(|| "injected fault".to_string());
                let code = if status == StatusCode::TOO_MANY_REQUESTS {
                    "TOOMANYREQUESTS"
                } else {
                    "UNKNOWN"
                };
                let mut response = registry_error(status, code, &message);
                if let Some(seconds) = fault.retry_after {
                    response
                        .headers_mut()
                        .insert("retry-after", HeaderValue::from(seconds));
                }
                return answered_early(request, response).await;
            }
        }
        if let Some(gate) = &self.gate {
            let authorization = request
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            if let Some(refusal) = gate.check(method, authorization, path) {
                return answered_early(request, refusal).await;
            }
        }
        if let Some(redirect) = self.blob_redirect(method, path) {
            return redirect;
        }
        let query = request.uri().query().map(str::to_string);
        if let Some(answer) = self.referrers_answer(method, path, query.as_deref()) {
            return answer;
        }
        let (mut parts, body) = request.into_parts();
        parts.headers.remove("authorization");
        if let Some(gate) = &self.gate {
            let forwarded = gate.query(method, path, query.clone());
            if forwarded != query {
                let uri = match forwarded {
                    Some(q) => format!("{path}?{q}"),
                    None => path.to_string(),
                };
                if let Ok(uri) = uri.parse() {
                    parts.uri = uri;
                }
            }
        }
        // A manifest push with a `subject`, to a registry with the referrers API, is answered
        // with `OCI-Subject` (what ECR and other OCI 1.1 registries do).
        let (body, subject) = if method == "PUT"
            && path.contains("/manifests/")
            && self.referrers.load(Ordering::SeqCst)
        {
            match axum::body::to_bytes(body, 16 << 20).await {
                Ok(bytes) => {
                    let subject = serde_json::from_slice::<serde_json::Value>(&bytes)
                        .ok()
                        .and_then(|m| m.pointer("/subject/digest")?.as_str().map(str::to_string));
                    (Body::from(bytes), subject)
                }
                Err(err) => {
                    return registry_error(
                        StatusCode::BAD_REQUEST,
                        "MANIFEST_INVALID",
                        &err.to_string(),
                    )
                }
            }
        } else {
            (body, None)
        };
        let forwarded = self.backend.send(Request::from_parts(parts, body)).await;
        let forwarded = forwarded.map(|mut response| {
            if let (Some(subject), true) = (&subject, response.status().is_success()) {
                if let Ok(value) = HeaderValue::from_str(subject) {
                    response.headers_mut().insert("oci-subject", value);
                }
            }
            for name in &without_headers {
                response.headers_mut().remove(name.as_str());
            }
            response
        });
        let tag_list = method == "GET" && path.ends_with("/tags/list");
        match forwarded {
            Ok(response) if tag_list && response.status().is_success() => {
                self.tag_page(path, query.as_deref(), response.map(Body::new))
                    .await
            }
            Ok(response) if corrupt => corrupted(response.map(Body::new)).await,
            Ok(response) if truncate => truncated(response.map(Body::new)).await,
            Ok(response) => {
                let response = self.relocated(method, path, response.map(Body::new));
                match &self.gate {
                    Some(gate) => gate.answer(method, path, response),
                    None => response,
                }
            }
            Err(err) => registry_error(
                StatusCode::BAD_GATEWAY,
                "UNAVAILABLE",
                &format!("backend registry: {err}"),
            ),
        }
    }
}

/// `response`, sent once `request`'s body was read and dropped, as a registry behind nginx or
/// a load balancer answers a refused upload: a client still sending the body then reads the
/// answer (its status and `Retry-After`) instead of a connection closed under it.
async fn answered_early(request: Request, response: Response) -> Response {
    let _ = axum::body::to_bytes(request.into_body(), usize::MAX).await;
    response
}

/// `response` whose body breaks off after half its bytes (its length header stays), as a
/// connection reset mid-body does.
async fn truncated(response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(err) => {
            return registry_error(StatusCode::BAD_GATEWAY, "UNAVAILABLE", &err.to_string())
        }
    };
    let half = bytes.slice(..bytes.len() / 2);
    let chunks: Vec<std::io::Result<bytes::Bytes>> = vec![
        Ok(half),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected reset",
        )),
    ];
    Response::from_parts(parts, Body::from_stream(futures_util::stream::iter(chunks)))
}

/// `response` with the first byte of its body changed (the length stays).
async fn corrupted(response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let mut bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes.to_vec(),
        Err(err) => {
            return registry_error(StatusCode::BAD_GATEWAY, "UNAVAILABLE", &err.to_string())
        }
    };
    if let Some(first) = bytes.first_mut() {
        *first ^= 0xff;
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Routes every front has: `/v2/...` forwarded, `/_standin/...` for control.
pub fn router(front: Arc<Front>) -> Router {
    Router::new()
        .route("/_standin/faults", post(add_fault).delete(clear_faults))
        .route("/_standin/requests", get(requests).delete(clear_requests))
        .fallback(forward)
        .with_state(front)
}

async fn forward(State(front): State<Arc<Front>>, request: Request) -> Response {
    front.forward(request).await
}

async fn add_fault(State(front): State<Arc<Front>>, Json(rule): Json<Rule>) -> StatusCode {
    front.faults.add(rule);
    StatusCode::NO_CONTENT
}

async fn clear_faults(State(front): State<Arc<Front>>) -> StatusCode {
    front.faults.clear();
    StatusCode::NO_CONTENT
}

async fn requests(State(front): State<Arc<Front>>) -> Json<Vec<Logged>> {
    Json(front.log.lock().unwrap().clone())
}

async fn clear_requests(State(front): State<Arc<Front>>) -> StatusCode {
    front.log.lock().unwrap().clear();
    StatusCode::NO_CONTENT
}

/// Another front over `backend` (behind `gate` when there is one), served on a port of its
/// own: a second registry, a storage host or an upload service over the same images.
pub async fn beside(
    backend: &Backend,
    gate: Option<Box<dyn Gate>>,
) -> Result<(Arc<Front>, SocketAddr)> {
    let front = Front::new(backend.clone(), gate);
    let addr = serve(router(front.clone())).await?;
    Ok((front, addr))
}

/// Serves `router` on `127.0.0.1:0` in the background; returns the bound address. Its
/// connections send each write at once (`TCP_NODELAY`), as registries' do (Go's servers set
/// it on every connection): otherwise an answer whose body follows its headers waits for the
/// client's delayed acknowledgement, 40 ms on Linux, and every client looks slow.
pub async fn serve(router: Router) -> Result<SocketAddr> {
    use axum::serve::ListenerExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(addr)
}
