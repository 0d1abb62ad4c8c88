"""Phase 1: programmatic validation of the analysis_result. Zero model calls; every problem
is reported at once with its JSON path, so one run tells the user everything to fix."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from ..domain import AnalysisResult
from ..errors import InputError

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_LESSONS_PER_SECTION",
    "loads_strict",
    "parse_analysis",
    "plan_lesson_counts",
    "validate_analysis",
]

MAX_LESSONS_PER_SECTION = 10
#: Nesting an input may have; the analysis_result needs 4 (object, sections, section, concepts).
MAX_JSON_DEPTH = 32


class _Object(dict[str, Any]):
    """A parsed JSON object that remembers the keys its text repeated."""

    repeated: list[str]


def _pairs(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object()
    obj.repeated = []
    for key, value in pairs:
        if key in obj and key not in obj.repeated:
            obj.repeated.append(key)
        obj[key] = value
    return obj


def _too_deep_at(depth: int) -> InputError:
    return InputError(
        "input is nested too deeply",
        [("$", f"more than {MAX_JSON_DEPTH} levels of nested arrays/objects (found {depth} or more)")],
    )


def _scan(value: Any) -> None:
    """Walk parsed JSON without recursion: raise for nesting past `MAX_JSON_DEPTH` and for the
    first object (in document order) that repeats a key, naming its path and the key."""
    stack: list[tuple[Any, str, int]] = [(value, "$", 1)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, dict | list) and depth > MAX_JSON_DEPTH:
            raise _too_deep_at(depth)
        if isinstance(node, _Object) and node.repeated:
            key = node.repeated[0]
            raise InputError(
                "input repeats a key",
                [(f"{path}.{key}", f"duplicate key {key!r} (each key may appear once)")],
            )
        if isinstance(node, dict):
            stack.extend((v, f"{path}.{k}", depth + 1) for k, v in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in reversed(list(enumerate(node))))


def loads_strict(text: str) -> Any:
    """`json.loads` for untrusted input: a repeated key and nesting past `MAX_JSON_DEPTH` are
    `InputError`s naming the place (Python's parser would keep the last value silently, and
    recurse until it raised RecursionError)."""
    try:
        data = json.loads(text, object_pairs_hook=_pairs)
    except json.JSONDecodeError as exc:
        raise InputError(
            "input is not valid JSON", [("$", f"{exc.msg} at line {exc.lineno} column {exc.colno}")]
        ) from exc
    except RecursionError:
        raise _too_deep_at(MAX_JSON_DEPTH + 1) from None
    _scan(data)
    return data


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
    """Bytes of a file -> AnalysisResult, rejecting oversize, non-UTF-8 and malformed JSON,
    repeated keys and nesting past `MAX_JSON_DEPTH`."""
    if len(raw) > max_bytes:
        raise InputError("input too large", [("$", f"{len(raw)} bytes exceeds the limit of {max_bytes}")])
    try:
        text = raw.decode("utf-8-sig")  # a leading byte-order mark is harmless
    except UnicodeDecodeError as exc:
        raise InputError("input is not UTF-8", [("$", f"invalid byte at offset {exc.start}")]) from exc
    return validate_analysis(loads_strict(text))


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
