#!/usr/bin/env bash
# Installs and starts what building, testing and the demo need on a Debian machine:
# protoc (tf-provider's build), a Docker engine, the distribution registry
# (docker-registry) for the stand-in world, gpg and python3 for release archives. Stops with one sentence when something
# cannot be provided.
set -euo pipefail

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo is not on PATH: install Rust (https://rustup.rs) and run this again."
command -v terraform >/dev/null || die "terraform is not on PATH: install Terraform 1.5 or newer (or OpenTofu as terraform) and run this again."

is_root() { [ "$(id -u)" = 0 ]; }

# command -> Debian package
declare -A packages=(
  [protoc]=protobuf-compiler
  [dockerd]=docker.io
  [docker-registry]=docker-registry
  [gpg]=gpg
  [python3]=python3
)
missing=()
for cmd in protoc dockerd docker-registry gpg python3; do
  command -v "$cmd" >/dev/null || missing+=("${packages[$cmd]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  is_root || die "missing ${missing[*]}: run 'sudo apt-get install ${missing[*]}' (or run this as root) and try again."
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get: install them with your package manager."
  say "installing ${missing[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
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
say "ready: $(protoc --version), Docker engine $(docker version --format '{{.Server.Version}}'), $(terraform version | head -1)"
