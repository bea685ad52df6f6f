"""The README's main-job command, end to end (short run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.asterisk


def test_demo_serves_calls_and_reports(asterisk, tmp_path):
    # `asterisk` makes this skip (or fail under CI) where the sandbox cannot run;
    # the demo starts its own instance on free ports beside it.
    exe = Path(sys.executable).with_name("callcenterd")
    run = subprocess.run([str(exe), "demo", "--duration", "10", "--rate", "60", "--seed", "4",
                          "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    assert "=== callcenterd demo" in out and "queue      waiting" in out  # live status was shown
    report = out[out.index("KPI report by queue:"):]
    total = next(line.split() for line in report.splitlines() if line.startswith("TOTAL"))
    offered, answered = int(total[1]), int(total[2])
    assert offered >= 3 and answered >= 1, report
    # the outbound part: the demo campaign dialled the sandbox's leads and people reached agents
    campaign = out[out.index("campaign demo:"):]
    counts = dict(line.strip().rsplit(None, 1) for line in campaign.splitlines()[1:6])  # "dialled   7"
    assert int(counts["dialled"]) == 7 and int(counts["connected"]) >= 1, campaign
    names = {p.name.split("-")[0] for p in (tmp_path / "cdr").iterdir()}
    assert {"journeys", "queue_log", "agent"} <= names
