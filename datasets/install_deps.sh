#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages lq builds against (make deps).
# Run as root, or with sudo available. nvcc (CUDA Toolkit) is optional: without
# it the CUDA kernels are not built and GPU tests skip.
set -euo pipefail
PKGS="build-essential pkg-config zlib1g-dev libarchive-dev libcmocka-dev libopenblas-dev
      libpcre2-dev libjansson-dev python3"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
missing=""
for p in $PKGS; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -z "$missing" ]; then echo "deps: all installed"; exit 0; fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing
