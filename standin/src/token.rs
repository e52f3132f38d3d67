//! Docker Hub's bearer-token flow: the registry answers `401` with
//! `WWW-Authenticate: Bearer realm=…,service=…,scope=…`; the client gets a token from the
//! realm (with basic credentials) and retries with `Authorization: Bearer <token>`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::ecr::repository_of;
use crate::front::{decode_basic, registry_error, BasicAuth, Gate};

/// The service name tokens are issued for.
const SERVICE: &str = "standin-registry";

/// Issues tokens to one user and checks them.
pub struct TokenIssuer {
    user: BasicAuth,
    realm: Mutex<String>,
    issued: Mutex<HashSet<String>>,
    counter: AtomicU64,
}

impl TokenIssuer {
    /// An issuer for `user`; its realm is set once the front's address is known.
    pub fn new(user: BasicAuth) -> Arc<TokenIssuer> {
        Arc::new(TokenIssuer {
            user,
            realm: Mutex::new(String::new()),
            issued: Mutex::new(HashSet::new()),
            counter: AtomicU64::new(0),
        })
    }

    /// Sets the realm (`http://<front>/token`).
    pub fn set_realm(&self, realm: String) {
        *self.realm.lock().unwrap() = realm;
    }

    /// The `/token` route.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/token", get(token))
            .with_state(self.clone())
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

async fn token(State(issuer): State<Arc<TokenIssuer>>, headers: HeaderMap) -> Response {
    let credentials = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(decode_basic);
    match credentials {
        Some((user, pass)) if user == issuer.user.username && pass == issuer.user.password => {
            let n = issuer.counter.fetch_add(1, Ordering::SeqCst);
            let token = format!("standin-token-{n}");
            issuer.issued.lock().unwrap().insert(token.clone());
            Json(json!({"token": token, "access_token": token, "expires_in": 300})).into_response()
        }
        _ => registry_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "incorrect username or password",
        ),
    }
}
