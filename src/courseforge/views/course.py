"""A course as HTML: metadata, lessons (Markdown rendered safely), exercises with their
answers behind a disclosure, citations, and the review flags."""

from __future__ import annotations

from ..domain import Course, Exercise, Lesson
from .markup import esc, markdown_html

__all__ = ["course_html"]


def _exercise(ex: Exercise) -> str:
    options = (
        '<ol class="options" type="A">' + "".join(f"<li>{esc(o)}</li>" for o in ex.options) + "</ol>"
        if ex.options
        else ""
    )
    return (
        f'<li class="exercise" id="ex-{esc(ex.id)}"><p><span class="tag">{esc(ex.type.replace("_", " "))}</span> '
        f"{esc(ex.question)}</p>{options}"
        f"<details><summary>Show the answer</summary><p><strong>Answer:</strong> {esc(ex.answer)}</p>"
        f"<p>{esc(ex.explanation)}</p></details></li>"
    )


def _lesson(lesson: Lesson, sources: dict[str, str]) -> str:
    exercises = (
        f'<h4>Exercises</h4><ol class="exercises">{"".join(_exercise(e) for e in lesson.exercises)}</ol>'
        if lesson.exercises
        else ""
    )
    cites = ""
    if lesson.citations:
        items = "".join(
            f"<li><cite>{esc(sources.get(c.source_id, c.source_id))}</cite>"
            + (f" — <q>{esc(c.quote)}</q>" if c.quote else "")
            + "</li>"
            for c in lesson.citations
        )
        cites = f'<h4>Citations</h4><ul class="citations">{items}</ul>'
    return (
        f'<article class="lesson" id="lesson-{esc(lesson.id)}" aria-labelledby="lh-{esc(lesson.id)}">'
        f'<h3 id="lh-{esc(lesson.id)}">{esc(lesson.id)} · {esc(lesson.title)}</h3>'
        f'<div class="lesson-body">{markdown_html(lesson.content, heading_offset=3)}</div>'
        f"{exercises}{cites}</article>"
    )


def course_html(course: Course, sources: dict[str, str] | None = None) -> str:
    """The course as an HTML fragment. `sources`: source id -> a title shown for citations."""
    md = course.metadata
    names = sources or {}
    toc = "".join(
        f'<li><a href="#lesson-{esc(x.id)}">{esc(x.id)} {esc(x.title)}</a></li>' for x in course.lessons()
    )
    outcomes = "".join(
        f"<li><strong>{esc(o.id)}</strong> ({esc(o.bloom_level)}): {esc(o.text)}</li>"
        for o in md.learning_outcomes
    )
    flags = ""
    if course.review:
        flags = (
            '<section aria-labelledby="flags-h"><h2 id="flags-h">Flagged for review</h2><ul>'
            + "".join(
                f"<li><strong>{esc(f.target)}</strong> {esc(f.gate)}: {esc(f.reason)}</li>"
                for f in course.review
            )
            + "</ul></section>"
        )
    sections = "".join(
        f'<section class="course-section" aria-labelledby="sh-{esc(s.id)}"><h2 id="sh-{esc(s.id)}">'
        f"{esc(s.title)} <small>({esc(s.section_type)})</small></h2>"
        + "".join(_lesson(x, names) for x in s.lessons)
        + "</section>"
        for s in course.sections
    )
    return (
        f'<header class="course-head"><h1>{esc(md.course_title)}</h1><p>{esc(md.description)}</p>'
        f'<p class="meta">Status <strong>{esc(course.status)}</strong> · for {esc(md.target_audience)} · '
        f"about {md.time_estimate_minutes} minutes</p></header>"
        f'<nav aria-label="Lessons"><h2>Lessons</h2><ol>{toc}</ol></nav>'
        f'<section aria-labelledby="lo-h"><h2 id="lo-h">Learning outcomes</h2><ul>{outcomes}</ul></section>'
        f"{flags}{sections}"
    )
