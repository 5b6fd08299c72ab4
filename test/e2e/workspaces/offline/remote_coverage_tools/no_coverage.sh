#!/bin/sh
echo "kiln e2e: coverage needs the real @remote_coverage_tools (this is an offline stand-in)" >&2
exit 1
