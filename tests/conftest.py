"""Generic test setup only: make ``tests.fakes`` importable however pytest is
launched (``pytest``, ``python -m pytest``, from any directory)."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
