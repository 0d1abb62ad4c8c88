"""Courses where learners are: LMS packages and exercise banks, and fine-tuning data.

    result = export_course(course, "scorm12", Path("course.zip"), mastery_score=80)
    result.issues     # what the format could not hold as it is (skipped or ungraded), by path

Formats (docs/exports.md has the exercise-type table): `markdown` and `html` (folders),
`scorm12`, `scorm2004`, `qti` (QTI 2.1) and `cc` (Common Cartridge 1.3) (zips), `moodle-xml`
and `gift` (files). Every output is written atomically. `training` exports accepted lessons as
chat fine-tuning examples. `formats.REGISTRY` is the one list of formats.
"""

from __future__ import annotations

from ._base import ExportFormat, ExportIssue, ExportOptions, ExportResult, load_course, write_text_atomic
from .formats import FORMATS, REGISTRY, TYPE_MAP, check_format, export_course

__all__ = [
    "FORMATS",
    "REGISTRY",
    "TYPE_MAP",
    "ExportFormat",
    "ExportIssue",
    "ExportOptions",
    "ExportResult",
    "check_format",
    "export_course",
    "load_course",
    "write_text_atomic",
]
