//! Terraform data sources: read-only questions to the registries, answered without
//! transferring anything. `source` asks a source registry what a reference names now
//! (`ecrmirror_source`); `image` asks ECR what a tag holds (`ecrmirror_image`). tf-provider
//! types stop here, as in [`crate::resource`].

pub mod image;
pub mod source;
