#!/usr/bin/env bash
# The whole test suite, including the tests against the real sandbox Asterisk.
# Usage: sudo bash scripts/test.sh [pytest args...]    e.g. tests/unit -x
# Installs what it needs first (scripts/setup.sh, idempotent).  Without root
# the real-Asterisk tests are skipped with the reason; under CI=true they fail.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/setup.sh
source scripts/setup.sh

log=$(mktemp -t callcenterd-pytest.XXXXXX)
trap 'rm -f "$log"' EXIT
started=$SECONDS
set +e
.venv/bin/python -m pytest -ra "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
summary=$(grep -E '[0-9]+ (passed|failed|errors?|skipped|deselected)|no tests ran' "$log" | tail -n 1 | sed 's/^=* *//; s/ *=*$//')
echo "scripts/test.sh: ${summary:-no pytest summary} (exit $rc, $((SECONDS - started)) s)"
if [ "$rc" -eq 5 ]; then
  echo "scripts/test.sh: pytest collected no tests; that is a failure" >&2
fi
exit "$rc"
