"""`pptx`: the deck read back with python-pptx, and rendered by LibreOffice to PNG."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from course_helpers import sample_course, sample_course_data

from courseforge.exports import export_course, load_course
from courseforge.exports.slides import MONOSPACE, lesson_blocks

pptx = pytest.importorskip("pptx")


def _texts(slide: object) -> str:
    return "\n".join(s.text_frame.text for s in slide.shapes if s.has_text_frame)  # type: ignore[attr-defined]


def test_a_deck_has_a_title_slide_lesson_slides_and_an_exercise_slide_per_lesson(tmp_path: Path) -> None:
    course = sample_course()
    out = tmp_path / "deck.pptx"
    result = export_course(course, "pptx", out)
    assert result.lessons == 3 and result.exercises == sum(len(x.exercises) for x in course.lessons())
    assert [p.name for p in tmp_path.iterdir()] == ["deck.pptx"]  # nothing left beside it
    slides = list(pptx.Presentation(str(out)).slides)
    assert slides[0].shapes.title.text == course.metadata.course_title
    titles = [s.shapes.title.text for s in slides]
    for lesson in course.lessons():
        assert lesson.title in titles  # its first slide
        exercise_slide = slides[titles.index(f"Exercises: {lesson.title}")]
        text = _texts(exercise_slide)
        assert all(ex.question.strip() in text for ex in lesson.exercises)
        notes = exercise_slide.notes_slide.notes_text_frame.text
        assert all(f"Answer: {ex.answer.strip()}" in notes for ex in lesson.exercises)
    # The heading "Worked example" opens a slide whose code is monospace and whose notes hold
    # the lesson's own markdown.
    worked = slides[titles.index("Worked example")]
    code_runs = [
        r for s in worked.shapes if s.has_text_frame for p in s.text_frame.paragraphs for r in p.runs
    ]
    assert any(r.text == "print('hi')" and r.font.name == MONOSPACE for r in code_runs)
    notes = worked.notes_slide.notes_text_frame.text
    assert "```python" in notes and "A common mistake is to forget the *parentheses*." in notes
    # Emphasis markers are not shown on the slide; raw HTML stays plain text.
    assert "the parentheses. <script>" in _texts(worked)


def test_a_long_lesson_continues_on_further_slides(tmp_path: Path) -> None:
    data = sample_course_data()
    lesson = data["sections"][0]["lessons"][0]
    lesson["content"] = "\n\n".join(f"Point {n}: " + "words " * 40 for n in range(12))
    export_course(load_course(data), "pptx", tmp_path / "deck.pptx")
    titles = [s.shapes.title.text for s in pptx.Presentation(str(tmp_path / "deck.pptx")).slides]
    first = titles.index(lesson["title"])
    assert titles[first + 1] == f"{lesson['title']} (cont.)"
    assert sum(t == f"{lesson['title']} (cont.)" for t in titles) >= 2


def test_lesson_blocks_reads_headings_lists_paragraphs_and_code() -> None:
    blocks = lesson_blocks("# Top\n\nOne\ntwo lines.\n\n- a\n  - b\n1. c\n\n```py\nx = 1\n\ny = 2\n```\nEnd")
    assert [(b.kind, b.text, b.level) for b in blocks] == [
        ("heading", "Top", 1),
        ("bullet", "One two lines.", 0),
        ("bullet", "a", 0),
        ("bullet", "b", 1),
        ("bullet", "c", 0),
        ("code", "x = 1\n\ny = 2", 0),
        ("bullet", "End", 0),
    ]


@pytest.mark.subprocess
def test_libreoffice_renders_the_deck_to_png(tmp_path: Path) -> None:
    soffice, pdftoppm = shutil.which("soffice"), shutil.which("pdftoppm")
    if soffice is None or pdftoppm is None:
        pytest.skip("needs Debian's libreoffice-impress and poppler-utils (make deps-system)")
    from PIL import Image

    export_course(sample_course(), "pptx", tmp_path / "deck.pptx")
    profile = (tmp_path / "lo-profile").as_uri()  # its own profile: never a user's running office
    convert = ["--headless", "--convert-to", "pdf", "--outdir", str(tmp_path), str(tmp_path / "deck.pptx")]
    subprocess.run(
        [soffice, f"-env:UserInstallation={profile}", *convert],
        check=True,
        capture_output=True,
        timeout=300,
    )
    subprocess.run(
        [pdftoppm, "-r", "60", "-png", str(tmp_path / "deck.pdf"), str(tmp_path / "slide")], check=True
    )
    pngs = sorted(tmp_path.glob("slide-*.png"))
    assert len(pngs) == len(pptx.Presentation(str(tmp_path / "deck.pptx")).slides)
    for png in pngs:
        image = Image.open(png).convert("L")
        assert image.width > image.height  # 16:9
        dark = sum(image.histogram()[:128])
        assert dark > 200, f"{png.name} is blank"
