"""The shipped alert rules: valid (`promtool check rules`), their unit tests pass (`promtool test
rules`), and every metric they read is one courseforge exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from courseforge.domain import CallRecord, Report
from courseforge.domain.quality import QualitySummary
from courseforge.resilience import BreakerTransition, CallRecorded, FaultObserved
from courseforge.telemetry.metrics import CallMetrics

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = RULES_DIR / "courseforge-rules.yml"
UNIT_TESTS = RULES_DIR / "courseforge-rules.test.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package prometheus)"
)

#: The seeds' alerts (000, 001) at the thresholds calibrated to our gates and budget
#: (docs/seed-rules.md, "Monitoring"), as the rules must carry them.
SEED_THRESHOLDS = {
    "CourseforgeCourseCostHigh": "> 0.05",
    "CourseforgeDailyCostSpike": "> 1.3 * courseforge:cost_usd:daily_mean7d and courseforge:cost_usd:daily_mean7d > 0",
    "CourseforgeEscalationRateHigh": "> 0.35",
    "CourseforgeSimilarityLow": "< 0.48",
    "CourseforgeSchemaPassRateLow": "< 0.90",
    "CourseforgeLessonsFlaggedHigh": "> 0.20",
    "CourseforgeHallucinationRateHigh": "> 0.20",
    "CourseforgeCallLatencyP95High": "> 60",
    "CourseforgeProviderErrorRateHigh": "> 0.05",
    "CourseforgeProviderAvailabilityLow": "< 0.95",
    "CourseforgeBreakerOpen": ">= 1",
}


#: A guard against a hung promtool, not a speed target: `promtool test rules` on our unit tests
#: takes about 35 s of CPU, and on a loaded 2-core machine it took 555 s of wall time (over the
#: 120 s this was). pytest-timeout's 1200 s stays the net for the test as a whole.
PROMTOOL_TIMEOUT_S = 900


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=PROMTOOL_TIMEOUT_S, check=False
    )


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 26 rules found" in done.stdout


@needs_promtool
def test_promtool_unit_tests_of_the_alerts_pass() -> None:
    done = promtool("test", "rules", str(UNIT_TESTS))
    print(done.stdout, done.stderr)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def rules() -> list[dict[str, str]]:
    data = yaml.safe_load(RULES.read_text("utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_every_seed_threshold_has_its_alert() -> None:
    alerts = {r["alert"]: r["expr"] for r in rules() if "alert" in r}
    assert set(alerts) == set(SEED_THRESHOLDS)
    for name, threshold in SEED_THRESHOLDS.items():
        assert alerts[name].rstrip().endswith(threshold), name


def test_the_rules_read_only_metrics_we_export() -> None:
    metrics = CallMetrics()
    # one of each kind of sample, so every family shows its series
    metrics(
        CallRecorded(
            CallRecord(phase="lessons", task="lesson:S1-L1", model="m", tier="cheap", attempt=1, outcome="ok")
        )
    )
    metrics(FaultObserved("m", "timeout"))
    metrics.observe_course(
        Report(
            course_id="c",
            status="approved",
            budget_usd=Decimal("0.45"),
            quality=QualitySummary(
                similarity_mean=0.7, escalation_rate=0.1, human_review_rate=0.1, grounding_support_mean=0.9
            ),
        )
    )
    metrics(BreakerTransition("m", "closed", "open"))
    exported = set(re.findall(r"^(courseforge_[a-z_]+)", generate_latest(metrics.registry).decode(), re.M))
    read = {name for r in rules() for name in re.findall(r"\b(courseforge_[a-z_]+)", r["expr"])}
    assert read and read <= exported, read - exported
