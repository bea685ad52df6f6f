#!/usr/bin/env bash
# Mutation testing, on demand (not part of CI): mutmut 3 mutates the pure
# modules (core/acd, core/kpis, the AMI, AGI and ESL codecs), runs the unit
# tests that cover each mutant, and prints the score per module.
# Usage: bash scripts/mutation.sh [--fresh | --survivors] [MUTANT_GLOB...]
#   e.g. bash scripts/mutation.sh 'callcenterd.core.kpis.*'   (one module only)
#   --fresh      drop every cached result (mutants/) and start over
#   --survivors  re-test the cached survivors and "no tests" only, after adding
#                tests (mutmut re-tests a mutant by itself only when its
#                function's source changes, not when the tests do)
# Env:   PYTHON   the venv's python (default .venv/bin/python)
#        MUTATION_JOBS  parallel mutants (default: number of cores)
# Config is [tool.mutmut] in pyproject.toml; the work tree is mutants/
# (git-ignored), and results are cached there between runs.  A fresh run is
# about 5,300 mutants: 45 minutes on 2 cores (the ACD mutants run the ACD's
# property test, 2.5 s, unless a quicker test kills them first).
# Survivors: `.venv/bin/mutmut results`, then `.venv/bin/mutmut show NAME`;
# the known equivalent ones are listed in tests/MUTANTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
if [ ! -x "$PYTHON" ]; then
  echo "scripts/mutation.sh: no $PYTHON; run scripts/setup.sh first or set PYTHON" >&2
  exit 2
fi
if ! "$PYTHON" - <<'PY' 2>/dev/null
import importlib.metadata as md, sys
sys.exit(0 if md.version("mutmut").split(".")[0] == "3" else 1)
PY
then
  echo "scripts/mutation.sh: installing mutmut 3 into $(dirname "$PYTHON")/.."
  "$PYTHON" -m pip install -q 'mutmut>=3.8,<4'
fi
if [ "${1:-}" = "--fresh" ]; then
  shift
  rm -rf mutants
elif [ "${1:-}" = "--survivors" ]; then
  shift
  if [ -d mutants ]; then "$PYTHON" - "$@" <<'PY'
import json
import sys
from fnmatch import fnmatch
from pathlib import Path

globs = sys.argv[1:] or ["*"]  # the same globs as the run, so nothing outside it is left unrun
for meta in Path("mutants").rglob("*.py.meta"):
    data = json.loads(meta.read_text())
    codes = data["exit_code_by_key"]
    for name, code in codes.items():
        if code in (0, 33) and any(fnmatch(name, g) for g in globs):  # survived, no tests
            codes[name] = None
    meta.write_text(json.dumps(data, indent=4))
PY
  fi
fi

# mutmut runs the tests from a copy in mutants/, so point the tests at the
# captures beside the checkout (the tests' own default is relative to them).
shared=$(cd .. && pwd)/shared/fixtures
export CALLCENTERD_AST_FIXTURES=${CALLCENTERD_AST_FIXTURES:-$shared/asterisk-22}
export CALLCENTERD_FS_FIXTURES=${CALLCENTERD_FS_FIXTURES:-$shared/freeswitch}

started=$SECONDS
log=$(mktemp -t callcenterd-mutmut.XXXXXX)
set +e
"$(dirname "$PYTHON")/mutmut" run --max-children "${MUTATION_JOBS:-$(nproc)}" "$@" > "$log" 2>&1
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
  tail -n 40 "$log"
  echo "scripts/mutation.sh: mutmut failed (exit $rc); full log in $log" >&2
  exit "$rc"
fi
mv -f "$log" mutants/run.log

"$PYTHON" - <<'PY'
"""Score per module from mutmut's mutants/**/*.py.meta (exit code per mutant).

score = killed / (mutants - skipped - no tests): a timeout, a type-check
failure or a crash counts as killed; "no tests" (no unit test calls the
function at all) is left out of the score but printed in its own column.
Survivors include the equivalent mutants listed in tests/MUTANTS.md.
"""
import json
from pathlib import Path

KILLED = {1, 3, 24, -24, 152, 255, 36, 37, -9, -11}  # killed, timeout, type check, crash
NO_TESTS, SKIPPED = 33, 34
TARGET = {"callcenterd/protocols": 85.0}
rows = []
for meta in sorted(Path("mutants").rglob("*.py.meta")):
    codes = [c for c in json.loads(meta.read_text())["exit_code_by_key"].values() if c != SKIPPED]
    if not codes:
        continue
    pending = sum(c is None for c in codes)
    no_tests = sum(c == NO_TESTS for c in codes)
    scored = len(codes) - pending - no_tests
    killed = sum(c in KILLED for c in codes)
    module = str(meta.relative_to("mutants"))[: -len(".meta")]
    target = next((t for p, t in TARGET.items() if module.startswith(p)), 90.0)
    rows.append((module, scored, killed, scored - killed, no_tests, pending, target))
print(f"\n{'module':<44} {'scored':>6} {'killed':>6} {'surv':>5} {'notest':>6} {'score':>7}  target")
for module, n, killed, survived, no_tests, pending, target in rows:
    score = 100.0 * killed / n if n else 0.0
    mark = "ok" if n and score >= target else f"< {target:.0f}%"
    if pending:
        mark += f" ({pending} not run yet)"
    print(f"{module:<44} {n:>6} {killed:>6} {survived:>5} {no_tests:>6} {score:>6.1f}%  {mark}")
n = sum(r[1] for r in rows)
k = sum(r[2] for r in rows)
if n:
    print(f"{'total':<44} {n:>6} {k:>6} {n - k:>5} {sum(r[4] for r in rows):>6} {100.0 * k / n:>6.1f}%")
PY
echo "scripts/mutation.sh: done in $((SECONDS - started)) s; survivors: $(dirname "$PYTHON")/mutmut results"
