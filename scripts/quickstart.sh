#!/usr/bin/env bash
# The README's quick start on the embedded default: a repository in a local directory, published from
# a source tree, served over HTTP on 127.0.0.1 and read back verified through that server.
set -euo pipefail
cd "$(dirname "$0")/.."
scvmfs() { node dist/src/cli/main.js "$@"; }
fqrn=demo.example.org
work=${QUICKSTART_DIR:-./quickstart}
rm -rf "$work"
mkdir -p "$work/src/share/doc" "$work/src/bin" "$work/src/lib/python"
cp README.md docs/*.md "$work/src/share/doc/"
cp -r src/format "$work/src/lib/python/"
: > "$work/src/lib/.cvmfscatalog"
printf '#!/bin/sh\necho "hello from CernVM-FS"\n' > "$work/src/bin/hello" && chmod 755 "$work/src/bin/hello"
ln -sf ../share/doc/README.md "$work/src/bin/README"

echo "== init"
scvmfs init "$fqrn" --store "$work/store" --keys "$work/keys"
echo "== publish"
scvmfs publish "$fqrn" "$work/src" --store "$work/store" --keys "$work/keys" --tag first
echo "== serve (background)"
scvmfs serve --store "$work/store" --port 0 > "$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q '^serving' "$work/serve.log" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^serving .* at \(http[^ ]*\)\/$/\1/p' "$work/serve.log")
[ -n "$url" ] || { cat "$work/serve.log"; exit 1; }
echo "serving at $url"
read_opts=(--fqrn "$fqrn" --pubkey "$work/keys/$fqrn.pub" --cache "$work/cache")
echo "== ls -l / over HTTP"
scvmfs ls "$url" / -l "${read_opts[@]}"
echo "== cat /bin/hello over HTTP"
scvmfs cat "$url" /bin/hello "${read_opts[@]}"
echo "== verify over HTTP"
scvmfs verify "$url" --fqrn "$fqrn" --pubkey "$work/keys/$fqrn.pub"
echo "== publish again with no change"
scvmfs publish "$fqrn" "$work/src" --store "$work/store" --keys "$work/keys"
echo
echo "Done. The repository is in $work/store; serve it with:"
echo "  node dist/src/cli/main.js serve --store $work/store --port 8000"
