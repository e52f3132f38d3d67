#!/usr/bin/env bash
# `make bench`: installs what the benchmark compares against (awscli and matplotlib from
# PyPI, skopeo from Debian), builds the provider as released and the bench, and runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
if ! command -v skopeo >/dev/null; then
  [ "$(id -u)" = 0 ] || die "skopeo is missing: run 'sudo apt-get install skopeo'."
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq skopeo >/dev/null
fi
command -v aws >/dev/null || python3 -m pip install -q awscli || die "cannot install awscli from PyPI."
python3 -c 'import matplotlib' 2>/dev/null || python3 -m pip install -q matplotlib || die "cannot install matplotlib from PyPI."
# The provider as released (scripts/release.sh: for Linux, linked by Zig against glibc 2.17).
provider=$(scripts/release.sh build)
cargo build --release --locked -p ecrmirror-standin --bin ecrmirror-bench
target_dir=$(scripts/target-dir.sh)
"$target_dir/release/ecrmirror-bench" --provider-dir "$(dirname "$provider")" "$@"
