"""The export formats, in one list: the CLI's `--format`, the service's `?format=`, its
download names and media types, and docs/exports.md's exercise-type table all read it.

Adding a format: write its module (a writer and an `ExportFormat` constant beside it), add the
constant to `REGISTRY`, a row to docs/exports.md (a test compares the table with the code).
"""

from __future__ import annotations

from pathlib import Path

from ..domain import Course
from ..errors import UserError
from ._base import ExportFormat, ExportOptions, ExportResult, check_ids, load_course
from .banks import GIFT, MOODLE_XML
from .cartridge import CC
from .cmi5 import CMI5
from .pages import HTML, MARKDOWN
from .qti import QTI
from .scorm import SCORM12, SCORM2004
from .slides import PPTX

__all__ = ["FORMATS", "REGISTRY", "TYPE_MAP", "check_format", "export_course"]

REGISTRY: tuple[ExportFormat, ...] = (
    MARKDOWN,
    HTML,
    SCORM12,
    SCORM2004,
    QTI,
    CC,
    MOODLE_XML,
    GIFT,
    PPTX,
    CMI5,
)
_BY_NAME = {f.name: f for f in REGISTRY}
FORMATS: tuple[str, ...] = tuple(_BY_NAME)
#: Our exercise type -> the closest type of each format (docs/exports.md prints this table).
TYPE_MAP: dict[str, dict[str, str]] = {f.name: dict(f.type_map) for f in REGISTRY}


def check_format(fmt: str | ExportFormat) -> ExportFormat:
    """The format named `fmt`, or a UserError naming the field and the choices."""
    if isinstance(fmt, ExportFormat):
        return fmt
    known = _BY_NAME.get(fmt)
    if known is None:
        raise UserError("unknown export format", [("format", f"{fmt!r}: choose one of {', '.join(FORMATS)}")])
    return known


def export_course(
    course: Course,
    fmt: str | ExportFormat,
    out: Path,
    *,
    mastery_score: float = 80.0,
    cmi5_library: Path | None = None,
) -> ExportResult:
    """Write `course` in `fmt` at `out` (a folder for markdown/html, a file otherwise), once the
    course holds to its schema (a `Course` built in code may not have been validated) and its
    ids are unique (`check_ids`); a UserError names each problem's path."""
    format_ = check_format(fmt)
    course = load_course(course.model_dump(mode="json"))
    check_ids(course)
    return format_.write(course, out, ExportOptions(mastery_score=mastery_score, cmi5_library=cmi5_library))
