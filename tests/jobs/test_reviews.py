"""The review queue ranks by uncertainty: how close each flag's failed gates came to passing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from courseforge.jobs import InProcessRunner, new_job
from courseforge.pipeline.prompts import parse_brief
from courseforge.providers import ChatRequest
from courseforge.quality.base import GateResult, uncertainty
from courseforge.storage import open_store
from courseforge.testing import CourseAuthor
from engine_helpers import example_analysis, hosted_settings, make_engine, scripted_models


def test_uncertainty_is_one_minus_the_clearest_failure() -> None:
    near = GateResult("similarity", False, 0.50, ["x"], "fail", threshold=0.55)
    far = GateResult("similarity", False, 0.10, ["x"], "severe", threshold=0.55)
    short = GateResult("length", False, 240.0, ["x"], "fail", threshold=250)
    rule = GateResult("safety", False, None, ["pii"], "severe")
    passed = GateResult("length", True, 300.0, (), "pass", threshold=250)
    assert near.margin() == pytest.approx(0.0909, abs=1e-4)
    assert uncertainty([near]) == pytest.approx(0.9091, abs=1e-4)
    assert uncertainty([near, short]) == pytest.approx(0.9091, abs=1e-4)  # both close: still a coin flip
    assert uncertainty([near, far]) == pytest.approx(0.1818, abs=1e-4)  # one clear failure decides
    assert uncertainty([near, rule]) == 0.0  # a rule's failure is clear-cut
    assert uncertainty([passed]) == 0.0
    assert uncertainty([GateResult("judge", False, 0.0, (), "fail", threshold=0.0)]) == 1.0  # on the line


async def test_the_stored_queue_puts_the_borderline_lesson_first(tmp_path: Path) -> None:
    """Two lessons keep failing one gate on every tier: "Running python" is 9 words over the
    maximum (a coin flip), "Booleans" 250 over (clear). Both are flagged, their review items
    carry those uncertainties, and the queue lists the borderline one first."""
    settings = hosted_settings()  # lesson_max_words 900
    author = CourseAuthor()

    def script(request: ChatRequest) -> str:
        answer = author(request)
        brief = parse_brief(request.messages)
        title = str(brief.get("lesson_title", ""))
        words = 909 if title.startswith("Running python") else 1150 if title.startswith("Booleans") else 0
        if brief.get("task") != "lesson" or not words:
            return answer
        data = json.loads(answer)
        lead = data["content"].split()[:100]  # on topic; then short filler within the schema's bound
        filler = [w for w in title.lower().split() if len(w) < 4][:1] * (words - 100)
        data["content"] = " ".join(lead + filler) + "."  # ends with a full stop: nothing to trim
        return json.dumps(data)

    engine = make_engine(settings, scripted_models(settings, lambda _m: script))
    store = open_store(f"sqlite:///{tmp_path}/jobs.db")
    await store.init()
    analysis = example_analysis()
    job, _ = await store.create_job(new_job("j", analysis))
    try:
        result = await InProcessRunner(engine, store).run(job, analysis=analysis)
        items = await store.list_reviews(status="open", limit=100, job_id="j")
    finally:
        await engine.aclose()
        await store.close()
    assert result.course is not None
    by_title = {x.title.split(":")[0]: x.id for x in result.course.lessons()}
    near, far = by_title["Running python"], by_title["Booleans"]
    ranked = [i.target for i in items]
    assert near in ranked and far in ranked
    assert ranked.index(near) < ranked.index(far)
    score = {i.target: i.uncertainty for i in items}
    assert score[near] == pytest.approx(1 - 9 / 900, abs=1e-3)  # 909 words against 900
    assert score[far] == pytest.approx(1 - 250 / 900, abs=1e-3)  # 1150 words against 900
    assert [i.uncertainty for i in items] == sorted((i.uncertainty for i in items), reverse=True)
