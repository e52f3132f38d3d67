//! Small constructors for schema attributes, so that every attribute states its type,
//! constraint and Markdown description explicitly.

use tf_provider::schema::{Attribute, AttributeConstraint, AttributeType, Description};

/// An attribute of `attr_type` with a Markdown description.
pub fn attribute(
    attr_type: AttributeType,
    constraint: AttributeConstraint,
    description: &str,
) -> Attribute {
    Attribute {
        attr_type,
        description: Description::markdown(description),
        constraint,
        sensitive: false,
        deprecated: false,
    }
}

/// A string attribute.
pub fn string(constraint: AttributeConstraint, description: &str) -> Attribute {
    attribute(AttributeType::String, constraint, description)
}

/// A sensitive string attribute: Terraform hides it in plans and output.
pub fn secret(constraint: AttributeConstraint, description: &str) -> Attribute {
    Attribute {
        sensitive: true,
        ..string(constraint, description)
    }
}
