//! A short seeded run of the fault soak (`make soak` runs the whole one): a dozen mirrors of
//! four sources under the seed's faults, renamed `for_each` keys, a token expiry and a
//! provider SIGKILL (the Docker engine is not restarted: other tests share it), against the
//! debug build of the provider.

use std::path::Path;
use std::process::Command;

#[test]
fn a_short_seeded_soak_holds_every_invariant() {
    let soak = env!("CARGO_BIN_EXE_ecrmirror-soak");
    // `cargo test --workspace` builds the provider beside the workspace's other binaries.
    let provider_dir = Path::new(soak).parent().expect("the soak has a directory");
    assert!(
        provider_dir.join("terraform-provider-ecrmirror").exists(),
        "build the provider first (cargo build --workspace)"
    );
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("SOAK.md");
    let output = Command::new(soak)
        .args(["--provider-dir", &provider_dir.display().to_string()])
        .args(["--seed", "7", "--mirrors", "12", "--sources", "4"])
        .args(["--no-docker-restart", "--report"])
        .arg(&report)
        .output()
        .expect("the soak runs");
    let written = std::fs::read_to_string(&report).unwrap_or_default();
    assert!(
        output.status.success(),
        "{}\n{written}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(written.contains("All held."), "{written}");
    // A third of the dozen keys renamed before the second and the third apply.
    assert!(
        written.contains("(8 `for_each` keys renamed in all)"),
        "{written}"
    );
    assert!(
        written.contains("| provider | SIGKILL mid-apply | 1 |"),
        "{written}"
    );
    assert!(
        written.contains("| ECR | token expired mid-run | 1 |"),
        "{written}"
    );
}
