"""Courses where learners are: LMS packages and exercise banks, and fine-tuning data.

    result = export_course(course, "scorm12", Path("course.zip"), mastery_score=80)
    result.issues     # what the format could not hold as it is (skipped or ungraded), by path

Formats (docs/exports.md has the exercise-type table): `markdown` and `html` (folders),
`scorm12`, `scorm2004`, `qti` (QTI 2.1) and `cc` (Common Cartridge 1.3) (zips), `moodle-xml`
and `gift` (files). Every output is written atomically. `training` exports accepted lessons as
chat fine-tuning examples.
"""

from __future__ import annotations

from pathlib import Path

from ..domain import Course
from ..errors import UserError
from ._base import FORMATS, TYPE_MAP, ExportFormat, ExportIssue, ExportResult, load_course, write_text_atomic
from .banks import export_gift, export_moodle_xml
from .cartridge import export_cc
from .pages import export_html, export_markdown
from .qti import export_qti
from .scorm import export_scorm

__all__ = [
    "FORMATS",
    "TYPE_MAP",
    "ExportFormat",
    "ExportIssue",
    "ExportResult",
    "check_format",
    "export_course",
    "load_course",
    "write_text_atomic",
]


def check_format(fmt: str) -> ExportFormat:
    for known in FORMATS:
        if fmt == known:
            return known
    raise UserError("unknown export format", [("format", f"{fmt!r}: choose one of {', '.join(FORMATS)}")])


def export_course(course: Course, fmt: str, out: Path, *, mastery_score: float = 80.0) -> ExportResult:
    """Write `course` in `fmt` at `out` (a folder for markdown/html, a file otherwise)."""
    name = check_format(fmt)
    if name == "markdown":
        return export_markdown(course, out)
    if name == "html":
        return export_html(course, out)
    if name == "scorm12":
        return export_scorm(course, out, "1.2", mastery_score)
    if name == "scorm2004":
        return export_scorm(course, out, "2004", mastery_score)
    if name == "qti":
        return export_qti(course, out)
    if name == "cc":
        return export_cc(course, out)
    if name == "moodle-xml":
        return export_moodle_xml(course, out)
    return export_gift(course, out)
