"""`pptx`: a slide deck per course (python-pptx, 16:9).

A title slide (the course title and description); each lesson as one or more slides cut at its
markdown headings (a heading is a slide's title; a slide too full for one page continues on the
next, "(cont.)"), list items and paragraphs as bullets, fenced code in a monospace box; the
lesson text a slide shows is in its speaker notes. Then one exercise slide per lesson (the
questions and their options; answers and explanations in the speaker notes). Nothing is scored,
so no exercise is skipped or ungraded.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..domain import Course, Exercise, Lesson
from ._base import ExportFormat, ExportResult

__all__ = ["PPTX", "Block", "export_pptx", "lesson_blocks"]

MONOSPACE = "DejaVu Sans Mono"
_WIDTH_IN, _HEIGHT_IN = 13.333, 7.5
_BODY_TOP_IN, _BODY_BOTTOM_IN, _MARGIN_IN = 1.55, 7.0, 0.6
_TEXT_PT, _CODE_PT = 20, 16
#: Characters a line holds across the body at the text and code sizes (estimates for paging).
_TEXT_CHARS, _CODE_CHARS = 88, 100


@dataclass(frozen=True, slots=True)
class Block:
    """One piece of a lesson as a slide shows it."""

    kind: Literal["heading", "bullet", "code"]
    text: str
    #: Bullet indent (0 top level); for a heading, its markdown level.
    level: int = 0
    #: The markdown this block came from (the speaker notes repeat it).
    source: str = ""

    def height_in(self) -> float:
        if self.kind == "code":
            lines = sum(max(1, math.ceil(len(line) / _CODE_CHARS)) for line in self.text.splitlines() or [""])
            return lines * _CODE_PT * 1.25 / 72 + 0.3
        return max(1, math.ceil(len(self.text) / (_TEXT_CHARS - 6 * self.level))) * _TEXT_PT * 1.3 / 72 + 0.08


_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_ITEM = re.compile(r"^(\s*)(?:[-*+]|\d+[.)])\s+(.*)$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def lesson_blocks(markdown: str) -> list[Block]:
    """The lesson's markdown as headings, bullets (list items; a paragraph is one bullet) and
    code blocks, in order."""
    blocks: list[Block] = []
    lines = markdown.splitlines()
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            text = " ".join(part.strip() for part in paragraph)
            blocks.append(Block("bullet", text, 0, "\n".join(paragraph)))
            paragraph.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            flush()
            body: list[str] = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(fence.group(1)):
                body.append(lines[i])
                i += 1
            source = "\n".join([line, *body, fence.group(1)])
            blocks.append(Block("code", "\n".join(body).rstrip(), 0, source))
        elif (heading := _HEADING.match(line)) is not None:
            flush()
            blocks.append(Block("heading", heading.group(2), len(heading.group(1)), line))
        elif (item := _ITEM.match(line)) is not None:
            flush()
            level = min(len(item.group(1).expandtabs(4)) // 2, 3)
            blocks.append(Block("bullet", item.group(2).strip(), level, line))
        elif not line.strip():
            flush()
        else:
            paragraph.append(line)
        i += 1
    flush()
    return blocks


@dataclass(slots=True)
class _Slide:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def used_in(self) -> float:
        return sum(b.height_in() for b in self.blocks)


def _paginate(title: str, blocks: list[Block]) -> list[_Slide]:
    """Slides of a lesson: a new one at each heading, and a continuation when one is full."""
    room = _BODY_BOTTOM_IN - _BODY_TOP_IN
    slides = [_Slide(title)]
    for block in blocks:
        current = slides[-1]
        if block.kind == "heading":
            if current.blocks or current.title != title:
                slides.append(_Slide(block.text))
            else:
                current.title = f"{title}: {block.text}" if block.level > 1 else block.text
            continue
        if current.blocks and current.used_in() + block.height_in() > room:
            base = current.title.removesuffix(" (cont.)")
            slides.append(_Slide(f"{base} (cont.)"))
        slides[-1].blocks.append(block)
    return [s for s in slides if s.blocks] or [_Slide(title)]


_INLINE = re.compile(r"(`[^`]+`)")
_EMPHASIS = re.compile(r"\*\*|\*(?=\S)|(?<=\S)\*")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")


def _runs(text: str) -> list[tuple[str, bool]]:
    """(text, monospace) runs of a line: inline code in monospace, emphasis markers and link
    targets dropped (a slide shows the words)."""
    out: list[tuple[str, bool]] = []
    for part in _INLINE.split(text):
        if not part:
            continue
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append((part[1:-1], True))
        else:
            out.append((_EMPHASIS.sub("", _LINK.sub(r"\1", part)), False))
    return out


def _exercise_blocks(exercises: list[Exercise]) -> list[Block]:
    blocks: list[Block] = []
    for n, ex in enumerate(exercises, start=1):
        blocks.append(Block("bullet", f"{n}. {ex.question.strip()}", 0, ""))
        options = ["True", "False"] if ex.type == "true_false" else list(ex.options or [])
        blocks += [
            Block("bullet", f"{chr(65 + i)}) {o}" if i < 26 else o, 1, "") for i, o in enumerate(options)
        ]
    return blocks


def _exercise_notes(exercises: list[Exercise]) -> str:
    return "\n\n".join(
        f"{n}. {ex.question.strip()}\nAnswer: {ex.answer.strip()}\nWhy: {ex.explanation.strip()}"
        for n, ex in enumerate(exercises, start=1)
    )


class _Deck:
    """python-pptx behind four calls: a title slide, a body slide, save."""

    def __init__(self) -> None:
        from pptx import Presentation
        from pptx.util import Inches

        self.prs = Presentation()
        self.prs.slide_width = Inches(_WIDTH_IN)
        self.prs.slide_height = Inches(_HEIGHT_IN)
        self.count = 0

    def title_slide(self, title: str, subtitle: str, notes: str) -> None:
        slide = self.prs.slides.add_slide(self.prs.slide_layouts[0])
        slide.shapes.title.text = title
        slide.placeholders[1].text = subtitle
        for shape in slide.placeholders:  # the default template's layouts are 4:3: widen them
            self._span(shape)
        slide.notes_slide.notes_text_frame.text = notes
        self.count += 1

    def body_slide(self, title: str, blocks: list[Block], notes: str) -> None:
        from pptx.dml.color import RGBColor
        from pptx.util import Inches, Pt

        slide = self.prs.slides.add_slide(self.prs.slide_layouts[5])  # title only
        slide.shapes.title.text = title
        slide.shapes.title.text_frame.paragraphs[0].font.size = Pt(32)
        self._span(slide.shapes.title)
        width = Inches(_WIDTH_IN - 2 * _MARGIN_IN)
        top = _BODY_TOP_IN
        frame = None
        for block in blocks:
            height = block.height_in()
            if block.kind == "code":
                box = slide.shapes.add_textbox(Inches(_MARGIN_IN), Inches(top), width, Inches(height))
                box.fill.solid()
                box.fill.fore_color.rgb = RGBColor.from_string("F2F2F2")  # type: ignore[no-untyped-call]
                tf = box.text_frame
                tf.word_wrap = True
                for n, line in enumerate(block.text.splitlines() or [""]):
                    para = tf.paragraphs[0] if n == 0 else tf.add_paragraph()
                    run = para.add_run()
                    run.text = line
                    run.font.name, run.font.size = MONOSPACE, Pt(_CODE_PT)
                frame = None
            else:
                if frame is None:
                    box = slide.shapes.add_textbox(Inches(_MARGIN_IN), Inches(top), width, Inches(height))
                    frame = box.text_frame
                    frame.word_wrap = True
                    para = frame.paragraphs[0]
                else:
                    para = frame.add_paragraph()
                para.level = block.level
                bullet = "\u2022 " if block.level == 0 else "\u2013 "
                para.add_run().text = "    " * block.level + bullet
                for text, mono in _runs(block.text):
                    run = para.add_run()
                    run.text = text
                    if mono:
                        run.font.name = MONOSPACE
                for run in para.runs:
                    run.font.size = Pt(_TEXT_PT - 2 * block.level)
                para.space_after = Pt(6)
            top += height
        slide.notes_slide.notes_text_frame.text = notes
        self.count += 1

    @staticmethod
    def _span(shape: Any) -> None:
        from pptx.util import Inches

        top, height = shape.top, shape.height  # inherited from the layout until all four are set
        shape.left, shape.width = Inches(_MARGIN_IN), Inches(_WIDTH_IN - 2 * _MARGIN_IN)
        shape.top, shape.height = top, height

    def save(self, out: Path) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                self.prs.save(fh)
            os.replace(tmp, out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _lesson_slides(deck: _Deck, lesson: Lesson) -> None:
    for slide in _paginate(lesson.title, lesson_blocks(lesson.content)):
        deck.body_slide(slide.title, slide.blocks, "\n".join(b.source for b in slide.blocks))
    if lesson.exercises:
        blocks = _exercise_blocks(lesson.exercises)
        for n, slide in enumerate(_paginate(f"Exercises: {lesson.title}", blocks)):
            deck.body_slide(slide.title, slide.blocks, _exercise_notes(lesson.exercises) if n == 0 else "")


def export_pptx(course: Course, out: Path) -> ExportResult:
    result = ExportResult("pptx", out, PPTX.type_map)
    deck = _Deck()
    meta = course.metadata
    deck.title_slide(meta.course_title, meta.target_audience, meta.description)
    for lesson in course.lessons():
        _lesson_slides(deck, lesson)
        result.lessons += 1
        result.exercises += len(lesson.exercises)
    deck.save(out)
    result.files = [out.name]
    return result


PPTX = ExportFormat(
    "pptx",
    "file",
    "pptx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    {
        t: "question and options on the lesson's exercise slide; answer in the speaker notes"
        for t in ("multiple_choice", "true_false", "short_answer", "coding", "open")
    },
    lambda course, out, _options: export_pptx(course, out),
)
