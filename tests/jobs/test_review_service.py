"""The reviews service raises domain errors (the API and the dashboard map them), never HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from courseforge.errors import ActionRefused, Conflict, NotFound, StaleVersion
from courseforge.jobs import InProcessRunner, ReviewAction, ReviewService, new_job
from courseforge.jobs.review_service import course_tag
from courseforge.pipeline.prompts import parse_brief
from courseforge.providers import ChatRequest
from courseforge.storage import open_store
from courseforge.testing import CourseAuthor
from engine_helpers import example_analysis, hosted_settings, make_engine, scripted_models


async def test_each_refusal_is_a_domain_error_and_an_approval_lands(tmp_path: Path) -> None:
    settings = hosted_settings()  # lesson_max_words 900
    author = CourseAuthor()

    def script(request: ChatRequest) -> str:  # "Booleans" is always 250 words too long: flagged
        answer = author(request)
        brief = parse_brief(request.messages)
        if brief.get("task") != "lesson" or not str(brief.get("lesson_title", "")).startswith("Booleans"):
            return answer
        data = json.loads(answer)
        title = str(brief.get("lesson_title", ""))
        filler = [w for w in title.lower().split() if len(w) < 4][:1] * 1050
        data["content"] = " ".join(data["content"].split()[:100] + filler) + "."
        return json.dumps(data)

    engine = make_engine(settings, scripted_models(settings, lambda _m: script))
    store = open_store(f"sqlite:///{tmp_path}/jobs.db")
    await store.init()
    analysis = example_analysis()
    job, _ = await store.create_job(new_job("j", analysis, tenant="acme"))
    scheduled: list[str] = []
    reviews = ReviewService(settings, store, engine, schedule_revision=scheduled.append)
    try:
        await InProcessRunner(engine, store).run(job, analysis=analysis)
        [item, *_] = await reviews.listing(status="open", limit=10, tenant="acme")
        with pytest.raises(NotFound) as absent:
            await reviews.act("no-such-item", ReviewAction(action="approve"))
        assert absent.value.problems[0][0] == "review_id"
        with pytest.raises(NotFound):  # another tenant's item is as if absent
            await reviews.act(item.id, ReviewAction(action="approve"), tenant="other")
        with pytest.raises(ActionRefused) as no_content:
            await reviews.act(item.id, ReviewAction(action="edit"))
        assert no_content.value.problems == [("content", "required for action 'edit'")]
        with pytest.raises(ActionRefused) as failing:
            await reviews.act(item.id, ReviewAction(action="edit", content="Too short."))
        assert any(path.startswith("gates.") for path, _ in failing.value.problems)
        with pytest.raises(StaleVersion):
            await reviews.act(item.id, ReviewAction(action="approve"), if_version=course_tag(99))
        assert (await reviews.visible(item.id, tenant="acme")).status == "open"  # untouched
        stored = await store.get_course_version("j")
        assert stored is not None
        done = await reviews.act(item.id, ReviewAction(action="approve"), if_version=course_tag(stored[1]))
        assert done.status == "approved" and scheduled == []
        with pytest.raises(Conflict) as again:
            await reviews.act(item.id, ReviewAction(action="approve"))
        assert again.value.problems == [("review_id", "item is approved")]
    finally:
        await engine.aclose()
        await store.close()
