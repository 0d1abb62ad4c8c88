"""Exercise banks: `gift` (Moodle's GIFT text format) and `moodle-xml` (Moodle XML question
format), one category per lesson."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from ..domain import Course
from ._base import ExportFormat, ExportResult, QuizItem, quiz_items, write_text_atomic

__all__ = ["GIFT", "MOODLE_XML", "export_gift", "export_moodle_xml", "gift_text", "moodle_xml_text"]

_GIFT_SPECIAL = re.compile(r"([~=#{}:\\])")


def _g(text: str) -> str:
    """GIFT-escaped text on one line (newlines as \\n, as GIFT writes them)."""
    return _GIFT_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _h(text: str) -> str:
    """Text for a field GIFT imports as HTML (the question marked `[html]`, its choices and
    feedback): `<`, `>` and `&` as entities, then GIFT's own escapes; so a question about
    `<script>` shows the tag as text instead of putting it into the LMS's page."""
    return _g(html.escape(text, quote=False))


def _category(course: Course, lesson_title: str) -> str:
    """`$course$/COURSE/LESSON`: names HTML-escaped, a `/` inside a name doubled (Moodle's
    category path splits at a single one), on one line."""
    names = [course.metadata.course_title, lesson_title]
    return "$course$/" + "/".join(
        " ".join(html.escape(n, quote=False).split()).replace("/", "//") for n in names
    )


def _gift_question(item: QuizItem) -> str:
    ex = item.exercise
    head = f"::{_g(ex.id)}:: [html]{_h(ex.question)}"
    feedback = f"####{_h(ex.explanation)}" if ex.explanation.strip() else ""
    if ex.type == "multiple_choice":
        answers = [f"{'=' if i == item.correct else '~'}{_h(o)}" for i, o in enumerate(item.options)]
        return head + " {\n" + "\n".join(answers) + (f"\n{feedback}" if feedback else "") + "\n}"
    if ex.type == "true_false":
        return head + " {" + ("TRUE" if item.correct == 0 else "FALSE") + feedback + "}"
    if ex.type == "short_answer":
        # A short answer is compared with what the learner types, as plain text: no entities.
        return head + " {=" + _g(ex.answer) + feedback + "}"
    # Essay: the model answer goes to the general feedback, for whoever grades it.
    model = _h(f"Model answer: {ex.answer} {ex.explanation}")
    return head + " {####" + model + "}"


def gift_text(course: Course, items: dict[str, list[QuizItem]]) -> tuple[str, int]:
    blocks: list[str] = []
    count = 0
    for lesson in course.lessons():
        keyed = items.get(lesson.id, [])
        if not keyed:
            continue
        blocks.append(f"$CATEGORY: {_category(course, lesson.title)}")
        for item in keyed:
            blocks.append(_gift_question(item))
            count += 1
    return "\n\n".join(blocks) + "\n", count


def _export_bank(
    course: Course,
    out: Path,
    fmt: ExportFormat,
    render: Callable[[Course, dict[str, list[QuizItem]]], tuple[str, int]],
) -> ExportResult:
    result = ExportResult(fmt.name, out, fmt.type_map)
    text, result.exercises = render(course, quiz_items(course, fmt, result.issues))
    write_text_atomic(out, text)
    result.lessons, result.files = len(course.lessons()), [out.name]
    return result


def export_gift(course: Course, out: Path) -> ExportResult:
    return _export_bank(course, out, GIFT, gift_text)


def _text(parent: ET.Element, tag: str, text: str, *, html_format: bool = False) -> ET.Element:
    node = ET.SubElement(parent, tag, {"format": "html"} if html_format else {})
    ET.SubElement(node, "text").text = text
    return node


def _answer(parent: ET.Element, fraction: int, text: str, feedback: str = "") -> None:
    node = ET.SubElement(parent, "answer", {"fraction": str(fraction), "format": "plain_text"})
    ET.SubElement(node, "text").text = text
    _text(node, "feedback", feedback, html_format=True)


def _moodle_question(quiz: ET.Element, item: QuizItem) -> None:
    ex = item.exercise
    kind = {"multiple_choice": "multichoice", "true_false": "truefalse", "short_answer": "shortanswer"}.get(
        ex.type, "essay"
    )
    q = ET.SubElement(quiz, "question", {"type": kind})
    _text(q, "name", ex.id)
    _text(q, "questiontext", f"<p>{_escape(ex.question)}</p>", html_format=True)
    _text(q, "generalfeedback", f"<p>{_escape(ex.explanation)}</p>", html_format=True)
    ET.SubElement(q, "defaultgrade").text = "1"
    ET.SubElement(q, "penalty").text = "0"
    ET.SubElement(q, "hidden").text = "0"
    if kind == "multichoice":
        ET.SubElement(q, "single").text = "true"
        ET.SubElement(q, "shuffleanswers").text = "true"
        ET.SubElement(q, "answernumbering").text = "abc"
        for i, option in enumerate(item.options):
            _answer(q, 100 if i == item.correct else 0, option)
    elif kind == "truefalse":
        _answer(q, 100 if item.correct == 0 else 0, "true")
        _answer(q, 100 if item.correct == 1 else 0, "false")
    elif kind == "shortanswer":
        ET.SubElement(q, "usecase").text = "0"
        _answer(q, 100, ex.answer.strip())
    else:
        ET.SubElement(q, "responseformat").text = "monospaced" if ex.type == "coding" else "editor"
        ET.SubElement(q, "responserequired").text = "1"
        ET.SubElement(q, "responsefieldlines").text = "15"
        ET.SubElement(q, "attachments").text = "0"
        _text(q, "graderinfo", f"<p>Model answer: {_escape(ex.answer)}</p>", html_format=True)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def moodle_xml_text(course: Course, items: dict[str, list[QuizItem]]) -> tuple[str, int]:
    quiz = ET.Element("quiz")
    count = 0
    for lesson in course.lessons():
        keyed = items.get(lesson.id, [])
        if not keyed:
            continue
        category = ET.SubElement(quiz, "question", {"type": "category"})
        _text(category, "category", _category(course, lesson.title))
        for item in keyed:
            _moodle_question(quiz, item)
            count += 1
    ET.indent(quiz)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(quiz, encoding="unicode") + "\n", count


def export_moodle_xml(course: Course, out: Path) -> ExportResult:
    return _export_bank(course, out, MOODLE_XML, moodle_xml_text)


MOODLE_XML = ExportFormat(
    "moodle-xml",
    "file",
    "xml",
    "application/xml",
    {
        "multiple_choice": "multichoice (single)",
        "true_false": "truefalse",
        "short_answer": "shortanswer",
        "coding": "essay (ungraded; model answer as grader information)",
        "open": "essay (ungraded; model answer as grader information)",
    },
    lambda course, out, _options: export_moodle_xml(course, out),
)
GIFT = ExportFormat(
    "gift",
    "file",
    "gift",
    "text/plain; charset=utf-8",
    {
        "multiple_choice": "multiple choice {=right ~wrong}",
        "true_false": "true/false {TRUE} / {FALSE}",
        "short_answer": "short answer {=answer}",
        "coding": "essay {} (ungraded; model answer as general feedback)",
        "open": "essay {} (ungraded; model answer as general feedback)",
    },
    lambda course, out, _options: export_gift(course, out),
)
