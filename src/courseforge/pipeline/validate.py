"""Phase 1: programmatic validation of the analysis_result. Zero model calls; every problem
is reported at once with its JSON path, so one run tells the user everything to fix."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from ..domain import AnalysisResult
from ..errors import InputError

__all__ = ["MAX_LESSONS_PER_SECTION", "parse_analysis", "plan_lesson_counts", "validate_analysis"]

MAX_LESSONS_PER_SECTION = 10


def _path(loc: tuple[Any, ...]) -> str:
    out = "$"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _reason(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key (not in schema_version 1)"
    if err["type"] == "missing":
        return "required field is missing"
    return str(err["msg"])


def validate_analysis(data: Any) -> AnalysisResult:
    """Validate already-parsed JSON. Raises InputError listing every problem."""
    if not isinstance(data, dict):
        raise InputError("analysis_result must be a JSON object", [("$", f"got {type(data).__name__}")])
    try:
        analysis = AnalysisResult.model_validate(data)
    except ValidationError as exc:
        problems = [(_path(e["loc"]), _reason(e)) for e in exc.errors()]
        raise InputError(f"analysis_result has {len(problems)} problem(s)", problems) from exc
    _check_capacity(analysis)
    return analysis


def _check_capacity(analysis: AnalysisResult) -> None:
    capacity = len(analysis.sections) * MAX_LESSONS_PER_SECTION
    if analysis.min_lessons > capacity:
        raise InputError(
            "analysis_result cannot be satisfied",
            [
                (
                    "$.min_lessons",
                    f"{analysis.min_lessons} lessons cannot fit in {len(analysis.sections)} "
                    f"section(s) of at most {MAX_LESSONS_PER_SECTION} lessons",
                )
            ],
        )


def parse_analysis(raw: bytes, *, max_bytes: int) -> AnalysisResult:
    """Bytes of a file -> AnalysisResult, rejecting oversize, non-UTF-8 and malformed JSON."""
    if len(raw) > max_bytes:
        raise InputError("input too large", [("$", f"{len(raw)} bytes exceeds the limit of {max_bytes}")])
    try:
        text = raw.decode("utf-8-sig")  # a leading byte-order mark is harmless
    except UnicodeDecodeError as exc:
        raise InputError("input is not UTF-8", [("$", f"invalid byte at offset {exc.start}")]) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            "input is not valid JSON", [("$", f"{exc.msg} at line {exc.lineno} column {exc.colno}")]
        ) from exc
    return validate_analysis(data)


def plan_lesson_counts(analysis: AnalysisResult) -> list[int]:
    """Lessons per section: as asked, then raised one at a time (largest sections' neighbours
    first, round-robin) until the total reaches min_lessons. Pure and deterministic."""
    # An AnalysisResult built directly (not via validate_analysis) may ask for more than fits.
    _check_capacity(analysis)
    counts = [s.lesson_count for s in analysis.sections]
    i = 0
    while sum(counts) < analysis.min_lessons:
        if counts[i % len(counts)] < MAX_LESSONS_PER_SECTION:
            counts[i % len(counts)] += 1
        i += 1
    return counts
