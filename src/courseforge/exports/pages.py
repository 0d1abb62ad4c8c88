"""`markdown` (a folder, one file per lesson) and `html` (a static, self-contained site), and
the lesson HTML the SCORM and Common Cartridge packages reuse."""

from __future__ import annotations

from pathlib import Path

from ..domain import Course, Lesson
from ..domain.tasks import lesson_key
from ..safehtml import esc, markdown_html
from ._base import ExportFormat, ExportResult, QuizItem, atomic_dir, ident, quiz_items

__all__ = [
    "CSS",
    "HTML",
    "MARKDOWN",
    "export_html",
    "export_markdown",
    "lesson_body_html",
    "lesson_markdown",
    "page",
]

CSS = (
    "body{font:16px/1.55 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "nav a{margin-right:1rem}pre{background:#f4f4f4;padding:.75rem;overflow:auto}"
    ".exercise{border-top:1px solid #ddd;margin-top:1.5rem;padding-top:.5rem}"
    ".result{font-weight:bold}"
)


def _file(lesson: Lesson, ext: str) -> str:
    return f"{ident(lesson.id)[2:]}.{ext}"


def lesson_markdown(course: Course, lesson: Lesson) -> str:
    lines = [f"# {lesson.title}", "", lesson.content.strip(), ""]
    if lesson.exercises:
        lines += ["## Exercises", ""]
    for n, ex in enumerate(lesson.exercises, start=1):
        lines += [f"### {n}. {ex.question.strip()}", "", f"*Type: {ex.type.replace('_', ' ')}*", ""]
        for option in ex.options or []:
            lines.append(f"- {option}")
        if ex.options:
            lines.append("")
        lines += [f"**Answer:** {ex.answer.strip()}", "", f"**Explanation:** {ex.explanation.strip()}", ""]
    if lesson.citations:
        lines += ["## Sources", ""] + [
            f"- {c.source_id}" + (f": “{c.quote}”" if c.quote else "") for c in lesson.citations
        ]
        lines.append("")
    return "\n".join(lines)


def export_markdown(course: Course, out: Path) -> ExportResult:
    result = ExportResult("markdown", out, MARKDOWN.type_map)
    with atomic_dir(out) as tmp:
        index = [f"# {course.metadata.course_title}", "", course.metadata.description.strip(), ""]
        for section in course.sections:
            index += [f"## {section.title}", ""]
            for lesson in section.lessons:
                name = _file(lesson, "md")
                (tmp / name).write_text(lesson_markdown(course, lesson), "utf-8")
                result.files.append(name)
                index.append(f"- [{lesson.title}]({name})")
                result.lessons += 1
                result.exercises += len(lesson.exercises)
            index.append("")
        (tmp / "README.md").write_text("\n".join(index), "utf-8")
        result.files.insert(0, "README.md")
    return result


def page(title: str, body: str, head: str = "") -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{CSS}</style>{head}</head>"
        f"<body>{body}</body></html>\n"
    )


def _exercise_html(n: int, item: QuizItem, *, interactive: bool) -> str:
    ex = item.exercise
    name = ident(item.lesson_id, ex.id)
    parts = [
        f'<div class="exercise" data-type="{ex.type}" data-name="{name}">',
        f"<p><strong>{n}.</strong> {esc(ex.question)}</p>",
    ]
    if interactive:
        if ex.type in ("multiple_choice", "true_false"):
            for i, option in enumerate(item.options):
                parts.append(
                    f'<label><input type="radio" name="{name}" value="{i}"> {esc(option)}</label><br>'
                )
        elif ex.type == "short_answer":
            parts.append(f'<input type="text" name="{name}" size="40">')
        else:
            parts.append(f'<textarea name="{name}" rows="6" cols="60"></textarea>')
    else:
        parts += [f"<ul>{''.join(f'<li>{esc(o)}</li>' for o in ex.options or [])}</ul>" if ex.options else ""]
    parts.append(
        f'<details class="answer"{"" if not interactive else " hidden"}><summary>Answer</summary>'
        f"<p>{esc(ex.answer)}</p><p>{esc(ex.explanation)}</p></details>"
    )
    parts.append("</div>")
    return "".join(parts)


def lesson_body_html(lesson: Lesson, items: list[QuizItem], *, interactive: bool = False) -> str:
    body = [f"<h1>{esc(lesson.title)}</h1>", markdown_html(lesson.content)]
    if items:
        body.append("<h2>Exercises</h2>")
        body += [_exercise_html(n, item, interactive=interactive) for n, item in enumerate(items, start=1)]
    return "".join(body)


def export_html(course: Course, out: Path) -> ExportResult:
    result = ExportResult("html", out, HTML.type_map)
    by_lesson = quiz_items(course, HTML, [])  # every exercise is shown, none needs a key here
    lessons = course.lessons()
    with atomic_dir(out) as tmp:
        index = [f"<h1>{esc(course.metadata.course_title)}</h1>", markdown_html(course.metadata.description)]
        for section in course.sections:
            index.append(f"<h2>{esc(section.title)}</h2><ul>")
            for lesson in section.lessons:
                index.append(f'<li><a href="{_file(lesson, "html")}">{esc(lesson.title)}</a></li>')
            index.append("</ul>")
        (tmp / "index.html").write_text(page(course.metadata.course_title, "".join(index)), "utf-8")
        result.files.append("index.html")
        for i, lesson in enumerate(lessons):
            links = ['<nav><a href="index.html">Contents</a>']
            if i > 0:
                links.append(f'<a href="{_file(lessons[i - 1], "html")}">Previous</a>')
            if i + 1 < len(lessons):
                links.append(f'<a href="{_file(lessons[i + 1], "html")}">Next</a>')
            links.append("</nav>")
            items = _all_items(lesson, by_lesson)
            body = "".join(links) + lesson_body_html(lesson, items)
            name = _file(lesson, "html")
            (tmp / name).write_text(page(lesson.title, body), "utf-8")
            result.files.append(name)
            result.lessons += 1
            result.exercises += len(lesson.exercises)
    return result


def _all_items(lesson: Lesson, by_lesson: dict[str, list[QuizItem]]) -> list[QuizItem]:
    """Every exercise of the lesson for display, keyed or not (a page shows what a quiz cannot key)."""
    keyed = {item.exercise.id: item for item in by_lesson.get(lesson.id, [])}
    return [keyed.get(ex.id) or QuizItem(lesson_key(lesson.id), lesson.id, ex) for ex in lesson.exercises]


_EXERCISE_TYPES = ("multiple_choice", "true_false", "short_answer", "coding", "open")
MARKDOWN = ExportFormat(
    "markdown",
    "folder",
    "zip",
    "application/zip",
    {t: "text (question, options, answer, explanation)" for t in _EXERCISE_TYPES},
    lambda course, out, _options: export_markdown(course, out),
)
HTML = ExportFormat(
    "html",
    "folder",
    "zip",
    "application/zip",
    {t: "text (answer behind a disclosure)" for t in _EXERCISE_TYPES},
    lambda course, out, _options: export_html(course, out),
)
