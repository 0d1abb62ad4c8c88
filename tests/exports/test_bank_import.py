"""Question banks read back: what our GIFT, Moodle XML and QTI exports write comes back as the
same questions; GIFT agrees with the third-party parser the export tests use."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from course_helpers import sample_course

from courseforge.errors import UserError
from courseforge.exports import export_course
from courseforge.exports.bank_import import read_bank


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
