"""What every format shares: the shape of a format (`ExportFormat`: its name, output kind,
download type, exercise-type table and writer; each exporter module declares its own and
`formats.py` lists them), the result (what was written, what a format could not hold), safe
identifiers and atomic output.

An output is never half-written: a folder is built beside its destination and renamed into
place, a zip is written to a temp file in the destination's directory and renamed.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import escape, quoteattr

from ..domain import Course, Exercise
from ..errors import UserError
from ..files import atomic_dir, atomic_zip, write_text_atomic

__all__ = [
    "ExportFormat",
    "ExportIssue",
    "ExportOptions",
    "ExportResult",
    "QuizItem",
    "atomic_dir",
    "atomic_zip",
    "ident",
    "load_course",
    "quiz_items",
    "to_xml",
    "write_text_atomic",
]

XML_NS = "http://www.w3.org/XML/1998/namespace"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

#: Types no format here can score automatically.
UNGRADED = frozenset({"coding", "open"})
_TRUE, _FALSE = {"true", "t", "yes", "vrai", "verdadero", "wahr"}, {"false", "f", "no", "faux", "falso"}


@dataclass(frozen=True, slots=True)
class ExportIssue:
    """Something of the course a format could not hold as it is (never silently dropped)."""

    #: JSON path in the course, e.g. "sections[0].lessons[1].exercises[2]".
    path: str
    exercise_type: str
    #: "skipped" (not in the output) or "ungraded" (in it, but no automatic score).
    action: Literal["skipped", "ungraded"]
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "type": self.exercise_type, "action": self.action, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class ExportOptions:
    """What a caller may choose about an export beyond the format and the path."""

    #: Pass mark (0-100) the SCORM, cmi5 packages report passed/failed against.
    mastery_score: float = 80.0
    #: @xapi/cmi5's browser bundle for the cmi5 AUs (`exports.cmi5_library`); None: our own.
    cmi5_library: Path | None = None


@dataclass(frozen=True, slots=True)
class ExportFormat:
    """One export format: all the CLI, the service and docs/exports.md need to know of it.
    Adding a format is a module declaring one of these plus one line in `formats.REGISTRY`."""

    name: str
    #: "folder" (the service zips it for download), "zip" or "file".
    output: Literal["folder", "zip", "file"]
    #: Extension of the service's download (`Content-Disposition`).
    extension: str
    media_type: str
    #: Our exercise type -> what this format makes of it (docs/exports.md prints the table);
    #: "(ungraded)" marks a type the format holds but cannot score by itself.
    type_map: Mapping[str, str]
    write: Callable[[Course, Path, ExportOptions], ExportResult]


@dataclass(slots=True)
class ExportResult:
    format: str
    path: Path
    #: The format's exercise-type table (`ExportFormat.type_map`), echoed in `to_dict`.
    type_map: Mapping[str, str] = field(default_factory=dict)
    lessons: int = 0
    #: Exercises written to the output (graded or not).
    exercises: int = 0
    issues: list[ExportIssue] = field(default_factory=list)
    #: Files written (relative to `path` for a folder, members for a zip; the file itself otherwise).
    files: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> list[ExportIssue]:
        return [i for i in self.issues if i.action == "skipped"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "path": str(self.path),
            "lessons": self.lessons,
            "exercises": self.exercises,
            "skipped": len(self.skipped),
            "ungraded": sum(1 for i in self.issues if i.action == "ungraded"),
            "issues": [i.to_dict() for i in self.issues],
            "type_map": dict(self.type_map),
            "files": self.files,
        }


@dataclass(frozen=True, slots=True)
class QuizItem:
    """One exercise as a quiz format sees it: where it came from and its answer key."""

    path: str
    lesson_id: str
    exercise: Exercise
    #: multiple_choice: index of the right option; true_false: the right option (0 true, 1 false).
    correct: int | None = None

    @property
    def options(self) -> list[str]:
        if self.exercise.type == "true_false":
            return ["True", "False"]
        return list(self.exercise.options or [])

    @property
    def graded(self) -> bool:
        return self.exercise.type not in UNGRADED


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def quiz_items(course: Course, fmt: ExportFormat, issues: list[ExportIssue]) -> dict[str, list[QuizItem]]:
    """Every exercise with its answer key, by lesson id. One whose key cannot be built (a
    multiple_choice answer that is not one of its options, a true_false answer that is neither)
    is reported as skipped; coding and open exercises are reported as ungraded."""
    out: dict[str, list[QuizItem]] = {}
    for si, section in enumerate(course.sections):
        for li, lesson in enumerate(section.lessons):
            items = out.setdefault(lesson.id, [])
            for ei, ex in enumerate(lesson.exercises):
                path = f"sections[{si}].lessons[{li}].exercises[{ei}]"
                correct: int | None = None
                if ex.type == "multiple_choice":
                    options = [_norm(o) for o in ex.options or []]
                    if len(options) < 2:
                        issues.append(
                            ExportIssue(path, ex.type, "skipped", "multiple_choice with fewer than 2 options")
                        )
                        continue
                    if _norm(ex.answer) not in options:
                        issues.append(
                            ExportIssue(
                                path,
                                ex.type,
                                "skipped",
                                f"answer {ex.answer[:60]!r} is not one of its options",
                            )
                        )
                        continue
                    correct = options.index(_norm(ex.answer))
                elif ex.type == "true_false":
                    word = _norm(ex.answer).strip(".! ")
                    if word not in _TRUE | _FALSE:
                        issues.append(
                            ExportIssue(
                                path,
                                ex.type,
                                "skipped",
                                f"answer {ex.answer[:60]!r} is neither true nor false",
                            )
                        )
                        continue
                    correct = 0 if word in _TRUE else 1
                elif ex.type == "short_answer" and not ex.answer.strip():
                    issues.append(ExportIssue(path, ex.type, "skipped", "short_answer without an answer"))
                    continue
                elif ex.type in UNGRADED:
                    issues.append(
                        ExportIssue(path, ex.type, "ungraded", f"{fmt.name}: {fmt.type_map[ex.type]}")
                    )
                items.append(QuizItem(path, lesson.id, ex, correct))
    return out


_NOT_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def ident(*parts: str) -> str:
    """An XML NCName (and file-name) safe identifier from parts: 'I_S1-L2_E3'."""
    return "I_" + "_".join(_NOT_NAME.sub("_", p) for p in parts)


def check_ids(course: Course) -> None:
    """Every section, lesson and exercise (within its lesson) has its own identifier once made
    file- and XML-safe (`ident`): two lessons sharing one would write one page over the other
    and one manifest item twice. A UserError names both paths of each clash."""
    problems: list[tuple[str, str]] = []

    def claim(seen: dict[str, tuple[str, str]], raw: str, path: str) -> None:
        key = ident(raw)
        if key in seen:
            first_path, first_raw = seen[key]
            same = (
                f"the same id {raw!r}" if raw == first_raw else f"ids {first_raw!r} and {raw!r} (both {key})"
            )
            problems.append((f"{path}.id", f"{first_path}.id and {path}.id have {same}: give each its own"))
        else:
            seen[key] = (path, raw)

    sections: dict[str, tuple[str, str]] = {}
    lessons: dict[str, tuple[str, str]] = {}
    for s, section in enumerate(course.sections):
        claim(sections, section.id, f"sections.{s}")
        for n, lesson in enumerate(section.lessons):
            where = f"sections.{s}.lessons.{n}"
            claim(lessons, lesson.id, where)
            exercises: dict[str, tuple[str, str]] = {}
            for e, exercise in enumerate(lesson.exercises):
                claim(exercises, exercise.id, f"{where}.exercises.{e}")
    if problems:
        raise UserError("duplicate ids in the course", problems)


def load_course(data: Any) -> Course:
    """A course from JSON data; every problem named by its path."""
    from pydantic import ValidationError

    if not isinstance(data, Mapping):
        raise UserError("not a course", [("$", "expected a JSON object (a course.json)")])
    try:
        return Course.model_validate(data)
    except ValidationError as exc:
        problems = [(".".join(str(p) for p in e["loc"]) or "$", e["msg"]) for e in exc.errors()]
        raise UserError("invalid course", problems) from exc


def to_xml(root: ET.Element, namespaces: Mapping[str, str]) -> str:
    """`root` as an XML document whose namespaces (uri -> prefix, "" for the default) are all
    declared on the root element, indented. (ElementTree itself cannot write a default
    namespace next to unqualified attributes.)"""
    ET.indent(root)

    def name(qname: str) -> str:
        if qname.startswith("{"):
            uri, local = qname[1:].split("}", 1)
            prefix = "xml" if uri == XML_NS else namespaces[uri]
            return f"{prefix}:{local}" if prefix else local
        return qname

    out: list[str] = ['<?xml version="1.0" encoding="UTF-8"?>\n']

    def write(node: ET.Element, top: bool) -> None:
        attrs = "".join(f" {name(k)}={quoteattr(v)}" for k, v in node.attrib.items())
        if top:
            decl = "".join(f" xmlns{':' + p if p else ''}={quoteattr(u)}" for u, p in namespaces.items())
            attrs = decl + attrs
        tag = name(str(node.tag))
        if node.text is None and len(node) == 0:
            out.append(f"<{tag}{attrs}/>")
        else:
            out.append(f"<{tag}{attrs}>{escape(node.text or '')}")
            for child in node:
                write(child, False)
            out.append(f"</{tag}>")
        if node.tail and not top:
            out.append(escape(node.tail))

    write(root, True)
    out.append("\n")
    return "".join(out)
