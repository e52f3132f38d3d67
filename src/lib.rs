//! terraform-provider-ecrmirror: keeps third-party container images mirrored in Amazon ECR.
//!
//! Module map, in the direction data flows (resource → transfer / ecr → bollard, AWS SDK):
//!
//! - [`provider`]: the provider schema, its block checked into [`clients::Settings`], and
//!   the resources it registers.
//! - [`clients`]: what `configure` builds once and every resource shares (ECR API,
//!   distribution clients, the transfers, source credentials, the default copy method).
//! - [`resource`]: Terraform objects; `resource::image` is `ecrmirror_image` (state and
//!   schema, plan rules, apply orchestration). tf-provider types stop here.
//! - [`reference`]: image references, repository names, tags, platforms (pure).
//! - [`manifest`]: which image config a manifest or index holds for a platform (pure).
//! - [`credentials`]: source registry credentials (`registry_auth`, Docker config file).
//! - [`transfer`]: the seam between the resource and the copy methods ([`transfer::CopyMethod`]
//!   names them); `transfer::docker`
//!   pulls and pushes through the Docker Engine API. bollard types stop here.
//! - [`ecr`]: the ECR API (token cache, repository and image queries, untag). AWS SDK types
//!   stop here.
//! - [`registry`]: direct calls to registries' distribution API (ECR credential check,
//!   source digests and image configs by manifest requests).
//! - [`network`]: proxies and trusted CAs for every connection, and network failures told
//!   apart (DNS, refused, TLS, proxy) for diagnostics.
//! - [`error`]: the one error type, and the one place it becomes a diagnostic.
//! - [`secret`]: a string whose `Debug`/`Display` never show it.
//! - [`schema`]: constructors for explicit schema attributes.
//! - [`logging`]: hclog-style JSON logs to stderr (stdout is the plugin protocol's).
//! - [`nodelay`]: `TCP_NODELAY` on the gRPC sockets tf-provider opens (40 ms stalls; Linux only).

pub mod clients;
pub mod credentials;
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
pub mod schema;
pub mod secret;
pub mod source;
pub mod transfer;

/// Installs ring as the process's rustls crypto provider (the one backend compiled in);
/// harmless when one is installed already.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
