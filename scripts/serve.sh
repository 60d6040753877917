#!/usr/bin/env bash
# Command 1: set up whatever is missing, build, and serve the page on http://127.0.0.1:8080.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
echo "Serving the RLHF lab on http://127.0.0.1:${PORT:-8080} (Ctrl-C stops it)" >&2
exec npx --no-install vite preview --host 127.0.0.1 --port "${PORT:-8080}" --strictPort
