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
#   release.sh build [RUST_TARGET]     only build and check the binary; prints its path
# Linux binaries are linked with Zig (cargo-zigbuild) against glibc 2.17, so they start on
# every Linux Terraform runs on (Amazon Linux 2, RHEL 7+, Ubuntu 14.04+); musl targets
# (x86_64-unknown-linux-musl, aarch64-unknown-linux-musl) are built static the same way.
# Each Linux binary is checked: static or no GLIBC_ symbol version above 2.17, and, when it
# runs here, it starts and prints the go-plugin handshake line.
# Signing key: GPG_PRIVATE_KEY (ASCII-armored, imported into a throwaway keyring; with
# GPG_PASSPHRASE when it has one), or GPG_FINGERPRINT of a key already in the keyring.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { printf 'release: %s\n' "$*" >&2; exit 1; }

name=terraform-provider-ecrmirror
crate_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
version=${VERSION:-}
need_version() {
  [ -n "$version" ] || die "set VERSION (Cargo.toml says $crate_version): make release VERSION=$crate_version"
  [ "$version" = "$crate_version" ] || die "VERSION=$version but Cargo.toml says $crate_version: bump Cargo.toml (and CHANGELOG.md) first."
  dist=${DIST:-dist}
  mkdir -p "$dist"
  dist=$(cd "$dist" && pwd)
}
command -v python3 >/dev/null || die "python3 is missing: it finds the build outputs and writes the zips."
# Where Cargo puts build outputs (CARGO_TARGET_DIR, .cargo/config.toml, or target/).
target_dir=$(scripts/target-dir.sh)
GLIBC_FLOOR=2.17

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

# Builds the release binary for `target` as shipped, checks it, and prints its path.
build() {
  local target=$1 exe=""
  case "$target" in *windows*) exe=.exe ;; esac
  case "$target" in
    *-linux-gnu | *-linux-musl)
      local tools
      tools=$(scripts/setup.sh release-tools)
      local zig_target=$target
      [ "${target%-gnu}" != "$target" ] && zig_target=$target.$GLIBC_FLOOR
      PATH="$tools:$PATH" cargo zigbuild --release --locked -p "$name" --target "$zig_target" >&2
      ;;
    *) cargo build --release --locked -p "$name" --target "$target" >&2 ;;
  esac
  local binary="$target_dir/$target/release/$name$exe"
  case "$target" in *-linux-*) check_linux_binary "$binary" "$target" >&2 ;; esac
  printf '%s\n' "$binary"
}

package() {
  local target=${1:-$(rustc -vV | sed -n 's/^host: //p')}
  local platform exe=""
  platform=$(platform_of "$target")
  case "$target" in *windows*) exe=.exe ;; esac
  local binary
  binary=$(build "$target")
  local stage
  stage=$(mktemp -d)
  cp "$binary" "$stage/${name}_v$version$exe"
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

# Fails unless `binary` is static or needs no glibc newer than GLIBC_FLOOR, and (when it can
# run here) unless it starts and prints the go-plugin handshake line.
check_linux_binary() {
  local binary=$1 target=$2
  command -v objdump >/dev/null || die "objdump is missing (Debian package binutils): it checks the binary's glibc floor."
  local newest
  newest=$(objdump -T "$binary" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1 || true)
  if [ -z "$newest" ]; then
    objdump -p "$binary" | grep -q 'NEEDED' && die "$binary links shared libraries but names no glibc version."
    echo "release: $target binary is static"
  else
    [ "$(printf '%s\n%s\n' "$newest" "$GLIBC_FLOOR" | sort -V | tail -1)" = "$GLIBC_FLOOR" ] ||
      die "$binary needs GLIBC_$newest, above the floor of $GLIBC_FLOOR: it would not start on older Linux."
    echo "release: $target binary needs glibc $newest at most (floor $GLIBC_FLOOR)"
  fi
  if [ "$(uname -s)" = Linux ] && [ "$(uname -m)" = "${target%%-*}" ]; then
    local line
    line=$(TF_PLUGIN_MAGIC_COOKIE=d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2 \
      timeout 10 "$binary" </dev/null 2>/dev/null | head -1 || true)
    case "$line" in
      1\|6\|tcp\|*\|grpc\|*) echo "release: $target binary starts: $line" ;;
      *) die "$binary did not print the plugin handshake (got: ${line:-nothing})." ;;
    esac
  fi
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

host=$(rustc -vV | sed -n 's/^host: //p')
case "${1:-all}" in
  build) build "${2:-$host}" ;;
  package) need_version && package "${2:-}" ;;
  sign) need_version && sign ;;
  all) need_version && package "" && sign ;;
  *) die "usage: release.sh [build [RUST_TARGET] | package [RUST_TARGET] | sign]" ;;
esac
