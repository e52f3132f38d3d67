#!/usr/bin/env bash
# Builds the Terraform Registry's file set for VERSION into DIST (default dist/):
#   terraform-provider-ecrmirror_{VERSION}_{OS}_{ARCH}.zip   (one per target; holds the
#                                                              single binary
#                                                              terraform-provider-ecrmirror_v{VERSION})
#   terraform-provider-ecrmirror_{VERSION}_manifest.json
#   terraform-provider-ecrmirror_{VERSION}_SHA256SUMS
#   terraform-provider-ecrmirror_{VERSION}_SHA256SUMS.sig     (binary detached GPG signature)
#
# Steps, so CI can build each target on its own runner and sign once:
#   release.sh package [RUST_TARGET]   build and zip one target (default: this machine)
#   release.sh sign                    manifest, SHA256SUMS over every zip in DIST, signature
#   release.sh                         both, for this machine
# Signing key: GPG_PRIVATE_KEY (ASCII-armored, imported into a throwaway keyring; with
# GPG_PASSPHRASE when it has one), or GPG_FINGERPRINT of a key already in the keyring.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { printf 'release: %s\n' "$*" >&2; exit 1; }

name=terraform-provider-ecrmirror
crate_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
version=${VERSION:-}
[ -n "$version" ] || die "set VERSION (Cargo.toml says $crate_version): make release VERSION=$crate_version"
[ "$version" = "$crate_version" ] || die "VERSION=$version but Cargo.toml says $crate_version: bump Cargo.toml (and CHANGELOG.md) first."
dist=${DIST:-dist}
mkdir -p "$dist"
dist=$(cd "$dist" && pwd)

# Rust target triple -> Terraform's OS_ARCH.
platform_of() {
  case "$1" in
    x86_64-unknown-linux-*) echo linux_amd64 ;;
    aarch64-unknown-linux-*) echo linux_arm64 ;;
    x86_64-apple-darwin) echo darwin_amd64 ;;
    aarch64-apple-darwin) echo darwin_arm64 ;;
    x86_64-pc-windows-*) echo windows_amd64 ;;
    *) die "no Terraform platform for Rust target $1" ;;
  esac
}

package() {
  local target=${1:-$(rustc -vV | sed -n 's/^host: //p')}
  local platform exe=""
  platform=$(platform_of "$target")
  case "$target" in *windows*) exe=.exe ;; esac
  cargo build --release --locked -p "$name" --target "$target"
  local stage
  stage=$(mktemp -d)
  cp "target/$target/release/$name$exe" "$stage/${name}_v$version$exe"
  python3 - "$dist/${name}_${version}_${platform}.zip" "$stage/${name}_v$version$exe" <<'PY'
import os, sys, zipfile
out, binary = sys.argv[1], sys.argv[2]
info = zipfile.ZipInfo(os.path.basename(binary), date_time=(2020, 1, 1, 0, 0, 0))
info.external_attr = 0o755 << 16
info.compress_type = zipfile.ZIP_DEFLATED
with zipfile.ZipFile(out, "w") as z, open(binary, "rb") as f:
    z.writestr(info, f.read())
PY
  rm -rf "$stage"
  echo "release: $dist/${name}_${version}_${platform}.zip"
}

sign() {
  cp terraform-registry-manifest.json "$dist/${name}_${version}_manifest.json"
  (cd "$dist" && ls ${name}_${version}_*.zip >/dev/null 2>&1) || die "no zips in $dist: run the package step first."
  (cd "$dist" && sha256sum ${name}_${version}_*.zip "${name}_${version}_manifest.json" > "${name}_${version}_SHA256SUMS")
  local fingerprint=${GPG_FINGERPRINT:-}
  if [ -n "${GPG_PRIVATE_KEY:-}" ]; then
    export GNUPGHOME
    GNUPGHOME=$(mktemp -d)
    trap 'rm -rf "$GNUPGHOME"' EXIT
    printf '%s\n' "$GPG_PRIVATE_KEY" | gpg --batch --quiet --import
    fingerprint=$(gpg --batch --with-colons --list-secret-keys | awk -F: '/^fpr:/ {print $10; exit}')
  fi
  [ -n "$fingerprint" ] || die "no signing key: set GPG_PRIVATE_KEY (armored RSA key) or GPG_FINGERPRINT."
  local pass=()
  [ -n "${GPG_PASSPHRASE:-}" ] && pass=(--pinentry-mode loopback --passphrase "$GPG_PASSPHRASE")
  rm -f "$dist/${name}_${version}_SHA256SUMS.sig"
  gpg --batch --yes "${pass[@]}" --local-user "$fingerprint" --detach-sign \
    --output "$dist/${name}_${version}_SHA256SUMS.sig" "$dist/${name}_${version}_SHA256SUMS"
  echo "release: signed $dist/${name}_${version}_SHA256SUMS with $fingerprint"
}

case "${1:-all}" in
  package) package "${2:-}" ;;
  sign) sign ;;
  all) package "" && sign ;;
  *) die "usage: release.sh [package [RUST_TARGET] | sign]" ;;
esac
