//! Terraform objects. tf-provider types stop here: below, the resources call [`crate::ecr`]
//! and [`crate::transfer`] with plain Rust values.

pub mod image;
