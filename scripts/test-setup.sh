#!/usr/bin/env bash
# What the test suite needs beyond Python packages: Debian's chromium for the browser tests
# (Playwright drives it; no browser is downloaded), Debian's prometheus for promtool and a
# real Prometheus server (the exposition tests), and the JS dev dependencies for the
# widget's unit tests and the sidebar build (node and npm must be on PATH). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
need_chromium=0; need_prometheus=0; need_systemd=0
[ -x /usr/lib/chromium/chromium ] || need_chromium=1
command -v promtool >/dev/null || need_prometheus=1
# systemd-analyze verifies the unit file of docs/DEPLOY.md.
command -v systemd-analyze >/dev/null || need_systemd=1
if [ $need_chromium -eq 1 ] || [ $need_prometheus -eq 1 ] || [ $need_systemd -eq 1 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  APT="$SUDO env DEBIAN_FRONTEND=noninteractive apt-get"
  $APT update -qq
  if [ $need_chromium -eq 1 ]; then
    $APT install -y -qq chromium >/dev/null
  fi
  if [ $need_prometheus -eq 1 ]; then
    # Without recommends: they would bring node-exporter and its timers along.
    $APT install -y -qq --no-install-recommends prometheus >/dev/null
  fi
  if [ $need_systemd -eq 1 ]; then
    $APT install -y -qq --no-install-recommends systemd >/dev/null
  fi
fi
if [ ! -d js/node_modules/esbuild ] || [ ! -d js/node_modules/axe-core ]; then
  npm ci --prefix js --no-audit --no-fund
fi
if [ ! -d labextension/node_modules/@jupyter/builder ]; then
  npm ci --prefix labextension --no-audit --no-fund
fi
