"""Cross-artifact consistency of a whole course (no seed has it; issue 12):

- every exercise is answerable from its own lesson: the answer key's support (question and
  answer as one statement; a true/false item's statement) is found in the lesson text, by the
  grounding check's own means (embedding cosine to the lesson's sentence windows, helped by the
  share of content words found) — an exercise whose support is clearly absent is flagged;
- every learning outcome is taught by a lesson and assessed by an exercise;
- the lessons follow the plan's prerequisite order: sections and lessons appear in the order of
  `metadata.course_structure`, and no exercise assesses an outcome first taught in a later
  lesson (it would test what has not been taught yet).

Each problem names the lesson, the exercise (when there is one) and the reason.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ..domain import Course
from ..domain.tasks import lesson_key
from ..providers.base import Embedder
from .grounding import ClaimSupport, ground_claims

__all__ = ["CrossProblem", "cross_artifact_problems", "unanswerable"]


class _Question(Protocol):
    @property
    def question(self) -> str: ...
    @property
    def answer(self) -> str: ...
    @property
    def type(self) -> str: ...


@dataclass(frozen=True, slots=True)
class CrossProblem:
    lesson: str
    exercise: str
    reason: str
    #: "answerable" | "taught" | "assessed" | "order"
    kind: str

    @property
    def target(self) -> str:
        return lesson_key(self.lesson) if self.lesson else "course"


def _support_statement(question: str, answer: str, kind: str) -> str:
    if kind == "true_false":
        return question
    return f"{question} {answer}"


async def unanswerable(
    content: str,
    exercises: Sequence[_Question],
    embedder: Embedder,
    *,
    supported: float,
    unsupported: float,
    lesson_id: str = "lesson",
) -> list[tuple[int, ClaimSupport]]:
    """(index, support) of each of `exercises` whose answer key's support is clearly absent from
    `content`: what the course check below flags, and what phase 4 asks again first."""
    if not exercises:
        return []
    statements = [_support_statement(e.question, e.answer, e.type) for e in exercises]
    support = await ground_claims(
        statements, {lesson_id: content}, embedder, supported=supported, unsupported=unsupported
    )
    return [(i, s) for i, s in enumerate(support) if s.status == "unsupported"]


async def cross_artifact_problems(
    course: Course, embedder: Embedder, *, supported: float, unsupported: float
) -> list[CrossProblem]:
    problems: list[CrossProblem] = []
    lessons = course.lessons()
    # 1. every exercise answerable from its lesson
    for lesson in lessons:
        absent = await unanswerable(
            lesson.content,
            lesson.exercises,
            embedder,
            supported=supported,
            unsupported=unsupported,
            lesson_id=lesson.id,
        )
        for i, s in absent:
            exercise = lesson.exercises[i]
            problems.append(
                CrossProblem(
                    lesson.id,
                    exercise.id,
                    f"exercise {exercise.id} is not answerable from lesson {lesson.id}: its answer "
                    f"key's support is not in the lesson text (cosine {s.cosine:.2f}, "
                    f"words found {s.lexical:.0%})",
                    "answerable",
                )
            )
    # 2. every outcome taught and assessed
    taught: dict[str, str] = {}
    assessed: set[str] = set()
    for lesson in lessons:
        for o in lesson.outcome_ids:
            taught.setdefault(o, lesson.id)
        for e in lesson.exercises:
            assessed.update(e.outcome_ids)
    for outcome in course.metadata.learning_outcomes:
        if outcome.id not in taught:
            problems.append(CrossProblem("", "", f"outcome {outcome.id} is taught by no lesson", "taught"))
        elif outcome.id not in assessed:
            problems.append(
                CrossProblem(
                    taught[outcome.id],
                    "",
                    f"outcome {outcome.id} is taught by {taught[outcome.id]} but assessed by no exercise",
                    "assessed",
                )
            )
    # 3. prerequisite order of the plan
    planned = [lp.id for plan in course.metadata.course_structure for lp in plan.lessons]
    rank = {lesson_id: i for i, lesson_id in enumerate(planned)}
    present = [lesson.id for lesson in lessons if lesson.id in rank]
    for before, after in itertools.pairwise(present):
        if rank[after] < rank[before]:
            problems.append(
                CrossProblem(
                    after, "", f"lesson {after} comes after {before} but the plan puts it before", "order"
                )
            )
    position = {lesson.id: i for i, lesson in enumerate(lessons)}
    for lesson in lessons:
        for e in lesson.exercises:
            for o in e.outcome_ids:
                first = taught.get(o)
                if first is not None and position[first] > position[lesson.id]:
                    problems.append(
                        CrossProblem(
                            lesson.id,
                            e.id,
                            f"exercise {e.id} assesses {o}, first taught later in {first}",
                            "order",
                        )
                    )
    return problems
