//! Every example under `examples/` is valid Terraform for this provider: `terraform validate`
//! with the real binary's schema.

mod support;

use std::path::{Path, PathBuf};

fn examples(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            examples(&path, found);
        } else if path.extension().is_some_and(|e| e == "tf") {
            found.push(path);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_validates() {
    let h = support::Harness::start().await;
    let mut found = Vec::new();
    examples(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples"),
        &mut found,
    );
    assert!(found.len() >= 3, "examples missing: {found:?}");
    for example in found {
        let text = std::fs::read_to_string(&example).unwrap();
        let mut config = text.clone();
        if !text.contains("required_providers") {
            config = format!(
                "terraform {{\n  required_providers {{\n    ecrmirror = {{\n      source = \"techtospeech/ecrmirror\"\n    }}\n  }}\n}}\n\n{text}"
            );
        }
        std::fs::write(h.work().join("main.tf"), config).unwrap();
        let run = h.terraform(&["validate", "-no-color"]).await;
        assert!(
            run.success,
            "{} does not validate:\n{}",
            example.display(),
            run.output()
        );
    }
}
