#!/usr/bin/env bash
# Installs whatever is missing on a fresh Debian machine, idempotently: Chromium and chromedriver,
# Firefox ESR, the wasm target, wasm-bindgen-cli at the version in Cargo.lock, wasm-pack,
# geckodriver and the node packages. Everything comes from the package registries (Debian,
# crates.io, npm): nothing is downloaded from anywhere else.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
command -v firefox-esr >/dev/null || need_apt+=(firefox-esr)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# wasm-bindgen-cli must match the wasm-bindgen crate in Cargo.lock exactly. Installed without
# --locked: one of its locked dependencies is missing from the registry mirror.
want=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/"/, "", $3); print $3}' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  log "cargo install wasm-bindgen-cli --version $want (have: ${have:-none})"
  cargo install -q wasm-bindgen-cli --version "$want" --force
fi
command -v wasm-pack >/dev/null || { log "cargo install wasm-pack"; cargo install -q wasm-pack; }
command -v geckodriver >/dev/null || { log "cargo install geckodriver"; cargo install -q geckodriver; }

if [ ! -d node_modules ] || [ package.json -nt node_modules/.package-lock.json ]; then
  log "npm install"
  npm install --no-audit --no-fund --loglevel=error
fi
log "ready"
