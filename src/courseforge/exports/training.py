"""`export-training`: accepted lessons as chat fine-tuning examples (OpenAI chat JSONL).

A lesson is accepted when its course is approved, when every gate accepted it and no review
flag on it is still open, or when a reviewer approved, edited or regenerated it. Each example is

    {"messages": [system, user, assistant], "metadata": {course, lesson, model, gates, ...}}

The request messages are not kept by the store (a checkpoint keeps the answer and a digest of
the request), so they are rebuilt with the request builder the generation uses
(`pipeline.lessons.lesson_request`, no retry feedback: the first attempt's request; a sourced
course's lessons with the source passages generation retrieved for them, `shown_excerpts`). The
assistant turn is the lesson as it was accepted (after repairs and a reviewer's edits), in the
JSON shape the model is asked for. Exact duplicates are removed, every example is checked again
for PII (`quality.safety.find_pii`) and dropped when any is found, and whole courses go to the
validation split (a stable hash of the course id), so no course is in both.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import Settings
from ..domain import AnalysisResult, Course, Report
from ..domain.tasks import TaskId, lesson_key, outcome_number, step_key
from ..engine import request_digest
from ..errors import UserError
from ..files import MAX_COURSE_BYTES, read_text_limited
from ..pipeline import validate_analysis
from ..pipeline.assemble import draft_of
from ..pipeline.context import Embed, Excerpt, excerpt_bounds, lesson_query, select_excerpts, source_index
from ..pipeline.lessons import LessonBrief, lesson_request
from ..quality.safety import find_pii
from ..storage import Checkpoint, Store
from ._base import load_course, write_text_atomic

__all__ = [
    "CourseRecord",
    "TrainingResult",
    "build_examples",
    "export_training",
    "records_from_dir",
    "records_from_store",
    "shown_excerpts",
]

#: Review item statuses that mean a person accepted the lesson.
REVIEWER_ACCEPTED = frozenset({"approved", "edited", "regenerated"})


@dataclass(slots=True)
class CourseRecord:
    """A finished course with what its examples need."""

    source: str
    analysis: AnalysisResult
    course: Course
    report: Report | None = None
    #: lesson id -> the reviewer's verdict ("approved", "edited", "regenerated", "open", ...).
    reviews: dict[str, str] = field(default_factory=dict)
    #: The job's checkpoints by step key (a store source only): each holds a digest of the
    #: request as sent, against which the rebuilt messages are checked.
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)


@dataclass(slots=True)
class TrainingResult:
    train_path: Path
    validation_path: Path
    courses: int = 0
    lessons_seen: int = 0
    train: int = 0
    validation: int = 0
    not_accepted: int = 0
    duplicates: int = 0
    pii_dropped: int = 0
    #: Examples whose rebuilt request has the digest of a request the store says was sent.
    verified: int = 0
    train_bytes: int = 0
    validation_bytes: int = 0
    dropped: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {**data, "train_path": str(self.train_path), "validation_path": str(self.validation_path)}


def _accepted(record: CourseRecord, lesson_id: str) -> str:
    """Who accepted the lesson ("course", "gates", "reviewer"), or "" when nobody did."""
    verdict = record.reviews.get(lesson_id)
    if verdict in REVIEWER_ACCEPTED:
        return "reviewer"
    if record.course.status == "approved":
        return "course"
    open_flag = any(f.target == lesson_key(lesson_id) for f in record.course.review)
    gates = (
        next((x for x in record.report.lessons if x.lesson_id == lesson_id), None) if record.report else None
    )
    if not open_flag and verdict is None and gates is not None and gates.status == "accepted":
        return "gates"
    return ""


async def shown_excerpts(
    records: Iterable[CourseRecord],
    settings: Settings,
    embed: Embed,
) -> dict[tuple[str, str], list[Excerpt]]:
    """The source passages each lesson of a sourced course was shown: the retrieval generation
    ran (`pipeline.context`: the plan's lesson title and outcomes, the section's key concepts,
    the same bounds), keyed by (record source, lesson id). Needs the embedding model the courses
    were generated with (`gates.embedding_model`)."""
    shown: dict[tuple[str, str], list[Excerpt]] = {}
    for record in records:
        analysis, meta = record.analysis, record.course.metadata
        if not analysis.source_material:
            continue
        index = await source_index(analysis, embed)
        texts = {i: o.text for i, o in enumerate(meta.learning_outcomes, start=1)}
        numbers = {o.id: i for i, o in enumerate(meta.learning_outcomes, start=1)}
        for si, plan in enumerate(meta.course_structure[: len(analysis.sections)]):
            for lp in plan.lessons:
                outcomes = [texts[numbers[o]] for o in lp.outcome_ids if o in numbers]
                query = lesson_query(analysis, si, lp.title, outcomes)
                shown[(record.source, lp.id)] = await select_excerpts(
                    analysis, index, embed, query, *excerpt_bounds(settings)
                )
    return shown


def _brief(
    record: CourseRecord,
    section_index: int,
    lesson_id: str,
    excerpts: Sequence[Excerpt] | None = None,
) -> LessonBrief:
    """The brief generation gave lesson `lesson_id` (its first attempt: no feedback)."""
    analysis, meta = record.analysis, record.course.metadata
    plans = meta.course_structure
    if section_index >= len(plans) or section_index >= len(analysis.sections):
        raise UserError(
            "course and input disagree",
            [(f"{record.source}.sections[{section_index}]", "no such section in the input")],
        )
    plan = plans[section_index]
    lesson_plan = next((lp for lp in plan.lessons if lp.id == lesson_id), None)
    numbers = {o.id: i for i, o in enumerate(meta.learning_outcomes, start=1)}
    outcome_ids = lesson_plan.outcome_ids if lesson_plan else []
    outcomes = [(numbers[o], meta.learning_outcomes[numbers[o] - 1]) for o in outcome_ids if o in numbers]
    return LessonBrief(
        analysis=analysis,
        course_title=meta.course_title,
        section=analysis.sections[section_index],
        section_summary=plan.summary,
        lesson_title=lesson_plan.title if lesson_plan else lesson_id,
        outcomes=outcomes,
        sibling_titles=[lp.title for lp in plan.lessons if lp.id != lesson_id],
        style=meta.style_guidelines,
        outline=[(p.title, [lp.title for lp in p.lessons]) for p in plans],
        sources=excerpts if excerpts is not None else ([] if not analysis.source_material else None),
        outcome_numbers=[outcome_number(o) for o in _plan_outcomes(record, lesson_id)],
        course_outcomes=list(enumerate(meta.learning_outcomes, start=1)),
        section_summaries=[p.summary for p in plans],
    )


def _verified(record: CourseRecord, lesson_id: str, brief: LessonBrief, settings: Settings) -> bool:
    """Whether the rebuilt request is that of a first attempt the store checkpointed: the
    request digest (model, messages, schema, bounds) of some tier's first attempt matches."""
    if not record.checkpoints:
        return False
    task = TaskId.lesson_task(lesson_id)
    for tier, model_id in settings.routing.tiers.items():
        found = record.checkpoints.get(step_key("lessons", task, 1, tier))
        if found is None or model_id not in settings.models:
            continue
        if request_digest(model_id, lesson_request(brief, settings, tier)) == found.request_digest:
            return True
    return False


def _plan_outcomes(record: CourseRecord, lesson_id: str) -> list[str]:
    for plan in record.course.metadata.course_structure:
        for lp in plan.lessons:
            if lp.id == lesson_id:
                return lp.outcome_ids
    return []


def _in_validation(course_id: str, share: float) -> bool:
    digest = hashlib.sha256(course_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def build_examples(
    records: Iterable[CourseRecord],
    settings: Settings,
    result: TrainingResult,
    excerpts: Mapping[tuple[str, str], Sequence[Excerpt]] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, validation) examples from the records; counts go into `result`. `excerpts`: what
    `shown_excerpts` retrieved (without it a sourced lesson's rebuilt prompt shows the sources'
    openings instead, and does not verify)."""
    train: list[dict[str, Any]] = []
    validation: list[dict[str, Any]] = []
    seen: set[str] = set()
    records = list(records)
    share = settings.exports.validation_share
    held_out = {r.course.course_id for r in records if _in_validation(r.course.course_id, share)}
    if share > 0 and len(records) > 1 and not held_out:
        held_out = {min(r.course.course_id for r in records)}  # a split with no validation course is no split
    for record in records:
        result.courses += 1
        numbers = {o.id: i for i, o in enumerate(record.course.metadata.learning_outcomes, start=1)}
        for si, section in enumerate(record.course.sections):
            for lesson in section.lessons:
                result.lessons_seen += 1
                by = _accepted(record, lesson.id)
                if not by:
                    result.not_accepted += 1
                    continue
                shown = excerpts.get((record.source, lesson.id)) if excerpts is not None else None
                brief = _brief(record, si, lesson.id, shown)
                messages = [{"role": m.role, "content": m.content} for m in brief.messages(settings)]
                answer = json.dumps(draft_of(lesson, numbers).model_dump(mode="json"), ensure_ascii=False)
                key = hashlib.sha256(json.dumps([messages, answer], ensure_ascii=False).encode()).hexdigest()
                where = f"{record.source}:{lesson.id}"
                if key in seen:
                    result.duplicates += 1
                    result.dropped.append({"lesson": where, "reason": "duplicate"})
                    continue
                seen.add(key)
                pii = find_pii(answer) + [f for m in messages for f in find_pii(m["content"])]
                if pii:
                    result.pii_dropped += 1
                    result.dropped.append(
                        {"lesson": where, "reason": "pii: " + ", ".join(sorted({f.kind for f in pii}))}
                    )
                    continue
                gates = (
                    next((x for x in record.report.lessons if x.lesson_id == lesson.id), None)
                    if record.report
                    else None
                )
                verified = _verified(record, lesson.id, brief, settings)
                result.verified += verified
                example = {
                    "messages": [*messages, {"role": "assistant", "content": answer}],
                    "metadata": {
                        "course_id": record.course.course_id,
                        "source": record.source,
                        "lesson_id": lesson.id,
                        "accepted_by": by,
                        "model": gates.final_model if gates else "",
                        "tier": gates.final_tier if gates else "",
                        "attempts": gates.attempts if gates else 0,
                        "gates": {g.gate: g.score for g in gates.gates} if gates else {},
                        "messages_rebuilt": True,
                        "messages_verified": verified,
                    },
                }
                (validation if record.course.course_id in held_out else train).append(example)
    return train, validation


def _jsonl(examples: Sequence[dict[str, Any]], messages_only: bool) -> str:
    return "".join(
        json.dumps({"messages": e["messages"]} if messages_only else e, ensure_ascii=False) + "\n"
        for e in examples
    )


def export_training(
    records: Iterable[CourseRecord],
    settings: Settings,
    out: Path,
    *,
    messages_only: bool = False,
    excerpts: Mapping[tuple[str, str], Sequence[Excerpt]] | None = None,
) -> TrainingResult:
    """Write `out` (train) and `<stem>.validation.jsonl` beside it; with `messages_only` the
    metadata goes to `<stem>.metadata.jsonl` (line by line: train, then validation) instead,
    for fine-tuning APIs that refuse any key but `messages`."""
    validation_path = out.with_name(f"{out.stem}.validation{out.suffix or '.jsonl'}")
    result = TrainingResult(out, validation_path)
    train, validation = build_examples(records, settings, result, excerpts)
    train_text, validation_text = _jsonl(train, messages_only), _jsonl(validation, messages_only)
    if messages_only:
        meta = "".join(json.dumps(e["metadata"], ensure_ascii=False) + "\n" for e in [*train, *validation])
        write_text_atomic(out.with_name(f"{out.stem}.metadata.jsonl"), meta)
    write_text_atomic(validation_path, validation_text)
    write_text_atomic(out, train_text)
    result.train, result.validation = len(train), len(validation)
    result.train_bytes, result.validation_bytes = len(train_text.encode()), len(validation_text.encode())
    return result


async def records_from_store(store: Store) -> list[CourseRecord]:
    """Every completed job with a course, with its report and its reviewers' verdicts."""
    records: list[CourseRecord] = []
    offset = 0
    while True:
        jobs = await store.list_jobs(status="completed", limit=500, offset=offset)
        if not jobs:
            return records
        offset += len(jobs)
        for job in jobs:
            course_data = await store.get_course(job.id)
            if course_data is None:
                continue
            report_data = await store.get_report(job.id)
            reviews: dict[str, str] = {
                r.target: r.status
                for r in await store.list_reviews(status=None, limit=100_000, job_id=job.id)
            }
            records.append(
                CourseRecord(
                    source=f"job:{job.id}",
                    analysis=validate_analysis(job.analysis),
                    course=load_course(course_data),
                    report=Report.model_validate(report_data) if report_data else None,
                    reviews=reviews,
                    checkpoints=await store.load_checkpoints(job.id),
                )
            )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(read_text_limited(path, MAX_COURSE_BYTES, what="file"))
    except json.JSONDecodeError as exc:
        raise UserError("not JSON", [(str(path), f"line {exc.lineno}: {exc.msg}")]) from exc


def records_from_dir(folder: Path) -> list[CourseRecord]:
    """Courses in a folder: each `NAME.course.json` with its input `NAME.analysis.json` and,
    when present, its report `NAME.report.json` (what `courseforge generate` writes, named so)."""
    records: list[CourseRecord] = []
    courses = sorted(folder.glob("*.course.json"))
    if not courses:
        raise UserError("no courses found", [("--from", f"{folder}: no NAME.course.json files")])
    for path in courses:
        name = path.name.removesuffix(".course.json")
        analysis_path = folder / f"{name}.analysis.json"
        if not analysis_path.exists():
            raise UserError("input missing", [(str(analysis_path), "needed to rebuild the lesson prompts")])
        report_path = folder / f"{name}.report.json"
        try:
            course = load_course(_read_json(path))
        except UserError as exc:
            raise UserError(
                f"invalid course {path.name}", [(f"{path.name}:{p}", r) for p, r in exc.problems]
            ) from exc
        records.append(
            CourseRecord(
                source=name,
                analysis=validate_analysis(_read_json(analysis_path)),
                course=course,
                report=Report.model_validate(_read_json(report_path)) if report_path.exists() else None,
            )
        )
    return records
