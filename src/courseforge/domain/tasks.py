"""Task identity: what a model call is for, as one typed value.

A task names the unit of work a call belongs to (the course metadata, one lesson, one judge
verdict). Its string form (`TaskId.key()`) is written into every call record and decision and
into the checkpoint step key (`step_key`), so a resumed job finds the calls it already paid for.
The format below is therefore a protocol: `tests/domain/test_tasks.py` pins it, and a change to
it needs a store migration.

    metadata_core                  the critical metadata (outcomes, strategy, structure)
    metadata_extras                the non-critical metadata fields
    lesson:S1-L2                   a lesson's first generation
    lesson:S1-L2/r1                ... sent back once (phase 4 or 5; r counts its regenerations)
    lesson:S1-L2/review-ab12-1     ... generated again at a reviewer's request (a tag)
    lesson:S1-L2#s2                ... its second self-consistency sample (any form above + #sK)
    judge:S1-L2:3f2a9c1d           the judge's verdict on one text of the lesson (content digest)
    judge_strong:S1-L2:3f2a9c1d    the stronger judge's verdict on the same text
    gaps/r1                        phase 5's plan of the lessons missing in its first round
    exercises:S1-L2                a lesson's exercises written apart (`routing.exercises_tier`;
                                   rounds and tags as the lesson's: exercises:S1-L2/r1)
    lesson_group:S1                section 1's lessons asked in one request (`routing.group_lessons`)

A step key is `phase/task/attempt/tier` (e.g. `lessons/lesson:S1-L2/2/mid`).

A lesson as a subject — a review flag's target, a decision about the lesson rather than one of
its attempts — is named by its first generation's key (`lesson_key`), and read back with
`lesson_of`; a learning outcome's id is `LO<n>` (`outcome_id`, `outcome_number`). Nothing else
builds or splits these strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal, NewType, get_args

__all__ = [
    "OutcomeId",
    "TaskId",
    "TaskKind",
    "lesson_key",
    "lesson_of",
    "outcome_id",
    "outcome_number",
    "step_key",
    "subject_kind",
]

TaskKind = Literal[
    "metadata_core", "metadata_extras", "lesson", "judge", "judge_strong", "gaps", "exercises", "lesson_group"
]
_KINDS: tuple[TaskKind, ...] = get_args(TaskKind)
#: Kinds whose key carries a lesson's rounds and tags (`lesson:S1-L2/r1`, `exercises:S1-L2/r1`).
_LESSON_LIKE = ("lesson", "exercises")
_ROUND = re.compile(r"r(\d+)")
_SUBJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True, slots=True)
class TaskId:
    kind: TaskKind
    #: The lesson id, for lesson, exercises and judge tasks (the section, `S1`, for lesson_group).
    lesson: str = ""
    #: How many times the lesson was sent back before this generation (0: its first).
    round: int = 0
    #: Names a generation outside the phases (a reviewer's request); excludes `round`.
    tag: str = ""
    #: Self-consistency sample number (2, 3, ...); 0 for the first or only answer.
    sample: int = 0
    #: Judge tasks: a digest of the judged text, so each text has its own verdict.
    digest: str = ""

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown task kind {self.kind!r}")
        needs_lesson = self.kind in ("lesson", "judge", "judge_strong", *_LESSON_LIKE, "lesson_group")
        if needs_lesson != bool(self.lesson):
            raise ValueError(f"{self.kind} task {'needs' if needs_lesson else 'takes no'} lesson id")
        if self.lesson and not _SUBJECT.fullmatch(self.lesson):
            raise ValueError(f"lesson id {self.lesson!r} is not a plain id")
        if self.round < 0 or self.sample < 0 or self.sample == 1:
            raise ValueError("round counts from 0; samples are numbered from 2")
        if (self.kind not in _LESSON_LIKE and self.tag) or (self.kind != "lesson" and self.sample):
            raise ValueError("only lesson tasks have tags and samples (exercises tasks: tags)")
        if self.kind not in (*_LESSON_LIKE, "gaps") and self.round:
            raise ValueError("only lesson and gaps tasks have rounds")
        if self.tag and (self.round or not _SUBJECT.fullmatch(self.tag) or _ROUND.fullmatch(self.tag)):
            raise ValueError(f"tag {self.tag!r} must be a plain name and excludes a round")
        if (self.kind in ("judge", "judge_strong")) != bool(self.digest):
            raise ValueError("judge tasks, and only they, carry a digest")

    @classmethod
    def lesson_task(cls, lesson: str, *, round: int = 0, tag: str = "") -> TaskId:
        return cls("lesson", lesson, round=round, tag=tag)

    @classmethod
    def judge_task(cls, lesson: str, digest: str, *, strong: bool = False) -> TaskId:
        return cls("judge_strong" if strong else "judge", lesson, digest=digest)

    def exercises(self) -> TaskId:
        """The task of this lesson generation's exercises, written apart (same round or tag)."""
        return TaskId("exercises", self.lesson, round=self.round, tag=self.tag)

    @classmethod
    def group_task(cls, section_index: int) -> TaskId:
        """The request holding a section's lessons (0-based `section_index`)."""
        return cls("lesson_group", f"S{section_index + 1}")

    def with_sample(self, sample: int) -> TaskId:
        return replace(self, sample=sample)

    @property
    def base(self) -> TaskId:
        """The same task without its sample number (the generation it belongs to)."""
        return replace(self, sample=0)

    def key(self) -> str:
        """The string form: in call records, decisions and checkpoint step keys."""
        if self.kind in ("metadata_core", "metadata_extras"):
            return self.kind
        if self.kind == "gaps":
            return f"gaps/r{self.round}" if self.round else "gaps"
        if self.kind == "lesson_group":
            return f"lesson_group:{self.lesson}"
        if self.kind not in _LESSON_LIKE:
            return f"{self.kind}:{self.lesson}:{self.digest}"
        text = f"{self.kind}:{self.lesson}"
        if self.tag:
            text += f"/{self.tag}"
        elif self.round:
            text += f"/r{self.round}"
        return f"{text}#s{self.sample}" if self.sample else text

    def __str__(self) -> str:
        return self.key()

    @classmethod
    def parse(cls, text: str) -> TaskId:
        """The inverse of `key()`; ValueError for anything `key()` cannot produce."""
        if text in ("metadata_core", "metadata_extras", "gaps"):
            return cls(text)  # type: ignore[arg-type]
        if text.startswith("gaps/") and (match := _ROUND.fullmatch(text.removeprefix("gaps/"))):
            task = cls("gaps", round=int(match.group(1)))
            if task.key() != text:
                raise ValueError(f"not a canonical task id: {text!r}")
            return task
        kind, sep, rest = text.partition(":")
        if not sep:
            raise ValueError(f"not a task id: {text!r}")
        if kind in ("judge", "judge_strong"):
            lesson, _, digest = rest.partition(":")
            return cls(kind, lesson, digest=digest)  # type: ignore[arg-type]
        if kind == "lesson_group":
            try:
                group = cls("lesson_group", rest)
            except ValueError as exc:
                raise ValueError(f"not a task id: {text!r} ({exc})") from None
            return group
        if kind not in _LESSON_LIKE:
            raise ValueError(f"not a task id: {text!r}")
        rest, _, sample = rest.partition("#s")
        lesson, _, suffix = rest.partition("/")
        round_, tag = 0, ""
        if match := _ROUND.fullmatch(suffix):
            round_ = int(match.group(1))
        else:
            tag = suffix
        try:
            task = cls(kind, lesson, round=round_, tag=tag, sample=int(sample) if sample else 0)  # type: ignore[arg-type]
        except ValueError as exc:
            raise ValueError(f"not a task id: {text!r} ({exc})") from None
        if task.key() != text:
            raise ValueError(f"not a canonical task id: {text!r}")
        return task


def step_key(phase: str, task: TaskId, attempt: int, tier: str) -> str:
    """The identity under which a finished call is checkpointed and replayed."""
    return f"{phase}/{task.key()}/{attempt}/{tier}"


_LESSON_PREFIX = "lesson:"


def lesson_key(lesson_id: str) -> str:
    """Lesson `lesson_id` as a subject (`lesson:S1-L2`): the key of its first generation
    (`TaskId.lesson_task(lesson_id).key()`) for any id a course may carry, even one a task id
    would refuse (a hand-written course checked by `courseforge check`)."""
    return f"{_LESSON_PREFIX}{lesson_id}"


def lesson_of(key: str) -> str | None:
    """The lesson a lesson task key or review target names (`lesson:S1-L2/r1` -> `S1-L2`);
    None for any other subject ("course", "metadata_core", a judge task)."""
    try:
        task = TaskId.parse(key)
    except ValueError:
        return key.removeprefix(_LESSON_PREFIX) if key.startswith(_LESSON_PREFIX) else None
    return task.lesson if task.kind in _LESSON_LIKE else None


def subject_kind(key: str) -> str:
    """The kind of task a decision's subject is (`judge:S1-L2:ab12` -> "judge"), or the
    subject itself when it is no task ("course")."""
    try:
        return TaskId.parse(key).kind
    except ValueError:
        return key.partition(":")[0]


#: A learning outcome's id: `LO<n>`, n its 1-based number in the course's outcomes.
OutcomeId = NewType("OutcomeId", str)
_OUTCOME = re.compile(r"LO([1-9][0-9]*)")


def outcome_id(number: int) -> OutcomeId:
    if number < 1:
        raise ValueError(f"outcome numbers count from 1, not {number}")
    return OutcomeId(f"LO{number}")


def outcome_number(oid: str) -> int:
    """The number of outcome id `oid` (`LO3` -> 3); ValueError for anything else."""
    match = _OUTCOME.fullmatch(oid)
    if match is None:
        raise ValueError(f"not an outcome id: {oid!r} (expected LO<n>)")
    return int(match.group(1))
