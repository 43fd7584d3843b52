#!/usr/bin/env bash
# The whole check, as CI and the README run it: the type check and the test suite side by side. mypy needs minutes
# of one core on a fresh clone while most tests wait on processes they started, so it runs beside pytest; its
# report is printed after the tests'. Exit status: 0 only if both passed. Arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
types_report=$(mktemp)
.venv/bin/python -m mypy > "$types_report" 2>&1 &
types=$!
.venv/bin/python -m pytest "$@"
tests_status=$?
wait "$types"
types_status=$?
echo "--- mypy (exit status $types_status) ---"
cat "$types_report"
rm -f "$types_report"
[ "$tests_status" -eq 0 ] && [ "$types_status" -eq 0 ]
