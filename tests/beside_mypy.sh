#!/usr/bin/env bash
# Runs the command it is given (the README's test command gives it pytest) with the type check beside it. mypy
# needs minutes of one core on a fresh clone while most tests wait on processes they started; its report is
# printed after the command's output. Exit status: 0 only if both passed.
set -uo pipefail
cd "$(dirname "$0")/.."
types_report=$(mktemp)
.venv/bin/python -m mypy > "$types_report" 2>&1 &
types=$!
"$@"
tests_status=$?
wait "$types"
types_status=$?
echo "--- mypy (exit status $types_status) ---"
cat "$types_report"
rm -f "$types_report"
[ "$tests_status" -eq 0 ] && [ "$types_status" -eq 0 ]
