//! `ecrmirror_source_tags`: the tags of a source repository a family of mirrors is made of,
//! chosen by pattern, version range and newest N ([`crate::tags`]), for `for_each`. Reads only
//! the registry's tag list (every page), never a manifest: it costs no pull.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{AttributeConstraint, AttributeType, Block, Description, Schema};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{DataSource, Diagnostics};

use crate::clients::{Clients, SharedClients};
use crate::error::{Error, Result};
use crate::reference::SourceRef;
use crate::schema::{attribute, attributes, string};
use crate::tags::Filters;
use crate::terraform::{parsed, Diagnose};

/// The data source's state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct SourceTagsState {
    pub(crate) repository: Value<String>,
    #[serde(rename = "match")]
    pub(crate) matching: Value<String>,
    pub(crate) exclude: Value<String>,
    pub(crate) versions: Value<String>,
    pub(crate) latest: Value<f64>,
    pub(crate) tags: Value<Vec<Value<String>>>,
    pub(crate) id: Value<String>,
}

/// `ecrmirror_source_tags`.
pub(crate) struct SourceTagsDataSource {
    clients: SharedClients,
}

impl SourceTagsDataSource {
    /// The data source, using the clients `configure` will set.
    pub(crate) fn new(clients: SharedClients) -> SourceTagsDataSource {
        SourceTagsDataSource { clients }
    }
}

/// The schema of `ecrmirror_source_tags`.
pub fn schema() -> Schema {
    use AttributeConstraint::{Computed, Optional, Required};
    Schema {
        version: 0,
        block: Block {
            version: 0,
            attributes: attributes(vec![
                ("repository", string(Required, "Source repository as Docker reads it, without tag or digest: `nginx`, `ghcr.io/org/app`. Credentials are the resource's: the provider's `registry_auth` blocks, else the Docker config file, else anonymous.")),
                ("match", string(Optional, "Regular expression a tag must match whole, e.g. `^1\\\\.27\\\\.\\\\d+-alpine$` (anchors are implied). Empty: no filter.")),
                ("exclude", string(Optional, "Regular expression; tags it matches anywhere are left out, e.g. `-rc\\\\d*$`. Empty: no filter.")),
                ("versions", string(Optional, "Version range over each tag's version, e.g. `>= 1.25, < 2` or `~1.27`. A tag's version is its leading `v?MAJOR[.MINOR[.PATCH]]` (missing parts read as 0); what follows (`-alpine`, `-rc1`) is a variant, not a pre-release, so `1.27.3-alpine` is 1.27.3. Tags without a leading version never pass. Ranges read as Cargo's: a bare version means compatible (`1.2.3` is `^1.2.3`); `=1.2.3` is exactly it. Empty: no filter.")),
                ("latest", attribute(AttributeType::Number, Optional, "Keep the first N tags of the ordered list (at least 1).")),
                ("tags", attribute(AttributeType::List(Box::new(AttributeType::String)), Computed, "The chosen tags: highest version first (ties in the registry's order), then tags without a version in the registry's order. Feed it to `for_each` with `toset(...)`.")),
                ("id", string(Computed, "The repository, normalised (`docker.io/library/nginx`).")),
            ]),
            blocks: Default::default(),
            description: Description::markdown("The tags of a source repository, chosen by pattern, version range and newest N: a family of tags to mirror with `for_each`, each an ordinary `ecrmirror_image`. Reads only the registry's tag list (every page, `GET /v2/<name>/tags/list`), never a manifest, so reading it costs no pull from Docker Hub's quota."),
            deprecated: false,
        },
    }
}

/// The repository and the filters, parsed; each error is on its attribute.
fn arguments(config: &SourceTagsState) -> (Result<Option<SourceRef>>, Vec<Error>, Filters) {
    let repository = parsed(&config.repository, "repository", |text: &str| {
        if text.contains('@') || text.rsplit('/').next().is_some_and(|last| last.contains(':')) {
            return Err(format!("`{text}` names a tag or digest; give the repository alone, such as `nginx` or `ghcr.io/org/app`."));
        }
        SourceRef::parse(text)
    })
    .map(Value::as_option);
    let mut errors = Vec::new();
    let mut filters = Filters::default();
    // An empty filter is no filter (what a module passes for "none").
    let given = |value: &Value<String>| match value {
        Value::Value(text) if text.trim().is_empty() => Value::Null,
        other => other.clone(),
    };
    let matching = parsed(&given(&config.matching), "match", Filters::matching);
    let excluding = parsed(&given(&config.exclude), "exclude", Filters::excluding);
    let versions = parsed(&given(&config.versions), "versions", Filters::versions);
    filters.matching = kept(matching, &mut errors);
    filters.excluding = kept(excluding, &mut errors);
    filters.versions = kept(versions, &mut errors);
    match &config.latest {
        Value::Value(n) if *n >= 1.0 && n.fract() == 0.0 && *n <= f64::from(u32::MAX) => {
            filters.latest = Some(*n as usize)
        }
        Value::Value(n) => errors.push(Error::Invalid {
            attribute: "latest",
            detail: format!(
                "`latest` keeps the first N tags; it must be a whole number of at least 1, not {n}."
            ),
        }),
        _ => {}
    }
    (repository, errors, filters)
}

/// The value `parsed` holds, its error kept in `errors`.
fn kept<T>(parsed: Result<Value<T>>, errors: &mut Vec<Error>) -> Option<T> {
    match parsed {
        Ok(value) => value.as_option(),
        Err(err) => {
            errors.push(err);
            None
        }
    }
}

#[async_trait]
impl DataSource for SourceTagsDataSource {
    type State<'a> = SourceTagsState;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(schema())
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: SourceTagsState) -> Option<()> {
        let (repository, errors, _) = arguments(&config);
        for error in repository.err().into_iter().chain(errors) {
            error.report(diags);
        }
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        config: SourceTagsState,
        _meta: ValueEmpty,
    ) -> Option<SourceTagsState> {
        super::answered(&self.clients, diags, |clients| async move {
            list(&clients, &config).await
        })
        .await
    }
}

/// Reads the repository's tag list and chooses from it.
async fn list(clients: &Clients, config: &SourceTagsState) -> Result<SourceTagsState> {
    let (repository, errors, filters) = arguments(config);
    if let Some(error) = errors.into_iter().next() {
        return Err(error);
    }
    let repository = repository?.ok_or_else(|| Error::Invalid {
        attribute: "repository",
        detail: "`repository` has no known value.".into(),
    })?;
    if clients.pending.registry_auth {
        return Err(Clients::pending_error("`registry_auth`"));
    }
    let credentials = clients.source_auth.for_host(repository.host());
    let listed = crate::source::tags(&clients.distribution, &repository, credentials.as_ref())
        .await
        .map_err(|err| match err {
            // Said of `repository` here: this data source has no `docker_source`.
            Error::SourceNotFound { reference, cause } => Error::Invalid {
                attribute: "repository",
                detail: format!(
                    "The registry has no repository {reference}, or does not let it be listed: {cause}\n\nCheck `repository` (as Docker reads it, such as `nginx` or `ghcr.io/org/app`), and the credentials for the registry if it is private."
                ),
            },
            // Nor is any other failure about an attribute it lacks.
            Error::Source { reference, cause } => Error::Environment {
                summary: format!("Cannot read the tag list of {reference}"),
                detail: cause,
            },
            other => other,
        })?;
    let chosen = filters.choose(&listed);
    Ok(SourceTagsState {
        tags: Value::Value(chosen.into_iter().map(Value::Value).collect()),
        id: Value::Value(repository.name()),
        ..config.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_and_bad_arguments_are_errors_on_their_attributes() {
        crate::schema::assert_documented(&schema());
        let config = SourceTagsState {
            repository: Value::Value("nginx:1.27".into()),
            matching: Value::Value("(".into()),
            exclude: Value::Value("[".into()),
            versions: Value::Value(">= banana".into()),
            latest: Value::Value(2.5),
            ..Default::default()
        };
        let (repository, errors, _) = arguments(&config);
        assert_eq!(repository.unwrap_err().attribute(), Some("repository"));
        let attributes: Vec<_> = errors.iter().filter_map(Error::attribute).collect();
        assert_eq!(attributes, ["match", "exclude", "versions", "latest"]);
        let fine = SourceTagsState {
            repository: Value::Value("ghcr.io/org/app".into()),
            latest: Value::Value(3.0),
            exclude: Value::Value(String::new()),
            ..Default::default()
        };
        let (repository, errors, filters) = arguments(&fine);
        assert_eq!(repository.unwrap().unwrap().name(), "ghcr.io/org/app");
        assert!(errors.is_empty());
        assert_eq!(filters.latest, Some(3));
        assert!(filters.excluding.is_none(), "an empty filter is none");
    }
}
