#!/usr/bin/env bash
# Builds the code directory the CDK app deploys to every function: dist/src (compiled, with source maps),
# package.json (it says "type": "module") and the production node_modules. No Docker, no bundler: the
# functions load the same modules the CLI and the tests run.
#
# node_modules is copied from this checkout and pruned of dev dependencies, so it needs no network and
# ships exactly the tested versions. better-sqlite3 is native: build on the architecture you deploy
# (x86_64 by default, `-c architecture=arm64` otherwise) under Linux with glibc no newer than Lambda's
# (Amazon Linux 2023, glibc 2.34).
#
# SCVMFS_LAMBDA_NODE (20, 22, 24; default 20) and SCVMFS_LAMBDA_ARCH (x86_64 or arm64) name the runtime the
# package is for; the addon's glibc/libstdc++ symbol versions and Node ABI are checked against it first.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/lambda}
node_major=${SCVMFS_LAMBDA_NODE:-20}
arch=${SCVMFS_LAMBDA_ARCH:-x86_64}

npx tsc -p tsconfig.json
node dist/infra/check-addon.js node_modules/better-sqlite3/build/Release/better_sqlite3.node "$node_major" "$arch"
rm -rf "$out"
mkdir -p "$out/dist"
cp -R dist/src "$out/dist/src"
cp package.json package-lock.json "$out/"
# -L: node_modules may be a symlink (worktrees); the package needs the real files.
cp -RL node_modules "$out/node_modules"
(cd "$out" && npm prune --omit=dev --offline --no-audit --no-fund --ignore-scripts >/dev/null)
rm -f "$out/package-lock.json"
# better-sqlite3 keeps its C sources and build intermediates; only the loaded addon is needed.
sqlite="$out/node_modules/better-sqlite3"
find "$sqlite/build" -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} +
find "$sqlite/build/Release" -mindepth 1 ! -name better_sqlite3.node -exec rm -rf {} +
rm -rf "$sqlite/deps" "$sqlite/src"
find "$out/node_modules" -type d -empty -delete
# The package must load on its own: fail here, not at the first invocation. Checked in a copy outside
# this checkout so that no node_modules further up can stand in for a missing module.
check=$(mktemp -d)
trap 'rm -rf "$check"' EXIT
cp -R "$out" "$check/pkg"
(cd "$check/pkg" && node --input-type=module -e "
  const Database = (await import('better-sqlite3')).default; new Database(':memory:').close();
  for (const fn of ['lease', 'upload-grant', 'commit', 'abort', 'resign', 'check']) {
    const m = await import('./dist/src/runtime/aws-entry/' + fn + '.js');
    if (typeof m.handler !== 'function') throw new Error(fn + ': no handler export');
  }")
echo "$out: $(du -sh "$out" | cut -f1)"
