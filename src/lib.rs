//! terraform-provider-ecrmirror: keeps third-party container images mirrored in Amazon ECR.
//!
//! Module map, in the direction calls flow: the Terraform layer (`provider`, `resource`,
//! `data`, with `terraform` and `schema`) → `clients` → the copy methods (`transfer`) and
//! what they share (`source`, `manifest`, `distribution`) and the ECR API (`ecr`) → bollard,
//! reqwest, the AWS SDK. tf-provider types appear only in the Terraform layer; AWS SDK types
//! only under `ecr`; bollard types only in `transfer::docker`; oci-client's in
//! `distribution`, `manifest`, `source` and `transfer::registry`.
//!
//! The Terraform layer:
//! - [`provider`]: the provider schema, its block checked once into [`clients::Settings`],
//!   and the resources and data sources it registers.
//! - [`resource`]: `resource::image` is `ecrmirror_image`: its `mod.rs` maps Terraform's
//!   calls (validate, plan, create, update, read, delete, import) onto `state` (state, schema), `config`
//!   (the arguments parsed once: defaults and checks), `plan` (what replaces, what
//!   re-mirrors, timeouts), `apply` (mirror or adopt, untag), `refresh` (import, and the read
//!   of every refresh), `repository` (what a plan says of the repository: there, created on
//!   push, missing), `referrers` (what a mirror's referrers are, and the tags that leave with
//!   it), `whereabouts` (which registry a mirror in state lives in), `owners` (one owner per
//!   tag: planned and applied).
//! - [`data`]: the data sources, read-only questions answered without a transfer:
//!   `data::source` (`ecrmirror_source`, through [`source`]), `data::source_tags`
//!   (`ecrmirror_source_tags`: a tag list through [`source`], chosen by [`tags`]) and `data::image`
//!   (`ecrmirror_image`, through [`ecr`]).
//! - [`terraform`]: tf-provider values read on their attribute, and errors as diagnostics.
//! - [`schema`]: constructors for explicit schema attributes.
//!
//! Below it:
//! - [`clients`]: what `configure` builds once and every resource shares: the ECR API, the
//!   distribution clients, one transfer per [`transfer::CopyMethod`], source credentials, the
//!   default copy method and the provider arguments still pending.
//! - [`transfer`]: the seam between the resource and the copy methods. A
//!   [`transfer::Transfer`] owns everything that differs between methods (what it asks of
//!   the source first, adoption, its pre-flight, the copy) and [`transfer::CopyMethod`] says
//!   what each can do (referrers, platforms). `transfer::docker` goes through the Docker
//!   Engine API (`answer`: what the engine's reports say; `cleanup`: the local images it
//!   undoes); `transfer::registry` copies registry to registry (`referrers`: their copy;
//!   `sharing`: blobs the mirrors of one apply share, uploaded once and mounted).
//! - [`source`]: what a source reference holds: its digest now, what `ecrmirror_source`
//!   reports of it, and the one resolution of "which manifest, for which platform" that the
//!   platform check, adoption and the copy use.
//! - [`tags`]: a tag list chosen by `match`, `exclude`, `versions` and `latest` (pure).
//! - [`verify`]: the `verify` block's checks: cosign signatures found at the source
//!   (`cosign`: the `.sig` tag's layers, Sigstore bundles among the referrers), public keys and
//!   signature checks over rustls-webpki's `ring` algorithms (`keys`), Sigstore trusted roots
//!   (`trust`), and the public-good one fetched through TUF (`tuf`).
//! - [`cache`]: source manifests and image configs kept on disk by digest (checked on every
//!   read), so that a source tag that has not moved costs one `HEAD` and no manifest `GET`;
//!   reads of one digest at once in a process fetch it once.
//! - [`manifest`]: the one manifest model (oci-client's typed manifests with their digest and
//!   bytes), the platforms an index holds and the rule that finds one (pure).
//! - [`distribution`]: every registry request the provider makes itself: its `mod.rs` (the
//!   shared clients, [`distribution::Answer`]: registries' answers by code and status),
//!   `session` (the endpoint calls; `session::auth`: challenges, tokens), `failure` (why a
//!   request failed, the error it becomes, and `retry_request`), `digest` (`Digest` and the checks of every byte
//!   read), `headers` (`Retry-After`, `WWW-Authenticate`; pure), `http` (the clients and their
//!   redirect policy).
//! - [`ecr`]: the ECR API (token cache, repository and image queries, untag); `ecr::lookups`
//!   batches tag lookups per repository, `ecr::settings` asks once for creation templates
//!   and `BLOB_MOUNTING`, `ecr::setup` configures the SDK.
//! - [`retry`]: the one retry loop, its backoff, how often each kind of request is tried, and
//!   the notes a timeout reads.
//! - [`locks`]: async locks by key, for work that must not overlap with itself (one blob
//!   into one repository, one digest into the cache).
//! - [`credentials`]: source registry credentials (`registry_auth`, Docker config file).
//! - [`reference`](mod@reference): image references, repository names, tags, platforms,
//!   import IDs (pure).
//! - [`network`]: proxies and trusted CAs for every connection, and network failures told
//!   apart (DNS, refused, TLS, proxy) for diagnostics.
//! - [`error`]: the one error type: what failed, its cause, and what to do.
//! - [`secret`]: a string whose `Debug`/`Display` never show it.
//! - [`logging`]: hclog-style JSON logs to stderr (stdout is the plugin protocol's).
//! - [`nodelay`]: `TCP_NODELAY` on the gRPC sockets tf-provider opens (40 ms stalls; Linux
//!   only).

// `pub` is what the binary, the tests and docgen use; everything else is `pub(crate)`. The
// lint flags a `pub` item the crate root cannot reach (in a `pub(crate)` module); in a
// public module, an item's `pub` is a promise someone outside uses it: check before adding. The module docs are for whoever changes the provider (`cargo doc
// --document-private-items`), so they link to crate-private items freely.
#![warn(unreachable_pub)]
#![allow(rustdoc::private_intra_doc_links)]

pub(crate) mod cache;
pub(crate) mod clients;
pub mod credentials;
pub mod data;
pub mod distribution;
pub mod ecr;
pub mod error;
pub(crate) mod locks;
pub mod logging;
pub mod manifest;
pub mod network;
#[cfg(target_os = "linux")]
pub mod nodelay;
pub mod provider;
pub mod reference;
pub mod resource;
pub(crate) mod retry;
pub mod schema;
pub mod secret;
pub mod source;
pub(crate) mod tags;
pub(crate) mod terraform;
pub mod transfer;
pub(crate) mod verify;

/// Installs ring as the process's rustls crypto provider (the one backend compiled in);
/// harmless when one is installed already.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
