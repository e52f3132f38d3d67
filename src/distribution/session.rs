//! Requests to one repository of a registry, made by the provider itself (reqwest), so that
//! every answer is read whole: its status, its error codes, its `Retry-After`, and where it
//! redirects. A [`Session`] is one repository asked with one set of credentials, for pulling
//! or for pushing.
//!
//! - Authentication follows the registry's challenge. The first request goes without
//!   credentials. A `401` with `WWW-Authenticate: Bearer realm=…` gets a token from the
//!   realm (the credentials go there, and only over HTTPS or on this machine); one with
//!   `Basic` has the credentials sent with every later request. A `401` later on (a token
//!   that expired) gets one fresh token and one more try.
//! - Nothing goes over plain HTTP to another machine, redirects included; reqwest drops
//!   `Authorization` when a redirect changes host, port or scheme (registries redirect blob
//!   downloads to signed storage URLs).
//! - A [`Failure`] says whether another try may succeed, and when the registry asked for it
//!   (`Retry-After`, capped at [`LONGEST_WAIT`]).

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use oci_client::secrets::RegistryAuth;
use oci_client::Reference;
use reqwest::{header, Method, RequestBuilder, Response, StatusCode, Url};

use super::{backoff, is_loopback, with_retries, Answer, ATTEMPTS};
use crate::error::{chain, without_queries, Error};

/// The longest wait a `Retry-After` may ask for; the resource's `timeouts` bound the whole
/// mirror in any case.
pub const LONGEST_WAIT: Duration = Duration::from_secs(60);
/// How many redirects a request follows.
const REDIRECTS: usize = 10;
/// The largest manifest or image config read: what the distribution spec asks registries
/// to take at least.
pub const DOCUMENT_LIMIT: usize = 4 << 20;
/// How much of an error answer's body a diagnostic quotes.
const QUOTED: usize = 300;

/// Whether a request may go to `url`: over HTTPS, or over plain HTTP on this machine (as a
/// Docker engine speaks to a loopback registry).
pub fn allowed(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => url.host_str().is_some_and(is_loopback),
        _ => false,
    }
}

/// A redirect, token realm or upload location that would have the provider speak plain HTTP
/// to another machine.
#[derive(Debug)]
struct PlainHttp(String);

impl std::fmt::Display for PlainHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlainHttp {}

/// An HTTP client for registries: redirects are followed only where [`allowed`], at most
/// [`REDIRECTS`] of them; `read_timeout` bounds each wait for the registry.
pub fn client(read_timeout: Option<Duration>) -> reqwest::Client {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= REDIRECTS {
            attempt.error(format!("more than {REDIRECTS} redirects"))
        } else if !allowed(attempt.url()) {
            let origin = crate::network::origin(attempt.url().as_str());
            attempt.error(PlainHttp(format!(
                "the registry redirected the request to {origin}, over plain HTTP; the provider follows redirects over HTTPS only"
            )))
        } else {
            attempt.follow()
        }
    });
    let builder = reqwest::Client::builder()
        .user_agent(concat!(
            "terraform-provider-ecrmirror/",
            env!("CARGO_PKG_VERSION")
        ))
        .redirect(policy)
        .connect_timeout(Duration::from_secs(30));
    match read_timeout {
        Some(timeout) => builder.read_timeout(timeout),
        None => builder,
    }
    .build()
    .unwrap_or_default()
}

/// How long `Retry-After` in `headers` asks to wait (seconds or an HTTP date), capped.
pub fn retry_after(headers: &header::HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    };
    Some(wait.min(LONGEST_WAIT))
}

/// What a `401` asks for in its `WWW-Authenticate` headers.
#[derive(Debug, PartialEq, Eq)]
pub enum Challenge {
    /// A token from `realm`, for `service` when it names one (a bearer challenge is met
    /// before a basic one).
    Bearer {
        realm: String,
        service: Option<String>,
    },
    /// The credentials themselves, with every request.
    Basic,
    /// Nothing the provider can meet: no challenge it knows, or a bearer one without a realm.
    Unmet,
}

/// The challenge in `headers` (every `WWW-Authenticate` header, each of which may hold
/// several challenges).
pub fn challenge(headers: &header::HeaderMap) -> Challenge {
    let header = headers
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    let challenges = http_auth::parse_challenges(&header).unwrap_or_default();
    let param = |challenge: &http_auth::ChallengeRef<'_>, name: &str| {
        challenge
            .params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.to_unescaped())
    };
    if let Some(bearer) = challenges
        .iter()
        .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))
    {
        return match param(bearer, "realm") {
            Some(realm) => Challenge::Bearer {
                realm,
                service: param(bearer, "service"),
            },
            None => Challenge::Unmet,
        };
    }
    if challenges
        .iter()
        .any(|c| c.scheme.eq_ignore_ascii_case("basic"))
    {
        Challenge::Basic
    } else {
        Challenge::Unmet
    }
}

/// Which side of a copy a session speaks to: it names the service in network errors, and
/// which errors its failures become.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The registry `docker_source` names.
    Source,
    /// ECR's registry.
    Target,
}

/// What a session may do: the token scope it asks a bearer realm for.
#[derive(Clone, Copy, Debug)]
pub enum Access {
    Pull,
    Push,
}

/// What a request failed on.
#[derive(Debug)]
pub enum Kind {
    /// No answer: the network error the provider explains, when it is one.
    Unanswered {
        network: Option<Box<Error>>,
        retry: bool,
    },
    /// The registry answered with this status.
    Answered(Answer),
    /// The registry would have the provider speak plain HTTP to another machine.
    PlainHttp,
    /// The bytes do not match the digest they were asked by.
    Corrupt { digest: String },
    /// An answer the provider cannot use (too large, not what the protocol says).
    Unusable,
    /// ECR's registry would have its credentials go to another host.
    Misdirected,
}

/// A request that failed: what happened, whether another try may succeed, and when.
#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    /// What failed, for the diagnostic: the request and the answer, no query strings.
    pub cause: String,
    /// The wait the registry asked for (`Retry-After`).
    pub wait: Option<Duration>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.cause)
    }
}

impl Failure {
    /// A failure of `kind` for which the registry asked no wait.
    fn new(kind: Kind, cause: String) -> Failure {
        Failure {
            kind,
            cause,
            wait: None,
        }
    }

    /// Whether another try may succeed: no answer, throttling, a server error, damaged bytes.
    pub fn transient(&self) -> bool {
        match &self.kind {
            Kind::Unanswered { retry, .. } => *retry,
            Kind::PlainHttp => false,
            Kind::Answered(answer) => matches!(answer, Answer::Throttled | Answer::ServerError),
            Kind::Corrupt { .. } => true,
            Kind::Unusable | Kind::Misdirected => false,
        }
    }

    /// What the registry answered (`Other` when it did not).
    pub fn answer(&self) -> Answer {
        match self.kind {
            Kind::Answered(answer) => answer,
            _ => Answer::Other,
        }
    }

    /// The wait before try `attempt + 1`, when there is to be one.
    pub fn again(&self, attempt: u32) -> Option<Duration> {
        (self.transient() && attempt < ATTEMPTS)
            .then(|| self.wait.unwrap_or_else(|| backoff(attempt)))
    }

    /// The provider's error for this failure of a request about `reference` in `session`.
    pub fn error(self, session: &Session<'_>, reference: &str) -> Error {
        let reference = reference.to_string();
        let cause = self.cause;
        let answer = match self.kind {
            Kind::Unanswered {
                network: Some(network),
                ..
            } => return *network,
            Kind::Corrupt { digest } => {
                return Error::Corrupt {
                    reference,
                    digest,
                    cause,
                }
            }
            Kind::PlainHttp => return Error::PlainHttp { reference, cause },
            Kind::Misdirected => {
                return Error::Misdirected {
                    host: session.reference.registry().to_string(),
                    cause,
                }
            }
            Kind::Answered(answer) => answer,
            Kind::Unanswered { .. } | Kind::Unusable => Answer::Other,
        };
        match (session.role, answer) {
            (Role::Source, Answer::Throttled) => Error::RateLimited { reference, cause },
            (Role::Source, Answer::NotFound) => Error::SourceNotFound { reference, cause },
            (Role::Source, Answer::Denied(_)) => Error::SourceDenied {
                reference,
                cause,
                with_credentials: !matches!(session.auth, RegistryAuth::Anonymous),
            },
            (Role::Source, _) => Error::Source { reference, cause },
            (Role::Target, Answer::Denied(status)) => Error::TargetDenied {
                host: session.reference.registry().to_string(),
                cause: format!(
                    "The registry answered {} to the push credentials: {cause}",
                    status.unwrap_or(401)
                ),
            },
            (Role::Target, Answer::TagInvalid) => Error::TagRefused {
                target: reference,
                cause,
            },
            (Role::Target, _) => Error::Push {
                target: reference,
                cause,
            },
        }
    }
}

/// The `Authorization` a session's requests carry now.
#[derive(Clone)]
enum Scheme {
    None,
    Basic,
    Bearer(String),
}

/// What a manifest request answered.
pub struct Document {
    pub body: Bytes,
    pub digest: String,
}

/// One repository of a registry, asked with one set of credentials.
pub struct Session<'a> {
    http: &'a reqwest::Client,
    uploads: &'a reqwest::Client,
    pub reference: Reference,
    /// The credentials requests carry (or the token realm gets).
    pub auth: RegistryAuth,
    access: Access,
    role: Role,
    /// The scheme requests carry, and how often it was renewed (requests that failed with
    /// an older one try again without asking the realm once more).
    authorization: tokio::sync::Mutex<(u64, Scheme)>,
}

impl<'a> Session<'a> {
    /// A session with `reference`'s repository; `uploads` takes blob uploads (no read timeout:
    /// reqwest counts the time a body takes to send against it).
    pub fn new(
        http: &'a reqwest::Client,
        uploads: &'a reqwest::Client,
        reference: Reference,
        auth: RegistryAuth,
        access: Access,
        role: Role,
    ) -> Session<'a> {
        let scheme = match &auth {
            RegistryAuth::Bearer(token) => Scheme::Bearer(token.clone()),
            _ => Scheme::None,
        };
        Session {
            http,
            uploads,
            reference,
            auth,
            access,
            role,
            authorization: tokio::sync::Mutex::new((0, scheme)),
        }
    }

    /// The service this session speaks to, as network errors name it.
    fn service(&self) -> (&'static str, Option<&'static str>) {
        match self.role {
            Role::Source => ("the source registry", Some("docker_source")),
            Role::Target => ("ECR's registry", None),
        }
    }

    /// The URL of `path` in this repository (`manifests/…`, `blobs/…`).
    fn url(&self, path: &str) -> String {
        format!("{}/{}/{path}", self.base(), self.reference.repository())
    }

    /// `scheme://registry/v2`.
    fn base(&self) -> String {
        let registry = self.reference.resolve_registry();
        let scheme = if is_loopback(registry) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{registry}/v2")
    }

    /// Whether `url` is on this session's registry (same scheme, host and port): the only
    /// place its credentials, or a token bought with them, are sent.
    fn on_registry(&self, url: &Url) -> bool {
        Url::parse(&self.base()).is_ok_and(|base| base.origin() == url.origin())
    }

    fn authorize(&self, request: RequestBuilder, scheme: &Scheme) -> RequestBuilder {
        match (scheme, &self.auth) {
            (Scheme::Bearer(token), _) => request.bearer_auth(token),
            (Scheme::Basic, RegistryAuth::Basic(username, password)) => {
                request.basic_auth(username, Some(password))
            }
            _ => request,
        }
    }

    /// The failure of `method url`, which got no answer (or a redirect refused).
    fn unanswered(&self, method: &Method, url: &str, err: reqwest::Error) -> Failure {
        let (service, attribute) = self.service();
        let network = crate::network::network_error(service, url, attribute, &err)
            .or_else(|| {
                err.is_timeout()
                    .then(|| crate::network::timed_out(service, url, attribute))
            })
            .map(Box::new);
        let retry = !err.is_redirect() && !err.is_builder();
        let mut source = std::error::Error::source(&err);
        let mut plain = false;
        while let Some(inner) = source {
            plain |= inner.is::<PlainHttp>();
            source = inner.source();
        }
        let cause = without_queries(&chain(&err.without_url()));
        let kind = if plain {
            Kind::PlainHttp
        } else {
            Kind::Unanswered { network, retry }
        };
        Failure::new(kind, format!("{method} {}: {cause}", without_queries(url)))
    }

    /// The failure for `response` to `method`, which is not a success.
    async fn refused(method: &Method, response: Response) -> Failure {
        let status = response.status();
        let wait = retry_after(response.headers());
        let url = without_queries(response.url().as_str());
        let body = read(response, 64 << 10).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        let envelope = serde_json::from_slice::<oci_client::errors::OciEnvelope>(&body).ok();
        let answer = envelope
            .as_ref()
            .map(Answer::of_envelope)
            .filter(|answer| *answer != Answer::Other)
            .unwrap_or_else(|| Answer::of_status(status.as_u16()));
        let said = match &envelope {
            Some(envelope) => envelope
                .errors
                .iter()
                .map(|e| {
                    let code = serde_json::to_value(&e.code).unwrap_or_default();
                    format!("{}: {}", code.as_str().unwrap_or("?"), e.message)
                })
                .collect::<Vec<_>>()
                .join("; "),
            None => text.trim().chars().take(QUOTED).collect(),
        };
        let mut cause = format!("The registry answered {status} to {method} {url}");
        if !said.is_empty() {
            cause.push_str(&format!(" ({})", without_queries(&said)));
        }
        Failure {
            kind: Kind::Answered(answer),
            cause,
            wait,
        }
    }

    /// `method url` with what `build` adds, sent (again with a fresh token after a `401`,
    /// once). Whatever the registry answers comes back, a `401` it keeps to included.
    async fn send(
        &self,
        method: Method,
        url: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, Failure> {
        let mut renewed = false;
        loop {
            let (generation, scheme) = self.authorization.lock().await.clone();
            let request = build(self.http.request(method.clone(), url));
            let response = self
                .authorize(request, &scheme)
                .send()
                .await
                .map_err(|err| self.unanswered(&method, url, err))?;
            if response.status() == StatusCode::UNAUTHORIZED
                && !renewed
                && self.renew(generation, &response).await?
            {
                renewed = true;
                continue;
            }
            return Ok(response);
        }
    }

    /// `method url`, an answer in `success` expected.
    async fn expect(
        &self,
        method: Method,
        url: &str,
        success: &[StatusCode],
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, Failure> {
        let response = self.send(method.clone(), url, build).await?;
        if success.contains(&response.status()) {
            Ok(response)
        } else {
            Err(Session::refused(&method, response).await)
        }
    }

    /// Meets the challenge in `response` (a `401` to a request that carried the scheme of
    /// `generation`); whether the request is worth sending again.
    async fn renew(&self, generation: u64, response: &Response) -> Result<bool, Failure> {
        let mut state = self.authorization.lock().await;
        if state.0 != generation {
            // Another request met the challenge meanwhile.
            return Ok(true);
        }
        let scheme = match (challenge(response.headers()), &self.auth) {
            (Challenge::Bearer { realm, service }, _) => {
                Scheme::Bearer(self.token(&realm, service.as_deref()).await?)
            }
            (Challenge::Basic, RegistryAuth::Basic(..)) if !matches!(state.1, Scheme::Basic) => {
                Scheme::Basic
            }
            _ => return Ok(false),
        };
        *state = (generation + 1, scheme);
        Ok(true)
    }

    /// A bearer token from `realm` for this session's repository and access.
    async fn token(&self, realm: &str, service: Option<&str>) -> Result<String, Failure> {
        let mut url = Url::parse(realm).map_err(|err| {
            Failure::new(
                Kind::Unusable,
                format!("The registry names the token realm {realm:?}, which is not a URL: {err}"),
            )
        })?;
        if !allowed(&url) {
            return Err(Failure::new(Kind::PlainHttp, format!(
                "The registry names its token service at {}, over plain HTTP; the provider sends credentials over HTTPS only",
                crate::network::origin(realm)
            )));
        }
        if self.role == Role::Target && !self.on_registry(&url) {
            return Err(Failure::new(
                Kind::Misdirected,
                format!(
                    "Its 401 names a token service at {}, not on the registry's own origin, {}.",
                    crate::network::origin(realm),
                    crate::network::origin(&self.base())
                ),
            ));
        }
        let actions = match self.access {
            Access::Pull => "pull",
            Access::Push => "pull,push",
        };
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            let scope = format!("repository:{}:{actions}", self.reference.repository());
            query.append_pair("scope", &scope);
        }
        let mut request = self.http.get(url.clone());
        if let RegistryAuth::Basic(username, password) = &self.auth {
            request = request.basic_auth(username, Some(password));
        }
        let response = request
            .send()
            .await
            .map_err(|err| self.unanswered(&Method::GET, url.as_str(), err))?;
        if !response.status().is_success() {
            return Err(Session::refused(&Method::GET, response).await);
        }
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let origin = crate::network::origin(realm);
        let body = read(response, 1 << 20).await?;
        serde_json::from_slice::<Token>(&body)
            .ok()
            .and_then(|t| t.token.or(t.access_token))
            .ok_or_else(|| {
                Failure::new(
                    Kind::Unusable,
                    format!("The token realm {origin} answered without a token"),
                )
            })
    }

    /// Meets the registry's challenge for this session's access, before the requests that
    /// follow (so that several at once do not each meet it).
    pub async fn authorise(&self) -> Result<(), Failure> {
        let url = format!("{}/", self.base());
        self.expect(Method::GET, &url, &[StatusCode::OK], |r| r)
            .await
            .map(|_| ())
    }

    /// The manifest `reference` names in this repository (a tag or a digest), checked against
    /// the digest it was asked by.
    pub async fn manifest(&self, reference: &str) -> Result<Document, Failure> {
        let url = self.url(&format!("manifests/{reference}"));
        let accept = crate::manifest::ACCEPTED.join(", ");
        let response = self
            .expect(Method::GET, &url, &[StatusCode::OK], |r| {
                r.header(header::ACCEPT, &accept)
            })
            .await?;
        let body = read(response, DOCUMENT_LIMIT).await?;
        let digest = if reference.contains(':') {
            check(&body, reference)?;
            reference.to_string()
        } else {
            crate::manifest::digest_of(&body)
        };
        Ok(Document { body, digest })
    }

    /// The digest of the manifest `reference` names (one `HEAD`; a `GET` when the registry
    /// does not say), `None` when there is none.
    pub async fn manifest_digest(&self, reference: &str) -> Result<Option<String>, Failure> {
        let url = self.url(&format!("manifests/{reference}"));
        let accept = crate::manifest::ACCEPTED.join(", ");
        let response = self
            .send(Method::HEAD, &url, |r| r.header(header::ACCEPT, &accept))
            .await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(Session::refused(&Method::HEAD, response).await),
        }
        let said = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match said {
            Some(digest) => Ok(Some(digest)),
            None => self.manifest(reference).await.map(|m| Some(m.digest)),
        }
    }

    /// The index the referrers API lists for `digest`, else the referrers tag schema's;
    /// `None` when the registry has neither (the API answers `404` or refuses the request).
    pub async fn referrers(&self, digest: &str) -> Result<Option<Bytes>, Failure> {
        let url = self.url(&format!("referrers/{digest}"));
        let response = self
            .send(Method::GET, &url, |r| {
                r.header(header::ACCEPT, "application/vnd.oci.image.index.v1+json")
            })
            .await?;
        let status = response.status();
        if status.is_success() {
            return read(response, DOCUMENT_LIMIT).await.map(Some);
        }
        let failure = Session::refused(&Method::GET, response).await;
        if failure.transient() || matches!(failure.answer(), Answer::Denied(_)) {
            return Err(failure);
        }
        tracing::debug!("no referrers API: {failure}");
        if status != StatusCode::NOT_FOUND {
            return Ok(None);
        }
        match self.manifest(&digest.replace(':', "-")).await {
            Ok(index) => Ok(Some(index.body)),
            Err(failure) if failure.answer() == Answer::NotFound => Ok(None),
            Err(failure) => Err(failure),
        }
    }

    /// A blob's bytes as they arrive, checked against `digest` and `size` (see [`verified`]):
    /// a mismatch ends the body with an error, after `corrupt` is told what was wrong.
    pub async fn blob(
        &self,
        digest: &str,
        size: u64,
        corrupt: impl FnOnce(String) + Send + 'static,
    ) -> Result<futures_util::stream::BoxStream<'static, std::io::Result<Bytes>>, Failure> {
        let url = self.url(&format!("blobs/{digest}"));
        let response = self
            .expect(Method::GET, &url, &[StatusCode::OK], |r| r)
            .await?;
        Ok(verified(response, digest.to_string(), size, corrupt))
    }

    /// A small blob whole (an image config), checked against `digest`.
    pub async fn small_blob(&self, digest: &str) -> Result<Bytes, Failure> {
        let url = self.url(&format!("blobs/{digest}"));
        let response = self
            .expect(Method::GET, &url, &[StatusCode::OK], |r| r)
            .await?;
        let body = read(response, DOCUMENT_LIMIT).await?;
        check(&body, digest)?;
        Ok(body)
    }

    /// Whether this repository holds blob `digest`.
    pub async fn has_blob(&self, digest: &str) -> Result<bool, Failure> {
        let url = self.url(&format!("blobs/{digest}"));
        let response = self.send(Method::HEAD, &url, |r| r).await?;
        match response.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(Session::refused(&Method::HEAD, response).await),
        }
    }

    /// Mounts blob `digest` from repository `from` of this registry; whether it was
    /// (a registry that cannot answers with an upload session, left to expire).
    pub async fn mount(&self, digest: &str, from: &str) -> Result<bool, Failure> {
        let url = self.url("blobs/uploads/");
        let response = self
            .send(Method::POST, &url, |r| {
                r.query(&[("mount", digest), ("from", from)])
                    .header(header::CONTENT_LENGTH, 0)
            })
            .await?;
        match response.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => Ok(false),
            _ => Err(Session::refused(&Method::POST, response).await),
        }
    }

    /// Uploads blob `digest` of `size` bytes from `body`, in one request: `POST` for a
    /// session, then `PUT ?digest=` with the whole blob.
    pub async fn upload(
        &self,
        digest: &str,
        size: u64,
        body: reqwest::Body,
    ) -> Result<(), Failure> {
        let started = self
            .expect(
                Method::POST,
                &self.url("blobs/uploads/"),
                &[StatusCode::ACCEPTED],
                |r| r.header(header::CONTENT_LENGTH, 0),
            )
            .await?;
        let posted = without_queries(started.url().as_str());
        let location = started
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|location| started.url().join(location).ok())
            .ok_or_else(|| {
                Failure::new(Kind::Unusable, format!(
                    "The registry answered the upload's POST {posted} without a Location to upload to"
                ))
            })?;
        if !allowed(&location) {
            return Err(Failure::new(Kind::PlainHttp, format!(
                "The registry answered the upload's POST {posted} with a Location at {}, over plain HTTP",
                crate::network::origin(location.as_str())
            )));
        }
        let separator = if location.query().is_some() { '&' } else { '?' };
        let url = format!("{location}{separator}digest={digest}");
        // An upload service on another origin gets no credentials: the session's state in
        // its URL is what it takes (so Docker's client does too).
        let scheme = if self.on_registry(&location) {
            self.authorization.lock().await.1.clone()
        } else {
            Scheme::None
        };
        let request = self
            .uploads
            .put(&url)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, size)
            .body(body);
        let response = self
            .authorize(request, &scheme)
            .send()
            .await
            .map_err(|err| self.unanswered(&Method::PUT, &url, err))?;
        if response.status() == StatusCode::CREATED {
            Ok(())
        } else {
            Err(Session::refused(&Method::PUT, response).await)
        }
    }

    /// Pushes manifest `body` of `media_type` under `reference` (a tag or a digest).
    pub async fn push_manifest(
        &self,
        reference: &str,
        body: &Bytes,
        media_type: &str,
    ) -> Result<(), Failure> {
        let url = self.url(&format!("manifests/{reference}"));
        self.expect(Method::PUT, &url, &[StatusCode::CREATED], |r| {
            r.header(header::CONTENT_TYPE, media_type)
                .body(body.clone())
        })
        .await
        .map(|_| ())
    }
}

/// `step` tried up to [`ATTEMPTS`] times while it fails transiently, after the wait the
/// registry asked for, else [`backoff`].
pub async fn retried<T, F, Fut>(what: &str, step: F) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>>,
{
    with_retries(what, step, Failure::again).await
}

/// The body of `response`, at most `limit` bytes.
async fn read(response: Response, limit: usize) -> Result<Bytes, Failure> {
    let url = without_queries(response.url().as_str());
    let too_large = || {
        Failure::new(
            Kind::Unusable,
            format!("{url} answered more than {limit} bytes"),
        )
    };
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|err| {
            Failure::new(
                Kind::Unanswered {
                    network: None,
                    retry: true,
                },
                format!("Reading the answer of {url}: {}", chain(&err.without_url())),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.into())
}

/// Checks `body` against `digest`.
fn check(body: &[u8], digest: &str) -> Result<(), Failure> {
    let mut hasher = Hasher::of(digest);
    hasher.update(body);
    match hasher.finish() {
        Some(found) if found != digest => Err(Failure::new(
            Kind::Corrupt {
                digest: digest.to_string(),
            },
            format!("the registry sent bytes whose digest is {found}"),
        )),
        _ => Ok(()),
    }
}

/// `response`'s body, checked against `digest` and `size` as it passes: the chunk that
/// completes `size` bytes is only passed on once the digest matches, so that a client
/// which sends exactly `size` bytes (an upload with that `Content-Length` stops reading
/// there) never sends damaged bytes whole. A body that differs (damaged, longer, shorter)
/// ends with an error instead, after `corrupt` was told why.
fn verified(
    response: Response,
    digest: String,
    size: u64,
    corrupt: impl FnOnce(String) + Send + 'static,
) -> futures_util::stream::BoxStream<'static, std::io::Result<Bytes>> {
    let mut hasher = Hasher::of(&digest);
    let mut corrupt = Some(corrupt);
    let mut seen: u64 = 0;
    let mut fail = move |cause: String| {
        if let Some(corrupt) = corrupt.take() {
            corrupt(cause.clone());
        }
        std::io::Error::new(std::io::ErrorKind::InvalidData, cause)
    };
    // The body's chunks, then its end (`None`).
    let body = response
        .bytes_stream()
        .map(|chunk| chunk.map(Some).map_err(std::io::Error::other));
    let end = futures_util::stream::once(async { Ok(None) });
    body.chain(end)
        .map(move |chunk| {
            let chunk = chunk?;
            if let Some(chunk) = &chunk {
                seen += chunk.len() as u64;
                hasher.update(chunk);
            }
            if seen > size {
                return Err(fail(format!(
                    "the source sent more than the {size} bytes the manifest gives"
                )));
            }
            if seen == size || chunk.is_none() {
                // Once: the hasher is done after this.
                if let Some(found) = hasher.finish().filter(|found| *found != digest) {
                    return Err(fail(format!(
                        "the source sent bytes whose digest is {found}"
                    )));
                }
                if seen < size {
                    return Err(fail(format!(
                        "the source sent {seen} of the {size} bytes the manifest gives"
                    )));
                }
            }
            Ok(chunk.unwrap_or_default())
        })
        .boxed()
}

/// The hash of a digest's algorithm (`sha256`, `sha512`); others are left to the target,
/// which checks every blob against `?digest=` before it commits it.
enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
    Unchecked,
    Done,
}

impl Hasher {
    fn of(digest: &str) -> Hasher {
        use sha2::Digest as _;
        match digest.split_once(':').map(|(algorithm, _)| algorithm) {
            Some("sha256") => Hasher::Sha256(sha2::Sha256::new()),
            Some("sha512") => Hasher::Sha512(sha2::Sha512::new()),
            _ => Hasher::Unchecked,
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        use sha2::Digest as _;
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
            Hasher::Unchecked | Hasher::Done => {}
        }
    }

    /// The digest of what passed, once (`None` when not checked).
    fn finish(&mut self) -> Option<String> {
        use sha2::Digest as _;
        match std::mem::replace(self, Hasher::Done) {
            Hasher::Sha256(h) => Some(format!("sha256:{:x}", h.finalize())),
            Hasher::Sha512(h) => Some(format!("sha512:{:x}", h.finalize())),
            Hasher::Unchecked | Hasher::Done => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_seconds_or_as_a_date_and_capped() {
        let mut headers = header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert("retry-after", "86400".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(LONGEST_WAIT));
        let soon = std::time::SystemTime::now() + Duration::from_secs(30);
        headers.insert(
            "retry-after",
            httpdate::fmt_http_date(soon).parse().unwrap(),
        );
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(20) && wait <= Duration::from_secs(30));
        headers.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn digests_are_checked_by_their_algorithm() {
        let empty256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let mut hasher = Hasher::of(empty256);
        assert_eq!(hasher.finish().as_deref(), Some(empty256));
        assert_eq!(hasher.finish(), None, "once");
        assert!(check(b"", empty256).is_ok());
        let wrong = check(b"a", empty256).unwrap_err();
        assert!(matches!(wrong.kind, Kind::Corrupt { .. }) && wrong.transient());
        assert!(Hasher::of("sha512:00")
            .finish()
            .unwrap()
            .starts_with("sha512:"));
        assert_eq!(Hasher::of("blake3:00").finish(), None);
        assert!(check(b"a", "blake3:00").is_ok(), "left to the target");
    }

    /// What `verified` passes on of `chunks` for a blob of `digest` and `size`: the chunks
    /// up to the first error, the error, and what `corrupt` was told.
    async fn passed(
        chunks: &[&'static [u8]],
        digest: &str,
        size: u64,
    ) -> (Vec<u8>, Option<String>, Option<String>) {
        let parts: Vec<std::io::Result<Bytes>> =
            chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        let body = reqwest::Body::wrap_stream(futures_util::stream::iter(parts));
        let response = Response::from(http::Response::new(body));
        let told = std::sync::Arc::new(std::sync::Mutex::new(None));
        let noted = told.clone();
        let mut stream = verified(response, digest.into(), size, move |cause| {
            *noted.lock().unwrap() = Some(cause);
        });
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(err) => {
                    let told = told.lock().unwrap().clone();
                    return (bytes, Some(err.to_string()), told);
                }
            }
        }
        let told = told.lock().unwrap().clone();
        (bytes, None, told)
    }

    #[tokio::test]
    async fn a_blob_is_checked_before_its_last_byte_is_passed_on() {
        use sha2::Digest as _;
        let digest = format!("sha256:{:x}", sha2::Sha256::digest(b"hello world"));
        let checked = |chunks, size| passed(chunks, &digest, size);
        assert_eq!(
            checked(&[b"hello ", b"world"], 11).await,
            (b"hello world".to_vec(), None, None)
        );
        // Damaged, of the same length: the chunk that completes the size is held back (an
        // upload with `Content-Length: 11` would have sent it and stopped reading).
        let (bytes, err, told) = checked(&[b"hello ", b"w0rld"], 11).await;
        assert_eq!(bytes, b"hello ");
        assert!(err
            .unwrap()
            .contains("the source sent bytes whose digest is sha256:"));
        assert!(told.unwrap().contains("whose digest is"));
        // Longer than the manifest says, and shorter.
        let (bytes, err, _) = checked(&[b"hello ", b"world!"], 11).await;
        assert_eq!(bytes, b"hello ");
        assert!(err.unwrap().contains("more than the 11 bytes"));
        let (bytes, err, told) = checked(&[b"hello "], 11).await;
        assert_eq!(bytes, b"hello ");
        assert!(err.unwrap().contains("whose digest is"));
        assert!(told.is_some());
        // An algorithm the provider does not hash is left to the target, but the size is not.
        let unchecked = |chunks, size| passed(chunks, "blake3:00", size);
        assert_eq!(unchecked(&[b"abc"], 3).await.1, None);
        let short = unchecked(&[b"ab"], 3).await.1.unwrap();
        assert!(short.contains("2 of the 3 bytes"), "{short}");
    }

    #[test]
    fn only_https_or_this_machine_is_spoken_to() {
        let ok = |url: &str| allowed(&Url::parse(url).unwrap());
        assert!(ok("https://storage.example.com/blob?sig=1"));
        assert!(ok("http://127.0.0.1:5000/v2/"));
        assert!(ok("http://localhost/v2/"));
        assert!(ok("http://[::1]:5000/v2/"));
        assert!(!ok("http://storage.example.com/blob"));
        assert!(!ok("ftp://127.0.0.1/blob"));
    }

    /// A push session with `registry`'s repository `mirror/app`, as to ECR.
    fn session<'a>(clients: &'a reqwest::Client, registry: &str) -> Session<'a> {
        let reference = Reference::with_tag(registry.into(), "mirror/app".into(), "1".into());
        let auth = RegistryAuth::Basic("AWS".into(), "ecr-password".into());
        Session::new(
            clients,
            clients,
            reference,
            auth,
            Access::Push,
            Role::Target,
        )
    }

    const ECR: &str = "123.dkr.ecr.eu-west-1.amazonaws.com";

    /// The clients sessions use.
    fn clients() -> reqwest::Client {
        crate::install_crypto_provider();
        client(None)
    }

    #[test]
    fn credentials_stay_on_the_registrys_own_origin() {
        let clients = clients();
        let ecr = session(&clients, ECR);
        let on = |url: &str| ecr.on_registry(&Url::parse(url).unwrap());
        assert!(on(
            "https://123.dkr.ecr.eu-west-1.amazonaws.com/v2/mirror/app/blobs/uploads/x?state=1"
        ));
        assert!(!on(
            "https://uploads.example.com/v2/mirror/app/blobs/uploads/x"
        ));
        assert!(!on("http://123.dkr.ecr.eu-west-1.amazonaws.com/v2/"));
        assert!(!on("https://123.dkr.ecr.eu-west-1.amazonaws.com:8443/v2/"));
        let local = session(&clients, "127.0.0.1:5000");
        assert!(local.on_registry(&Url::parse("http://127.0.0.1:5000/v2/x").unwrap()));
        assert!(!local.on_registry(&Url::parse("http://127.0.0.1:5001/v2/x").unwrap()));
    }

    #[tokio::test]
    async fn ecrs_password_goes_to_no_token_service_elsewhere() {
        let clients = clients();
        let ecr = session(&clients, ECR);
        // Refused before any connection (the host does not resolve: an attempt would fail
        // as a network error instead).
        let refused = ecr
            .token("https://auth.example.invalid/token", Some("ecr"))
            .await
            .unwrap_err();
        assert!(matches!(refused.kind, Kind::Misdirected), "{refused:?}");
        assert!(
            refused.cause.contains("https://auth.example.invalid"),
            "{refused}"
        );
        assert!(!refused.transient());
        assert!(!refused.cause.contains("ecr-password"));
        let err = refused.error(&ecr, "mirror/app:v1");
        assert!(matches!(err, Error::Misdirected { .. }), "{err:?}");
        assert!(
            err.hint().contains("AWS_ENDPOINT_URL_ECR"),
            "{}",
            err.hint()
        );
    }

    #[test]
    fn failures_say_whether_to_try_again_and_when() {
        let answered = |answer, wait| Failure {
            kind: Kind::Answered(answer),
            cause: String::new(),
            wait,
        };
        let asked = Duration::from_secs(7);
        assert_eq!(
            answered(Answer::Throttled, Some(asked)).again(1),
            Some(asked)
        );
        assert!(answered(Answer::ServerError, None).again(1).unwrap() < Duration::from_secs(1));
        assert_eq!(answered(Answer::ServerError, None).again(ATTEMPTS), None);
        assert_eq!(answered(Answer::NotFound, None).again(1), None);
        assert_eq!(answered(Answer::Denied(Some(401)), None).again(1), None);
        assert_eq!(Failure::new(Kind::Unusable, "x".into()).again(1), None);
    }
}
