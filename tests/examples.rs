//! What users copy runs as written: every example directory under `examples/` and every
//! Terraform block of README.md and docs/ passes `terraform validate` with the real
//! binary's schema, each on its own, with nothing added (no `required_providers` supplied
//! by the test: a block that lacks it fails here as it fails for a user).

mod support;

use std::path::{Path, PathBuf};

/// The repository's root.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every directory under `dir` that holds `.tf` files, with those files.
fn example_dirs(dir: &Path, found: &mut Vec<(PathBuf, Vec<PathBuf>)>) {
    let mut files = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            example_dirs(&path, found);
        } else if path.extension().is_some_and(|e| e == "tf") {
            files.push(path);
        }
    }
    if !files.is_empty() {
        found.push((dir.to_path_buf(), files));
    }
}

/// The fenced `hcl`/`terraform` blocks of the Markdown file at `path`, with the line each
/// starts on.
fn terraform_blocks(path: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (number, line) in text.lines().enumerate() {
        match (&mut open, line.trim_end()) {
            (None, "```hcl" | "```terraform" | "```tf") => open = Some((number + 1, String::new())),
            (Some(_), "```") => blocks.extend(open.take()),
            (Some((_, block)), line) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(open.is_none(), "{}: an unclosed code block", path.display());
    blocks
}

/// Whether `block` is not ours to validate: Terraform CLI configuration (`~/.terraformrc`),
/// or the module this provider replaces as users have it (the migration guide's "before",
/// which needs that module from the Terraform Registry).
fn not_a_configuration_of_ours(block: &str) -> bool {
    block.trim_start().starts_with("provider_installation")
        || block.contains("\"TechToSpeech/ecr-mirror/aws\"")
}

/// Validates `files` (name, text) as one module in the harness's working directory, which
/// holds nothing else; the failure names `what`.
async fn validates(h: &support::Harness, what: &str, files: &[(String, String)]) {
    for entry in std::fs::read_dir(h.work()).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "tf") {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    for (name, text) in files {
        std::fs::write(h.work().join(name), text).unwrap();
    }
    let run = h.terraform(&["validate", "-no-color"]).await;
    assert!(run.success, "{what} does not validate:\n{}", run.output());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_directory_validates_as_written() {
    let h = support::Harness::start().await;
    let mut found = Vec::new();
    example_dirs(&root().join("examples"), &mut found);
    assert!(found.len() >= 6, "example directories missing: {found:?}");
    for (dir, files) in found {
        let files: Vec<(String, String)> = files
            .iter()
            .map(|f| {
                let name = f.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(f).unwrap())
            })
            .collect();
        // Left out, the AWS SDK's chain finds credentials in CI; a hard-coded profile
        // fails where there are no profiles at all.
        for (name, text) in &files {
            assert!(
                !text.lines().any(|l| l.trim_start().starts_with("profile")),
                "{}/{name} hard-codes an AWS profile: show it as an option (a comment)",
                dir.display()
            );
        }
        validates(&h, &dir.display().to_string(), &files).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_terraform_block_of_the_readme_and_docs_validates_as_written() {
    let h = support::Harness::start().await;
    // The files the `verify` examples read, as a user has them beside the configuration.
    h.file(
        "cosign.pub",
        &standin::sigstore::Key::p256().unwrap().public_pem(),
    );
    h.file(
        "trusted_root.json",
        &standin::sigstore::Sigstore::new().unwrap().trusted_root(),
    );
    let mut pages = vec![root().join("README.md")];
    let mut dirs = vec![root().join("docs")];
    while let Some(dir) = dirs.pop() {
        for path in std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()) {
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                pages.push(path);
            }
        }
    }
    pages.sort();
    let mut checked = 0;
    for page in &pages {
        for (line, block) in terraform_blocks(page) {
            let what = format!("{}:{line}", page.display());
            if not_a_configuration_of_ours(&block) {
                continue;
            }
            assert!(
                !block
                    .lines()
                    .any(|l| l.trim_start().starts_with("profile ")),
                "{what} hard-codes an AWS profile"
            );
            validates(&h, &what, &[("main.tf".into(), block)]).await;
            checked += 1;
        }
    }
    // README (install, usage, data sources) and the docs pages' examples.
    assert!(checked >= 10, "only {checked} blocks found in {pages:?}");
}

#[test]
fn blocks_are_read_as_markdown_fences_and_an_unclosed_one_is_refused() {
    let dir = std::env::temp_dir().join(format!("ecrmirror-fences-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("page.md");
    std::fs::write(
        &page,
        "text\n```hcl\na = 1\n```\n```shell\nls\n```\n```terraform\nb = 2\n```\n",
    )
    .unwrap();
    assert_eq!(
        terraform_blocks(&page),
        vec![(2, "a = 1\n".to_string()), (8, "b = 2\n".to_string())]
    );
    std::fs::write(&page, "```hcl\na = 1\n").unwrap();
    let unclosed = std::panic::catch_unwind(|| terraform_blocks(&page));
    assert!(unclosed.is_err());
    assert!(not_a_configuration_of_ours("provider_installation {\n}\n"));
    assert!(not_a_configuration_of_ours(
        "module \"m\" {\n  source = \"TechToSpeech/ecr-mirror/aws\"\n}\n"
    ));
    assert!(!not_a_configuration_of_ours("provider \"ecrmirror\" {}\n"));
}
