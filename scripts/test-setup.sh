#!/usr/bin/env bash
# What the test suite needs beyond Python packages: Debian's chromium for the browser tests
# (Playwright drives it; no browser is downloaded) and the JS dev dependencies for the
# widget's unit tests and the sidebar build (node and npm must be on PATH). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/lib/chromium/chromium ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
if [ ! -d js/node_modules/esbuild ]; then
  npm ci --prefix js --no-audit --no-fund
fi
if [ ! -d labextension/node_modules/@jupyter/builder ]; then
  npm ci --prefix labextension --no-audit --no-fund
fi
