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
# Write the JUnit XML ourselves: otherwise Bazel runs a separate action that
# generates it with the test's wall time (whole seconds) on its command line,
# so on a loaded machine that action's key differs between two builds and it
# misses the cache for reasons that have nothing to do with Kiln.
if [[ -n "${XML_OUTPUT_FILE:-}" ]]; then
  printf '<?xml version="1.0" encoding="UTF-8"?>\n<testsuites><testsuite name="shout_test" tests="1" failures="0"><testcase name="shout_test"/></testsuite></testsuites>\n' > "$XML_OUTPUT_FILE"
fi
