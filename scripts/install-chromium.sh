#!/usr/bin/env bash
# Install Debian's chromium for the browser tests, unless a chromium is already on PATH.
# (Playwright's own browser download needs the internet; Debian's package comes from the package mirror.)
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
  echo "browser tests need Debian's chromium: run 'apt-get install chromium' as root" >&2
  exit 1
fi
echo "installing Debian's chromium for the browser tests..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium >/dev/null
