//! How a session authenticates, following the registry's challenge. The first request goes
//! without credentials, except to ECR's registry (a target with the basic credentials of
//! GetAuthorizationToken, whose host is the one its `proxyEndpoint` names), which challenges
//! every request for them: they go with the first, saving a round trip. A `401` with `WWW-Authenticate: Bearer realm=…` gets a token from
//! the realm (the credentials go there, and only over HTTPS or on this machine; ECR's only
//! to its own origin); one with `Basic` has the credentials sent with every later request.
//! A `401` later on (a token that expired) gets one fresh token and one more try, shared by
//! every request that met it.

use oci_client::secrets::RegistryAuth;
use reqwest::{Method, RequestBuilder, Response, Url};

use super::{Access, Session};
use crate::distribution::failure::{Kind, RequestFailure};
use crate::distribution::headers::{challenge, Challenge};
use crate::distribution::http::{allowed, read, refused, unanswered};
use crate::distribution::Role;

/// The `Authorization` a session's requests carry now.
#[derive(Clone)]
pub(super) enum Scheme {
    None,
    Basic,
    Bearer(String),
}

impl Scheme {
    /// What a session carrying `auth` in `role` starts with.
    pub(super) fn first(auth: &RegistryAuth, role: Role) -> Scheme {
        match (auth, role) {
            (RegistryAuth::Bearer(token), _) => Scheme::Bearer(token.clone()),
            (RegistryAuth::Basic(..), Role::Target) => Scheme::Basic,
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
            (Scheme::Basic, RegistryAuth::Basic(username, password)) => {
                request.basic_auth(username, Some(password))
            }
            _ => request,
        }
    }

    /// Meets the challenge in `response` (a `401` to a request that carried the scheme of
    /// `generation`); whether the request is worth sending again.
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
            (Challenge::Basic, RegistryAuth::Basic(..)) if !matches!(state.1, Scheme::Basic) => {
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
        let mut url = Url::parse(realm).map_err(|err| {
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
            .map_err(|err| unanswered(self.role, &Method::GET, url.as_str(), err))?;
        if !response.status().is_success() {
            return Err(refused(&Method::GET, response).await);
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
                RequestFailure::new(
                    Kind::Unusable,
                    format!("The token realm {origin} answered without a token"),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use oci_client::Reference;

    use super::*;
    use crate::error::Error;

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
        let tls = crate::distribution::http::tls().unwrap();
        crate::distribution::http::client(tls, None).unwrap()
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
}
