//! The provider's one error type, and the single place that turns errors into diagnostics.
//!
//! Every variant says what failed; [`Error::hint`] says what to do next. Messages never carry
//! tokens or passwords: the adapters build them from names and causes only.

use std::time::Duration;

/// Everything that can go wrong on the way from Terraform to ECR.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// An argument is invalid (found at apply time when it was unknown at plan time).
    #[error("Invalid {attribute}")]
    Invalid {
        attribute: &'static str,
        detail: String,
    },

    /// The provider block is unusable (unknown profile, no region, bad docker_host).
    #[error("{summary}")]
    Config {
        attribute: &'static str,
        summary: String,
        detail: String,
    },

    /// A resource operation ran before `configure`.
    #[error("The ecrmirror provider is not configured")]
    NotConfigured,

    /// No Docker engine answers at the configured address.
    #[error("Cannot reach the Docker engine at {host}")]
    DockerUnreachable { host: String, cause: String },

    /// The engine answered but an operation failed.
    #[error("The Docker engine could not {action}")]
    Docker { action: String, cause: String },

    /// The source registry has no such image.
    #[error("Source image {reference} was not found")]
    SourceNotFound { reference: String, cause: String },

    /// The source registry refused the pull.
    #[error("The source registry refused to serve {reference}")]
    SourceDenied {
        reference: String,
        cause: String,
        /// Whether the request carried credentials (which the registry then refused).
        with_credentials: bool,
    },

    /// The source registry's token service refused the identity token the Docker config file
    /// holds for it (an `identitytoken`, or a credential helper's `<token>` login).
    #[error("The token service of {host} refused the login the Docker config file holds for it")]
    LoginRefused { host: String, cause: String },

    /// The source registry rate-limited the pull.
    #[error("The source registry rate-limited the pull of {reference}")]
    RateLimited { reference: String, cause: String },

    /// What the source serves is not a container image the provider can copy (a manifest
    /// that is not an image manifest or index, a config that is not an image config, a
    /// descriptor without a size).
    #[error("{reference} is not a container image the provider can mirror")]
    NotAnImage { reference: String, cause: String },

    /// The source is an OCI artifact (a Helm chart, …) and the copy method is Docker's,
    /// whose engine pulls container images only.
    #[error("A Docker engine cannot pull {reference}: it is {name}, not a container image")]
    EngineCannotPull {
        reference: String,
        /// What it is, in words (`a Helm chart`).
        name: String,
        /// Its artifact type, or its config's media type.
        kind: String,
        /// Said at plan (a warning: a plan error would block even `terraform destroy`,
        /// whose refresh plans every create), not by a failed apply.
        at_plan: bool,
    },

    /// The source is not signed as the mirror's `verify` block asks: nothing is copied.
    #[error("{reference} is not signed as `verify` asks")]
    Unverified {
        reference: String,
        /// The manifest digest that was verified (what the source names).
        digest: String,
        /// Why each signature found did not count (or that none was found).
        reasons: Vec<String>,
    },

    /// Sigstore's trusted root could not be fetched (keyless `verify` without `trusted_root`).
    #[error("Cannot get Sigstore's trusted root")]
    TrustRoot { cause: String },

    /// A registry (or its token service, or a redirect) would have the provider speak plain
    /// HTTP to another machine.
    #[error("The registry would have the provider use plain HTTP for {reference}")]
    PlainHttp { reference: String, cause: String },

    /// The source registry could not be asked about an image.
    #[error("Cannot query the source registry about {reference}")]
    Source { reference: String, cause: String },

    /// `terraform import` named something that is not an ECR tag.
    #[error("Cannot import {id}")]
    Import { id: String, cause: String },

    /// The source holds no image for the platform a mirror asks for.
    #[error("{reference} has no image for platform {wanted}")]
    PlatformMissing {
        /// `platform`, or `platforms` for a subset.
        attribute: &'static str,
        reference: String,
        wanted: String,
        /// The platforms the source holds (empty when only the engine knows).
        held: Vec<String>,
        /// What to do, in the copy method's terms.
        hint: String,
    },

    /// A blob the source sent does not match its digest; nothing of it was stored.
    #[error("A blob of {reference} does not match its digest")]
    Corrupt {
        reference: String,
        digest: String,
        cause: String,
    },

    /// The target ECR repository does not exist.
    #[error("ECR repository {repository} does not exist")]
    RepositoryNotFound {
        repository: String,
        /// The registry's account id, when one was named.
        registry_id: Option<String>,
        /// The registry's host, when the failure came from it.
        host: Option<String>,
        /// What the repository creation templates say about it.
        templates: TemplateLookup,
    },

    /// A plan's warning: the repository does not exist, and ECR creates it on the first push
    /// from a repository creation template.
    #[error("ECR will create repository {repository} on push, from template `{prefix}`")]
    CreatedOnPush { repository: String, prefix: String },

    /// ECR's registry refused the credentials from GetAuthorizationToken.
    #[error("ECR refused the push credentials for {host}")]
    TargetDenied { host: String, cause: String },

    /// ECR's registry named a token service on another host than its own, where the
    /// provider does not send ECR's credentials.
    #[error("ECR's registry at {host} asked for its credentials elsewhere")]
    Misdirected { host: String, cause: String },

    /// The push to ECR failed for another reason.
    #[error("Pushing {target} failed")]
    Push { target: String, cause: String },

    /// An ECR API call failed.
    #[error("ECR {operation} failed")]
    Aws {
        operation: &'static str,
        cause: String,
        refusal: AwsRefusal,
    },

    /// A connection failed before any answer (DNS, connect, TLS, proxy).
    #[error("Cannot reach {service} at {endpoint}")]
    Network {
        service: &'static str,
        endpoint: String,
        attribute: Option<&'static str>,
        /// What failed and what to do, from [`crate::network::explain`].
        detail: String,
    },

    /// The environment the provider runs in is unusable (e.g. `AWS_CA_BUNDLE`).
    #[error("{summary}")]
    Environment { summary: String, detail: String },

    /// Another mirror of this configuration is planned to the same ECR tag (a warning).
    #[error("Another mirror targets {target}")]
    TagShared { target: String, others: Vec<String> },

    /// After the push, ECR's tag names another manifest: another push took the tag.
    #[error("Another push took {target}")]
    TagTaken {
        target: String,
        pushed: String,
        found: String,
    },

    /// ECR has no such tag (the `ecrmirror_image` data source).
    #[error("ECR has no tag {tag} in repository {repository}")]
    TagNotFound {
        repository: String,
        tag: String,
        host: String,
    },

    /// The tag exists in a repository with immutable tags, and names another image than the
    /// mirror would push: ECR refuses to overwrite it.
    #[error("ECR tag {target} is immutable")]
    TagImmutable {
        target: String,
        /// The manifest the tag names.
        held: String,
        /// The manifest the mirror of the source is now.
        wanted: String,
    },

    /// ECR's registry refused the tag at the push (an immutable tag that exists).
    #[error("ECR refused the tag {target}")]
    TagRefused { target: String, cause: String },

    /// State records the mirror in another registry than this provider configuration's
    /// (another alias, region, profile or account): a warning, at plan (the mirror moves
    /// here) and at destroy (nothing here to remove).
    #[error("{}", if *destroyed { format!("{repository}:{tag} stays in the registry {from}") } else { format!("The mirror {repository}:{tag} moves to the registry {to}") })]
    Relocated {
        repository: String,
        tag: String,
        /// The registry host state records.
        from: String,
        /// This provider configuration's registry host.
        to: String,
        /// Whether it is said at a destroy.
        destroyed: bool,
    },

    /// A plan mirrors again into an immutable tag (a warning).
    #[error("This plan mirrors again into the immutable ECR tag {target}")]
    ImmutableRemirror { target: String },

    /// A plan mirrors fewer platforms into a tag that holds a multi-platform index (a
    /// warning on the argument that asks for them).
    #[error("This plan may replace the multi-platform index in {target} with {}", by.what())]
    IndexReplaced {
        target: String,
        index: String,
        by: Narrowing,
    },

    /// A whole operation ran past its `timeouts` limit.
    #[error("Mirroring did not finish within the {} timeout of {limit}", operation.name())]
    Timeout {
        operation: Operation,
        limit: String,
        /// The last failure the operation was trying again after, when there was one.
        retrying: Option<String>,
    },
}

/// What asks a plan for fewer platforms than the index ECR's tag holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Narrowing {
    /// The Docker method, which pushes one platform's image (`platform`: whether the
    /// configuration names the platform, else it is the engine's own).
    Docker { platform: bool },
    /// `platform`, with the registry method.
    Platform,
    /// `platforms`, with the registry method: a new index of some platforms.
    Platforms,
}

impl Narrowing {
    /// The argument the warning is on.
    pub fn attribute(self) -> &'static str {
        match self {
            Narrowing::Docker { .. } => "copy_method",
            Narrowing::Platform => "platform",
            Narrowing::Platforms => "platforms",
        }
    }

    /// What the tag would hold instead.
    fn what(self) -> &'static str {
        match self {
            Narrowing::Docker { .. } | Narrowing::Platform => "one platform's image",
            Narrowing::Platforms => "an index of fewer platforms",
        }
    }
}

/// Which of the `timeouts` limits applies: the operation it bounds.
#[derive(Clone, Copy, Debug)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    /// Every operation with a limit.
    pub(crate) const ALL: [Operation; 3] =
        [Operation::Create, Operation::Update, Operation::Delete];

    /// The limit's name in the `timeouts` block.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }
}

/// What the repository creation templates say about a missing repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateLookup {
    /// They were not asked (an import, a data source, the registry's own refusal).
    NotAsked,
    /// None applied for `CREATE_ON_PUSH` covers the name.
    NoneApplies,
    /// They could not be asked: why.
    Unknown(String),
}

/// What to do about an immutable tag that a mirror would overwrite.
pub(crate) const IMMUTABLE_HINT: &str = "Mirror to a new tag (set `tag`, for example to the source's new version), or change the repository's tag mutability (`image_tag_mutability = \"MUTABLE\"`, or an exclusion filter that matches this tag).";

/// Shorthand for results with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// What the user can do about it.
    pub(crate) fn hint(&self) -> String {
        match self {
            Error::Invalid { .. }
            | Error::Config { .. }
            | Error::Network { .. }
            | Error::Environment { .. } => String::new(),
            Error::NotConfigured => "This is a bug in the provider or in Terraform; please report it.".into(),
            Error::DockerUnreachable { .. } => "Start the Docker engine, or point the provider's `docker_host` (or DOCKER_HOST) at a running one. The machine that runs Terraform needs a Docker engine for copy_method \"docker\".".into(),
            Error::Docker { .. } => "Check the Docker engine's log and free disk space, then apply again.".into(),
            Error::SourceNotFound { .. } => "Check `docker_source`: the registry, repository, tag or digest does not exist (or is private and needs credentials).".into(),
            Error::SourceDenied { with_credentials: true, .. } => "The registry refused the credentials the provider has for it (its `registry_auth` block, else the Docker config file): check the user name, the password or token, and that it may pull this repository.".into(),
            Error::SourceDenied { .. } => "Give credentials for the source registry in a `registry_auth` block of the provider, or log in with `docker login` so that the Docker config file holds them.".into(),
            Error::LoginRefused { host, .. } => format!("The Docker config file holds an identity token for {host} (saved by `docker login`, or given by a credential helper such as the one `az acr login` sets up), and the registry's token service does not take it: the login expired or was revoked. Log in again (`docker login {host}`; for Azure Container Registry `az acr login --name <registry>`) and run Terraform again, or give the registry a `registry_auth` block."),
            Error::RateLimited { .. } => "Wait and apply again, or authenticate to the source registry (a `registry_auth` block) to get a higher pull limit.".into(),
            Error::NotAnImage { .. } => "Point `docker_source` at a container image (an image manifest or a multi-platform index), or at an OCI artifact (a Helm chart, a WebAssembly module) with `copy_method = \"registry\"`.".into(),
            Error::EngineCannotPull { .. } => "Set `copy_method = \"registry\"` (in the resource, or the provider's default): it copies any OCI artifact (Helm charts, WebAssembly modules, …) registry to registry, byte for byte, with its digest, and needs no Docker engine.".into(),
            Error::Unverified { .. } => "Mirror a tag its publisher signed, or check `verify`: the `keys` (PEM public keys, as `cosign.pub`), each `keyless` block's `issuer` and `subject` or `subject_regex` (they must match the signing certificate exactly: `cosign verify` prints them), and `trusted_root`. Signatures are looked up where cosign puts them: the source's `sha256-<hex>.sig` tag and its OCI referrers. (`terraform destroy` plans the configuration before it destroys, and stops here too: `terraform destroy -refresh=false` destroys without that plan.)".into(),
            Error::TrustRoot { .. } => "Keyless identities without `trusted_root` are checked against Sigstore's public-good instance, whose trusted root the provider fetches from its TUF repository (https://tuf-repo-cdn.sigstore.dev) and keeps in its cache directory. Check the network to it, or set `trusted_root` (`cosign trusted-root create` writes one): then nothing is fetched.".into(),
            Error::Source { .. } => "Check that the source registry is reachable from the machine that runs Terraform, and its credentials (`registry_auth` or the Docker config file).".into(),
            Error::PlainHttp { .. } => "The provider speaks to registries, their token services and the storage they redirect to over HTTPS only (plain HTTP only on this machine), so that credentials and signed URLs cannot be read on the way. Have the registry serve and redirect to HTTPS URLs.".into(),
            Error::Import { .. } => "Import IDs are `REPOSITORY:TAG` or `<registry host>/<repository>:<tag>`, naming a tag that exists in ECR.".into(),
            Error::PlatformMissing { hint, .. } => hint.clone(),
            Error::RepositoryNotFound { .. } => "Create the repository first, for example with an `aws_ecr_repository` resource, and reference it in `repository` so Terraform orders the two. Or let ECR create it on the first push: a repository creation template applied for `CREATE_ON_PUSH` whose prefix covers the name (`aws ecr create-repository-creation-template --prefix <prefix> --applied-for CREATE_ON_PUSH`, or `ROOT` for every repository).".into(),
            Error::CreatedOnPush { .. } => "The identity the provider uses needs ecr:CreateRepository on the repository (and ecr:TagResource when the template tags what it creates). To manage the repository's settings in Terraform instead, declare it (`aws_ecr_repository`) and reference it in `repository`.".into(),
            Error::TargetDenied { .. } => "Check that the AWS identity the provider uses may push to this repository (ecr:GetAuthorizationToken, ecr:InitiateLayerUpload, ecr:PutImage, …).".into(),
            Error::Corrupt { .. } => "Nothing of this blob was stored in ECR and no manifest was pushed. Apply again; if it keeps failing, the source registry (or a proxy on the way) serves damaged data.".into(),
            Error::Misdirected { .. } => "The provider sends ECR's credentials only to the registry GetAuthorizationToken names. Check the ECR endpoint in use (AWS_ENDPOINT_URL_ECR, AWS_ENDPOINT_URL, a profile's `endpoint_url`): it should be ECR's, or an emulator that serves its own tokens.".into(),
            Error::Push { .. } => "Apply again; if it keeps failing, check the network to ECR (and, with copy_method \"docker\", the Docker engine's log).".into(),
            Error::Aws { refusal, .. } => refusal.hint().into(),
            Error::TagShared { .. } | Error::TagTaken { .. } => "Give each `ecrmirror_image` its own `tag` (or `repository`): an ECR tag holds one image, so two mirrors of one tag overwrite each other at every apply.".into(),
            Error::TagNotFound { .. } => "Check `repository` and `tag`. When another configuration makes this mirror, apply that one first.".into(),
            Error::TagImmutable { .. } | Error::ImmutableRemirror { .. } | Error::TagRefused { .. } => IMMUTABLE_HINT.into(),
            Error::IndexReplaced { by: Narrowing::Docker { platform: false }, .. } => "To keep every platform, set `copy_method = \"registry\"` (in the resource, or the provider's default): it copies the whole index, digest included. To mirror one platform on purpose, there is nothing to do.".into(),
            Error::IndexReplaced { by: Narrowing::Docker { platform: true }, .. } => "To keep every platform, set `copy_method = \"registry\"` (in the resource, or the provider's default) and leave `platform` out: the registry method then copies the whole index, digest included. To mirror one platform on purpose, there is nothing to do.".into(),
            Error::IndexReplaced { by: Narrowing::Platform, .. } => "To keep every platform, leave `platform` out (or list the platforms to keep in `platforms`). To mirror one platform on purpose, there is nothing to do.".into(),
            Error::IndexReplaced { by: Narrowing::Platforms, .. } => "To keep every platform, leave `platforms` out, or list every platform of the source in it. To keep just these platforms on purpose, there is nothing to do.".into(),
            Error::Relocated { repository, tag, from, .. } => format!("To remove the copy in {from}, delete the tag there: with the provider configuration that made it, or `aws ecr batch-delete-image --repository-name {repository} --image-ids imageTag={tag}` against that registry. To keep it, there is nothing to do."),
            Error::Timeout { operation: Operation::Delete, .. } => "Raise `delete` in the resource's `timeouts` block, or check the network to the ECR API.".into(),
            Error::Timeout { operation, .. } => format!("Raise `{}` in the resource's `timeouts` block, or check the network to the registries (and, with copy_method \"docker\", the Docker engine's).", operation.name()),
        }
    }

    /// The cause, for the diagnostic's detail.
    fn cause(&self) -> String {
        match self {
            Error::Invalid { detail, .. }
            | Error::Config { detail, .. }
            | Error::Network { detail, .. }
            | Error::Environment { detail, .. } => detail.clone(),
            Error::DockerUnreachable { cause, .. }
            | Error::Docker { cause, .. }
            | Error::SourceNotFound { cause, .. }
            | Error::SourceDenied { cause, .. }
            | Error::LoginRefused { cause, .. }
            | Error::RateLimited { cause, .. }
            | Error::TargetDenied { cause, .. }
            | Error::Push { cause, .. }
            | Error::Misdirected { cause, .. }
            | Error::TrustRoot { cause }
            | Error::TagRefused { cause, .. }
            | Error::Source { cause, .. }
            | Error::PlainHttp { cause, .. }
            | Error::NotAnImage { cause, .. }
            | Error::Import { cause, .. }
            | Error::Aws { cause, .. } => cause.clone(),
            Error::Corrupt { digest, cause, .. } => format!("{digest}: {cause}"),
            Error::EngineCannotPull { reference, kind, at_plan, .. } => format!(
                "{reference} names an OCI artifact of type `{kind}`. With `copy_method = \"docker\"` the image is pulled and pushed through a Docker engine, which pulls container images only. {}",
                if *at_plan { "Applied as it is, the mirror fails before anything is pulled." } else { "Nothing was pulled or pushed." }
            ),
            Error::PlatformMissing { held, .. } => match held.as_slice() {
                [] => "The Docker engine found no image for it.".into(),
                [one] => format!("The source holds one platform: {one}."),
                many => format!("The source holds these platforms: {}.", many.join(", ")),
            },
            Error::RepositoryNotFound {
                repository,
                registry_id,
                host,
                templates,
            } => {
                let registry = match (host, registry_id) {
                    (Some(host), _) => format!("The registry {host}"),
                    (None, Some(id)) => format!("The registry of account {id}"),
                    (None, None) => "The registry of this AWS account".to_string(),
                };
                match (templates, host) {
                    (TemplateLookup::Unknown(why), _) => format!("{registry} has no repository named `{repository}`. Whether ECR would create it on push is not known: {why}"),
                    (TemplateLookup::NoneApplies, _) => format!("{registry} has no repository named `{repository}`, and no repository creation template applied for CREATE_ON_PUSH covers the name."),
                    (TemplateLookup::NotAsked, Some(_)) => format!("{registry} has no repository named `{repository}` and did not create it on push."),
                    (TemplateLookup::NotAsked, None) => format!("{registry} has no repository named `{repository}`."),
                }
            }
            Error::CreatedOnPush { repository, prefix } => format!(
                "The registry has no repository named `{repository}`. Its repository creation template `{prefix}` is applied for CREATE_ON_PUSH, so ECR creates the repository, with the template's settings (tag mutability, encryption, lifecycle and repository policies), when the mirror is first pushed. Destroying the mirror removes its tag and leaves the repository."
            ),
            Error::TagShared { others, .. } => format!(
                "Another `ecrmirror_image` of this configuration mirrors {} to the same repository and tag.",
                others.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(", ")
            ),
            Error::TagTaken { pushed, found, .. } => format!(
                "ECR's tag names {found}, not {pushed}, which this mirror pushed: another push took the tag meanwhile (another `ecrmirror_image` of this configuration, or a push outside Terraform). Nothing was recorded for this mirror."
            ),
            Error::TagNotFound { host, .. } => format!("The registry {host} answered that the tag does not exist."),
            Error::TagImmutable { held, wanted, .. } => format!(
                "The repository's tags are immutable, and the tag names {held}, not {wanted}, which the mirror of the source is now: ECR refuses to overwrite an immutable tag. Nothing was transferred and the state is unchanged."
            ),
            Error::IndexReplaced { target, index, by: Narrowing::Docker { platform: false } } => format!(
                "ECR's tag {target} holds the multi-platform index {index}, and `copy_method = \"docker\"` mirrors one platform's image (a Docker engine pulls and pushes one platform). The apply keeps the index when it already holds the source's image for the engine's platform (nothing is transferred); otherwise it pushes that image over it, and the tag no longer serves the other platforms."
            ),
            Error::IndexReplaced { target, index, by: Narrowing::Docker { platform: true } } => format!(
                "ECR's tag {target} holds the multi-platform index {index}, and `copy_method = \"docker\"` with `platform` asks for that platform's image: the apply pushes it in place of the index, and the tag no longer serves the other platforms."
            ),
            Error::IndexReplaced { target, index, by: Narrowing::Platform } => format!(
                "ECR's tag {target} holds the multi-platform index {index}, and `platform` asks for one platform's image: the registry method copies that image and tags it, in place of the index, and the tag no longer serves the other platforms."
            ),
            Error::IndexReplaced { target, index, by: Narrowing::Platforms } => format!(
                "ECR's tag {target} holds the multi-platform index {index}, and `platforms` asks for a new index of just those platforms: the registry method tags it in place of the index, and the tag no longer serves the platforms left out (unless `platforms` lists every platform of the source: the index is then the source's, byte for byte)."
            ),
            Error::ImmutableRemirror { .. } => "The repository's tags are immutable: ECR refuses any push to an existing tag, even of the image it names. If ECR's tag already holds the source's image, the apply records it without transferring anything; otherwise the apply fails before transferring anything and the state stays as it is.".into(),
            Error::Timeout { retrying, .. } => retrying.clone().unwrap_or_default(),
            Error::Relocated { repository, tag, from, to, destroyed: false } => format!(
                "State records {repository}:{tag} in the registry {from}, and this provider configuration's registry is {to} (another provider alias, region, profile or account). The apply records the mirror in {to}, copying it there unless {to} already holds the source's image, so `id`, `image_uri` and `image_uri_digest` are known after apply. The copy in {from} stays as it is: this provider configuration cannot reach it."
            ),
            Error::Relocated { repository, tag, from, to, destroyed: true } => format!(
                "State records {repository}:{tag} in the registry {from}, and this provider configuration's registry is {to}, which cannot reach it: the destroy removes the mirror from state and leaves the tag in {from} as it is."
            ),
            Error::Unverified { digest, reasons, .. } => {
                let found = match reasons.as_slice() {
                    [one] => {
                        let mut chars = one.chars();
                        let first: String = chars.next().map(|c| c.to_uppercase().collect()).unwrap_or_default();
                        format!("{first}{}.", chars.as_str())
                    }
                    many => format!("Found: {}.", many.join("; ")),
                };
                format!("What the source names, {digest}, is what `verify` checks. {found} Nothing was pulled or copied.")
            }
            Error::NotConfigured => String::new(),
        }
    }

    /// The attribute the error is about, when there is one.
    pub(crate) fn attribute(&self) -> Option<&'static str> {
        match self {
            Error::Invalid { attribute, .. } | Error::Config { attribute, .. } => Some(attribute),
            Error::SourceNotFound { .. }
            | Error::SourceDenied { .. }
            | Error::LoginRefused { .. }
            | Error::Source { .. }
            | Error::NotAnImage { .. }
            | Error::Corrupt { .. } => Some("docker_source"),
            Error::PlatformMissing { attribute, .. } => Some(attribute),
            Error::IndexReplaced { by, .. } => Some(by.attribute()),
            Error::EngineCannotPull { .. } => Some("copy_method"),
            Error::Unverified { .. } | Error::TrustRoot { .. } => Some("verify"),
            Error::RepositoryNotFound { .. } | Error::CreatedOnPush { .. } => Some("repository"),
            Error::Timeout { .. } => Some("timeouts"),
            Error::TagShared { .. }
            | Error::TagTaken { .. }
            | Error::TagNotFound { .. }
            | Error::TagImmutable { .. }
            | Error::TagRefused { .. }
            | Error::ImmutableRemirror { .. } => Some("tag"),
            Error::Network { attribute, .. } => *attribute,
            _ => None,
        }
    }

    /// The diagnostic's detail: the cause, then the advice.
    pub(crate) fn detail(&self) -> String {
        let cause = without_queries(&self.cause());
        let hint = self.hint();
        match (cause.is_empty(), hint.is_empty()) {
            (false, false) => format!("{cause}\n\n{hint}"),
            (false, true) => cause,
            (true, _) => hint,
        }
    }
}

/// What an ECR API call that got no result ran into, told from the error code ECR answered
/// or the type of the SDK's error, never from message text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AwsRefusal {
    /// The credentials: missing, invalid, expired (`UnrecognizedClientException`, …).
    Credentials,
    /// The identity may not call the operation (`AccessDeniedException`).
    Access,
    /// Anything else: a server error, a malformed answer.
    Other,
}

impl AwsRefusal {
    /// What ECR's error `code` says.
    pub fn of_code(code: &str) -> AwsRefusal {
        match code {
            "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "SignatureDoesNotMatch"
            | "IncompleteSignature"
            | "InvalidClientTokenId"
            | "MissingAuthenticationToken"
            | "MissingAuthenticationTokenException"
            | "ExpiredToken"
            | "ExpiredTokenException" => AwsRefusal::Credentials,
            "AccessDenied" | "AccessDeniedException" => AwsRefusal::Access,
            _ => AwsRefusal::Other,
        }
    }

    /// What to do about it.
    fn hint(self) -> &'static str {
        match self {
            AwsRefusal::Credentials => "Check the provider's AWS credentials and `profile` (e.g. `aws sts get-caller-identity --profile <name>`), and sign in again if they expired.",
            AwsRefusal::Access => "The AWS identity may not call this ECR operation: allow it in the identity's IAM policy (and the repository policy).",
            AwsRefusal::Other => "Check the provider's `region` and any ECR endpoint override; apply again if ECR was briefly unavailable.",
        }
    }
}

/// `text` with the query strings of the URLs in it left out. Registries put upload state and
/// signed storage addresses (credentials, for a while) in them, and they are noise to a user.
pub fn without_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let next_url = |s: &str| {
        [s.find("http://"), s.find("https://")]
            .into_iter()
            .flatten()
            .min()
    };
    while let Some(start) = next_url(rest) {
        let end = rest[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, ',' | '"' | '\'' | ')' | '>'))
            .map_or(rest.len(), |n| start + n);
        let url = &rest[start..end];
        out.push_str(&rest[..start]);
        out.push_str(url.split_once('?').map_or(url, |(bare, _)| bare));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// `err`, then its source, its source's source, and so on.
pub(crate) fn causes<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err), |err| err.source())
}

/// `err` and its sources, one after another, for logs.
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    causes(err)
        .map(|cause| cause.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

/// A duration as users write it in `timeouts`, e.g. `20m`.
pub(crate) fn display_duration(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_query_strings() {
        assert_eq!(
            without_queries(
                "url http://h:1/v2/a/blobs/uploads/u?_state=xyz&digest=sha256%3A1, code: 400 \
                 (see https://s3.example/b?X-Amz-Signature=secret) and https://plain/x"
            ),
            "url http://h:1/v2/a/blobs/uploads/u, code: 400 (see https://s3.example/b) and https://plain/x"
        );
        assert_eq!(without_queries("no url here"), "no url here");
    }

    #[test]
    fn aws_hints_speak_of_credentials_only_for_credential_errors() {
        let hint = |code: &str| {
            Error::Aws {
                operation: "DescribeImages",
                cause: "whatever ECR says".into(),
                refusal: AwsRefusal::of_code(code),
            }
            .hint()
        };
        assert!(hint("UnrecognizedClientException").contains("credentials"));
        assert!(hint("ExpiredTokenException").contains("sign in again"));
        assert!(hint("AccessDeniedException").contains("IAM policy"));
        assert!(!hint("ServerException").contains("credentials"));
    }

    #[test]
    fn network_errors_carry_their_own_advice_and_attribute() {
        let err = Error::Network {
            service: "the source registry",
            endpoint: "https://ghcr.io".into(),
            attribute: Some("docker_source"),
            detail: "The name ghcr.io does not resolve on this machine.".into(),
        };
        assert_eq!(
            err.to_string(),
            "Cannot reach the source registry at https://ghcr.io"
        );
        assert_eq!(err.attribute(), Some("docker_source"));
        assert_eq!(
            err.detail(),
            "The name ghcr.io does not resolve on this machine."
        );
    }

    #[test]
    fn timeout_names_the_limit() {
        let err = Error::Timeout {
            operation: Operation::Create,
            limit: display_duration(Duration::from_secs(90)),
            retrying: None,
        };
        assert_eq!(
            err.to_string(),
            "Mirroring did not finish within the create timeout of 1m 30s"
        );
    }

    /// Every error kind's advice, for the case that produces it: each row is a kind (or a
    /// case of one), a phrase its hint must have, and one it must not.
    #[test]
    fn every_hint_fits_its_case() {
        let c = || "cause".to_string();
        let r = || "r/a:1".to_string();
        let cases: Vec<(Error, &str, &str)> = vec![
            (Error::NotConfigured, "bug", "credentials"),
            (
                Error::DockerUnreachable {
                    host: c(),
                    cause: c(),
                },
                "Start the Docker engine",
                "registry_auth",
            ),
            (
                Error::Docker {
                    action: c(),
                    cause: c(),
                },
                "Docker engine's log",
                "registry_auth",
            ),
            (
                Error::SourceNotFound {
                    reference: r(),
                    cause: c(),
                },
                "does not exist",
                "IAM",
            ),
            (
                Error::SourceDenied {
                    reference: r(),
                    cause: c(),
                    with_credentials: false,
                },
                "Give credentials",
                "refused the credentials",
            ),
            (
                Error::SourceDenied {
                    reference: r(),
                    cause: c(),
                    with_credentials: true,
                },
                "refused the credentials the provider has",
                "Give credentials",
            ),
            (
                Error::LoginRefused {
                    host: "myregistry.azurecr.io".into(),
                    cause: c(),
                },
                "docker login myregistry.azurecr.io",
                "Give credentials",
            ),
            (
                Error::RateLimited {
                    reference: r(),
                    cause: c(),
                },
                "higher pull limit",
                "IAM",
            ),
            (
                Error::NotAnImage {
                    reference: r(),
                    cause: c(),
                },
                "container image",
                "reachable",
            ),
            (
                Error::EngineCannotPull {
                    reference: r(),
                    name: "a Helm chart".into(),
                    kind: "application/vnd.cncf.helm.config.v1+json".into(),
                    at_plan: true,
                },
                "copy_method = \"registry\"",
                "reachable",
            ),
            (
                Error::Source {
                    reference: r(),
                    cause: c(),
                },
                "reachable",
                "IAM",
            ),
            (
                Error::PlainHttp {
                    reference: r(),
                    cause: c(),
                },
                "HTTPS only",
                "IAM",
            ),
            (
                Error::Import {
                    id: c(),
                    cause: c(),
                },
                "REPOSITORY:TAG",
                "docker_source",
            ),
            (
                Error::PlatformMissing {
                    attribute: "platform",
                    reference: r(),
                    wanted: c(),
                    held: vec![],
                    hint: "the method's".into(),
                },
                "the method's",
                "engine's default",
            ),
            (
                Error::Corrupt {
                    reference: r(),
                    digest: c(),
                    cause: c(),
                },
                "Nothing of this blob was stored",
                "credentials",
            ),
            (
                Error::RepositoryNotFound {
                    repository: c(),
                    registry_id: None,
                    host: None,
                    templates: TemplateLookup::NotAsked,
                },
                "aws_ecr_repository",
                "Docker",
            ),
            (
                Error::TargetDenied {
                    host: c(),
                    cause: c(),
                },
                "may push",
                "registry_auth",
            ),
            (
                Error::Push {
                    target: c(),
                    cause: c(),
                },
                "network to ECR",
                "registry_auth",
            ),
            (
                Error::Misdirected {
                    host: c(),
                    cause: c(),
                },
                "AWS_ENDPOINT_URL_ECR",
                "Apply again",
            ),
            (
                Error::Aws {
                    operation: "DescribeImages",
                    cause: c(),
                    refusal: AwsRefusal::Credentials,
                },
                "credentials",
                "IAM policy",
            ),
            (
                Error::Aws {
                    operation: "DescribeImages",
                    cause: c(),
                    refusal: AwsRefusal::Access,
                },
                "IAM policy",
                "sign in again",
            ),
            (
                Error::Aws {
                    operation: "DescribeImages",
                    cause: c(),
                    refusal: AwsRefusal::Other,
                },
                "region",
                "credentials",
            ),
            (
                Error::TagShared {
                    target: c(),
                    others: vec![c()],
                },
                "its own `tag`",
                "Apply again",
            ),
            (
                Error::TagTaken {
                    target: c(),
                    pushed: c(),
                    found: c(),
                },
                "its own `tag`",
                "Apply again",
            ),
            (
                Error::TagImmutable {
                    target: c(),
                    held: c(),
                    wanted: c(),
                },
                "Mirror to a new tag",
                "Apply again",
            ),
            (
                Error::TagRefused {
                    target: c(),
                    cause: c(),
                },
                "tag mutability",
                "network",
            ),
            (
                Error::ImmutableRemirror { target: c() },
                "Mirror to a new tag",
                "Apply again",
            ),
            (
                Error::IndexReplaced {
                    target: c(),
                    index: c(),
                    by: Narrowing::Docker { platform: false },
                },
                "copy_method = \"registry\"",
                "leave `platform` out",
            ),
            (
                Error::IndexReplaced {
                    target: c(),
                    index: c(),
                    by: Narrowing::Docker { platform: true },
                },
                "and leave `platform` out",
                "leave `platforms` out",
            ),
            (
                Error::IndexReplaced {
                    target: c(),
                    index: c(),
                    by: Narrowing::Platform,
                },
                "leave `platform` out",
                "copy_method = \"registry\"",
            ),
            (
                Error::IndexReplaced {
                    target: c(),
                    index: c(),
                    by: Narrowing::Platforms,
                },
                "leave `platforms` out",
                "copy_method = \"registry\"",
            ),
            (
                Error::TagNotFound {
                    repository: c(),
                    tag: c(),
                    host: c(),
                },
                "apply that one first",
                "docker_source",
            ),
            (
                Error::Timeout {
                    operation: Operation::Create,
                    limit: "1m".into(),
                    retrying: None,
                },
                "Raise `create`",
                "ECR API",
            ),
            (
                Error::Timeout {
                    operation: Operation::Delete,
                    limit: "1m".into(),
                    retrying: None,
                },
                "the ECR API",
                "Docker engine",
            ),
        ];
        for (error, has, lacks) in cases {
            let hint = error.hint();
            assert!(hint.contains(has), "{error:?}: {hint}");
            assert!(!hint.contains(lacks), "{error:?}: {hint}");
        }
        // The errors that carry their advice in their detail have no separate hint.
        for error in [
            Error::Invalid {
                attribute: "tag",
                detail: c(),
            },
            Error::Config {
                attribute: "region",
                summary: c(),
                detail: c(),
            },
            Error::Environment {
                summary: c(),
                detail: c(),
            },
        ] {
            assert_eq!(error.hint(), "");
        }
    }
}
