#!/usr/bin/env bash
# Install the servers the tests run (Debian's packages): Prometheus and the Pushgateway; and Chromium,
# the headless browser the report tests render `kubenas report`'s page in; shellcheck, which
# tests/images/ runs on the repository's shell scripts.
# Idempotent: does nothing when the binaries are present. Needs root (as CI runs) or passwordless sudo.
set -euo pipefail
packages=(prometheus prometheus-pushgateway chromium shellcheck)
if command -v prometheus >/dev/null && command -v prometheus-pushgateway >/dev/null \
  && command -v chromium >/dev/null && command -v shellcheck >/dev/null; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo -n"; fi
export DEBIAN_FRONTEND=noninteractive
if ! $sudo apt-get install -y --no-install-recommends "${packages[@]}" >/dev/null; then
  $sudo apt-get update >/dev/null
  $sudo apt-get install -y --no-install-recommends "${packages[@]}" >/dev/null
fi
