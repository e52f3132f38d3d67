//! Small constructors for schema attributes, so that every attribute states its type,
//! constraint and Markdown description explicitly.

use tf_provider::schema::{
    Attribute, AttributeConstraint, AttributeType, Block, Description, NestedBlock,
};

/// Schema attributes by name.
pub(crate) fn attributes(
    list: Vec<(&str, Attribute)>,
) -> std::collections::HashMap<String, Attribute> {
    list.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// An attribute of `attr_type` with a Markdown description.
pub(crate) fn attribute(
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
pub(crate) fn string(constraint: AttributeConstraint, description: &str) -> Attribute {
    attribute(AttributeType::String, constraint, description)
}

/// A sensitive string attribute: Terraform hides it in plans and output.
pub(crate) fn secret(constraint: AttributeConstraint, description: &str) -> Attribute {
    Attribute {
        sensitive: true,
        ..string(constraint, description)
    }
}

/// Names (dotted paths) of the attributes and blocks under `block` whose description is
/// missing or a placeholder, and of untyped attributes. Empty for a documented schema.
pub fn undocumented(block: &Block) -> Vec<String> {
    let placeholder = |text: &str| {
        let text = text.trim();
        text.len() < 10 || text.eq_ignore_ascii_case("empty") || text.contains("TODO")
    };
    let mut found = Vec::new();
    for (name, attr) in &block.attributes {
        if placeholder(&attr.description.content) || attr.attr_type == AttributeType::Any {
            found.push(name.clone());
        }
    }
    for (name, nested) in &block.blocks {
        let inner = nested_block(nested);
        if placeholder(&inner.description.content) {
            found.push(name.clone());
        }
        found.extend(
            undocumented(inner)
                .into_iter()
                .map(|n| format!("{name}.{n}")),
        );
    }
    found.sort();
    found
}

/// The block inside a nested block, whatever its nesting.
pub fn nested_block(nested: &NestedBlock) -> &Block {
    match nested {
        NestedBlock::Single(b)
        | NestedBlock::List(b)
        | NestedBlock::Set(b)
        | NestedBlock::Map(b)
        | NestedBlock::Group(b)
        | NestedBlock::Optional(b) => b,
    }
}

/// Asserts that `schema` describes itself and every attribute and block under it (the
/// check every schema's unit test makes).
#[cfg(test)]
pub(crate) fn assert_documented(schema: &tf_provider::schema::Schema) {
    assert!(schema.block.description.content.len() > 10);
    assert_eq!(undocumented(&schema.block), Vec::<String>::new());
}
