//! `ecrmirror-docgen [--check]`: writes `docs/` in the Terraform Registry's format from the
//! provider's own schema descriptions, the prose in `templates/` and the files in
//! `examples/`, so the docs never drift from the code. With `--check` it writes nothing and
//! fails when the committed docs differ from what it would write.
//!
//! A template is Markdown with placeholders: `{{description}}`, `{{example}}`,
//! `{{schema}}` and, for resources, `{{import}}` (an `import {}` block example, then the
//! `terraform import` command, as tfplugindocs writes them). Schemas are written as
//! tfplugindocs writes them: `### Required` / `### Optional` / `### Read-Only` for the top
//! block, `Required:` / `Optional:` lines in each nested block's section.

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
    /// The `terraform import` commands and the `import {}` block example.
    import: Option<Import>,
}

/// A resource's import examples.
struct Import {
    command: &'static str,
    block: &'static str,
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
            import: Some(Import {
                command: "examples/resources/ecrmirror_image/import.sh",
                block: "examples/resources/ecrmirror_image/import/import-by-string-id.tf",
            }),
        },
        Page {
            output: "docs/data-sources/source.md",
            template: "templates/data-sources/source.md",
            schema: ecrmirror::data::source::schema(),
            example: "examples/data-sources/ecrmirror_source/data-source.tf",
            import: None,
        },
        Page {
            output: "docs/data-sources/source_tags.md",
            template: "templates/data-sources/source_tags.md",
            schema: ecrmirror::data::source_tags::schema(),
            example: "examples/data-sources/ecrmirror_source_tags/data-source.tf",
            import: None,
        },
        Page {
            output: "docs/data-sources/image.md",
            template: "templates/data-sources/image.md",
            schema: ecrmirror::data::image::schema(),
            example: "examples/data-sources/ecrmirror_image/data-source.tf",
            import: None,
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
        .replace(
            "{{schema}}",
            schema_markdown(&page.schema.block, None).trim_end(),
        );
    if let Some(import) = &page.import {
        text = text.replace(
            "{{import}}",
            &format!(
                "In Terraform v1.5.0 and later, the [`import` block](https://developer.hashicorp.com/terraform/language/import) can be used with the `id` attribute, for example:\n\n```terraform\n{}```\n\nThe [`terraform import` command](https://developer.hashicorp.com/terraform/cli/commands/import) can be used, for example:\n\n```shell\n{}```",
                read(root, import.block)?,
                read(root, import.command)?
            ),
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

/// The Registry's schema section: Required, Optional, Read-Only, then nested blocks. `path`
/// is the nested block's anchor path (`None` for the top block).
fn schema_markdown(block: &Block, path: Option<&str>) -> String {
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
                    "- `{name}` (Block{}) {} (see [below for nested schema](#{}))\n",
                    block_kind(nested),
                    inner.description.content.trim(),
                    anchor(path, name)
                ));
            }
            lines.sort();
        }
        if lines.is_empty() {
            continue;
        }
        match path {
            None => {
                let _ = write!(out, "### {title}\n\n{}\n", lines.concat());
            }
            Some(_) => {
                let _ = write!(out, "{title}:\n\n{}\n", lines.concat());
            }
        }
    }
    for (name, nested) in blocks {
        let anchor = anchor(path, name);
        let _ = write!(
            out,
            "<a id=\"{anchor}\"></a>\n### Nested Schema for `{}`\n\n{}",
            anchor
                .trim_start_matches("nestedblock--")
                .replace("--", "."),
            schema_markdown(nested_block(nested), Some(&anchor))
        );
    }
    out
}

/// tfplugindocs' anchor for the nested block `name` under `path`.
fn anchor(path: Option<&str>, name: &str) -> String {
    match path {
        None => format!("nestedblock--{name}"),
        Some(path) => format!("{path}--{name}"),
    }
}

fn block_kind(nested: &NestedBlock) -> &'static str {
    match nested {
        NestedBlock::List(_) => " List",
        NestedBlock::Set(_) => " Set",
        NestedBlock::Optional(_) => ", Optional",
        _ => "",
    }
}
