#!/usr/bin/env bash
# Prints where Cargo puts this workspace's build outputs: CARGO_TARGET_DIR,
# .cargo/config.toml's build.target-dir, or target/ (as `cargo metadata` reports it).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
