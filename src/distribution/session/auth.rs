//! How a session authenticates, following the registry's challenge. The first request goes
//! without credentials, except to ECR's registry (a target with the basic credentials of
//! GetAuthorizationToken, whose host is the one its `proxyEndpoint` names), which challenges
//! every request for them: they go with the first, saving a round trip. A `401` with
//! `WWW-Authenticate: Bearer realm=…` gets a token from the realm (the credentials go there,
//! and only over HTTPS or on this machine; ECR's only to its own origin); one with `Basic`
//! has the credentials sent with every later request. A `401` later on (a token that
//! expired) gets one fresh token and one more try, shared by every request that met it.
//!
//! The realm is asked as Docker asks it. Basic credentials (or none) go with a `GET`; an
//! identity token (the Docker config file's, see [`crate::credentials`]) is the refresh
//! token of the OAuth2 exchange: a `POST` of a form (`grant_type=refresh_token`), never
//! sent to the registry itself. A token service that refuses it is an error that says to log
//! in again, never a fall back to anonymous pulls.

use bytes::Bytes;
use reqwest::{header, Method, RequestBuilder, Response, Url};

use super::{Access, Session};
use crate::credentials::Credentials;
use crate::distribution::failure::{Kind, RequestFailure};
use crate::distribution::headers::{challenge, Challenge};
use crate::distribution::http::{allowed, read, refused, unanswered};
use crate::distribution::Role;
use crate::secret::Secret;

/// The `client_id` the provider names itself with in OAuth2 exchanges (Docker's is `docker`).
const CLIENT_ID: &str = "terraform-provider-ecrmirror";

/// The largest answer read from a token service.
const TOKEN_LIMIT: usize = 1 << 20;

/// The `Authorization` a session's requests carry now.
#[derive(Clone)]
pub(super) enum Scheme {
    None,
    Basic,
    Bearer(String),
}

impl Scheme {
    /// What a session carrying `auth` in `role` starts with.
    pub(super) fn first(auth: Option<&Credentials>, role: Role) -> Scheme {
        match (auth, role) {
            (Some(Credentials::Basic { .. }), Role::Target) => Scheme::Basic,
            _ => Scheme::None,
        }
    }
}

impl Session<'_> {
    /// `request` with the `Authorization` of `scheme`.
    pub(super) fn with_authorization(
        &self,
        request: RequestBuilder,
        scheme: &Scheme,
    ) -> RequestBuilder {
        match (scheme, &self.auth) {
            (Scheme::Bearer(token), _) => request.bearer_auth(token),
            (
                Scheme::Basic,
                Some(Credentials::Basic {
                    username, password, ..
                }),
            ) => request.basic_auth(username, Some(password.expose())),
            _ => request,
        }
    }

    /// Meets the challenge in `response` (a `401` to a request that carried the scheme of
    /// `generation`); whether the request is worth sending again. An identity token meets
    /// bearer challenges only: it is no password.
    pub(super) async fn renew(
        &self,
        generation: u64,
        response: &Response,
    ) -> Result<bool, RequestFailure> {
        let mut state = self.authorization.lock().await;
        if state.0 != generation {
            // Another request met the challenge meanwhile.
            return Ok(true);
        }
        let scheme = match (challenge(response.headers()), &self.auth) {
            (Challenge::Bearer { realm, service }, _) => {
                Scheme::Bearer(self.token(&realm, service.as_deref()).await?)
            }
            (Challenge::Basic, Some(Credentials::Basic { .. }))
                if !matches!(state.1, Scheme::Basic) =>
            {
                Scheme::Basic
            }
            _ => return Ok(false),
        };
        *state = (generation + 1, scheme);
        Ok(true)
    }

    /// A bearer token from `realm` for this session's repository and access.
    pub(super) async fn token(
        &self,
        realm: &str,
        service: Option<&str>,
    ) -> Result<String, RequestFailure> {
        let url = Url::parse(realm).map_err(|err| {
            RequestFailure::new(
                Kind::Unusable,
                format!("The registry names the token realm {realm:?}, which is not a URL: {err}"),
            )
        })?;
        if !allowed(&url) {
            return Err(RequestFailure::new(Kind::PlainHttp, format!(
                "The registry names its token service at {}, over plain HTTP; the provider sends credentials over HTTPS only",
                crate::network::origin(realm)
            )));
        }
        if self.role == Role::Target && !self.on_registry(&url) {
            return Err(RequestFailure::new(
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
        let scope = format!("repository:{}:{actions}", self.reference.repository());
        let body = match &self.auth {
            Some(Credentials::IdentityToken { token, .. }) => {
                self.exchange(url, service, &scope, token).await?
            }
            _ => self.ask(url, service, &scope).await?,
        };
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let origin = crate::network::origin(realm);
        serde_json::from_slice::<Token>(&body)
            .ok()
            .and_then(|t| t.token.or(t.access_token))
            .ok_or_else(|| {
                RequestFailure::new(
                    Kind::Unusable,
                    format!("The token realm {origin} answered without a token"),
                )
            })
    }

    /// The answer of the token realm at `url` to a `GET` for `scope`, with the session's
    /// basic credentials when it has them (else anonymous).
    async fn ask(
        &self,
        mut url: Url,
        service: Option<&str>,
        scope: &str,
    ) -> Result<Bytes, RequestFailure> {
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", scope);
        }
        let mut request = self.http.get(url.clone());
        if let Some(Credentials::Basic {
            username, password, ..
        }) = &self.auth
        {
            request = request.basic_auth(username, Some(password.expose()));
        }
        let response = request
            .send()
            .await
            .map_err(|err| unanswered(self.role, &Method::GET, url.as_str(), err))?;
        if !response.status().is_success() {
            return Err(refused(&Method::GET, response).await);
        }
        read(response, TOKEN_LIMIT).await
    }

    /// The answer of the token service at `url` to the OAuth2 exchange of the identity
    /// token `refresh` for an access token for `scope`: a `POST` of a form, by the client
    /// that follows no redirect. An answer that is neither a success nor worth another try
    /// is the token refused ([`Kind::LoginRefused`]); nothing it says quotes the token.
    async fn exchange(
        &self,
        url: Url,
        service: Option<&str>,
        scope: &str,
        refresh: &Secret,
    ) -> Result<Bytes, RequestFailure> {
        let response = self
            .exchanges
            .post(url.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(refresh_form(service, scope, refresh))
            .send()
            .await
            .map_err(|err| unanswered(self.role, &Method::POST, url.as_str(), err))?;
        let status = response.status();
        if status.is_success() {
            return read(response, TOKEN_LIMIT).await;
        }
        let origin = crate::network::origin(url.as_str());
        if status.is_redirection() {
            return Err(RequestFailure::new(
                Kind::Unusable,
                format!("The token service at {origin} answered the identity token's POST with {status}, a redirect; the provider sends the identity token to the token service the registry names only"),
            ));
        }
        let mut failure = refused(&Method::POST, response).await;
        failure.cause = unquoted(&failure.cause, refresh);
        if failure.transient() {
            return Err(failure);
        }
        Err(RequestFailure::new(Kind::LoginRefused, failure.cause))
    }
}

/// The form of an OAuth2 exchange of the identity token `refresh` for an access token for
/// `scope` of `service`, as Docker's registry client posts it.
fn refresh_form(service: Option<&str>, scope: &str, refresh: &Secret) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "refresh_token");
    if let Some(service) = service {
        form.append_pair("service", service);
    }
    form.append_pair("scope", scope);
    form.append_pair("client_id", CLIENT_ID);
    form.append_pair("refresh_token", refresh.expose());
    form.finish()
}

/// `text` without `secret` in it, as it is or form-encoded (a service may quote what it
/// was sent).
fn unquoted(text: &str, secret: &Secret) -> String {
    let raw = secret.expose();
    if raw.is_empty() {
        return text.to_string();
    }
    let encoded: String = form_urlencoded::byte_serialize(raw.as_bytes()).collect();
    text.replace(raw, "<redacted>")
        .replace(&encoded, "<redacted>")
}

#[cfg(test)]
mod tests {
    use oci_client::Reference;

    use super::*;
    use crate::error::Error;

    /// A push session with `registry`'s repository `mirror/app`, as to ECR.
    fn session<'a>(clients: &'a reqwest::Client, registry: &str) -> Session<'a> {
        let reference = Reference::with_tag(registry.into(), "mirror/app".into(), "1".into());
        let auth = Credentials::Basic {
            server: registry.into(),
            username: "AWS".into(),
            password: Secret::new("ecr-password"),
        };
        let clients = crate::distribution::Clients {
            requests: clients,
            uploads: clients,
            exchanges: clients,
        };
        Session::new(clients, reference, Some(auth), Access::Push, Role::Target)
    }

    const ECR: &str = "123.dkr.ecr.eu-west-1.amazonaws.com";

    /// The clients sessions use.
    fn clients() -> reqwest::Client {
        crate::install_crypto_provider();
        let tls = crate::distribution::http::tls().unwrap();
        crate::distribution::http::client(tls, None, crate::distribution::http::Redirects::Follow)
            .unwrap()
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

    /// The identity token of [`with_identity_token`] sessions.
    const REFRESH: &str = "refresh-me/+secret";

    /// A pull session with the repository `private/app` of the registry at `127.0.0.1:5000`,
    /// holding the identity token [`REFRESH`], whose exchanges go through `exchanges`.
    fn with_identity_token<'a>(
        requests: &'a reqwest::Client,
        exchanges: &'a reqwest::Client,
    ) -> Session<'a> {
        let reference =
            Reference::with_tag("127.0.0.1:5000".into(), "private/app".into(), "1".into());
        let auth = Credentials::IdentityToken {
            server: "127.0.0.1:5000".into(),
            token: Secret::new(REFRESH),
        };
        let clients = crate::distribution::Clients {
            requests,
            uploads: requests,
            exchanges,
        };
        Session::new(clients, reference, Some(auth), Access::Pull, Role::Source)
    }

    /// The client for exchanges, as [`crate::distribution::Distribution`] makes it.
    fn exchanges() -> reqwest::Client {
        crate::install_crypto_provider();
        let tls = crate::distribution::http::tls().unwrap();
        crate::distribution::http::client(tls, None, crate::distribution::http::Redirects::None)
            .unwrap()
    }

    /// A token service on this machine that answers one request with `answer` (an HTTP/1.1
    /// response's status line and headers, to which it adds the body `body`); the request
    /// it got, whole.
    async fn token_service(
        answer: &str,
        body: &str,
    ) -> (std::net::SocketAddr, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let response = format!(
            "{answer}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let served = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            loop {
                let n = stream.read(&mut buffer).await.unwrap();
                request.extend_from_slice(&buffer[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if rest.len() >= length {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            stream.write_all(response.as_bytes()).await.unwrap();
            stream.shutdown().await.unwrap();
            String::from_utf8_lossy(&request).to_string()
        });
        (addr, served)
    }

    #[tokio::test]
    async fn an_identity_token_is_exchanged_as_docker_does_it() {
        let (requests, exchanges) = (clients(), exchanges());
        let session = with_identity_token(&requests, &exchanges);
        let (addr, served) = token_service(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json",
            r#"{"access_token": "short-lived", "expires_in": 300}"#,
        )
        .await;
        let realm = format!("http://{addr}/oauth2/token");
        let token = session
            .token(&realm, Some("registry.example"))
            .await
            .unwrap();
        assert_eq!(token, "short-lived");

        let request = served.await.unwrap();
        let (head, body) = request.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("POST /oauth2/token HTTP/1.1"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/x-www-form-urlencoded"),
            "{head}"
        );
        assert!(
            !head.to_ascii_lowercase().contains("authorization"),
            "{head}"
        );
        let form: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let field = |name: &str| {
            form.iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        assert_eq!(field("grant_type"), Some("refresh_token"));
        assert_eq!(field("refresh_token"), Some(REFRESH));
        assert_eq!(field("service"), Some("registry.example"));
        assert_eq!(field("scope"), Some("repository:private/app:pull"));
        assert_eq!(field("client_id"), Some(CLIENT_ID));
    }

    #[tokio::test]
    async fn a_refused_identity_token_says_to_log_in_again_without_quoting_it() {
        let (requests, exchanges) = (clients(), exchanges());
        let session = with_identity_token(&requests, &exchanges);
        let echo = format!(
            r#"{{"error": "invalid_grant", "error_description": "{REFRESH} ({}) expired"}}"#,
            form_urlencoded::byte_serialize(REFRESH.as_bytes()).collect::<String>()
        );
        let (addr, _) = token_service(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json",
            &echo,
        )
        .await;
        let refused = session
            .token(&format!("http://{addr}/token"), Some("registry.example"))
            .await
            .unwrap_err();
        assert!(matches!(refused.kind, Kind::LoginRefused), "{refused:?}");
        assert!(!refused.transient());
        assert!(refused.cause.contains("invalid_grant"), "{refused}");
        assert!(!refused.cause.contains("refresh-me"), "{refused}");
        let err = refused.error(&session, "127.0.0.1:5000/private/app:1");
        assert!(matches!(err, Error::LoginRefused { .. }), "{err:?}");
        assert!(err.to_string().contains("127.0.0.1:5000"), "{err}");
        assert!(
            err.hint().contains("docker login 127.0.0.1:5000"),
            "{}",
            err.hint()
        );

        // A service that is briefly down is tried again, not taken for a refusal.
        let (addr, _) = token_service("HTTP/1.1 503 Service Unavailable", "").await;
        let down = session
            .token(&format!("http://{addr}/token"), None)
            .await
            .unwrap_err();
        assert!(down.transient(), "{down:?}");
    }

    #[tokio::test]
    async fn the_identity_token_follows_no_redirect() {
        let (requests, exchanges) = (clients(), exchanges());
        let session = with_identity_token(&requests, &exchanges);
        let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (addr, _) = token_service(
            &format!(
                "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://{}/token",
                elsewhere.local_addr().unwrap()
            ),
            "",
        )
        .await;
        let refused = session
            .token(&format!("http://{addr}/token"), None)
            .await
            .unwrap_err();
        assert!(matches!(refused.kind, Kind::Unusable), "{refused:?}");
        assert!(refused.cause.contains("redirect"), "{refused}");
        let reached =
            tokio::time::timeout(std::time::Duration::from_millis(200), elsewhere.accept()).await;
        assert!(reached.is_err(), "the exchange followed the redirect");
    }
}
