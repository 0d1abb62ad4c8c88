"""Phase 1: programmatic validation of the analysis_result. Zero model calls; every problem
is reported at once with its JSON path, so one run tells the user everything to fix."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from ..domain import AnalysisResult
from ..domain.analysis import SECTION_CAPACITY
from ..errors import InputError

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_LESSONS_PER_SECTION",
    "MAX_NUMBER_DIGITS",
    "loads_strict",
    "parse_analysis",
    "plan_lesson_counts",
    "validate_analysis",
]

MAX_LESSONS_PER_SECTION = SECTION_CAPACITY
#: Nesting an input may have; the analysis_result needs 4 (object, sections, section, concepts).
MAX_JSON_DEPTH = 32
#: Digits a JSON integer may have (a count or a score needs a few; Python's `int()` stops at 4,300).
MAX_NUMBER_DIGITS = 100


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


class _LongNumber(str):
    """A JSON integer with more digits than `MAX_NUMBER_DIGITS`, kept as its text so that
    `_scan` can name where it is (Python's `int()` refuses past 4,300 digits with a bare
    ValueError, and no field of ours needs more than a few)."""


def _int(text: str) -> int | _LongNumber:
    return _LongNumber(text) if len(text) > MAX_NUMBER_DIGITS else int(text)


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _shown(text: str) -> str:
    """`text` safe to print and to encode as UTF-8: a lone surrogate as its `\\udfff` escape."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _scan(value: Any) -> None:
    """Walk parsed JSON without recursion: raise for nesting past `MAX_JSON_DEPTH`, for a lone
    surrogate (`"\\udfff"`: JSON may write one, no UTF-8 text can hold it) in a key or a
    string, for an integer too long to be a number of ours, and for the first object (in
    document order) that repeats a key, naming its path (and the key)."""
    stack: list[tuple[Any, str, int]] = [(value, "$", 1)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, dict | list) and depth > MAX_JSON_DEPTH:
            raise _too_deep_at(depth)
        if isinstance(node, _LongNumber):
            raise InputError(
                "input has a number too long",
                [(path, f"an integer of {len(node.lstrip('-'))} digits (at most {MAX_NUMBER_DIGITS})")],
            )
        if isinstance(node, str) and _SURROGATE.search(node):
            raise InputError(
                "input is not Unicode text", [(path, "holds a lone surrogate (\\ud800-\\udfff)")]
            )
        if isinstance(node, dict):
            for key in node:
                if _SURROGATE.search(key):
                    raise InputError(
                        "input is not Unicode text",
                        [(f"{path}.{_shown(key)}", "the key holds a lone surrogate (\\ud800-\\udfff)")],
                    )
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
    """`json.loads` for untrusted input: a repeated key, nesting past `MAX_JSON_DEPTH`, a lone
    surrogate and an integer past `MAX_NUMBER_DIGITS` are `InputError`s naming the place
    (Python's parser would keep the last value silently, recurse until it raised
    RecursionError, keep text no UTF-8 encoder can write, and raise a bare ValueError)."""
    try:
        data = json.loads(text, object_pairs_hook=_pairs, parse_int=_int)
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
