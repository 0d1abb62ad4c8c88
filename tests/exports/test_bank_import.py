"""Question banks read back: what our GIFT, Moodle XML and QTI exports write comes back as the
same questions; each format agrees with a third-party reader (GIFT pygiftparser, Moodle XML
moodle-xml-parser, QTI 2.1 onyx2moodle's item parser)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from course_helpers import sample_course, sample_course_data

from courseforge.domain import Course
from courseforge.errors import UserError
from courseforge.exports import export_course
from courseforge.exports.bank_import import read_bank

EXAMPLE_BANK = Path(__file__).resolve().parents[2] / "examples" / "python-basics.bank.gift"


@pytest.mark.parametrize(
    ("fmt", "name"), [("gift", "bank.gift"), ("moodle-xml", "bank.xml"), ("qti", "bank.zip")]
)
def test_an_exported_bank_reads_back_as_the_same_questions(tmp_path: Path, fmt: str, name: str) -> None:
    course = sample_course()
    result = export_course(course, fmt, tmp_path / name)
    bank = read_bank(tmp_path / name)
    assert len(bank.questions) == result.exercises and not bank.skipped
    originals = [e for lesson in course.lessons() for e in lesson.exercises]
    # An essay is an essay: a coding exercise comes back as "open" (the formats hold no difference).
    keyed = {("open" if e.type == "coding" else e.type, " ".join(e.question.split())) for e in originals}
    assert {(q.type, q.question) for q in bank.questions} <= keyed
    for q in bank.questions:
        if q.type in ("multiple_choice", "short_answer"):
            assert any(q.answer == e.answer for e in originals if " ".join(e.question.split()) == q.question)
        assert q.outcome_ids == []  # mapped by the pipeline, not the file


def test_gift_agrees_with_pygiftparser(tmp_path: Path) -> None:
    parser = pytest.importorskip("pygiftparser.parser")
    path = Path(__file__).resolve().parents[2] / "examples" / "python-basics.bank.gift"
    theirs = parser.parseFile(io.StringIO(path.read_text("utf-8")))
    ours = read_bank(path).questions
    assert len(ours) == len(theirs) == 30 and all(q.valid for q in theirs)
    assert [q.id for q in ours] == [t.title for t in theirs]  # the source ids


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"", "empty question bank"),
        (b'<?xml version="1.0"?><!DOCTYPE quiz [<!ENTITY x "y">]><quiz/>', "DOCTYPE"),
        (b"<html/>", "unknown question bank"),
        (b"::Q1:: Match these {=a -> b =c -> d}", "empty question bank"),
    ],
)
def test_a_bad_bank_is_refused_with_its_file_named(tmp_path: Path, body: bytes, why: str) -> None:
    path = tmp_path / "bank.txt"
    path.write_bytes(body)
    with pytest.raises(UserError) as refused:
        read_bank(path)
    assert why in str(refused.value) and str(path) in str(refused.value.problems)


def _bank_course() -> Course:
    """The sample course with the bundled 30-question bank as its first lesson's exercises (so
    the exports write the bank in each format)."""
    data = sample_course_data()
    bank = read_bank(EXAMPLE_BANK).questions
    data["sections"][0]["lessons"][0]["exercises"] = [
        {**q.model_dump(mode="json"), "outcome_ids": ["LO1"]} for q in bank
    ]
    return Course.model_validate(data)


def test_moodle_xml_agrees_with_moodle_xml_parser(tmp_path: Path) -> None:
    """moodle-xml-parser (an independent reader, multichoice only) and ours read the same
    multiple-choice questions from a Moodle XML bank: names, texts, options, the right one."""
    from moodle_xml_parser.parser import parse_string

    out = tmp_path / "bank.xml"
    export_course(_bank_course(), "moodle-xml", out)
    theirs = parse_string(out.read_text("utf-8"))["multichoice"]
    ours = [q for q in read_bank(out).questions if q.type == "multiple_choice"]
    assert len(ours) == len(theirs) >= 10
    for q, t in zip(ours, theirs, strict=True):
        assert q.id == t.name and t.single
        assert [o.answer for o in t.options] == q.options
        assert [o.answer for o in t.options if o.score_fraction == 100] == [q.answer]


def test_qti_agrees_with_onyx2moodle(tmp_path: Path) -> None:
    """onyx2moodle's QTI 2.1 item parser (an independent reader) and ours read the same items
    from a QTI package: identifiers, interaction kinds, choices and the correct response."""
    parser = pytest.importorskip("onyx2moodle.parser")
    out = tmp_path / "bank.zip"
    export_course(_bank_course(), "qti", out)
    ours = {q.id: q for q in read_bank(out).questions}
    items = tmp_path / "items"
    with zipfile.ZipFile(out) as archive:
        names = [n for n in archive.namelist() if n.endswith(".xml") and n != "imsmanifest.xml"]
        archive.extractall(items, names)
    checked = 0
    for name in names:
        try:
            item = parser.parse_item(items / name)
        except Exception:  # not an assessmentItem (a test or section file)
            continue
        q = ours[item.identifier]
        [interaction] = item.interactions
        kind = {
            "multiple_choice": "choice",
            "true_false": "choice",
            "short_answer": "textEntry",
            "open": "extendedText",
        }
        assert interaction.kind == kind[q.type], (item.identifier, interaction.kind, q.type)
        if interaction.kind == "choice":
            texts = {c.identifier: " ".join(c.html.split()) for c in interaction.choices}
            [right] = item.response_decls[interaction.response_identifier].correct_values
            assert texts[right].lower() == q.answer.lower()
            if q.type == "multiple_choice":
                assert list(texts.values()) == q.options
        elif interaction.kind == "textEntry":
            assert item.response_decls[interaction.response_identifier].correct_values == [q.answer]
        checked += 1
    assert checked == len(ours) >= 30
