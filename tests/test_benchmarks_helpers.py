"""The pure helpers of benchmarks/engine_overhead.py (no timing asserted anywhere)."""

from __future__ import annotations

import importlib.util
import sys
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest

from courseforge.sim.profiles import SimProfile

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def eo() -> ModuleType:
    return _load("engine_overhead")


def test_verdict_is_the_measured_ratio_against_half(eo: ModuleType) -> None:
    assert eo.verdict(2.0, 8.0) == (0.25, "PASS")
    assert eo.verdict(4.0, 8.0) == (0.5, "PASS")
    ratio, result = eo.verdict(6.0, 8.0)
    assert (ratio, result) == (0.75, "FAIL")
    assert eo.verdict(1.0, None) == (None, "NO PEER")
    assert eo.verdict(1.0, 0.0) == (None, "NO PEER")


def test_no_constant_peer_figure_is_left(eo: ModuleType) -> None:
    assert not hasattr(eo, "LITELLM_ROUTER_MS")
    assert eo.TARGET_RATIO == 0.5


def test_peer_bodies_keep_what_the_router_does_not_set(eo: ModuleType) -> None:
    sent = {
        "model": "openai/gpt-oss-120b",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 900,
        "temperature": 0.4,
        "response_format": {"type": "json_schema", "json_schema": {"name": "lesson", "schema": {}}},
        "usage": {"include": True},
    }
    (body,) = eo.peer_bodies([sent])
    assert body == {k: sent[k] for k in ("messages", "response_format", "max_tokens", "temperature")}


def test_median(eo: ModuleType) -> None:
    assert eo.median([3.0, 1.0, 2.0]) == 2.0
    assert eo.median([1.0, 2.0]) == 1.5


def test_peer_script_never_imports_courseforge() -> None:
    source = (BENCHMARKS / "litellm_router.py").read_text()
    assert "courseforge" not in "\n".join(
        line for line in source.splitlines() if line.lstrip().startswith(("import ", "from "))
    )


@pytest.fixture(scope="module")
def dp() -> ModuleType:
    return _load("degraded_provider")


def _rows(**updates: object) -> dict[str, object]:
    row = {
        "outcome": "approved",
        "cost": Decimal("0.1"),
        "cap": Decimal("0.45"),
        "peak": Decimal("0.2"),
        "report_wall_s": 6.0,
        "critical_s": 3.0,
        "skipped": 2,
    }
    row.update(updates)
    return row


def test_degraded_row_ratios_and_outcomes(dp: ModuleType) -> None:
    result = {
        "scenario": "5xx-0.3",
        "courses": 2,
        "rows": [_rows(), _rows(outcome="needs_review", report_wall_s=12.0)],
        "faults": {"http_503": 4, "http_500": 1, "rate_limited": 9},
        "breakers": {"m": {"opens": 2}, "provider:p": {"opens": 1}},
        "wall_s": 20.0,
    }
    row = dp.row(result, 10.0)
    assert (row["ratio_median"], row["ratio_max"], row["vs_baseline"]) == (3.0, 4.0, 2.0)
    assert (row["http_5xx"], row["skipped"], row["breaker_opens"], row["done"]) == (5, 4, 3, 2)
    assert row["within_budget"]
    lines, ok = dp.verdict([row])
    assert not ok and "worst wall/critical 4.00x" in lines[0] and "FAIL" in lines[0]


def test_degraded_verdict_fails_on_a_failed_or_over_cap_course(dp: ModuleType) -> None:
    result = {
        "scenario": "5xx-0.1",
        "courses": 2,
        "rows": [_rows(), _rows(outcome="failed_with_report", cost=Decimal("0.5"))],
        "faults": {},
        "breakers": {},
        "wall_s": 5.0,
    }
    row = dp.row(result, None)
    assert row["done"] == 1 and not row["within_budget"] and row["vs_baseline"] is None
    lines, ok = dp.verdict([row])
    assert not ok and any("FAIL" in line for line in lines)


def test_flaky_profile_is_a_valid_simulator_profile(dp: ModuleType) -> None:
    profile = SimProfile.model_validate(dp.flaky_profile(0.3))
    assert profile.defaults.faults.server_error == 0.3
    assert [s.name for s in dp.scenarios([0.0, 0.3], 20, True)] == ["5xx-0", "5xx-0.3", "chaos"] * 2
    assert [s.courses for s in dp.scenarios([0.0], 5, False, single=False)] == [5]
