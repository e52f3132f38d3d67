//! Requests to one repository of a registry, made by the provider itself (reqwest), so that
//! every answer is read whole: its status, its error codes, its `Retry-After`, and where it
//! redirects. A [`Session`] is one repository asked with one set of credentials, for pulling
//! or for pushing; it holds the endpoint calls. How it authenticates is [`auth`]'s,
//! what its failures mean [`super::failure`]'s, how its bytes are checked
//! [`super::digest`]'s.

use bytes::Bytes;
use oci_client::Reference;
use reqwest::{header, Method, RequestBuilder, Response, StatusCode, Url};

use auth::Scheme;

use super::digest::{check, verified, Digest};
use super::failure::{Kind, RequestFailure, Side};
use super::http::{allowed, read, refused, unanswered};
use super::{is_loopback, Answer, Role};
use crate::credentials::Credentials;
use crate::error::without_queries;

mod auth;

/// The largest manifest or image config read: what the distribution spec asks registries
/// to take at least.
pub(crate) const DOCUMENT_LIMIT: usize = 4 << 20;

/// What a session may do: the token scope it asks a bearer realm for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Access {
    Pull,
    Push,
}

/// What a mount request did.
pub(crate) enum Mount {
    /// The registry mounted the blob.
    Mounted,
    /// The registry declined, and began an upload session instead.
    Declined(Upload),
}

/// An upload session the registry began: where the blob goes.
pub(crate) struct Upload(Url);

/// Where `started`, an answer that begins an upload session, says the blob goes; refused
/// when it is missing or over plain HTTP to another host.
fn upload_location(started: &Response) -> Result<Url, RequestFailure> {
    let posted = without_queries(started.url().as_str());
    let location = started
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|location| started.url().join(location).ok())
        .ok_or_else(|| {
            RequestFailure::new(
                Kind::Unusable,
                format!("The registry answered the upload's POST {posted} without a Location to upload to"),
            )
        })?;
    if !allowed(&location) {
        return Err(RequestFailure::new(
            Kind::PlainHttp,
            format!(
                "The registry answered the upload's POST {posted} with a Location at {}, over plain HTTP",
                crate::network::origin(location.as_str())
            ),
        ));
    }
    Ok(location)
}

/// What a manifest request answered.
pub(crate) struct Document {
    pub(crate) body: Bytes,
    pub(crate) digest: Digest,
}

/// What a `HEAD` of a manifest answered: its digest (`Docker-Content-Digest`) and media
/// type (`Content-Type`), when the registry gives them.
#[derive(Clone, Debug)]
pub(crate) struct Head {
    pub(crate) digest: Option<Digest>,
    pub(crate) media_type: Option<String>,
}

impl Side for Session<'_> {
    fn role(&self) -> Role {
        self.role
    }

    fn host(&self) -> &str {
        self.reference.registry()
    }

    fn with_credentials(&self) -> bool {
        self.auth.is_some()
    }
}

/// The HTTP clients a session sends its requests with.
#[derive(Clone, Copy)]
pub(crate) struct Clients<'a> {
    /// Every request but those below, with a read timeout.
    pub(crate) requests: &'a reqwest::Client,
    /// Blob uploads: no read timeout (reqwest counts the time a body takes to send
    /// against it).
    pub(crate) uploads: &'a reqwest::Client,
    /// Identity-token exchanges with a token service: no redirect followed (a `POST`'s
    /// form, the token in it, would follow a `307` to another host).
    pub(crate) exchanges: &'a reqwest::Client,
}

/// One repository of a registry, asked with one set of credentials.
pub(crate) struct Session<'a> {
    http: &'a reqwest::Client,
    uploads: &'a reqwest::Client,
    exchanges: &'a reqwest::Client,
    pub(crate) reference: Reference,
    /// The credentials the session has (none: anonymous): what requests carry on a basic
    /// challenge, what the token realm gets.
    auth: Option<Credentials>,
    access: Access,
    role: Role,
    /// The scheme requests carry, and how often it was renewed (requests that failed with
    /// an older one try again without asking the realm once more).
    authorization: tokio::sync::Mutex<(u64, Scheme)>,
}

impl<'a> Session<'a> {
    /// A session with `reference`'s repository, sending its requests with `clients`.
    pub(crate) fn new(
        clients: Clients<'a>,
        reference: Reference,
        auth: Option<Credentials>,
        access: Access,
        role: Role,
    ) -> Session<'a> {
        let scheme = Scheme::first(auth.as_ref(), role);
        Session {
            http: clients.requests,
            uploads: clients.uploads,
            exchanges: clients.exchanges,
            reference,
            auth,
            access,
            role,
            authorization: tokio::sync::Mutex::new((0, scheme)),
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

    /// `method url` with what `build` adds, sent (again with a fresh token after a `401`,
    /// once). Whatever the registry answers comes back, a `401` it keeps to included.
    async fn send(
        &self,
        method: Method,
        url: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, RequestFailure> {
        let mut renewed = false;
        loop {
            let (generation, scheme) = self.authorization.lock().await.clone();
            let request = build(self.http.request(method.clone(), url));
            let response = self
                .with_authorization(request, &scheme)
                .send()
                .await
                .map_err(|err| unanswered(self.role, &method, url, err))?;
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

    /// `method url`, sent as [`Session::send`] does; an answer in `success` is the result,
    /// any other a failure.
    async fn send_expecting(
        &self,
        method: Method,
        url: &str,
        success: &[StatusCode],
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, RequestFailure> {
        let response = self.send(method.clone(), url, build).await?;
        if success.contains(&response.status()) {
            Ok(response)
        } else {
            Err(refused(&method, response).await)
        }
    }

    /// Meets the registry's challenge for this session's access, before the requests that
    /// follow (so that several at once do not each meet it).
    pub(crate) async fn meet_challenge(&self) -> Result<(), RequestFailure> {
        if matches!(self.authorization.lock().await.1, Scheme::Basic) {
            // Sent with every request already (ECR's registry): nothing to meet.
            return Ok(());
        }
        let url = format!("{}/", self.base());
        self.send_expecting(Method::GET, &url, &[StatusCode::OK], |r| r)
            .await
            .map(|_| ())
    }

    /// The manifest `reference` names in this repository (a tag or a digest), checked against
    /// the digest it was asked by.
    pub(crate) async fn manifest(&self, reference: &str) -> Result<Document, RequestFailure> {
        let url = self.url(&format!("manifests/{reference}"));
        let accept = crate::manifest::ACCEPTED.join(", ");
        let response = self
            .send_expecting(Method::GET, &url, &[StatusCode::OK], |r| {
                r.header(header::ACCEPT, &accept)
            })
            .await?;
        let body = read(response, DOCUMENT_LIMIT).await?;
        let digest = if reference.contains(':') {
            let digest = Digest::named(reference);
            check(&body, &digest).map_err(|found| RequestFailure::corrupt(&digest, &found))?;
            digest
        } else {
            Digest::named(&crate::manifest::digest_of(&body))
        };
        Ok(Document { body, digest })
    }

    /// What the registry says of the manifest `reference` names, from one `HEAD` (with the
    /// `Accept` a `GET` sends, so that it describes the manifest a `GET` would serve);
    /// `None` when there is none.
    pub(crate) async fn manifest_head(
        &self,
        reference: &str,
    ) -> Result<Option<Head>, RequestFailure> {
        let url = self.url(&format!("manifests/{reference}"));
        let accept = crate::manifest::ACCEPTED.join(", ");
        let response = self
            .send(Method::HEAD, &url, |r| r.header(header::ACCEPT, &accept))
            .await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(refused(&Method::HEAD, response).await),
        }
        let said = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        Ok(Some(Head {
            digest: said("docker-content-digest").map(Digest::named),
            media_type: said(header::CONTENT_TYPE.as_str())
                .and_then(|v| v.split(';').next())
                .map(|v| v.trim().to_string()),
        }))
    }

    /// The digest of the manifest `reference` names (one `HEAD`; a `GET` when the registry
    /// does not say), `None` when there is none.
    pub(crate) async fn manifest_digest(
        &self,
        reference: &str,
    ) -> Result<Option<Digest>, RequestFailure> {
        match self.manifest_head(reference).await? {
            None => Ok(None),
            Some(Head {
                digest: Some(digest),
                ..
            }) => Ok(Some(digest)),
            Some(_) => {
                tracing::debug!(
                    reference,
                    "the registry's HEAD names no Docker-Content-Digest: asking with a GET"
                );
                self.manifest(reference).await.map(|m| Some(m.digest))
            }
        }
    }

    /// One page of the repository's tag list: `GET tags/list`, or the page `next` (a URL an
    /// earlier page's `Link` named). Its tags, in the registry's order, and the next page's
    /// URL when there is one. A `Link` off this registry is refused: the session's
    /// credentials go nowhere else.
    pub(crate) async fn tags_page(
        &self,
        next: Option<&str>,
    ) -> Result<(Vec<String>, Option<String>), RequestFailure> {
        let url = next.map_or_else(|| self.url("tags/list"), str::to_string);
        let response = self
            .send_expecting(Method::GET, &url, &[StatusCode::OK], |r| {
                r.header(header::ACCEPT, "application/json")
            })
            .await?;
        let next = response
            .headers()
            .get_all(header::LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find(|link| link.contains("rel=\"next\"") || link.contains("rel=next"))
            .and_then(|link| {
                link.split_once('<')?
                    .1
                    .split_once('>')
                    .map(|(u, _)| u.to_string())
            })
            .map(|link| response.url().join(&link));
        let next = match next {
            None => None,
            Some(Ok(next)) if self.on_registry(&next) => Some(next.to_string()),
            Some(_) => {
                return Err(RequestFailure::new(
                    Kind::Unusable,
                    format!(
                        "The registry's tag list at {} names its next page on another host or not as a URL",
                        without_queries(&url)
                    ),
                ))
            }
        };
        let body = read(response, DOCUMENT_LIMIT).await?;
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let list: TagList = serde_json::from_slice(&body).map_err(|err| {
            RequestFailure::new(
                Kind::Unusable,
                format!(
                    "The registry's tag list at {} is not a tag list: {err}",
                    without_queries(&url)
                ),
            )
        })?;
        Ok((list.tags.unwrap_or_default(), next))
    }

    /// The index the referrers API lists for `digest`, else the referrers tag schema's;
    /// `None` when the registry has neither (the API answers `404` or refuses the request).
    pub(crate) async fn referrers(&self, digest: &str) -> Result<Option<Bytes>, RequestFailure> {
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
        let failure = refused(&Method::GET, response).await;
        if failure.transient() || matches!(failure.answer(), Answer::Denied(_)) {
            return Err(failure);
        }
        tracing::debug!("no referrers API: {failure}");
        if status != StatusCode::NOT_FOUND {
            return Ok(None);
        }
        // A HEAD first: the tag is usually not there, and a manifest GET is a pull on
        // Docker Hub.
        let tag = crate::reference::digest_tag(digest);
        if self.manifest_head(&tag).await?.is_none() {
            return Ok(None);
        }
        match self.manifest(&tag).await {
            Ok(index) => Ok(Some(index.body)),
            Err(failure) if failure.answer() == Answer::NotFound => Ok(None),
            Err(failure) => Err(failure),
        }
    }

    /// A blob's bytes as they arrive, checked against `digest` and `size` (see
    /// [`super::digest`]): a mismatch ends the body with an error, after `corrupt` is told
    /// what was wrong.
    pub(crate) async fn blob(
        &self,
        digest: &str,
        size: u64,
        corrupt: impl FnOnce(String) + Send + 'static,
    ) -> Result<futures_util::stream::BoxStream<'static, std::io::Result<Bytes>>, RequestFailure>
    {
        let url = self.url(&format!("blobs/{digest}"));
        let response = self
            .send_expecting(Method::GET, &url, &[StatusCode::OK], |r| r)
            .await?;
        Ok(verified(response, Digest::named(digest), size, corrupt))
    }

    /// A small blob whole (an image config), checked against `digest`.
    pub(crate) async fn small_blob(&self, digest: &str) -> Result<Bytes, RequestFailure> {
        let url = self.url(&format!("blobs/{digest}"));
        let response = self
            .send_expecting(Method::GET, &url, &[StatusCode::OK], |r| r)
            .await?;
        let body = read(response, DOCUMENT_LIMIT).await?;
        let digest = Digest::named(digest);
        check(&body, &digest).map_err(|found| RequestFailure::corrupt(&digest, &found))?;
        Ok(body)
    }

    /// Whether this repository holds blob `digest`.
    pub(crate) async fn has_blob(&self, digest: &str) -> Result<bool, RequestFailure> {
        let url = self.url(&format!("blobs/{digest}"));
        let response = self.send(Method::HEAD, &url, |r| r).await?;
        match response.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(refused(&Method::HEAD, response).await),
        }
    }

    /// Mounts blob `digest` from repository `from` of this registry. A registry that does
    /// not mount it answers with an upload session instead, which the blob's upload then
    /// uses (no second `POST`).
    pub(crate) async fn mount(&self, digest: &str, from: &str) -> Result<Mount, RequestFailure> {
        let url = self.url("blobs/uploads/");
        let response = self
            .send(Method::POST, &url, |r| {
                r.query(&[("mount", digest), ("from", from)])
                    .header(header::CONTENT_LENGTH, 0)
            })
            .await?;
        match response.status() {
            StatusCode::CREATED => Ok(Mount::Mounted),
            StatusCode::ACCEPTED => Ok(Mount::Declined(Upload(upload_location(&response)?))),
            _ => Err(refused(&Method::POST, response).await),
        }
    }

    /// Begins an upload: the session's `Location`.
    pub(crate) async fn begin_upload(&self) -> Result<Upload, RequestFailure> {
        let started = self
            .send_expecting(
                Method::POST,
                &self.url("blobs/uploads/"),
                &[StatusCode::ACCEPTED],
                |r| r.header(header::CONTENT_LENGTH, 0),
            )
            .await?;
        Ok(Upload(upload_location(&started)?))
    }

    /// Uploads blob `digest` of `size` bytes from `body`, in one request (`PUT ?digest=`
    /// with the whole blob) to `upload`, or to a session begun now.
    pub(crate) async fn upload(
        &self,
        upload: Option<Upload>,
        digest: &str,
        size: u64,
        body: reqwest::Body,
    ) -> Result<(), RequestFailure> {
        let location = match upload {
            Some(upload) => upload.0,
            None => self.begin_upload().await?.0,
        };
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
            .with_authorization(request, &scheme)
            .send()
            .await
            .map_err(|err| unanswered(self.role, &Method::PUT, &url, err))?;
        if response.status() == StatusCode::CREATED {
            Ok(())
        } else {
            Err(refused(&Method::PUT, response).await)
        }
    }

    /// Pushes manifest `body` of `media_type` under `reference` (a tag or a digest).
    pub(crate) async fn push_manifest(
        &self,
        reference: &str,
        body: &Bytes,
        media_type: &str,
    ) -> Result<(), RequestFailure> {
        let url = self.url(&format!("manifests/{reference}"));
        self.send_expecting(Method::PUT, &url, &[StatusCode::CREATED], |r| {
            r.header(header::CONTENT_TYPE, media_type)
                .body(body.clone())
        })
        .await
        .map(|_| ())
    }
}
