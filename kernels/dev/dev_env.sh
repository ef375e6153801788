# Sourced by the device scripts of kernels/dev (s25_*.sh): unpacks the carried libraries and binaries and sets the
# environment the GPU suites and lq need on the lent machine (no libarchive / CMocka there).
#   . kernels/dev/dev_env.sh NAME...   unpacks carry/NAME.tar.xz for each NAME (folders carry/NAME); LQ_BIN is
#                                      carry/<first NAME>/lq; R = $OUT; T0 = the start; then
#   gpu_suites DIR [VAR=VALUE ...]     every GPU suite of carry/DIR under those variables, into $R/gputests.log
#   elapsed                            prints t=<seconds since T0>
set -u
mkdir -p /tmp/lqc && tar xJf carry/libs.tar.xz -C /tmp/lqc
for n in "$@"; do tar xJf "carry/$n.tar.xz" -C carry; done
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/tmp/lqc/lqlib LQ_SHARED=$PWD/carry/shared OMP_WAIT_POLICY=passive
export LQ_BIN=$PWD/carry/$1/lq
R=$OUT; T0=$(date +%s)
elapsed() { echo "t=$(( $(date +%s) - T0 ))"; }
gpu_suites() {
  local d=$1; shift
  env "$@" LQ_REQUIRE_GPU=1 LQ_TEST_JOBS=8 timeout 200 ./tests/run_tests.sh $(ls carry/$d/test_*) > $R/gputests.log 2>&1
  echo "rc=$?" >> $R/gputests.log
  tail -3 $R/gputests.log; grep -E "\[  FAILED" $R/gputests.log | head; elapsed
}
