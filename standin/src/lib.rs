//! The stand-in world for terraform-provider-ecrmirror's tests and demo.
//!
//! Only the ECR API, which cannot be reached from here, is emulated; everything else is real:
//!
//! - [`backend`] starts a real distribution registry (Debian's `docker-registry`) listening on a
//!   private unix socket, with its storage in a directory of its own.
//! - [`front`] is the HTTP front every registry of the world is reached through, on
//!   `127.0.0.1:<port>`: it forwards to a backend, optionally demands basic auth, records every
//!   request, and injects the faults a test asks for ([`faults`]).
//! - [`ecr`] serves the AWS JSON 1.1 ECR API operations the provider uses (with ECR's error
//!   types) on the same port as the registry it fronts, whose password is the token that
//!   `GetAuthorizationToken` hands out (user `AWS`), as on ECR. Pushing to a repository that was
//!   never created fails as it does on ECR.
//! - [`token`] is the bearer-token flow, for a source registry that demands it: Docker Hub's
//!   (basic credentials for a token), or a token service that takes only the OAuth2 exchange
//!   of a refresh token (an identity token from the Docker config file).
//! - [`images`] builds synthetic images whose layers it gzips itself, including a two-platform
//!   index, and pushes them through the distribution API; [`client`] reads registries back.
//! - [`world`] starts a source registry and an ECR emulator together.
//! - [`provider_registry`] serves a release over the Terraform provider registry protocol
//!   (HTTPS, throwaway CA), for `terraform init` to install it.
//! - [`tls`] makes a throwaway CA and serves any of these routers over HTTPS with it.
//! - [`runner`] is what the bench and the soak share to drive Terraform over a world.
//! - [`sigstore`] signs images as cosign does (a key, or keyless through a private Sigstore
//!   instance: a CA and a log key, nothing served), for tests of signature verification.
//! - [`tuf`] is a TUF repository as Sigstore publishes its trusted root (root rotation,
//!   consistent snapshots), served over loopback HTTP, for the public-good path's tests.
//! - [`proxy`] is a forwarding HTTP proxy (`CONNECT` and absolute-form requests) that logs
//!   what passed and alone resolves the names under `proxied.test`.
//!
//! Data flows: test → world → front → backend registry process.

pub mod backend;
pub mod client;
pub mod ecr;
pub mod faults;
pub mod front;
pub mod images;
pub mod provider_registry;
pub mod proxy;
pub mod runner;
pub mod sigstore;
pub mod tls;
pub mod token;
pub mod tuf;
pub mod world;

pub use world::{SourceAuth, World};
