#!/usr/bin/env bash
# run_fuzz.sh — build and run every libFuzzer target tests/fuzz/fuzz_*.c.
#
#   ./tests/fuzz/run_fuzz.sh SECONDS [TARGET...]      (make fuzz FUZZ_SECONDS=N)
#
# Builds the library sources (formats/ libquant/ calib/ distill/, C only: the
# CUDA kernels are not fuzzed) with clang -fsanitize=fuzzer-no-link,address,
# undefined into build-fuzz/, links each target with -fsanitize=fuzzer, and
# runs it for SECONDS (-max_total_time) starting from its seed corpus
# tests/fuzz/corpus/<target>/ (or tests/fuzz/corpus/<target without fuzz_>/).
# New inputs go to build-fuzz/corpus/<target>/, so the committed seeds stay
# small; crashes go to build-fuzz/artifacts/. UBSan aborts on the first
# finding (-fno-sanitize-recover) so libFuzzer counts it as a crash.
#
# Exit status: 0 when every target ran clean (or when clang / libFuzzer is
# missing: prints "skipped: ..."), 1 when a target failed to build or found a
# crash, leak, timeout or OOM. Targets are picked up by wildcard: drop a
# tests/fuzz/fuzz_<name>.c defining LLVMFuzzerTestOneInput and it is run.
# Env: CLANG (default clang), FUZZ_BUILD (default build-fuzz), FUZZ_JOBS
# (parallel compiles, default 2), FUZZ_ARGS (extra libFuzzer flags).
set -u
SECS=${1:-30}
shift || true
case "$SECS" in '' | *[!0-9]*) echo "usage: $0 SECONDS [TARGET...]" >&2; exit 2 ;; esac

cd "$(dirname "$0")/../.." || exit 1
CLANG=${CLANG:-clang}
OUT=${FUZZ_BUILD:-build-fuzz}
JOBS=${FUZZ_JOBS:-2}

if ! command -v "$CLANG" >/dev/null 2>&1; then
  echo "skipped: $CLANG not found (install clang with libFuzzer to fuzz)"
  exit 0
fi
mkdir -p "$OUT"
probe="$OUT/probe"
printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$probe.c"
if ! "$CLANG" -fsanitize=fuzzer,address,undefined "$probe.c" -o "$probe" >"$probe.log" 2>&1; then
  echo "skipped: $CLANG cannot link -fsanitize=fuzzer,address,undefined (libFuzzer missing?):"
  sed 's/^/  /' "$probe.log" | head -5
  exit 0
fi

PKGS="jansson libpcre2-8 libarchive zlib openblas"
if ! PKG_CFLAGS=$(pkg-config --cflags $PKGS) || ! PKG_LIBS=$(pkg-config --libs $PKGS); then
  echo "run_fuzz: pkg-config cannot find some of: $PKGS (make deps)" >&2
  exit 1
fi
# OpenMP as in the main build when clang has it (libomp); pragmas are ignored otherwise.
OMP=-fopenmp
printf 'int main(void) { return 0; }\n' >"$probe-omp.c"
"$CLANG" -fopenmp "$probe-omp.c" -o "$probe-omp" >/dev/null 2>&1 || OMP=-Wno-unknown-pragmas

SAN="address,undefined"
CFLAGS="-std=c11 -g -O1 -fno-omit-frame-pointer -D_GNU_SOURCE -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION \
-Wall -Wno-unused-parameter $OMP \
-fno-sanitize-recover=all $PKG_CFLAGS"
LIBS="$PKG_LIBS -lm -lpthread"

# ---- the library, with sanitizers and coverage, rebuilt when a source or header changed
LIB_SRC=$(ls formats/*.c libquant/*.c calib/*.c distill/*.c 2>/dev/null | sort)
HEADERS=$(ls formats/*.h libquant/*.h calib/*.h distill/*.h 2>/dev/null)
FLAGS_FILE="$OUT/lib.flags"
LIB_FLAGS="$CLANG $CFLAGS -fsanitize=fuzzer-no-link,$SAN"
[ "$(cat "$FLAGS_FILE" 2>/dev/null)" = "$LIB_FLAGS" ] || rm -rf "$OUT/obj"
echo "$LIB_FLAGS" >"$FLAGS_FILE"
newest_header=""
[ -n "$HEADERS" ] && newest_header=$(ls -t $HEADERS | head -1)
stale=""
objs=""
for src in $LIB_SRC; do
  obj="$OUT/obj/${src%.c}.o"
  objs="$objs $obj"
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || { [ -n "$newest_header" ] && [ "$newest_header" -nt "$obj" ]; }; then
    stale="$stale $src"
  fi
done
if [ -n "$stale" ]; then
  echo "run_fuzz: compiling $(echo $stale | wc -w) library sources with $CLANG (fuzzer-no-link,$SAN)"
  export CLANG OUT CFLAGS SAN
  if ! printf '%s\n' $stale | xargs -P "$JOBS" -I{} sh -c \
      'src={}; obj="$OUT/obj/${src%.c}.o"; mkdir -p "$(dirname "$obj")";
       $CLANG $CFLAGS -fsanitize=fuzzer-no-link,$SAN -c "$src" -o "$obj" || { rm -f "$obj"; exit 1; }'; then
    echo "run_fuzz: FAILED to compile the library" >&2
    exit 1
  fi
fi
rm -f "$OUT/liblq-fuzz.a"
ar rcs "$OUT/liblq-fuzz.a" $objs || exit 1

# ---- targets
if [ $# -gt 0 ]; then
  TARGETS="$*"
else
  TARGETS=$(ls tests/fuzz/fuzz_*.c 2>/dev/null | sed 's|.*/||; s|\.c$||' | sort)
fi
[ -n "$TARGETS" ] || { echo "run_fuzz: no tests/fuzz/fuzz_*.c targets"; exit 0; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p "$OUT/artifacts" "$OUT/logs"
summary=""
failed=0
for t in $TARGETS; do
  t=${t%.c}; t=${t##*/}
  src="tests/fuzz/$t.c"
  if [ ! -f "$src" ]; then
    summary="$summary\n  $t: no such target ($src)"; failed=1; continue
  fi
  bin="$OUT/$t"
  if ! "$CLANG" $CFLAGS -fsanitize=fuzzer,$SAN "$src" "$OUT/liblq-fuzz.a" $LIBS -o "$bin" >"$OUT/logs/$t.build.log" 2>&1; then
    echo "run_fuzz: $t: build FAILED:"
    grep -E "error|undefined reference" "$OUT/logs/$t.build.log" | head -10 | sed 's/^/  /'
    summary="$summary\n  $t: BUILD FAILED (see $OUT/logs/$t.build.log)"; failed=1; continue
  fi
  work="$OUT/corpus/$t"
  mkdir -p "$work"
  seeds=""
  for d in "tests/fuzz/corpus/$t" "tests/fuzz/corpus/${t#fuzz_}"; do
    [ -d "$d" ] && seeds="$seeds $d"
  done
  log="$OUT/logs/$t.log"
  echo "run_fuzz: $t for ${SECS}s (seeds:${seeds:- none})"
  start=$(date +%s)
  # -timeout: a single input taking 10 s is a hang; -rss_limit_mb: an OOM is a finding
  "$bin" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$OUT/artifacts/$t-" ${FUZZ_ARGS:-} "$work" $seeds >"$log" 2>&1
  rc=$?
  el=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -n 's/.*\(cov: [0-9]*\).*\(corp: [^ ]*\).*/\1 \2/p')
  if [ $rc -eq 0 ]; then
    summary="$summary\n  $t: ok, ${execs:-?} execs in ${el}s (${cov:-})"
  else
    failed=1
    art=$(grep -o "$OUT/artifacts/$t-[a-z]*-[0-9a-f]*" "$log" | tail -1)
    echo "run_fuzz: $t FAILED (exit $rc) after ${el}s; last lines of $log:"
    grep -E "ERROR|runtime error|SUMMARY|#[0-9]+ +in |left behind|error without" "$log" | head -20 | sed 's/^/  /'
    summary="$summary\n  $t: FAILED (exit $rc) after ${execs:-?} execs, ${el}s; reproducer: ${art:-see $log} (run $bin <file>)"
  fi
done
printf "run_fuzz summary:$summary\n"
exit $failed
