#!/usr/bin/env bash
# Serve the app on http://localhost:7071 with Azurite on its default loopback ports.
# Uses `func start` when Azure Functions Core Tools is installed, the local host otherwise.
# Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

azurite_pid=""
stop() {
  if [ -n "$azurite_pid" ]; then kill "$azurite_pid" 2>/dev/null || true; wait "$azurite_pid" || true; fi
}
trap stop EXIT
trap 'exit 130' INT TERM

if port_open 10001 && port_open 10002; then
  echo "Azurite already listens on 10001/10002: using it."
else
  # Data lives in .azurite/ (git-ignored), so jobs survive a restart.
  mkdir -p .azurite
  node_modules/.bin/azurite --silent --disableTelemetry --skipApiVersionCheck \
    --location .azurite --blobHost 127.0.0.1 --queueHost 127.0.0.1 --tableHost 127.0.0.1 &
  azurite_pid=$!
  for _ in $(seq 100); do port_open 10001 && port_open 10002 && break; sleep 0.1; done
  port_open 10002 || { echo "Azurite did not start" >&2; exit 1; }
  echo "Azurite started (data in .azurite/)."
fi

if command -v func >/dev/null 2>&1; then
  func start --port 7071
else
  echo "Azure Functions Core Tools not found: serving with the local host (python -m devhost)."
  .venv/bin/python -m devhost --port 7071
fi
