//! What the programs that drive Terraform over a world (`ecrmirror-bench`, `ecrmirror-soak`)
//! share: a scratch directory, the environment that makes Terraform use a provider build
//! (a `dev_overrides` CLI configuration), and the provider processes a Terraform run has.

use std::path::{Path, PathBuf};

use anyhow::Result;

/// The commit of the source tree these programs were built from (`git describe --always
/// --dirty`: a `-dirty` suffix says the tree had uncommitted changes), which every figure
/// they write names; `unknown` outside a git checkout.
pub fn commit() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::process::Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// A new scratch directory `<temp>/<prefix>-<pid>`.
pub fn scratch_dir(prefix: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The environment for Terraform runs that use the provider build in `provider_dir`: a CLI
/// configuration in `scratch` overriding `techtospeech/ecrmirror`, no checkpoint calls, and a
/// Docker config directory and a provider cache ([`cache_dir`]) of their own.
pub fn terraform_env(scratch: &Path, provider_dir: &Path) -> Result<Vec<(String, String)>> {
    let cli_config = scratch.join("terraformrc");
    std::fs::write(
        &cli_config,
        format!(
            "provider_installation {{\n  dev_overrides {{\n    \"techtospeech/ecrmirror\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
            provider_dir.display()
        ),
    )?;
    Ok(vec![
        (
            "TF_CLI_CONFIG_FILE".into(),
            cli_config.display().to_string(),
        ),
        ("TF_IN_AUTOMATION".into(), "1".into()),
        ("CHECKPOINT_DISABLE".into(), "1".into()),
        (
            "DOCKER_CONFIG".into(),
            scratch.join("docker").display().to_string(),
        ),
        (
            "ECRMIRROR_CACHE_DIR".into(),
            cache_dir(scratch).display().to_string(),
        ),
    ])
}

/// Where the provider runs of `scratch` keep the manifests they fetched by digest; removed
/// before a timed run, so that every run asks the source as `skopeo copy` does.
pub fn cache_dir(scratch: &Path) -> PathBuf {
    scratch.join("provider-cache")
}

/// The processes `pid` started (Linux's `/proc/<pid>/task/<tid>/children`).
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// The provider processes the Terraform process `terraform` runs now. Only Terraform's
/// children are read, so watching costs next to nothing.
pub fn providers(terraform: u32) -> Vec<u32> {
    children(terraform)
        .into_iter()
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/comm"))
                .is_ok_and(|name| name.starts_with("terraform-provi"))
        })
        .collect()
}

/// The peak RSS (VmHWM, KiB) of process `pid`, 0 when unknown.
pub fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
