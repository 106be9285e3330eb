#!/usr/bin/env bash
# The long fuzz run (issue 20): CASES mutated files per format (default
# 100,000), from seed FIRST (default 1,000,000, past the seeds the test suite
# runs), each read in a child process under a 6 GB address-space limit.
# A crash, abort or hang stops the run with the seed and the case.
#   scripts/fuzz.sh                 # every format
#   scripts/fuzz.sh png 20000       # one format, 20,000 cases
set -euo pipefail
cd "$(dirname "$0")/.."
export CYCLEGAN_FUZZ_FORMAT="${1:-}"
export CYCLEGAN_FUZZ_CASES="${2:-100000}"
export CYCLEGAN_FUZZ_FIRST="${FIRST:-1000000}"
[ -n "$CYCLEGAN_FUZZ_FORMAT" ] || unset CYCLEGAN_FUZZ_FORMAT
lscpu | grep 'Model name' || true
time cargo test --release --locked --test tests fuzz::fuzz_long -- --ignored --nocapture
