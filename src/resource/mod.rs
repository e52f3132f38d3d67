//! Terraform objects. tf-provider types stop here: below, the resources call the copy
//! methods ([`crate::transfer`]), what a source holds ([`crate::source`]) and the ECR API
//! ([`crate::ecr`]) with plain Rust values, through the shared [`crate::clients`].

pub mod image;
