"""Task identity: the key format is a protocol (checkpoints depend on it), pinned here."""

from __future__ import annotations

import pytest

from courseforge.domain.tasks import TaskId, step_key

PINNED = [
    (TaskId("metadata_core"), "metadata_core"),
    (TaskId("metadata_extras"), "metadata_extras"),
    (TaskId.lesson_task("S1-L2"), "lesson:S1-L2"),
    (TaskId.lesson_task("S1-L2", round=1), "lesson:S1-L2/r1"),
    (TaskId.lesson_task("S12-L10", round=3), "lesson:S12-L10/r3"),
    (TaskId.lesson_task("S2-L1", tag="review-3f2a9c1d0e-1"), "lesson:S2-L1/review-3f2a9c1d0e-1"),
    (TaskId.lesson_task("S1-L2").with_sample(2), "lesson:S1-L2#s2"),
    (TaskId.lesson_task("S1-L2", round=1).with_sample(3), "lesson:S1-L2/r1#s3"),
    (TaskId.judge_task("S1-L2", "3f2a9c1d"), "judge:S1-L2:3f2a9c1d"),
    (TaskId.judge_task("S1-L2", "3f2a9c1d", strong=True), "judge_strong:S1-L2:3f2a9c1d"),
    (TaskId("gaps", round=1), "gaps/r1"),
]


@pytest.mark.parametrize(("task", "key"), PINNED, ids=[k for _, k in PINNED])
def test_key_format_is_pinned_and_parses_back(task: TaskId, key: str) -> None:
    assert task.key() == key == str(task)
    assert TaskId.parse(key) == task


def test_step_key_format_is_pinned() -> None:
    task = TaskId.lesson_task("S1-L2", round=1)
    assert step_key("completeness", task, 2, "mid") == "completeness/lesson:S1-L2/r1/2/mid"
    assert step_key("metadata", TaskId("metadata_core"), 1, "premium") == "metadata/metadata_core/1/premium"


def test_a_sample_belongs_to_its_generation() -> None:
    sample = TaskId.lesson_task("S1-L2", round=2).with_sample(2)
    assert sample.base == TaskId.lesson_task("S1-L2", round=2)
    assert sample.lesson == "S1-L2" and sample.round == 2


@pytest.mark.parametrize(
    "text",
    [
        "",
        "lesson",
        "lesson:",
        "lesson:S1-L2/r0",  # round 0 is written without a suffix
        "lesson:S1-L2/r01",
        "lesson:S1-L2#s1",  # the first sample has no number
        "lesson:S1 L2",
        "judge:S1-L2",  # a judge task names the text it judged
        "metadata_core:x",
        "review:S1-L2",
    ],
)
def test_what_key_cannot_produce_does_not_parse(text: str) -> None:
    with pytest.raises(ValueError):
        TaskId.parse(text)


@pytest.mark.parametrize(
    "make",
    [
        lambda: TaskId("lesson"),  # no lesson id
        lambda: TaskId("metadata_core", "S1-L1"),
        lambda: TaskId.lesson_task("S1-L1", round=1, tag="review-1"),
        lambda: TaskId.lesson_task("S1-L1", tag="r2"),  # a tag that reads as a round
        lambda: TaskId("judge", "S1-L1"),  # no digest
        lambda: TaskId.lesson_task("S1-L1").with_sample(1),
        lambda: TaskId("nope"),  # type: ignore[arg-type]
    ],
)
def test_invalid_task_ids_are_refused(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


def test_lesson_subjects_and_outcome_ids_are_built_and_read_in_one_place() -> None:
    from courseforge.domain.tasks import lesson_key, lesson_of, outcome_id, outcome_number, subject_kind

    assert lesson_key("S1-L2") == TaskId.lesson_task("S1-L2").key() == "lesson:S1-L2"
    assert lesson_of("lesson:S1-L2/r1") == lesson_of("lesson:S1-L2#s2") == "S1-L2"
    assert lesson_of(lesson_key("an odd id")) == "an odd id"  # a hand-written course's lesson
    assert lesson_of("course") is None and lesson_of("judge:S1-L2:ab12") is None
    assert [subject_kind(k) for k in ("judge:S1-L2:ab12", "metadata_core", "gaps/r1", "course")] == [
        "judge",
        "metadata_core",
        "gaps",
        "course",
    ]
    assert outcome_id(3) == "LO3" and outcome_number("LO12") == 12
    for bad in ("L3", "LO", "LOx", "lo3"):
        with pytest.raises(ValueError, match="not an outcome id"):
            outcome_number(bad)
    with pytest.raises(ValueError):
        outcome_id(0)
