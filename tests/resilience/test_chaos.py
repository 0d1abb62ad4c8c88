"""A short chaos run (benchmarks/chaos.py): ~10 courses through the real engine against the
simulator's chaos profile. Every course ends approved, needs_review or failed with a report;
none is lost or hung, no cap is exceeded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "chaos.py"


@pytest.mark.subprocess
def test_ten_chaos_courses_end_with_a_report_and_within_budget() -> None:
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--courses", "10", "--parallel", "5", "--seed", "11"],
        capture_output=True,
        text=True,
        timeout=900,  # ten courses in a child process on a loaded 2-core machine
    )
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert "lost 0  hung 0" in run.stdout
    assert "courses over cap: 0" in run.stdout
    assert "faults met (reports):" in run.stdout
