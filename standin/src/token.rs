//! Token services of registries that take bearer tokens only: the registry answers `401`
//! with `WWW-Authenticate: Bearer realm=…,service=…,scope=…`; the client gets a token from the
//! realm and retries with `Authorization: Bearer <token>`. The realm takes one [`Grant`]:
//! Docker Hub's (a `GET` with basic credentials), or the OAuth2 refresh-token exchange alone
//! (a `POST` of a form, as Docker sends an identity token from its config file, and as
//! Azure Container Registry takes the token `az acr login` leaves there).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Json, Router};
use serde_json::json;

use crate::ecr::repository_of;
use crate::front::{decode_basic, registry_error, BasicAuth, Gate};

/// The service name tokens are issued for.
pub const SERVICE: &str = "standin-registry";

/// What a token service takes in exchange for a token.
pub enum Grant {
    /// Docker Hub's: a `GET` with this user's basic credentials.
    Basic(BasicAuth),
    /// OAuth2's refresh-token exchange only: a `POST` of a form with
    /// `grant_type=refresh_token`, this refresh token, a `client_id` and the service. Basic
    /// credentials and anonymous `GET`s are refused.
    RefreshToken(String),
}

/// One form an OAuth2 exchange posted, as the token service read it: its fields' names, and
/// the values of those that are no secret (`refresh_token`'s is left out).
#[derive(Clone, Debug)]
pub struct Exchange {
    pub fields: Vec<String>,
    pub grant_type: Option<String>,
    pub service: Option<String>,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    /// Whether the token service took it.
    pub accepted: bool,
}

/// Issues tokens for one [`Grant`] and checks them.
pub struct TokenIssuer {
    grant: Grant,
    realm: Mutex<String>,
    issued: Mutex<HashSet<String>>,
    exchanges: Mutex<Vec<Exchange>>,
    counter: AtomicU64,
}

impl TokenIssuer {
    /// An issuer for `grant`; its realm is set once the front's address is known.
    pub fn new(grant: Grant) -> Arc<TokenIssuer> {
        Arc::new(TokenIssuer {
            grant,
            realm: Mutex::new(String::new()),
            issued: Mutex::new(HashSet::new()),
            exchanges: Mutex::new(Vec::new()),
            counter: AtomicU64::new(0),
        })
    }

    /// Sets the realm (`http://<front>/token`).
    pub fn set_realm(&self, realm: String) {
        *self.realm.lock().unwrap() = realm;
    }

    /// The `/token` route: `GET` for basic credentials, `POST` for the OAuth2 exchange.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/token", get(token).post(exchange))
            .with_state(self.clone())
    }

    /// Every token issued so far.
    pub fn issued(&self) -> Vec<String> {
        self.issued.lock().unwrap().iter().cloned().collect()
    }

    /// Every OAuth2 exchange posted so far, in order.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges.lock().unwrap().clone()
    }

    /// Forgets the exchanges posted so far.
    pub fn clear_exchanges(&self) {
        self.exchanges.lock().unwrap().clear();
    }

    /// A new token, which the gate will take.
    fn issue(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let token = format!("standin-token-{n}");
        self.issued.lock().unwrap().insert(token.clone());
        token
    }
}

/// The gate of a registry that takes bearer tokens only.
pub struct BearerGate(pub Arc<TokenIssuer>);

impl Gate for BearerGate {
    fn check(&self, _method: &str, authorization: Option<&str>, path: &str) -> Option<Response> {
        let token = authorization.and_then(|a| a.strip_prefix("Bearer "));
        if token.is_some_and(|t| self.0.issued.lock().unwrap().contains(t)) {
            return None;
        }
        let mut challenge = format!(
            "Bearer realm=\"{}\",service=\"{SERVICE}\"",
            self.0.realm.lock().unwrap()
        );
        if let Some(repository) = repository_of(path) {
            challenge.push_str(&format!(",scope=\"repository:{repository}:pull\""));
        }
        let mut response = registry_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required",
        );
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response.headers_mut().insert("www-authenticate", value);
        }
        Some(response)
    }
}

/// `GET /token`: a token for the basic credentials of [`Grant::Basic`]'s user.
async fn token(State(issuer): State<Arc<TokenIssuer>>, headers: HeaderMap) -> Response {
    let user = match &issuer.grant {
        Grant::Basic(user) => user,
        Grant::RefreshToken(_) => {
            return registry_error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "this token service takes OAuth2 refresh tokens only (POST)",
            )
        }
    };
    let credentials = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(decode_basic);
    match credentials {
        Some((name, pass)) if name == user.username && pass == user.password => {
            let token = issuer.issue();
            Json(json!({"token": token, "access_token": token, "expires_in": 300})).into_response()
        }
        _ => registry_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "incorrect username or password",
        ),
    }
}

/// `POST /token`: the OAuth2 refresh-token exchange of [`Grant::RefreshToken`]. Refusals
/// answer as RFC 6749 says: `400` with an `error` code.
async fn exchange(
    State(issuer): State<Arc<TokenIssuer>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Grant::RefreshToken(expected) = &issuer.grant else {
        return registry_error(StatusCode::NOT_FOUND, "NOT_FOUND", "no OAuth2 here");
    };
    let field = |name: &str| form.get(name).cloned();
    let mut exchange = Exchange {
        fields: form.keys().cloned().collect(),
        grant_type: field("grant_type"),
        service: field("service"),
        scope: field("scope"),
        client_id: field("client_id"),
        accepted: false,
    };
    let refusal = if exchange.grant_type.as_deref() != Some("refresh_token")
        || exchange.service.as_deref() != Some(SERVICE)
        || exchange.client_id.as_deref().is_none_or(str::is_empty)
    {
        Some("invalid_request")
    } else if form.get("refresh_token") != Some(expected) {
        Some("invalid_grant")
    } else {
        None
    };
    exchange.accepted = refusal.is_none();
    let scope = exchange.scope.clone().unwrap_or_default();
    issuer.exchanges.lock().unwrap().push(exchange);
    match refusal {
        Some(error) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": error, "error_description": "the refresh token is invalid or expired, or the request lacks a field"})),
        )
            .into_response(),
        None => Json(json!({"access_token": issuer.issue(), "expires_in": 300, "scope": scope}))
            .into_response(),
    }
}
