#!/usr/bin/env bash
# The main job, against the local stand-in world: start it, run a real `terraform apply`
# that mirrors an image into the emulated ECR, print the pinned image_uri_digest, and show
# that a second plan has no changes.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
demo="$root/.demo"
# Where Cargo put the debug build (CARGO_TARGET_DIR, .cargo/config.toml, or target/).
bin=$(scripts/target-dir.sh)/debug
rm -rf "$demo"
mkdir -p "$demo/work"

"$bin/ecrmirror-standin" up "$demo/world" 2>"$demo/world.log" &
world=$!
trap 'kill -INT $world 2>/dev/null || true; wait $world 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  [ -f "$demo/world/env.sh" ] && break
  kill -0 $world 2>/dev/null || { cat "$demo/world.log" >&2; echo "demo: the stand-in world did not start" >&2; exit 1; }
  sleep 0.1
done
[ -f "$demo/world/env.sh" ] || { echo "demo: the stand-in world did not start in time" >&2; exit 1; }
# shellcheck disable=SC1091
. "$demo/world/env.sh"

cat >"$demo/terraformrc" <<RC
provider_installation {
  dev_overrides {
    "techtospeech/ecrmirror" = "$bin"
  }
  direct {}
}
RC
export TF_CLI_CONFIG_FILE="$demo/terraformrc" TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1
export TF_VAR_source_registry="$STANDIN_SOURCE"
export DOCKER_CONFIG="$demo/docker-config"
cp "$root/examples/demo/main.tf" "$demo/work/main.tf"
cd "$demo/work"

echo "== terraform apply (source $STANDIN_SOURCE, ECR emulator $STANDIN_ECR)"
terraform apply -auto-approve -input=false
echo
echo "== pinned reference: $(terraform output -raw pinned)"
echo
echo "== second terraform plan"
set +e
terraform plan -detailed-exitcode -input=false
code=$?
set -e
if [ $code -eq 0 ]; then
  echo "demo: the second plan has no changes."
else
  echo "demo: the second plan was not empty (exit $code)" >&2
  exit 1
fi
