#!/usr/bin/env bash
# Rebuild compat/RESULTS.md: every server pinned in a virtualenv of its own under PEERS
# (default .compat-peers/, git-ignored), then the whole suite against all of them.
#
#   compat/refresh-matrix.sh [PEERS]
#
# PEERS/sandman is the Sandman under test: built from this checkout unless it exists already
# (make it a link to the virtualenv of the build you want to measure). PEERS/suite runs the
# suite: compat's dependencies (h2, trustme) from installing ./compat, the code from here.
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${1:-.compat-peers}
mkdir -p "$PEERS"

# name -> pinned requirements (one virtualenv each)
declare -A PINS=(
  [uvicorn]="uvicorn[standard]==0.54.0 zttp==0.0.35"
  [hypercorn]="hypercorn==0.18.0"
  [anycorn]="anycorn==0.20.1"
  [granian]="granian==2.8.7"
  [daphne]="daphne==4.2.3"
  [gunicorn]="gunicorn[http2]==27.0.1"
)
for name in "${!PINS[@]}"; do
  [ -x "$PEERS/$name/bin/python" ] || python3 -m venv "$PEERS/$name"
  # shellcheck disable=SC2086  # the pins are separate words
  "$PEERS/$name/bin/python" -m pip install -q ${PINS[$name]}
done
if [ ! -x "$PEERS/sandman/bin/python" ]; then
  python3 -m venv "$PEERS/sandman"
  "$PEERS/sandman/bin/python" -m pip install -q .
fi

[ -x "$PEERS/suite/bin/python" ] || python3 -m venv "$PEERS/suite"
"$PEERS/suite/bin/python" -m pip install -q ./compat

# HTTP/2 where a server needs options for it (uvicorn-zttp --http2, gunicorn's
# --http-protocols) is in the profiles: the h2c and TLS set-ups add them.
"$PEERS/suite/bin/python" -m compat \
  --server sandman,uvicorn-httptools,uvicorn-zttp,hypercorn,anycorn,granian,daphne,gunicorn \
  --bin-dir "sandman=$PEERS/sandman/bin" \
  --bin-dir "uvicorn-httptools=$PEERS/uvicorn/bin" \
  --bin-dir "uvicorn-zttp=$PEERS/uvicorn/bin" \
  --bin-dir "hypercorn=$PEERS/hypercorn/bin" \
  --bin-dir "anycorn=$PEERS/anycorn/bin" \
  --bin-dir "granian=$PEERS/granian/bin" \
  --bin-dir "daphne=$PEERS/daphne/bin" \
  --bin-dir "gunicorn=$PEERS/gunicorn/bin" \
  --format markdown --output compat/RESULTS.md || true  # peers fail MUST checks: still a matrix

# The pins, under the title.
body=$(mktemp)
mv compat/RESULTS.md "$body"
{
  sed -n '1,2p' "$body"
  echo "Made by \`compat/refresh-matrix.sh\`: each server in a virtualenv of its own, pinned:"
  echo
  for name in $(printf '%s\n' "${!PINS[@]}" | sort); do
    echo "- \`$name\`: \`pip install ${PINS[$name]}\`"
  done
  echo "- \`sandman\`: this checkout (\`pip install .\`)"
  echo
  sed -n '3,$p' "$body"
} > compat/RESULTS.md
rm -f "$body"
