#!/usr/bin/env bash
# CI only: better-sqlite3 is the one dependency with an install script, and without a reachable prebuilt
# binary it compiles SQLite from source (about 3 minutes on 2 cores). After `npm ci --ignore-scripts`,
# this restores the addon built by an earlier run on this machine, keyed by the package's version, Node's
# module ABI and the platform, or builds it (`npm rebuild`) and keeps a copy. A restored addon that does
# not load and answer a query is rebuilt. `npm ci` alone (the README's way) builds it as usual.
set -euo pipefail
cd "$(dirname "$0")/.."
pkg=node_modules/better-sqlite3
addon="$pkg/build/Release/better_sqlite3.node"
version=$(node -p "require('./$pkg/package.json').version")
key="better-sqlite3-$version-abi$(node -p process.versions.modules)-$(node -p 'process.platform + "-" + process.arch')"
cache="${SCVMFS_CI_CACHE:-${XDG_CACHE_HOME:-${HOME:-/var/tmp}/.cache}/serverless-cvmfs}"
works() { node -e "const D = require('better-sqlite3'); if (new D(':memory:').prepare('select 41 + 1 as n').get().n !== 42) process.exit(1)" 2>/dev/null; }
if [ -f "$cache/$key.node" ]; then
  mkdir -p "$(dirname "$addon")"
  cp "$cache/$key.node" "$addon"
  if works; then echo "sqlite-addon: restored $key from $cache"; exit 0; fi
  echo "sqlite-addon: the kept $key does not load; building it again" >&2
  rm -f "$cache/$key.node" "$addon"
fi
npm rebuild better-sqlite3 --no-audit --no-fund
works || { echo "sqlite-addon: better-sqlite3 was built but does not load" >&2; exit 1; }
mkdir -p "$cache"
cp "$addon" "$cache/$key.node.tmp.$$" && mv "$cache/$key.node.tmp.$$" "$cache/$key.node"
echo "sqlite-addon: built $key and kept it in $cache"
