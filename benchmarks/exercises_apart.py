"""Exercises in the lesson's call or apart from it, on the embedded models (issue 26, item 13).

Seed 002 has the cheap model write a lesson's exercises in a call of their own; ours writes them
with the lesson. This benchmark holds the lesson text fixed (the lessons of a course the offline
profile generated) and asks each lesson's exercises three ways, then runs the same gates as
`courseforge check` on each version of the course:

- `stored`: the exercises the course has (written inline when it was generated, and kept
  through its gates: a survivor's bias in their favour; no call);
- `inline`: the lesson's own model, in the lesson's conversation (its request, the lesson as the
  model's answer, then the exercises' ask: the second turn of a prose-first lesson);
- `apart-<model>`: `pipeline.lessons.exercises_request` (the lesson's text and outcomes in, the
  exercises out) on each model named by `--apart` (the offline-cascade profile's 0.5B is seed
  002's cheap model, the 1.5B the lesson's own).

Printed per arm: exercises written, answers unusable (no JSON), gate failures on exercises
(`answer_keys`, `exercise_outcomes`, `exercises`, the cross-artifact checks such as "not answerable from its lesson"), output
tokens and decode seconds. Slow: every arm decodes on the CPU.

    python benchmarks/exercises_apart.py --course COURSE.json -i examples/python-basics.json \\
        --lessons 3 [--inline] [--apart qwen2.5-coder-0.5b qwen2.5-coder-1.5b] -o OUT
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from courseforge.config.loader import load_config
from courseforge.domain import AnalysisResult, Course
from courseforge.domain.course import Exercise
from courseforge.domain.drafts import ExerciseDraft
from courseforge.exports.training import CourseRecord, _brief
from courseforge.pipeline.check import check_course
from courseforge.pipeline.lessons import exercises_request, lesson_request
from courseforge.pipeline.prompts import lesson_exercises_ask
from courseforge.providers.base import ChatRequest, Message
from courseforge.providers.embeddings import make_embedder
from courseforge.providers.local_llama import LocalLlamaModel
from courseforge.providers.model_files import assemble_model

#: Gates that judge exercises (a lesson gate's name, or the cross-artifact flag's).
EXERCISE_GATES = ("answer_keys", "exercise_outcomes", "exercises", "cross_artifact")


def _model(settings: Any, model_id: str) -> LocalLlamaModel:
    ms = settings.models[model_id]
    assert ms.local is not None, f"{model_id} is not a local model"
    path = assemble_model(ms.local, Path(settings.cache_dir).expanduser())
    return LocalLlamaModel(
        model_id,
        path,
        n_ctx=ms.local.n_ctx,
        n_threads=ms.local.n_threads,
        max_output_tokens=ms.max_output_tokens,
        n_parallel=ms.local.n_parallel,
    )


def _apart_settings(settings: Any) -> Any:
    """`settings` with exercises written apart (`routing.exercises_tier`), for their request."""
    routing = settings.routing.model_copy(update={"exercises_tier": settings.routing.ladder[0]})
    return settings.model_copy(update={"routing": routing})


def _exercise_flag(gate: str) -> bool:
    return gate.startswith(EXERCISE_GATES)


def _requests(
    settings: Any, record: CourseRecord, lessons: list[tuple[int, str]], arm: str
) -> list[ChatRequest]:
    """The exercises request of each lesson in `arm` ("inline" or "apart")."""
    out = []
    lesson_tier = settings.routing.ladder[-1]
    for si, lid in lessons:
        brief = _brief(record, si, lid)
        content = next(x.content for x in record.course.lessons() if x.id == lid)
        apart = exercises_request(brief, _apart_settings(settings), content)
        if arm == "apart":
            out.append(apart)
            continue
        first = lesson_request(brief, settings, lesson_tier)
        numbers = [n for n, _ in brief.outcomes]
        ask = lesson_exercises_ask(numbers, brief.exercises(settings), False)
        messages = [*first.messages, Message("assistant", content), Message("user", ask)]
        out.append(
            ChatRequest(
                messages,
                json_schema=apart.json_schema,
                schema_name="exercises",
                max_tokens=apart.max_tokens,
                temperature=apart.temperature,
            )
        )
    return out


def _with_exercises(course: Course, answers: dict[str, list[ExerciseDraft]]) -> Course:
    data = course.model_dump(mode="json")
    outcome_ids = [o.id for o in course.metadata.learning_outcomes]
    for section in data["sections"]:
        for lesson in section["lessons"]:
            if lesson["id"] not in answers:
                continue
            lesson["exercises"] = [
                Exercise(
                    id=f"{lesson['id']}-E{k + 1}",
                    type=e.type,
                    question=e.question,
                    options=e.options,
                    answer=e.answer,
                    explanation=e.explanation,
                    outcome_ids=[outcome_ids[e.outcome - 1]]
                    if 1 <= e.outcome <= len(outcome_ids)
                    else lesson["outcome_ids"],
                ).model_dump(mode="json")
                for k, e in enumerate(answers[lesson["id"]])
            ]
    return Course.model_validate(data)


async def _arm(model: LocalLlamaModel, requests: list[ChatRequest], ids: list[str]) -> dict[str, Any]:
    started = time.perf_counter()
    responses = await asyncio.gather(*(model.complete(r) for r in requests), return_exceptions=True)
    wall = time.perf_counter() - started
    answers: dict[str, list[ExerciseDraft]] = {}
    unusable, tokens = 0, 0
    for lid, resp in zip(ids, responses, strict=True):
        if isinstance(resp, BaseException):
            unusable += 1
            continue
        tokens += resp.usage.output_tokens
        try:
            answers[lid] = [
                ExerciseDraft.model_validate(e) for e in json.loads(resp.text, strict=False)["exercises"]
            ]
        except (ValueError, KeyError, TypeError):
            unusable += 1
    return {"answers": answers, "unusable": unusable, "output_tokens": tokens, "wall_s": round(wall, 1)}


async def main(args: argparse.Namespace) -> None:
    settings = load_config(args.config, env={}).settings
    analysis = AnalysisResult.model_validate_json(Path(args.input).read_text())
    course = Course.model_validate_json(Path(args.course).read_text())
    record = CourseRecord(source=args.course, analysis=analysis, course=course)
    lessons = [(si, x.id) for si, s in enumerate(course.sections) for x in s.lessons][: args.lessons]
    ids = [lid for _, lid in lessons]
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    lesson_model = settings.routing.tiers[settings.routing.ladder[-1]]
    arms = [("stored", "", "stored")]
    arms += [("inline", lesson_model, "inline")] if args.inline else []
    arms += [(f"apart-{m}", m, "apart") for m in args.apart]
    embedder = make_embedder(settings.gates.embedding_model)
    rows = []
    for name, model_id, shape in arms:
        if shape == "stored":
            stored = {x.id: x for x in course.lessons() if x.id in ids}
            result = {"answers": {}, "unusable": 0, "output_tokens": 0, "wall_s": 0.0}
            variant = course
            result["exercises"] = sum(len(x.exercises) for x in stored.values())
        else:
            model = _model(settings, model_id)
            result = await _arm(model, _requests(settings, record, lessons, shape), ids)
            variant = _with_exercises(course, result["answers"])
            result["exercises"] = sum(len(v) for v in result["answers"].values())
        (out / f"{name}.json").write_text(variant.model_dump_json(indent=2))
        _report, flags = await check_course(variant, analysis, settings, embedder)
        ours = [f for f in flags if any(i in f.target for i in ids)]
        failed = Counter(f.gate for f in ours if _exercise_flag(f.gate))
        row = {
            "arm": name,
            "model": model_id,
            "lessons": len(ids),
            "exercises": result["exercises"],
            "unusable": result["unusable"],
            "flags": dict(failed),
            "other_flags": dict(Counter(f.gate for f in ours if not _exercise_flag(f.gate))),
            "flag_reasons": [f"{f.target}: {f.gate}: {f.reason}" for f in ours],
            "output_tokens": result["output_tokens"],
            "wall_s": result["wall_s"],
        }
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "flag_reasons"}), flush=True)
        (out / "results.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--course", required=True, help="a course the offline profile generated")
    parser.add_argument("-i", "--input", required=True, help="the analysis_result it was made from")
    parser.add_argument("-c", "--config", default="offline-cascade")
    parser.add_argument("--apart", nargs="*", default=["qwen2.5-coder-0.5b"], help="models asked apart")
    parser.add_argument("--inline", action="store_true", help="ask the lesson's model again, inline")
    parser.add_argument("--lessons", type=int, default=4, help="the course's first N lessons")
    parser.add_argument("-o", "--output", required=True)
    asyncio.run(main(parser.parse_args()))
