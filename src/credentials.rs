//! Credentials for source registries: the provider's `registry_auth` blocks first, then the
//! user's Docker config file (`auths`, `credHelpers`, `credsStore`) as the Docker CLI reads it,
//! else anonymous. What the Docker config file holds is a user and password, or an identity
//! token: an `identitytoken` entry, or a credential helper's answer with the user `<token>`
//! (Azure's `az acr login`, Harbor, Artifactory), which `distribution::session` exchanges
//! for bearer tokens as Docker does.

use std::path::Path;

use crate::secret::Secret;

/// Docker Hub's names; a `registry_auth` block for any of them serves all.
const DOCKER_HUB: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];

/// The key Docker's config file uses for Docker Hub.
const DOCKER_HUB_CONFIG_KEY: &str = "https://index.docker.io/v1/";

/// Credentials for one registry.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// User name and password (or access token).
    Basic {
        server: String,
        username: String,
        password: Secret,
    },
    /// An identity token from the Docker config file: the refresh token of the registry's
    /// OAuth2 token service, never sent to the registry itself.
    IdentityToken { server: String, token: Secret },
}

/// One `registry_auth` block.
#[derive(Clone, Debug)]
pub struct AuthBlock {
    pub address: String,
    pub username: String,
    pub password: Secret,
}

/// The credentials the provider knows about.
#[derive(Clone, Debug, Default)]
pub struct SourceAuth {
    blocks: Vec<AuthBlock>,
}

/// A registry address as a bare host: no scheme, path or Docker Hub alias.
pub fn normalize_address(address: &str) -> String {
    let host = address
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = host
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if DOCKER_HUB.contains(&host.as_str()) {
        "docker.io".to_string()
    } else {
        host
    }
}

impl SourceAuth {
    /// Credentials from the provider's `registry_auth` blocks.
    pub fn new(blocks: Vec<AuthBlock>) -> SourceAuth {
        SourceAuth { blocks }
    }

    /// Credentials for the registry at `host` (as a reference names it), or `None` for anonymous pulls.
    pub fn for_host(&self, host: &str) -> Option<Credentials> {
        let wanted = normalize_address(host);
        if let Some(block) = self
            .blocks
            .iter()
            .find(|b| normalize_address(&b.address) == wanted)
        {
            return Some(Credentials::Basic {
                server: wanted,
                username: block.username.clone(),
                password: block.password.clone(),
            });
        }
        from_docker_config(&wanted)
    }
}

/// Looks the registry at `host` up in the Docker config file, where the Docker CLI keeps
/// it: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn from_docker_config(host: &str) -> Option<Credentials> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".docker")))?;
    let path = dir.join("config.json");
    let config = std::fs::read(&path).ok()?;
    in_docker_config(&config, host).unwrap_or_else(|kind| {
        tracing::warn!(
            registry = host,
            config = %path.display(),
            "no Docker config credentials: {kind}; pulling anonymously"
        );
        None
    })
}

/// The credentials the Docker config file `config` (its bytes) holds for the registry at
/// `host`, running the credential helper it names for it; why there are none, when the file
/// or its helper failed (without what the helper printed, which may hold anything).
pub fn in_docker_config(config: &[u8], host: &str) -> Result<Option<Credentials>, String> {
    let keys: Vec<&str> = if host == "docker.io" {
        vec![DOCKER_HUB_CONFIG_KEY, "docker.io", "index.docker.io"]
    } else {
        vec![host]
    };
    let mut failed = None;
    for key in keys {
        match docker_credential::get_credential_from_reader(config, key) {
            Ok(docker_credential::DockerCredential::UsernamePassword(username, password)) => {
                return Ok(Some(Credentials::Basic {
                    server: host.to_string(),
                    username,
                    password: Secret::new(password),
                }))
            }
            Ok(docker_credential::DockerCredential::IdentityToken(token)) => {
                return Ok(Some(Credentials::IdentityToken {
                    server: host.to_string(),
                    token: Secret::new(token),
                }))
            }
            Err(docker_credential::CredentialRetrievalError::NoCredentialConfigured) => {}
            Err(docker_credential::CredentialRetrievalError::ConfigReadError) => {
                return Err("the file is not a Docker config (JSON with `auths`)".into());
            }
            // A helper's failure text can hold anything it printed; keep only the kind.
            Err(docker_credential::CredentialRetrievalError::HelperFailure { helper, .. }) => {
                failed = Some(format!("credential helper `{helper}` failed"));
            }
            Err(other) => failed = Some(other.to_string()),
        }
    }
    failed.map_or(Ok(None), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(address: &str) -> AuthBlock {
        AuthBlock {
            address: address.into(),
            username: "me".into(),
            password: Secret::new("pw"),
        }
    }

    #[test]
    fn docker_hub_aliases_match_each_other() {
        let auth = SourceAuth::new(vec![block("registry-1.docker.io")]);
        assert!(matches!(
            auth.for_host("docker.io"),
            Some(Credentials::Basic { .. })
        ));
        assert_eq!(
            normalize_address("https://index.docker.io/v1/"),
            "docker.io"
        );
    }

    #[test]
    fn blocks_match_by_host_and_port() {
        let auth = SourceAuth::new(vec![block("http://127.0.0.1:5000")]);
        match auth.for_host("127.0.0.1:5000") {
            Some(Credentials::Basic { username, .. }) => assert_eq!(username, "me"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn an_identity_token_in_auths_is_one_not_a_password() {
        let config =
            br#"{"auths": {"myregistry.azurecr.io": {"auth": "", "identitytoken": "refresh-me"}}}"#;
        match in_docker_config(config, "myregistry.azurecr.io") {
            Ok(Some(Credentials::IdentityToken { server, token })) => {
                assert_eq!(server, "myregistry.azurecr.io");
                assert_eq!(token.expose(), "refresh-me");
                assert!(!format!("{token:?}").contains("refresh-me"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
