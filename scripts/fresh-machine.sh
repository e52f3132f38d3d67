#!/usr/bin/env bash
# `make fresh-machine`: proves that the README's two commands work on a fresh Debian 12.
#
# Builds a minimal Debian root with debootstrap (from Debian's own packages) under
# .fresh/ (or FRESH_DIR), brings in only what a new user starts with: the Rust toolchain
# (this machine's rustup and cargo, read-only), the terraform binary, and this machine's CA
# certificates (without which no package registry answers here). It shares this machine's
# Docker engine socket, clones the repository's committed HEAD into the root, and runs
# there, as root, `make demo` and then a fast subset of `make test` (FRESH_TESTS, default:
# unit tests, the lifecycle and the proxy/CA end-to-end tests). Everything else, from
# protoc's includes to the Docker CLI, the root gets from scripts/setup.sh.
#
# Needs root (debootstrap, chroot, mounts). Not part of `make test`: it takes many minutes
# (every crate is downloaded and built from nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
die() { printf 'fresh-machine: %s\n' "$*" >&2; exit 1; }
say() { printf '\n== fresh-machine: %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || die "run as root: it builds a Debian root with debootstrap and chroots into it."
for need in cargo rustup terraform git; do
  command -v "$need" >/dev/null || die "$need is not on PATH; this script brings the local one into the fresh root."
done
docker_socket=${DOCKER_SOCKET:-/var/run/docker.sock}
[ -S "$docker_socket" ] || die "no Docker engine socket at $docker_socket: run scripts/setup.sh first (or set DOCKER_SOCKET)."
if ! command -v debootstrap >/dev/null; then
  say "installing debootstrap from Debian"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

fresh=${FRESH_DIR:-$repo/.fresh}
rootfs="$fresh/rootfs"
suite=${FRESH_SUITE:-bookworm}
mirror=${FRESH_MIRROR:-http://deb.debian.org/debian}
tests=${FRESH_TESTS:-"cargo test --workspace --lib --bins && cargo test --test lifecycle --test network"}

mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount -l "${mounted[$i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT
bind() { # bind SOURCE TARGET [ro]
  if [ -d "$1" ]; then mkdir -p "$2"; else touch "$2"; fi
  mount --bind "$1" "$2"
  [ "${3:-}" = ro ] && mount -o remount,bind,ro "$2"
  mounted+=("$2")
}

if [ ! -f "$rootfs/.debootstrap-done" ]; then
  say "debootstrap $suite (minbase) from $mirror into $rootfs"
  rm -rf "$rootfs"
  mkdir -p "$rootfs"
  debootstrap --variant=minbase --include=ca-certificates,git,make "$suite" "$rootfs" "$mirror" >"$fresh/debootstrap.log" 2>&1 ||
    die "debootstrap failed; see $fresh/debootstrap.log"
  touch "$rootfs/.debootstrap-done"
fi

# This machine's CA certificates, the way a user's would be installed.
install -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/usr/local/share/ca-certificates/this-machine.crt"
chroot "$rootfs" update-ca-certificates >/dev/null 2>&1 || true
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
# terraform: one binary, as HashiCorp ships it.
install -m 0755 "$(command -v terraform)" "$rootfs/usr/local/bin/terraform"

# The Rust toolchain, read-only; cargo's registry cache starts empty in the root.
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
cargo_bin=$(dirname "$(command -v cargo)")
bind /proc "$rootfs/proc"
bind /sys "$rootfs/sys"
bind /dev "$rootfs/dev"
bind /dev/pts "$rootfs/dev/pts"
bind "$rustup_home" "$rootfs/opt/rustup" ro
bind "$cargo_bin" "$rootfs/opt/cargo-bin" ro
# The root's /var/run is a symlink to /run: bind there (never through the symlink, which
# would name this machine's /run).
bind "$docker_socket" "$rootfs/run/docker.sock"

say "cloning the committed HEAD ($(git rev-parse --short HEAD)) into the root"
rm -rf "$rootfs/src/ecrmirror"
git clone -q "$repo" "$rootfs/src/ecrmirror"
git -C "$rootfs/src/ecrmirror" checkout -q "$(git rev-parse HEAD)"

env_vars=(
  HOME=/root
  PATH=/opt/cargo-bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  RUSTUP_HOME=/opt/rustup
  CARGO_HOME=/root/.cargo
  RUSTUP_TOOLCHAIN="$(rustup show active-toolchain | cut -d' ' -f1)"
  TERM=dumb
  SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
  PIP_CERT=/etc/ssl/certs/ca-certificates.crt
  REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
  CARGO_TERM_COLOR=never
)
in_root() { chroot "$rootfs" /usr/bin/env -i "${env_vars[@]}" bash -c "cd /src/ecrmirror && $1"; }

start=$(date +%s)
say "make demo (the README's first command)"
in_root "make demo"
demo_done=$(date +%s)
say "fast subset of make test: $tests"
in_root "$tests"
done_at=$(date +%s)
say "passed: make demo in $((demo_done - start)) s, tests in $((done_at - demo_done)) s, on $(chroot "$rootfs" cat /etc/debian_version) (debootstrap $suite minbase)"
