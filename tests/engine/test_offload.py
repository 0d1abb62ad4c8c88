"""The gate executor: each lesson attempt's rule gates off the event loop, the same verdicts
wherever they run (inline, a thread, another process)."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from courseforge.config import Settings, load_config
from courseforge.domain.drafts import ExerciseDraft, LessonDraft
from courseforge.engine.offload import GateExecutor
from courseforge.providers.embeddings import make_embedder
from courseforge.quality.base import GateResult
from courseforge.quality.lesson_gates import LessonUnderTest, rule_gates, run_lesson_gates

LESSONS = Path(__file__).parents[1] / "quality" / "data" / "human_lessons.jsonl"


def _settings() -> Settings:
    settings = load_config("hosted", env={"OPENROUTER_API_KEY": "x"}).settings
    return settings.model_copy(
        update={"gates": settings.gates.model_copy(update={"embedding_model": "hashing"})}
    )


def _lessons() -> list[LessonUnderTest]:
    out = []
    for line in LESSONS.read_text("utf-8").splitlines()[:6]:
        item = json.loads(line)
        outcomes = {f"LO{i + 1}": text for i, text in enumerate(item["outcomes"])}
        draft = LessonDraft(
            content=item["content"], exercises=[ExerciseDraft(**e) for e in item["exercises"]], citations=[]
        )
        out.append(
            LessonUnderTest(
                lesson_id=item["id"],
                draft=draft,
                outcome_numbers=list(range(1, len(outcomes) + 1)),
                outcomes=outcomes,
                consistency=0.9,
            )
        )
    return out


async def _verdicts(pool: GateExecutor) -> list[list[GateResult]]:
    settings, embedder = _settings(), make_embedder("hashing")
    try:
        return [
            await run_lesson_gates(lesson, settings=settings, embedder=embedder, blocking=pool)
            for lesson in _lessons()
        ]
    finally:
        pool.close()


def test_the_same_verdicts_inline_in_threads_and_in_processes() -> None:
    inline = asyncio.run(_verdicts(GateExecutor(0)))
    assert inline and all(any(r.gate == "safety" for r in rs) for rs in inline)
    assert asyncio.run(_verdicts(GateExecutor(2, "thread"))) == inline
    assert asyncio.run(_verdicts(GateExecutor(2, "process"))) == inline


def test_rule_gates_run_in_the_pool_not_on_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    from courseforge.quality import lesson_gates

    ran_on: list[str] = []

    def spy(*args: object) -> list[GateResult]:
        ran_on.append(threading.current_thread().name)
        return rule_gates(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(lesson_gates, "rule_gates", spy)
    asyncio.run(_verdicts(GateExecutor(2, "thread")))
    asyncio.run(_verdicts(GateExecutor(0)))
    assert len(ran_on) == 12
    assert all(n.startswith("courseforge-gates") for n in ran_on[:6])
    assert ran_on[6:] == ["MainThread"] * 6


def test_bad_pool_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="workers"):
        GateExecutor(-1)
    with pytest.raises(ValueError, match="kind"):
        GateExecutor(1, "fiber")
