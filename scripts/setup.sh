#!/usr/bin/env bash
# Installs and starts what building, testing and the demo need on a Debian or Ubuntu
# machine, checking what each need can actually do rather than that a command exists:
#   - protoc compiles a file importing google/protobuf/empty.proto (tf-provider's build;
#     the import lives in libprotobuf-dev, not in protobuf-compiler)
#   - a C compiler links a program (Rust's linker driver and the ring crate)
#   - a Docker engine answers (the docker copy method and the tests)
#   - docker-registry, gpg, python3 with venv (stand-in world, release archives)
# `setup.sh release-tools` also makes the portable-release toolchain (Zig and
# cargo-zigbuild from PyPI, in a venv under .tools/) and prints its bin directory.
# Stops with one sentence when something cannot be provided.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

# The portable-release toolchain: links Linux binaries against glibc 2.17 (see release.sh).
# Needs only python3 (with venv) and PyPI, so release jobs can run it on their own.
ZIGLANG_VERSION=0.17.1
ZIGBUILD_VERSION=0.24.1
release_tools() {
  local venv=.tools/zigbuild
  local bin="$PWD/$venv/bin"
  if ! { [ -x "$bin/cargo-zigbuild" ] &&
    "$bin/python" -c 'import sys; from importlib.metadata import version as v; sys.exit(v("ziglang") != sys.argv[1] or v("cargo-zigbuild") != sys.argv[2])' \
      "$ZIGLANG_VERSION" "$ZIGBUILD_VERSION" 2>/dev/null; }; then
    say "installing ziglang $ZIGLANG_VERSION and cargo-zigbuild $ZIGBUILD_VERSION from PyPI into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv" || die "python3 could not make a venv in $venv (Debian: apt-get install python3-venv)."
    "$bin/python" -m pip install -q "ziglang==$ZIGLANG_VERSION" "cargo-zigbuild==$ZIGBUILD_VERSION" ||
      die "pip could not install ziglang and cargo-zigbuild: check the machine's access to PyPI."
  fi
  "$bin/python" -m ziglang version >/dev/null 2>&1 || die "the Zig toolchain in $venv does not run."
  printf '%s\n' "$bin"
}
case "${1:-}" in
  "") ;;
  release-tools) release_tools; exit 0 ;;
  *) die "usage: setup.sh [release-tools]" ;;
esac

command -v cargo >/dev/null || die "cargo is not on PATH: install Rust (https://rustup.rs) and run this again."
command -v terraform >/dev/null || die "terraform is not on PATH: install Terraform 1.5 or newer (or OpenTofu as terraform) and run this again."

is_root() { [ "$(id -u)" = 0 ]; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# Each check succeeds when the capability is there; its packages provide it.
can_protoc() {
  mkdir -p "$scratch/proto"
  printf 'syntax = "proto3";\nimport "google/protobuf/empty.proto";\nmessage Probe { google.protobuf.Empty e = 1; }\n' >"$scratch/proto/probe.proto"
  command -v protoc >/dev/null &&
    protoc -I "$scratch/proto" --descriptor_set_out="$scratch/probe.pb" "$scratch/proto/probe.proto" 2>/dev/null
}
can_link_c() {
  command -v objdump >/dev/null || return 1 # release.sh checks binaries with it
  printf '#include <stdio.h>\nint main(void) { puts("ok"); return 0; }\n' >"$scratch/probe.c"
  command -v cc >/dev/null && cc -o "$scratch/probe" "$scratch/probe.c" 2>/dev/null && [ "$("$scratch/probe")" = ok ]
}
can_dockerd() { command -v docker >/dev/null && { command -v dockerd >/dev/null || [ -n "${DOCKER_HOST:-}" ]; }; }
can_registry() { command -v docker-registry >/dev/null; }
can_gpg() { command -v gpg >/dev/null && gpg --version >/dev/null 2>&1; }
# The tests and the soak signal processes (kill, pgrep): Debian's minimal images lack them.
can_signal() { type -P kill >/dev/null && type -P pgrep >/dev/null; }
can_python_venv() {
  command -v python3 >/dev/null && python3 -c 'import zipfile, venv, ensurepip' 2>/dev/null
}

declare -A packages=(
  [can_protoc]="protobuf-compiler libprotobuf-dev"
  [can_link_c]="gcc libc6-dev binutils"
  [can_dockerd]="docker.io"
  [can_registry]="docker-registry"
  [can_gpg]="gpg"
  [can_python_venv]="python3 python3-venv"
  [can_signal]="procps"
)
checks=(can_protoc can_link_c can_dockerd can_registry can_gpg can_python_venv can_signal)
missing=()
for check in "${checks[@]}"; do
  if ! "$check"; then
    read -r -a pkgs <<<"${packages[$check]}"
    missing+=("${pkgs[@]}")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  is_root || die "missing ${missing[*]}: run 'sudo apt-get install ${missing[*]}' (or run this as root) and try again."
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get: install them with your package manager."
  say "installing ${missing[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || die "apt-get update failed: check the machine's package sources and network."
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    die "apt-get could not install ${missing[*]}."
  for check in "${checks[@]}"; do
    "$check" || die "installed ${packages[$check]} but ${check#can_} still does not work: see the package's documentation."
  done
fi

engine_up() { timeout 10 docker info >/dev/null 2>&1; }

if ! engine_up; then
  if [ -n "${DOCKER_HOST:-}" ]; then
    die "no Docker engine answers at DOCKER_HOST=$DOCKER_HOST: start it, or unset DOCKER_HOST to use a local one."
  fi
  is_root || die "no Docker engine answers: start it ('sudo systemctl start docker') and run this again."
  log=/var/log/ecrmirror-dockerd.log
  for driver in overlay2 vfs; do
    say "starting dockerd (storage driver $driver), log in $log"
    nohup dockerd --storage-driver "$driver" >"$log" 2>&1 &
    for _ in $(seq 1 60); do
      engine_up && break 2
      kill -0 $! 2>/dev/null || break
      sleep 0.5
    done
    kill $! 2>/dev/null || true
    wait $! 2>/dev/null || true
  done
  engine_up || die "dockerd did not start; see $log."
fi

say "ready: $(protoc --version), $(cc --version | head -1), Docker engine $(docker version --format '{{.Server.Version}}'), $(terraform version 2>/dev/null | head -1)"
