//! `ecrmirror-docgen [--check]`: writes `docs/` in the Terraform Registry's format from the
//! provider's own schema descriptions, the prose in `templates/` and the files in
//! `examples/`, so the docs never drift from the code. With `--check` it writes nothing and
//! fails when the committed docs differ from what it would write.
//!
//! A template is Markdown with placeholders: `{{description}}`, `{{example}}`,
//! `{{schema}}` and, for resources, `{{import}}`.

use std::collections::HashMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ecrmirror::schema::nested_block;
use tf_provider::schema::{
    Attribute, AttributeConstraint, AttributeType, Block, NestedBlock, Schema,
};

/// One page to generate.
struct Page {
    output: &'static str,
    template: &'static str,
    schema: Schema,
    example: &'static str,
    import: Option<&'static str>,
}

fn pages() -> Vec<Page> {
    vec![
        Page {
            output: "docs/index.md",
            template: "templates/index.md",
            schema: ecrmirror::provider::provider_schema(),
            example: "examples/provider/provider.tf",
            import: None,
        },
        Page {
            output: "docs/resources/image.md",
            template: "templates/resources/image.md",
            schema: ecrmirror::resource::image::state::schema(),
            example: "examples/resources/ecrmirror_image/resource.tf",
            import: Some("examples/resources/ecrmirror_image/import.sh"),
        },
    ]
}

fn main() -> ExitCode {
    let check = std::env::args().any(|a| a == "--check");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut drifted = Vec::new();
    for page in pages() {
        let rendered = match render(&root, &page) {
            Ok(text) => text,
            Err(err) => {
                eprintln!("docgen: {}: {err}", page.output);
                return ExitCode::FAILURE;
            }
        };
        let path = root.join(page.output);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == rendered {
            continue;
        }
        if check {
            drifted.push(page.output);
        } else if let Err(err) = write(&path, &rendered) {
            eprintln!("docgen: writing {}: {err}", page.output);
            return ExitCode::FAILURE;
        }
    }
    if drifted.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "docgen: {} differ from the schema, templates and examples: run `make docs` and commit.",
            drifted.join(", ")
        );
        ExitCode::FAILURE
    }
}

fn write(path: &PathBuf, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)
}

fn read(root: &Path, file: &str) -> Result<String, String> {
    std::fs::read_to_string(root.join(file)).map_err(|err| format!("reading {file}: {err}"))
}

fn render(root: &Path, page: &Page) -> Result<String, String> {
    let undocumented = ecrmirror::schema::undocumented(&page.schema.block);
    if !undocumented.is_empty() {
        return Err(format!(
            "no real description for: {}",
            undocumented.join(", ")
        ));
    }
    let template = read(root, page.template)?;
    let example = read(root, page.example)?;
    let mut text = template
        .replace(
            "{{description}}",
            page.schema.block.description.content.trim(),
        )
        .replace("{{example}}", &format!("```terraform\n{}```", example))
        .replace("{{schema}}", schema_markdown(&page.schema.block).trim_end());
    if let Some(import) = page.import {
        text = text.replace(
            "{{import}}",
            &format!("```shell\n{}```", read(root, import)?),
        );
    }
    if text.contains("{{") {
        return Err(format!(
            "{} has a placeholder docgen does not know",
            page.template
        ));
    }
    Ok(text)
}

fn sorted<T>(map: &HashMap<String, T>) -> Vec<(&String, &T)> {
    let mut items: Vec<_> = map.iter().collect();
    items.sort_by(|a, b| a.0.cmp(b.0));
    items
}

fn type_name(attr_type: &AttributeType) -> String {
    match attr_type {
        AttributeType::String => "String".into(),
        AttributeType::Number => "Number".into(),
        AttributeType::Bool => "Boolean".into(),
        AttributeType::List(inner) => format!("List of {}", type_name(inner)),
        AttributeType::Set(inner) => format!("Set of {}", type_name(inner)),
        AttributeType::Map(inner) => format!("Map of {}", type_name(inner)),
        _ => "Dynamic".into(),
    }
}

fn attribute_line(name: &str, attr: &Attribute) -> String {
    let sensitive = if attr.sensitive { ", Sensitive" } else { "" };
    format!(
        "- `{name}` ({}{sensitive}) {}\n",
        type_name(&attr.attr_type),
        attr.description.content.trim()
    )
}

/// The Registry's schema section: Required, Optional, Read-Only, then nested blocks.
fn schema_markdown(block: &Block) -> String {
    let mut out = String::new();
    let groups = [
        ("Required", vec![AttributeConstraint::Required]),
        (
            "Optional",
            vec![
                AttributeConstraint::Optional,
                AttributeConstraint::OptionalComputed,
            ],
        ),
        ("Read-Only", vec![AttributeConstraint::Computed]),
    ];
    let blocks = sorted(&block.blocks);
    for (title, constraints) in groups {
        let mut lines: Vec<String> = sorted(&block.attributes)
            .into_iter()
            .filter(|(_, a)| constraints.contains(&a.constraint))
            .map(|(name, attr)| attribute_line(name, attr))
            .collect();
        if title == "Optional" {
            for (name, nested) in &blocks {
                let inner = nested_block(nested);
                lines.push(format!(
                    "- `{name}` (Block{}) {} (see [below for nested schema](#nestedblock--{name}))\n",
                    block_kind(nested),
                    inner.description.content.trim()
                ));
            }
            lines.sort();
        }
        if !lines.is_empty() {
            let _ = write!(out, "### {title}\n\n{}\n", lines.concat());
        }
    }
    for (name, nested) in blocks {
        let _ = write!(
            out,
            "<a id=\"nestedblock--{name}\"></a>\n### Nested Schema for `{name}`\n\n{}",
            schema_markdown(nested_block(nested))
        );
    }
    out
}

fn block_kind(nested: &NestedBlock) -> &'static str {
    match nested {
        NestedBlock::List(_) => " List",
        NestedBlock::Set(_) => " Set",
        NestedBlock::Optional(_) => ", Optional",
        _ => "",
    }
}
