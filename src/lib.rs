//! terraform-provider-ecrmirror: keeps third-party container images mirrored in Amazon ECR.
//!
//! Module map, in the direction data flows (resource → transfer / source / ecr → bollard,
//! distribution's own HTTP requests, AWS SDK). Nothing below `resource` knows Terraform; nothing above an adapter
//! knows its crate's types.
//!
//! - [`provider`]: the provider schema, its block checked once into [`clients::Settings`],
//!   and the resources and data sources it registers.
//! - [`clients`]: what `configure` builds once and every resource shares: the ECR API, the
//!   distribution clients, one transfer per [`transfer::CopyMethod`], source credentials and
//!   the default copy method.
//! - [`resource`]: Terraform objects; `resource::image` is `ecrmirror_image`: `state` (state,
//!   schema), `config` (the arguments parsed once: defaults and checks), `plan` (what
//!   replaces, what re-mirrors, timeouts), `apply` (mirror or adopt, import, read, untag).
//!   tf-provider types stop here.
//! - [`data`]: the data sources, read-only questions answered without a transfer:
//!   `data::source` (`ecrmirror_source`: what a source reference names now, through
//!   [`source`]) and `data::image` (`ecrmirror_image`: what an ECR tag holds, through [`ecr`]).
//! - [`transfer`]: the seam between the resource and the copy methods. A [`transfer::Transfer`]
//!   owns everything that differs between methods: what it asks of the source first, when
//!   ECR's tag already holds its copy (adoption), its pre-flight check, the copy.
//!   `transfer::docker` goes through the Docker Engine API (bollard types stop there);
//!   `transfer::registry` copies registry to registry.
//! - [`source`]: what a source reference holds: its digest now, and the one resolution of
//!   "which manifest, for which platform" that the platform check, adoption and the copy use.
//! - [`manifest`]: the one manifest model (oci-client's typed manifests with their digest and
//!   bytes), the platforms an index holds and the rule that finds one (pure).
//! - [`distribution`]: the HTTP clients for every registry (sources and ECR's), registries'
//!   answers told apart by code and status, and the one retry loop; `distribution::session`
//!   makes every request to a registry (challenges and tokens, manifests, blobs, uploads,
//!   `Retry-After`). oci-client's types (references, manifests, error envelopes) stop here
//!   and in the modules that copy and resolve.
//! - [`ecr`]: the ECR API (token cache, repository and image queries, untag; `ecr::lookups`
//!   batches tag lookups per repository). AWS SDK types stop here.
//! - [`credentials`]: source registry credentials (`registry_auth`, Docker config file).
//! - [`reference`](mod@reference): image references, repository names, tags, platforms, import IDs (pure).
//! - [`network`]: proxies and trusted CAs for every connection, and network failures told
//!   apart (DNS, refused, TLS, proxy) for diagnostics.
//! - [`error`]: the one error type, and the one place it becomes a diagnostic.
//! - [`secret`]: a string whose `Debug`/`Display` never show it.
//! - [`schema`]: constructors for explicit schema attributes.
//! - [`logging`]: hclog-style JSON logs to stderr (stdout is the plugin protocol's).
//! - [`nodelay`]: `TCP_NODELAY` on the gRPC sockets tf-provider opens (40 ms stalls; Linux only).

pub mod clients;
pub mod credentials;
pub mod data;
pub mod distribution;
pub mod ecr;
pub mod error;
pub mod logging;
pub mod manifest;
pub mod network;
#[cfg(target_os = "linux")]
pub mod nodelay;
pub mod provider;
pub mod reference;
pub mod resource;
pub mod retry;
pub mod schema;
pub mod secret;
pub mod source;
pub mod terraform;
pub mod transfer;

/// Installs ring as the process's rustls crypto provider (the one backend compiled in);
/// harmless when one is installed already.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
