"""Gate false alarms on good human writing (issue 12, item 10): hand-written lessons of several
lengths (60-260 words), three teaching two outcomes, every one a good lesson. Each gate's
false-alarm rate = lessons it fails / lessons, under each bundled profile's policy.

    pytest -s tests/quality/test_human_lessons.py                      # hashing (fast)
    pytest -m embedding_model -s tests/quality/test_human_lessons.py   # MiniLM
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from courseforge.config import Settings, load_config
from courseforge.domain.drafts import ExerciseDraft, LessonDraft
from courseforge.providers.embeddings import make_embedder
from courseforge.quality.gates import word_count
from courseforge.quality.lesson_gates import LessonUnderTest, run_lesson_gates

DATA = Path(__file__).parent / "data" / "human_lessons.jsonl"


def lessons() -> list[dict[str, Any]]:
    return [json.loads(line) for line in DATA.read_text("utf-8").splitlines() if line.strip()]


def policy(profile: str, embedding_model: str) -> Settings:
    settings = load_config(profile, env={"OPENROUTER_API_KEY": "x"}).settings
    return settings.model_copy(
        update={"gates": settings.gates.model_copy(update={"embedding_model": embedding_model})}
    )


async def _to_thread(fn: Any, *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


async def false_alarms(settings: Settings) -> tuple[Counter[str], int]:
    """Gate -> good lessons it failed, and the number of lessons."""
    embedder = make_embedder(settings.gates.embedding_model)
    failed: Counter[str] = Counter()
    items = lessons()
    for item in items:
        draft = LessonDraft(
            content=item["content"], exercises=[ExerciseDraft(**e) for e in item["exercises"]], citations=[]
        )
        outcomes = {f"LO{i + 1}": text for i, text in enumerate(item["outcomes"])}
        under_test = LessonUnderTest(
            lesson_id=item["id"],
            draft=draft,
            outcome_numbers=list(range(1, len(outcomes) + 1)),
            outcomes=outcomes,
            sources={},
        )
        results = await run_lesson_gates(
            under_test, settings=settings, embedder=embedder, blocking=_to_thread
        )
        for r in results:
            failed[r.gate] += not r.passed
            if not r.passed:
                print(
                    f"  {settings.profile} {item['id']} ({item['words']} words, {len(outcomes)} outcomes): {r.gate} {r.score} {r.reasons[:1]}"
                )
    return failed, len(items)


async def _report(embedding_model: str) -> dict[str, tuple[Counter[str], int]]:
    out = {}
    for profile in ("hosted", "offline"):
        failed, n = await false_alarms(policy(profile, embedding_model))
        print(
            f"{profile} / {embedding_model}: "
            + ", ".join(f"{g} {c}/{n}" for g, c in sorted(failed.items()) if c)
        )
        out[profile] = (failed, n)
    return out


def test_the_set_is_good_human_writing_of_several_lengths() -> None:
    items = lessons()
    words = sorted(x["words"] for x in items)
    assert words[0] <= 80 and words[-1] >= 250
    assert sum(len(x["outcomes"]) == 2 for x in items) >= 3
    assert all(x["label"] == "good" for x in items)


async def test_false_alarm_rates_hashing() -> None:
    report = await _report("hashing")
    for profile, (failed, n) in report.items():
        settings = policy(profile, "hashing")
        low, high = settings.gates.lesson_min_words, settings.gates.lesson_max_words
        # The length gate's false alarms are exactly the good lessons outside the profile's bounds.
        outside = sum(not low <= word_count(x["content"]) <= high for x in lessons())
        assert failed["length"] == outside <= n


@pytest.mark.embedding_model
async def test_false_alarm_rates_minilm() -> None:
    report = await _report("all-MiniLM-L6-v2")
    assert all(n == len(lessons()) for _, n in report.values())
