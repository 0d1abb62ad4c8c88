"""Phase 1: every bad input rejected with its JSON path and reason; lesson planning."""

from __future__ import annotations

import json
from typing import Any

import pytest

from courseforge.domain import AnalysisResult
from courseforge.errors import InputError, UserError
from courseforge.pipeline import parse_analysis, plan_lesson_counts, validate_analysis
from engine_helpers import example_data

SECTION = {"title": "Basics", "key_concepts": ["variables"]}
BASE: dict[str, Any] = {"topic": "Python", "target_audience": "Beginners", "sections": [SECTION]}


def problems_of(data: Any) -> list[tuple[str, str]]:
    with pytest.raises(InputError) as info:
        validate_analysis(data)
    assert info.value.problems, "an InputError must name at least one problem"
    return info.value.problems


def without(key: str) -> dict[str, Any]:
    return {k: v for k, v in BASE.items() if k != key}


@pytest.mark.parametrize(
    ("data", "path", "reason_part"),
    [
        pytest.param(without("topic"), "$.topic", "required", id="missing topic"),
        pytest.param(without("target_audience"), "$.target_audience", "required", id="missing audience"),
        pytest.param(without("sections"), "$.sections", "required", id="missing sections"),
        pytest.param(
            {**BASE, "sections": [{"key_concepts": ["x"]}]},
            "$.sections[0].title",
            "required",
            id="missing title",
        ),
        pytest.param(
            {**BASE, "sections": [{"title": "A"}]},
            "$.sections[0].key_concepts",
            "required",
            id="missing key_concepts",
        ),
        pytest.param({**BASE, "topic": 42}, "$.topic", "valid string", id="topic not a string"),
        pytest.param({**BASE, "sections": "many"}, "$.sections", "valid list", id="sections not a list"),
        pytest.param({**BASE, "min_lessons": "ten"}, "$.min_lessons", "valid integer", id="min_lessons text"),
        pytest.param(
            {**BASE, "sections": [{**SECTION, "lesson_count": "two"}]},
            "$.sections[0].lesson_count",
            "valid integer",
            id="lesson_count text",
        ),
        pytest.param(
            {**BASE, "sections": [{**SECTION, "key_concepts": "variables"}]},
            "$.sections[0].key_concepts",
            "valid list",
            id="key_concepts not a list",
        ),
        pytest.param({**BASE, "difficulty": "expert"}, "$.difficulty", "beginner", id="difficulty enum"),
        pytest.param({**BASE, "schema_version": 2}, "$.schema_version", "1", id="schema_version"),
        pytest.param({**BASE, "budget_usd": "lots"}, "$.budget_usd", "decimal", id="budget not a number"),
        pytest.param({**BASE, "colour": "blue"}, "$.colour", "unknown key", id="unknown top-level key"),
        pytest.param(
            {**BASE, "sections": [{**SECTION, "duration": 5}]},
            "$.sections[0].duration",
            "unknown key",
            id="unknown key in section",
        ),
        pytest.param(
            {**BASE, "source_material": [{"id": "a", "title": "t", "text": "x", "url": "u"}]},
            "$.source_material[0].url",
            "unknown key",
            id="unknown key in source",
        ),
        pytest.param({**BASE, "sections": []}, "$.sections", "at least 1", id="empty sections"),
        pytest.param(
            {**BASE, "sections": [{**SECTION, "key_concepts": []}]},
            "$.sections[0].key_concepts",
            "at least 1",
            id="empty key_concepts",
        ),
        pytest.param(
            {**BASE, "sections": [{**SECTION, "key_concepts": ["  "]}]},
            "$.sections[0].key_concepts[0]",
            "at least 1 character",
            id="blank key concept",
        ),
        pytest.param({**BASE, "topic": "   "}, "$.topic", "at least 1 character", id="blank topic"),
        pytest.param(
            {**BASE, "budget_usd": 0}, "$.budget_usd", "greater than or equal to 0.01", id="zero budget"
        ),
        pytest.param(
            {**BASE, "budget_usd": -0.5},
            "$.budget_usd",
            "greater than or equal to 0.01",
            id="negative budget",
        ),
        pytest.param(
            {**BASE, "budget_usd": 1e-12}, "$.budget_usd", "greater than or equal to 0.01", id="a tiny budget"
        ),
        pytest.param(
            {**BASE, "topic": "t" * 1_900_000}, "$.topic", "at most 300 characters", id="a 1.9 MB topic"
        ),
        pytest.param(
            {**BASE, "sections": [{"title": "x" * 201, "key_concepts": ["a"]}]},
            "$.sections[0].title",
            "at most 200 characters",
            id="long section title",
        ),
        pytest.param(
            {**BASE, "sections": [{**SECTION, "lesson_count": 0}]},
            "$.sections[0].lesson_count",
            "greater than or equal to 1",
            id="zero lessons",
        ),
        pytest.param(
            {**BASE, "sections": [{**SECTION, "lesson_count": 11}]},
            "$.sections[0].lesson_count",
            "less than or equal to 10",
            id="too many lessons",
        ),
        pytest.param(
            {**BASE, "sections": [{**SECTION, "complexity": 11}]},
            "$.sections[0].complexity",
            "less than or equal to 10",
            id="complexity range",
        ),
        pytest.param(
            {**BASE, "sections": [SECTION, {**SECTION, "title": "basics"}]},
            "$.sections",
            "duplicate section title",
            id="duplicate titles (case-insensitive)",
        ),
        pytest.param(
            {**BASE, "source_material": [{"id": "a", "title": "t", "text": "x"}] * 2},
            "$",
            "repeated: a",
            id="duplicate source ids",
        ),
        pytest.param({**BASE, "min_lessons": 11}, "$.min_lessons", "cannot fit", id="min_lessons cannot fit"),
        pytest.param({**BASE, "course_id": "has space"}, "$.course_id", "pattern", id="course_id pattern"),
        pytest.param([BASE], "$", "list", id="not an object"),
    ],
)
def test_bad_input_names_path_and_reason(data: Any, path: str, reason_part: str) -> None:
    problems = problems_of(data)
    paths = [p for p, _ in problems]
    assert path in paths, problems
    reason = dict(problems)[path]
    assert reason_part.lower() in reason.lower(), problems


def test_every_problem_is_reported_at_once() -> None:
    data = {
        "topic": "",
        "sections": [{"title": "A", "key_concepts": [], "extra": 1}, {"key_concepts": ["x"]}],
        "budget_usd": -1,
        "mystery": True,
    }
    paths = {p for p, _ in problems_of(data)}
    assert {
        "$.topic",
        "$.target_audience",
        "$.sections[0].key_concepts",
        "$.sections[0].extra",
        "$.sections[1].title",
        "$.budget_usd",
        "$.mystery",
    } <= paths


def test_input_error_is_a_user_error_with_readable_message() -> None:
    with pytest.raises(UserError) as info:
        validate_analysis({**BASE, "budget_usd": 0})
    assert "$.budget_usd" in str(info.value)
    assert info.value.headline.startswith("analysis_result has 1 problem")


def test_valid_examples_pass_and_defaults_apply() -> None:
    analysis = validate_analysis(BASE)
    assert analysis.language == "en" and analysis.difficulty == "beginner"
    assert analysis.min_lessons == 10 and analysis.budget_usd is None
    assert analysis.sections[0].lesson_count == 2
    assert analysis.sections[0].section_type == "concept"
    for name in ("python-basics", "spanish-a1", "photosynthesis-sourced"):
        validate_analysis(example_data(name))


def bytes_problem(raw: bytes, max_bytes: int = 10_000) -> tuple[str, list[tuple[str, str]]]:
    with pytest.raises(InputError) as info:
        parse_analysis(raw, max_bytes=max_bytes)
    return info.value.headline, info.value.problems


def test_malformed_json_names_line_and_column() -> None:
    headline, problems = bytes_problem(b'{"topic": "x",\n  "sections": [}')
    assert "not valid JSON" in headline
    [(path, reason)] = problems
    assert path == "$" and "line 2" in reason and "column" in reason


def test_non_utf8_bytes_are_rejected_with_offset() -> None:
    raw = json.dumps(BASE).encode()[:10] + b"\xff\xfe" + json.dumps(BASE).encode()[10:]
    headline, problems = bytes_problem(raw)
    assert "not UTF-8" in headline
    assert problems == [("$", "invalid byte at offset 10")]


def test_latin1_text_is_not_utf8() -> None:
    raw = json.dumps({**BASE, "topic": "Café"}, ensure_ascii=False).encode("latin-1")
    headline, _ = bytes_problem(raw)
    assert "not UTF-8" in headline


def test_file_over_max_bytes_is_rejected_before_parsing() -> None:
    raw = json.dumps({**BASE, "style_guidelines": "x" * 3000}).encode()
    headline, problems = bytes_problem(raw, max_bytes=1024)
    assert "too large" in headline
    assert problems == [("$", f"{len(raw)} bytes exceeds the limit of 1024")]
    assert parse_analysis(raw, max_bytes=len(raw)).topic == "Python"  # exactly at the limit is fine


def test_non_object_json_is_rejected() -> None:
    headline, problems = bytes_problem(b"[1, 2]")
    assert "JSON object" in headline and problems == [("$", "got list")]


def test_empty_file_is_malformed_json() -> None:
    headline, _ = bytes_problem(b"")
    assert "not valid JSON" in headline


@pytest.mark.parametrize(
    ("counts", "min_lessons", "expected"),
    [
        ([2, 2, 2, 2, 2], 10, [2, 2, 2, 2, 2]),  # already enough
        ([3, 3], 4, [3, 3]),  # more than the minimum is kept
        ([1, 1], 5, [3, 2]),  # raised round-robin from the first section
        ([1], 7, [7]),
        ([10, 1], 12, [10, 2]),  # a full section is skipped
        ([2, 2, 2], 10, [4, 3, 3]),
    ],
)
def test_plan_lesson_counts_reaches_min_lessons(
    counts: list[int], min_lessons: int, expected: list[int]
) -> None:
    sections = [{"title": f"S{i}", "key_concepts": ["k"], "lesson_count": c} for i, c in enumerate(counts)]
    analysis = validate_analysis({**BASE, "sections": sections, "min_lessons": min_lessons})
    planned = plan_lesson_counts(analysis)
    assert planned == expected
    assert sum(planned) >= min_lessons
    assert all(p >= c for p, c in zip(planned, counts, strict=True))
    assert all(p <= 10 for p in planned)


def test_plan_lesson_counts_refuses_an_impossible_minimum_instead_of_looping() -> None:
    """An AnalysisResult built directly (skipping validate_analysis) used to hang the planner."""
    analysis = AnalysisResult.model_validate({**BASE, "min_lessons": 11})
    with pytest.raises(InputError) as info:
        plan_lesson_counts(analysis)
    assert info.value.problems[0][0] == "$.min_lessons"


def test_utf8_byte_order_mark_is_accepted(tmp_path: object) -> None:
    from courseforge.pipeline import parse_analysis

    raw = (
        b"\xef\xbb\xbf"
        + b'{"topic": "t", "target_audience": "a", "min_lessons": 1, "sections": [{"title": "s", "key_concepts": ["k"]}]}'
    )
    assert parse_analysis(raw, max_bytes=10_000).topic == "t"


@pytest.mark.parametrize(
    ("patch", "path"),
    [
        ({"min_lessons": "10"}, "$.min_lessons"),
        (
            {"sections": [{"title": "s", "key_concepts": ["k"], "lesson_count": "2"}]},
            "$.sections[0].lesson_count",
        ),
        ({"sections": [{"title": "s", "key_concepts": ["k"], "critical": "yes"}]}, "$.sections[0].critical"),
        (
            {"sections": [{"title": "s", "key_concepts": ["k"], "complexity": 2.5}]},
            "$.sections[0].complexity",
        ),
    ],
)
def test_wrong_types_are_rejected_not_coerced(patch: dict[str, object], path: str) -> None:
    from courseforge.errors import InputError
    from courseforge.pipeline import validate_analysis

    data: dict[str, object] = {
        "topic": "t",
        "target_audience": "a",
        "min_lessons": 1,
        "sections": [{"title": "s", "key_concepts": ["k"]}],
        **patch,
    }
    with pytest.raises(InputError) as info:
        validate_analysis(data)
    assert path in [p for p, _ in info.value.problems]


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="arrays-100k-deep"),
        pytest.param(b'{"a":' * 100_000 + b"1" + b"}" * 100_000, id="objects-100k-deep"),
        pytest.param(b'{"topic": ' + b"[" * 40 + b"]" * 40 + b"}", id="past-the-limit"),
    ],
)
def test_deep_nesting_is_an_input_error_naming_the_input(raw: bytes) -> None:
    with pytest.raises(InputError) as info:
        parse_analysis(raw, max_bytes=10_000_000)
    assert info.value.headline == "input is nested too deeply"
    assert info.value.problems[0][0] == "$"


def test_a_repeated_key_is_an_input_error_naming_its_path() -> None:
    raw = b'{"topic": "a", "sections": [{"title": "x", "key_concepts": ["k"], "title": "y"}], "topic": "b"}'
    with pytest.raises(InputError) as info:
        parse_analysis(raw, max_bytes=10_000)
    assert info.value.problems == [("$.topic", "duplicate key 'topic' (each key may appear once)")]
    inner = b'{"topic": "a", "sections": [{"title": "x", "key_concepts": ["k"], "title": "y"}]}'
    with pytest.raises(InputError) as info:
        parse_analysis(inner, max_bytes=10_000)
    assert info.value.problems == [
        ("$.sections[0].title", "duplicate key 'title' (each key may appear once)")
    ]
