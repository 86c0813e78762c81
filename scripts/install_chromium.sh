#!/usr/bin/env bash
# Installs Debian's chromium (headless rendering of results/report.html in tests) unless one is on PATH.
# Needs root and apt (Debian bookworm); a no-op where Chromium is already installed.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
apt-get install -y -q chromium >/dev/null 2>&1 \
  || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
chromium --version
