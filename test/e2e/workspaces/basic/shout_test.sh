#!/bin/bash
# Passes when shout.txt (a runfile) holds the expected upper-cased lines.
set -euo pipefail
f="$TEST_SRCDIR/$TEST_WORKSPACE/shout.txt"
want=$'HELLO FROM KILN E2E\nALPHA\nBETA\nGAMMA'
got="$(cat "$f")"
if [[ "$got" != "$want" ]]; then
  echo "shout.txt: got '$got'" >&2
  exit 1
fi
echo "shout_test ok"
