"""Regressions against a baseline: tripped only when the whole interval is worse by more than
the tolerance, in the figure's own direction, and named."""

from __future__ import annotations

import pytest

from courseforge.errors import UserError
from courseforge.evals import RunResult, baseline_of, find_regressions, parse_tolerances, read_baseline


def runs(config: str, cost: float, pass_rate: float, *, inputs: int = 8) -> list[RunResult]:
    return [
        RunResult(
            input=f"in{i}",
            config=config,
            repeat=1,
            job_id=f"j{i}",
            status="approved",
            cost_per_course=cost * (1 + i / 10),
            first_attempt_pass_rate=pass_rate,
            similarity_mean=0.6 + i / 100,
        )
        for i in range(inputs)
    ]


def test_worse_cost_and_pass_rate_are_named() -> None:
    base = read_baseline(baseline_of(runs("a", 0.01, 0.9), {"a": "d1"}), "mem")
    found = find_regressions(runs("a", 0.02, 0.5), base, {})
    names = {r.figure for r in found}
    assert names == {"cost_per_course", "first_attempt_pass_rate"}
    cost = next(r for r in found if r.figure == "cost_per_course")
    assert cost.kind == "ratio" and cost.interval.low > 1.05 and "cost per course" in cost.line()


def test_within_tolerance_or_better_is_no_regression() -> None:
    base = read_baseline(baseline_of(runs("a", 0.01, 0.9), {"a": "d1"}), "mem")
    assert find_regressions(runs("a", 0.0102, 0.95), base, {}) == []  # 2 % dearer: under 5 %
    assert find_regressions(runs("a", 0.005, 1.0), base, {}) == []  # cheaper and better
    # A tolerance of 0 makes the 2 % trip; a config the baseline lacks is never compared.
    tight = find_regressions(runs("a", 0.0102, 0.9), base, {"a": {"cost_per_course": 0.0}})
    assert [r.figure for r in tight] == ["cost_per_course"]
    assert find_regressions(runs("b", 1.0, 0.0), base, {}) == []


def test_a_whole_eval_json_serves_as_baseline() -> None:
    doc = {
        "schema": "courseforge.eval/1",
        "configs": {"a": {}},
        "runs": [r.model_dump() for r in runs("a", 0.01, 0.9)],
    }
    base = read_baseline(doc, "eval.json")
    assert base["a"]["cost_per_course"]["in0"] == pytest.approx(0.01)
    with pytest.raises(UserError) as info:
        read_baseline({"schema": "other"}, "x.json")
    assert info.value.problems[0][0] == "--baseline"


@pytest.mark.parametrize("bad", ["cost", "nope=1", "cost_per_course=-1", "cost_per_course=x"])
def test_bad_tolerance_flags_name_the_flag(bad: str) -> None:
    with pytest.raises(UserError) as info:
        parse_tolerances([bad])
    assert info.value.problems[0][0] == "--tolerance"
    assert parse_tolerances(["wall_s=0.5"]) == {"wall_s": 0.5}


def test_wall_time_is_gated_only_when_asked_and_failures_always() -> None:
    old = runs("a", 0.01, 0.9)
    slow = [r.model_copy(update={"wall_s": 10.0}) for r in old]
    base = read_baseline(baseline_of([r.model_copy(update={"wall_s": 1.0}) for r in old], {"a": "d"}), "mem")
    assert find_regressions(slow, base, {}) == []  # machine load, not the config: off by default
    assert [r.figure for r in find_regressions(slow, base, {"a": {"wall_s": 0.25}})] == ["wall_s"]
    failing = [r.model_copy(update={"failure_rate": 1.0}) for r in old]
    assert [r.figure for r in find_regressions(failing, base, {})] == ["failure_rate"]


def test_the_committed_baseline_covers_the_bundled_set() -> None:
    import json
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    base = read_baseline(
        json.loads((repo / "evals" / "baselines" / "simulator.json").read_text()), "simulator.json"
    )
    names = {p.stem for p in (repo / "evals" / "set").glob("*.json")}
    assert len(names) >= 20
    for config in ("hosted", "always-premium"):
        assert set(base[config]["cost_per_course"]) == names
    # Every section of rust-ownership is critical or of complexity >= 7: seed 000's pre-routing
    # starts all of it on premium, so hosted costs what always-premium does there (within 5 %).
    hosted, premium = base["hosted"]["cost_per_course"], base["always-premium"]["cost_per_course"]
    assert all(premium[n] > hosted[n] for n in names - {"rust-ownership"})
    assert premium["rust-ownership"] > 0.95 * hosted["rust-ownership"]
