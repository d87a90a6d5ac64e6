#!/usr/bin/env bash
# The long hardening checks, not run by CI (about 10 minutes on 2 cores):
#   1. the full leak soak: 1,000,000 keep-alive requests + 100,000 open/close cycles,
#      RSS and open descriptors within 10% after warm-up (tests/hardening/soak.py);
#   2. the atheris fuzz target for send() conversion, FUZZ_SECONDS long (default 300);
#   3. the hardening tests with 20x the hypothesis examples.
# Usage: bash tests/hardening/run_long.sh     (needs wrk and atheris: apt-get install wrk;
#                                               pip install atheris)
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${HARDENING_OUT:-$(mktemp -d /tmp/sandman-hardening.XXXXXX)}"
mkdir -p "$out"
echo "reports in $out"

python -m tests.hardening.soak --json "$out/soak.json" | tee "$out/soak.log"

mkdir -p "$out/fuzz-corpus"
python fuzz/fuzz_send.py "$out/fuzz-corpus" -max_total_time="${FUZZ_SECONDS:-300}" \
    -artifact_prefix="$out/" 2>&1 | grep -v '^INFO: Instrumenting' | tail -n 25 | tee "$out/fuzz.log"

SANDMAN_HYPOTHESIS_EXAMPLES=8000 python -m pytest -q -p no:cacheprovider \
    tests/test_send_properties.py tests/test_request_parsing.py tests/hardening
