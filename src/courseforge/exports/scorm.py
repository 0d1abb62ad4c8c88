"""`scorm12` and `scorm2004` (4th edition): a zip with imsmanifest.xml and one SCO per lesson.

Each SCO is the lesson page with its quiz and `courseforge-sco.js`, which finds the LMS API
(`API` / `API_1484_11` in a parent frame or the opener), initializes, scores the quiz when the
learner submits it (the share of graded exercises answered right, 0-100, as the raw score),
reports completion and passed/failed against the mastery score (the LMS's, else
`exports.mastery_score` from the config, also written into the manifest), then commits and
terminates. Coding and open exercises are shown with their model answer but not scored.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Literal

from ..domain import Course
from ._base import ExportFormat, ExportOptions, ExportResult, QuizItem, atomic_zip, ident, quiz_items
from .pages import lesson_body_html, page
from .qti import XSI, xml_text

__all__ = ["SCORM12", "SCORM2004", "SCO_DATA", "SCO_SCRIPT", "export_scorm", "sco_data"]

SCO_SCRIPT = "courseforge-sco.js"
#: The id of the page's `<script type="application/json">` element holding `sco_data`.
SCO_DATA = "courseforge-sco-data"
_NS = {
    "1.2": {
        "cp": "http://www.imsproject.org/xsd/imscp_rootv1p1p2",
        "adlcp": "http://www.adlnet.org/xsd/adlcp_rootv1p2",
    },
    "2004": {
        "cp": "http://www.imsglobal.org/xsd/imscp_v1p1",
        "adlcp": "http://www.adlnet.org/xsd/adlcp_v1p3",
        "imsss": "http://www.imsglobal.org/xsd/imsss",
    },
}
_SCHEMA_LOCATIONS = {
    "1.2": "http://www.imsproject.org/xsd/imscp_rootv1p1p2 imscp_rootv1p1p2.xsd "
    "http://www.adlnet.org/xsd/adlcp_rootv1p2 adlcp_rootv1p2.xsd",
    "2004": "http://www.imsglobal.org/xsd/imscp_v1p1 imscp_v1p1.xsd "
    "http://www.adlnet.org/xsd/adlcp_v1p3 adlcp_v1p3.xsd http://www.imsglobal.org/xsd/imsss imsss_v1p0.xsd",
}


def sco_data(version: str, mastery: float, key: dict[str, str]) -> str:
    """The SCO's settings and answer key as JSON that is inert inside a script element: data,
    never code (`type="application/json"`, read by `courseforge-sco.js` with JSON.parse), and
    with no `<`, `>` or `&` left (JSON's `\\u003c` escapes), so no answer — `<!--`, `<script>`,
    `</script>` in a web-development quiz — can end the element early or put the HTML parser
    into the state where it swallows the next script tag."""
    text = json.dumps({"version": version, "mastery": mastery, "key": key}, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _sco_page(lesson_title: str, body: str, version: str, mastery: float, items: list[QuizItem]) -> str:
    key = {
        ident(i.lesson_id, i.exercise.id): (str(i.correct) if i.correct is not None else i.exercise.answer)
        for i in items
        if i.graded
    }
    tail = (
        '<p><button id="sco-submit" type="button">Submit and finish</button></p>'
        '<p id="sco-status" class="result" role="status"></p>'
        f'<script type="application/json" id="{SCO_DATA}">{sco_data(version, mastery, key)}</script>'
        f'<script src="{SCO_SCRIPT}"></script>'
    )
    return page(lesson_title, body + tail)


def _manifest(course: Course, version: Literal["1.2", "2004"], mastery: float, hrefs: dict[str, str]) -> str:
    ns = _NS[version]

    def cp(tag: str) -> str:
        return f"{{{ns['cp']}}}{tag}"

    adlcp = ns["adlcp"]
    root = ET.Element(
        cp("manifest"),
        {f"{{{XSI}}}schemaLocation": _SCHEMA_LOCATIONS[version]},
        identifier=ident(course.course_id, "scorm"),
        version="1",
    )
    meta = ET.SubElement(root, cp("metadata"))
    ET.SubElement(meta, cp("schema")).text = "ADL SCORM"
    ET.SubElement(meta, cp("schemaversion")).text = "1.2" if version == "1.2" else "2004 4th Edition"
    orgs = ET.SubElement(root, cp("organizations"), default="ORG")
    org = ET.SubElement(orgs, cp("organization"), identifier="ORG")
    ET.SubElement(org, cp("title")).text = course.metadata.course_title
    res = ET.SubElement(root, cp("resources"))
    for section in course.sections:
        if not section.lessons:
            continue
        sec = ET.SubElement(org, cp("item"), identifier=ident(section.id, "section"))
        ET.SubElement(sec, cp("title")).text = section.title
        for lesson in section.lessons:
            rid = ident(lesson.id, "res")
            item = ET.SubElement(sec, cp("item"), identifier=ident(lesson.id, "item"), identifierref=rid)
            ET.SubElement(item, cp("title")).text = lesson.title
            if version == "1.2":
                ET.SubElement(item, f"{{{adlcp}}}masteryscore").text = f"{mastery:g}"
            else:
                ss = ns["imsss"]
                seq = ET.SubElement(item, f"{{{ss}}}sequencing")
                objectives = ET.SubElement(seq, f"{{{ss}}}objectives")
                primary = ET.SubElement(
                    objectives,
                    f"{{{ss}}}primaryObjective",
                    objectiveID="PRIMARYOBJ",
                    satisfiedByMeasure="true",
                )
                ET.SubElement(primary, f"{{{ss}}}minNormalizedMeasure").text = f"{mastery / 100:g}"
            type_attr = "scormtype" if version == "1.2" else "scormType"
            node = ET.SubElement(
                res,
                cp("resource"),
                {f"{{{adlcp}}}{type_attr}": "sco"},
                identifier=rid,
                type="webcontent",
                href=hrefs[lesson.id],
            )
            ET.SubElement(node, cp("file"), href=hrefs[lesson.id])
            ET.SubElement(node, cp("file"), href=SCO_SCRIPT)
    extra = {"adlcp": adlcp, **({"imsss": ns["imsss"]} if version == "2004" else {})}
    return xml_text(root, ns["cp"], **extra)


def export_scorm(course: Course, out: Path, version: Literal["1.2", "2004"], mastery: float) -> ExportResult:
    fmt = SCORM12 if version == "1.2" else SCORM2004
    result = ExportResult(fmt.name, out, fmt.type_map)
    items = quiz_items(course, fmt, result.issues)
    members: dict[str, str | bytes] = {}
    hrefs: dict[str, str] = {}
    for lesson in course.lessons():
        keyed = items.get(lesson.id, [])
        href = f"{ident(lesson.id)[2:]}.html"
        hrefs[lesson.id] = href
        members[href] = _sco_page(
            lesson.title, lesson_body_html(lesson, keyed, interactive=True), version, mastery, keyed
        )
        result.lessons += 1
        result.exercises += len(keyed)
    members[SCO_SCRIPT] = resources.files(__package__).joinpath("sco.js").read_bytes()
    result.files = atomic_zip(out, {"imsmanifest.xml": _manifest(course, version, mastery, hrefs), **members})
    return result


_TYPES = {
    "multiple_choice": "radio buttons, scored",
    "true_false": "true/false radio buttons, scored",
    "short_answer": "text field, scored (exact match, case and spaces ignored)",
    "coding": "text area (ungraded: model answer shown after submit)",
    "open": "text area (ungraded: model answer shown after submit)",
}


def _write_scorm(version: Literal["1.2", "2004"]) -> Callable[[Course, Path, ExportOptions], ExportResult]:
    return lambda course, out, options: export_scorm(course, out, version, options.mastery_score)


SCORM12 = ExportFormat("scorm12", "zip", "zip", "application/zip", _TYPES, _write_scorm("1.2"))
SCORM2004 = ExportFormat("scorm2004", "zip", "zip", "application/zip", _TYPES, _write_scorm("2004"))
