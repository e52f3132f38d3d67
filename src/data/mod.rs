//! Terraform data sources: read-only questions to the registries, answered without
//! transferring anything. `source` asks a source registry what a reference names now
//! (`ecrmirror_source`); `source_tags` reads a source repository's tag list and chooses a
//! family of tags from it (`ecrmirror_source_tags`, through [`crate::tags`]); `image` asks
//! ECR what a tag holds (`ecrmirror_image`). tf-provider types stop here, as in
//! [`crate::resource`].

pub mod image;
pub mod source;
pub mod source_tags;
