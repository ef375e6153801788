#!/usr/bin/env bash
# Runs the CMocka suites given as arguments, prints each suite's output, and
# closes with one summary line "N passed, N failed, N skipped".
# Exit status: non-zero when any test failed or any suite crashed.
# LQ_REQUIRE_GPU=1 (make test-gpu) turns GPU skips into failures in the suites.
set -u
# OpenMP's spinning thread pool starves OpenBLAS and other suites on small,
# loaded machines (test_gptq: 12 s -> 2.4 s on 2 cores); it must be set in the
# environment, before the OpenMP runtime starts.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
# LQ_TEST_JOBS=N (default 1) runs up to N suites at once (make test-gpu: the GPU suites side by side on one
# GPU, so that the device time is the longest suite's rather than the sum); each suite's output is still
# printed whole, in the order given.
jobs=${LQ_TEST_JOBS:-1}
case $jobs in ''|*[!0-9]*|0) echo "run_tests.sh: LQ_TEST_JOBS=$jobs is not a positive integer" >&2; exit 2 ;; esac
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lq_tests.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
passed=0; failed=0; skipped=0; crashed=0
report() { # suite number, suite: print its output, add up its counts
  local out rc p f s
  out=$(cat "$tmp/$1.out"); rc=$(cat "$tmp/$1.rc" 2>/dev/null || echo 1)
  printf '%s\n' "$out"
  p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
  f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
  s=$(printf '%s\n' "$out" | sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' | tail -1)
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0})); skipped=$((skipped + ${s:-0}))
  if [ "$rc" -ne 0 ] && [ -z "$f" ]; then
    echo "suite $2 exited with status $rc without a failure count (crash?)"; crashed=$((crashed + 1))
  fi
}
i=0
for t in "$@"; do
  i=$((i + 1))
  if [ "$jobs" -gt 1 ]; then
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n 2>/dev/null || sleep 0.2; done
    ( "$t" > "$tmp/$i.out" 2>&1; echo $? > "$tmp/$i.rc" ) &
  else
    "$t" > "$tmp/$i.out" 2>&1; echo $? > "$tmp/$i.rc"
    report $i "$t"
  fi
done
if [ "$jobs" -gt 1 ]; then
  wait
  i=0
  for t in "$@"; do i=$((i + 1)); report $i "$t"; done
fi
[ $crashed -gt 0 ] && failed=$((failed + crashed))
echo
echo "$passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
