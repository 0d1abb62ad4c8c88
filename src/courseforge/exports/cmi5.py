"""`cmi5`: a cmi5 course package (a zip with `cmi5.xml`, one AU per lesson, blocks per section).

Each AU is the lesson page with its quiz and `courseforge-au.js`: the minimal cmi5 launch
handshake (the launch URL's `fetch` for an auth token, `LMS.LaunchData` from the LRS's State
API when there is one) and xAPI statements to the LRS the launch URL's `endpoint` names:
"initialized"; on submit one "answered" per graded question, "passed"/"failed" (scaled score
against the mastery score), "completed", "terminated". "launched" is the LMS's statement, as
cmi5 prescribes. Ids are IRIs under `urn:courseforge:` (docs/exports.md).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path

from ..domain import Course
from ..errors import UserError
from ._base import ExportFormat, ExportResult, QuizItem, atomic_zip, ident, quiz_items, to_xml
from .pages import lesson_body_html, page

__all__ = ["AU_DATA", "AU_SCRIPT", "CMI5", "CMI5_NS", "LIBRARY_SCRIPT", "au_id", "export_cmi5"]

CMI5_NS = "https://w3id.org/xapi/profiles/cmi5/v1/CourseStructure.xsd"
AU_SCRIPT = "courseforge-au.js"
#: @xapi/cmi5's browser bundle, in the package when `exports.cmi5_library` names it.
LIBRARY_SCRIPT = "xapi-cmi5.js"
AU_DATA = "courseforge-au-data"


def au_id(course: Course, *parts: str) -> str:
    """The IRI of the course, a block or an AU: `urn:courseforge:<course id>[:<part>...]`."""
    return ":".join(["urn:courseforge", *(ident(p)[2:] for p in (course.course_id, *parts))])


def _au_data(mastery: float, items: list[QuizItem]) -> str:
    key = {
        ident(i.lesson_id, i.exercise.id): (str(i.correct) if i.correct is not None else i.exercise.answer)
        for i in items
        if i.graded
    }
    text = json.dumps({"mastery": mastery, "key": key}, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _au_page(title: str, body: str, mastery: float, items: list[QuizItem], library: bool) -> str:
    tail = (
        '<p><button id="au-submit" type="button">Submit and finish</button></p>'
        '<p id="au-status" class="result" role="status"></p>'
        f'<script type="application/json" id="{AU_DATA}">{_au_data(mastery, items)}</script>'
        + (f'<script src="{LIBRARY_SCRIPT}"></script>' if library else "")
        + f'<script src="{AU_SCRIPT}"></script>'
    )
    return page(title, body + tail)


def _text(parent: ET.Element, tag: str, text: str, lang: str) -> None:
    node = ET.SubElement(parent, f"{{{CMI5_NS}}}{tag}")
    ET.SubElement(node, f"{{{CMI5_NS}}}langstring", lang=lang).text = text


def _structure(course: Course, mastery: float, hrefs: dict[str, str], lang: str) -> str:
    def q(tag: str) -> str:
        return f"{{{CMI5_NS}}}{tag}"

    root = ET.Element(q("courseStructure"))
    head = ET.SubElement(root, q("course"), id=au_id(course))
    _text(head, "title", course.metadata.course_title, lang)
    _text(head, "description", course.metadata.description, lang)
    for section in course.sections:
        if not section.lessons:
            continue
        block = ET.SubElement(root, q("block"), id=au_id(course, section.id))
        _text(block, "title", section.title, lang)
        _text(block, "description", section.title, lang)
        for lesson in section.lessons:
            au = ET.SubElement(
                block,
                q("au"),
                id=au_id(course, lesson.id),
                moveOn="CompletedAndPassed",
                masteryScore=f"{mastery / 100:g}",
                launchMethod="AnyWindow",
            )
            _text(au, "title", lesson.title, lang)
            _text(au, "description", lesson.title, lang)
            ET.SubElement(au, q("url")).text = hrefs[lesson.id]
    return to_xml(root, {CMI5_NS: ""})


def _library(path: Path | None) -> bytes | None:
    """@xapi/cmi5's browser bundle (`exports.cmi5_library`), read before anything is written."""
    if path is None:
        return None
    try:
        bundle = path.read_bytes()
    except OSError as exc:
        raise UserError(
            "cmi5 library missing",
            [("exports.cmi5_library", f"{path}: {exc.strerror or exc} (make deps-npm installs it)")],
        ) from exc
    if b"Cmi5" not in bundle[:2000]:
        raise UserError(
            "not the cmi5 library", [("exports.cmi5_library", f"{path} is not @xapi/cmi5's Cmi5.umd.js")]
        )
    return bundle


def export_cmi5(
    course: Course, out: Path, mastery: float, lang: str = "en", *, library: Path | None = None
) -> ExportResult:
    """The package; with `library` (@xapi/cmi5's `Cmi5.umd.js`) the AUs speak cmi5 through it,
    else through our own handshake (`cmi5.js` does both)."""
    bundle = _library(library)
    result = ExportResult("cmi5", out, CMI5.type_map)
    items = quiz_items(course, CMI5, result.issues)
    members: dict[str, str | bytes] = {}
    hrefs: dict[str, str] = {}
    for lesson in course.lessons():
        keyed = items.get(lesson.id, [])
        hrefs[lesson.id] = f"{ident(lesson.id)[2:]}.html"
        members[hrefs[lesson.id]] = _au_page(
            lesson.title,
            lesson_body_html(lesson, keyed, interactive=True),
            mastery,
            keyed,
            bundle is not None,
        )
        result.lessons += 1
        result.exercises += len(keyed)
    members[AU_SCRIPT] = resources.files(__package__).joinpath("cmi5.js").read_bytes()
    if bundle is not None:
        members[LIBRARY_SCRIPT] = bundle
    result.files = atomic_zip(out, {"cmi5.xml": _structure(course, mastery, hrefs, lang), **members})
    return result


CMI5 = ExportFormat(
    "cmi5",
    "zip",
    "zip",
    "application/zip",
    {
        "multiple_choice": "radio buttons, scored; an xAPI answered statement",
        "true_false": "true/false radio buttons, scored; an xAPI answered statement",
        "short_answer": "text field, scored (exact match, case and spaces ignored); an xAPI answered statement",
        "coding": "text area (ungraded: model answer shown after submit)",
        "open": "text area (ungraded: model answer shown after submit)",
    },
    lambda course, out, options: export_cmi5(
        course, out, options.mastery_score, library=options.cmi5_library
    ),
)
