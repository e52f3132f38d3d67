#!/usr/bin/env bash
# `make soak`: builds the provider as released (scripts/release.sh) and the soak, and runs
# the fault soak (standin/src/bin/soak.rs); it writes SOAK.md. SOAK_ARGS passes arguments
# (`--seed N`, `--mirrors N`, `--sources N`, `--report FILE`).
set -euo pipefail
cd "$(dirname "$0")/.."
provider=$(scripts/release.sh build)
cargo build --release --locked -p ecrmirror-standin --bin ecrmirror-soak
target_dir=$(scripts/target-dir.sh)
"$target_dir/release/ecrmirror-soak" --provider-dir "$(dirname "$provider")" "$@"
