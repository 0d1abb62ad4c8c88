"""Every XML file of every export validated against the official XSDs; GIFT and Moodle XML
parsed back by independent parsers from PyPI; what a format cannot hold is reported."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from course_helpers import sample_course, sample_course_data
from xsd_helpers import cp_schema, errors, qti_schema, scorm_schema

from courseforge.errors import UserError
from courseforge.exports import export_course, load_course


def _zip(path: Path) -> zipfile.ZipFile:
    return zipfile.ZipFile(path)


@pytest.mark.parametrize(("fmt", "version"), [("scorm12", "1.2"), ("scorm2004", "2004")])
def test_scorm_manifest_is_valid_against_the_adl_schemas(tmp_path: Path, fmt: str, version: str) -> None:
    out = tmp_path / f"{fmt}.zip"
    result = export_course(sample_course(), fmt, out, mastery_score=70)
    manifest = _zip(out).read("imsmanifest.xml")
    assert errors(scorm_schema(version), manifest) == []
    assert b"0.7" in manifest if version == "2004" else b"<adlcp:masteryscore>70<" in manifest
    # one SCO per lesson, and the script each needs
    assert result.lessons == 3
    names = _zip(out).namelist()
    assert sum(1 for n in names if n.endswith(".html")) == 3 and "courseforge-sco.js" in names
    # the schema does reject a broken manifest (the check can fail)
    assert errors(
        scorm_schema(version),
        manifest.replace(b"<organizations", b"<organisations", 1).replace(
            b"</organizations>", b"</organisations>"
        ),
    )


def test_qti_items_tests_and_manifest_are_valid(tmp_path: Path) -> None:
    out = tmp_path / "qti.zip"
    result = export_course(sample_course(), "qti", out)
    archive = _zip(out)
    assert errors(cp_schema(), archive.read("imsmanifest.xml")) == []
    files = [n for n in archive.namelist() if n != "imsmanifest.xml"]
    assert len([f for f in files if f.startswith("items/")]) == result.exercises == 6
    assert len([f for f in files if f.startswith("tests/")]) == 3
    for name in files:
        assert errors(qti_schema(), archive.read(name)) == [], name
    bad = archive.read(files[0]).replace(b'cardinality="single"', b'cardinality="several"', 1)
    assert errors(qti_schema(), bad)


def test_cc_package_holds_lessons_and_quizzes(tmp_path: Path) -> None:
    out = tmp_path / "course.imscc"
    result = export_course(sample_course(), "cc", out)
    from lxml import etree

    archive = _zip(out)
    manifest = etree.fromstring(archive.read("imsmanifest.xml"))
    ns = {"cp": "http://www.imsglobal.org/xsd/imsccv1p3/imscp_v1p1"}
    assert manifest.findtext("cp:metadata/cp:schemaversion", namespaces=ns) == "1.3.0"
    resources = manifest.findall("cp:resources/cp:resource", ns)
    kinds = [r.get("type") for r in resources]
    assert kinds.count("webcontent") == 3 and kinds.count("imsqti_xmlv1p2/imscc_xmlv1p3/assessment") == 3
    for r in resources:  # every referenced file is in the package
        for f in r.findall("cp:file", ns):
            assert f.get("href") in archive.namelist()
    items = [etree.fromstring(archive.read(n)) for n in archive.namelist() if n.endswith("assessment.xml")]
    assert (
        sum(len(x.findall(".//{http://www.imsglobal.org/xsd/ims_qtiasiv1p2}item")) for x in items)
        == result.exercises
    )
    # the CC QTI profile's rules: every item feedback has its trigger, essays are not computer-scored
    asi = "{http://www.imsglobal.org/xsd/ims_qtiasiv1p2}"
    all_items = [i for x in items for i in x.iter(f"{asi}item")]
    assert all(i.find(f".//{asi}displayfeedback").get("linkrefid") == "general_fb" for i in all_items)
    labels = [f.findtext(f"{asi}fieldlabel") for i in all_items for f in i.iter(f"{asi}qtimetadatafield")]
    assert labels.count("qmd_computerscored") == 2  # the coding and the open exercise
    # a two-option multiple choice is reported for cc (its profile needs three), kept elsewhere
    data = sample_course_data()
    data["sections"][1]["lessons"][0]["exercises"].append(
        {**data["sections"][0]["lessons"][0]["exercises"][0], "id": "E9", "options": ["input", "print"]}
    )
    two = export_course(load_course(data), "cc", tmp_path / "two.imscc")
    assert [i.path for i in two.skipped][-1] == "sections[1].lessons[0].exercises[1]"
    assert "3 options" in two.skipped[-1].reason
    assert export_course(load_course(data), "gift", tmp_path / "two.gift").exercises == result.exercises + 1


def test_gift_parses_back_with_pygiftparser(tmp_path: Path) -> None:
    parser = pytest.importorskip("pygiftparser.parser")
    out = tmp_path / "bank.gift"
    export_course(sample_course(), "gift", out)
    questions = parser.parseFile(io.StringIO(out.read_text("utf-8")))
    assert [q.title for q in questions] == ["E1", "E2", "E1", "E2", "E3", "E1"]
    assert all(q.valid for q in questions)
    kinds = [type(q.answers).__name__ for q in questions]
    assert kinds == ["SelectSet", "TrueFalseSet", "ShortSet", "Essay", "Essay", "TrueFalseSet"]
    mc = questions[0].answers.answers
    assert [(a.answer, a.fraction) for a in mc] == [("input", 0), ("print", 100), ("len", 0)]
    assert questions[2].answers.answers[0].answer == "def"
    assert questions[0].generalFeedback.startswith("Because print is right")


def test_moodle_xml_parses_back_and_keeps_every_type(tmp_path: Path) -> None:
    from moodle_xml_parser.parser import parse_string

    out = tmp_path / "bank.xml"
    export_course(sample_course(), "moodle-xml", out)
    text = out.read_text("utf-8")
    parsed = parse_string(text)  # an independent reader: it knows multichoice (and cloze) only
    [mc] = parsed["multichoice"]
    assert mc.name == "E1" and mc.single
    assert [(o.answer, o.score_fraction) for o in mc.options] == [("input", 0), ("print", 100), ("len", 0)]
    from lxml import etree

    kinds = [q.get("type") for q in etree.fromstring(text.encode()).findall("question")]
    assert kinds == [
        "category",
        "multichoice",
        "truefalse",
        "category",
        "shortanswer",
        "essay",
        "essay",
        "category",
        "truefalse",
    ]


@pytest.mark.parametrize("fmt", ["gift", "moodle-xml", "qti", "cc", "scorm12", "scorm2004"])
def test_what_a_format_cannot_hold_is_reported(tmp_path: Path, fmt: str) -> None:
    result = export_course(sample_course(), fmt, tmp_path / "out")
    report = result.to_dict()
    assert report["skipped"] == 1 and report["ungraded"] == 2
    [skipped] = result.skipped
    assert (
        skipped.path == "sections[0].lessons[1].exercises[3]" and "not one of its options" in skipped.reason
    )
    assert report["exercises"] + report["skipped"] == sum(len(x.exercises) for x in sample_course().lessons())


@pytest.mark.parametrize("fmt", ["markdown", "html"])
def test_pages_hold_every_exercise_and_escape_html(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "site"
    result = export_course(sample_course(), fmt, out)
    assert result.exercises == 7 and result.issues == []
    files = sorted(p.name for p in out.iterdir())
    assert len(files) == 4
    lesson = (out / ("S1-L2." + ("md" if fmt == "markdown" else "html"))).read_text("utf-8")
    assert "Names make code readable." in lesson
    if fmt == "html":
        assert "<script>alert" not in lesson and "&lt;script&gt;" in lesson
        assert "<pre><code" in lesson


def test_outputs_replace_atomically_and_bad_input_names_the_field(tmp_path: Path) -> None:
    out = tmp_path / "site"
    export_course(sample_course(), "html", out)
    export_course(sample_course(), "html", out)  # replaced in one rename, nothing left beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]
    data = sample_course_data()
    data["sections"][0]["lessons"][0]["exercises"][0]["type"] = "matching"
    with pytest.raises(UserError) as caught:
        load_course(data)
    assert caught.value.problems[0][0] == "sections.0.lessons.0.exercises.0.type"
    with pytest.raises(UserError) as fmt_error:
        export_course(sample_course(), "pdf", tmp_path / "x")
    assert fmt_error.value.problems[0][0] == "format"
    assert not (tmp_path / "x").exists()


def test_cli_export_prints_issues_and_writes_the_result(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from courseforge.cli import app

    course = tmp_path / "course.json"
    course.write_text(json.dumps(sample_course_data()), "utf-8")
    out, result_file = tmp_path / "bank.gift", tmp_path / "result.json"
    ran = CliRunner().invoke(
        app, ["export", str(course), "--format", "gift", "-o", str(out), "--result", str(result_file)]
    )
    assert ran.exit_code == 0, ran.output
    assert "skipped" in ran.output and "sections[0].lessons[1].exercises[3]" in ran.output
    assert json.loads(result_file.read_text())["skipped"] == 1
    bad = CliRunner().invoke(app, ["export", str(course), "--format", "pdf", "-o", str(out)])
    assert bad.exit_code == 2 and "format" in bad.output


def test_the_documented_type_table_is_the_code_s() -> None:
    from courseforge.exports import FORMATS, TYPE_MAP

    doc = (Path(__file__).resolve().parents[2] / "docs" / "exports.md").read_text("utf-8")
    types = ["multiple_choice", "true_false", "short_answer", "coding", "open"]
    header = "| format | " + " | ".join(f"`{t}`" for t in types) + " |"
    table = doc.split(header, 1)[1].split("\n\n", 1)[0].strip().splitlines()[1:]
    rows = {
        line.split("|")[1].strip().strip("`"): [c.strip() for c in line.split("|")[2:-1]] for line in table
    }
    assert set(rows) == set(FORMATS)
    for fmt in FORMATS:
        assert rows[fmt] == [TYPE_MAP[fmt][t] for t in types], fmt


async def test_a_generated_course_exports_valid_in_every_format(tmp_path: Path) -> None:
    from course_helpers import generated_course
    from lxml import etree

    course = await generated_course("photosynthesis-sourced")
    exercises = sum(len(x.exercises) for x in course.lessons())
    found: dict[str, int] = {}
    for fmt, version in (("scorm12", "1.2"), ("scorm2004", "2004")):
        export_course(course, fmt, tmp_path / f"{fmt}.zip")
        assert errors(scorm_schema(version), _zip(tmp_path / f"{fmt}.zip").read("imsmanifest.xml")) == []
    result = export_course(course, "qti", tmp_path / "qti.zip")
    archive = _zip(tmp_path / "qti.zip")
    assert errors(cp_schema(), archive.read("imsmanifest.xml")) == []
    for name in archive.namelist()[1:]:
        assert errors(qti_schema(), archive.read(name)) == [], name
    found["qti"] = result.exercises
    parser = pytest.importorskip("pygiftparser.parser")
    export_course(course, "gift", tmp_path / "bank.gift")
    questions = parser.parseFile(io.StringIO((tmp_path / "bank.gift").read_text("utf-8")))
    assert all(q.valid for q in questions)
    found["gift"] = len(questions)
    export_course(course, "moodle-xml", tmp_path / "bank.xml")
    bank = etree.parse(str(tmp_path / "bank.xml")).getroot()
    found["moodle-xml"] = sum(1 for q in bank.findall("question") if q.get("type") != "category")
    cc = export_course(course, "cc", tmp_path / "course.imscc")
    found["cc"] = cc.exercises + len(cc.skipped)  # every exercise in the cartridge or reported
    print(
        {"lessons": len(course.lessons()), "exercises": exercises, **found}
    )  # the evidence in the closing note
    assert found == {"qti": exercises, "gift": exercises, "moodle-xml": exercises, "cc": exercises}


@pytest.mark.parametrize("fmt", ["html", "scorm12", "cc", "qti", "gift"])
def test_two_lessons_with_one_id_are_refused_naming_both(tmp_path: Path, fmt: str) -> None:
    data = sample_course_data()
    data["sections"][1]["lessons"][0]["id"] = "S1-L1"  # the first lesson's id
    out = tmp_path / "out"
    with pytest.raises(UserError) as caught:
        export_course(load_course(data), fmt, out)
    [(path, reason)] = caught.value.problems
    assert path == "sections.1.lessons.0.id"
    assert "sections.0.lessons.0.id and sections.1.lessons.0.id" in reason and "'S1-L1'" in reason
    assert not out.exists()


def test_ids_that_become_one_identifier_are_refused_too(tmp_path: Path) -> None:
    data = sample_course_data()
    data["sections"][0]["lessons"][1]["id"] = "S1 L1"  # I_S1_L1 ...
    data["sections"][1]["lessons"][0]["id"] = "S1_L1"  # ... as well
    data["sections"][0]["lessons"][1]["exercises"][1]["id"] = "E1"  # twice in one lesson
    with pytest.raises(UserError) as caught:
        export_course(load_course(data), "scorm12", tmp_path / "x.zip")
    reasons = dict(caught.value.problems)
    assert "(both I_S1_L1)" in reasons["sections.1.lessons.0.id"]
    assert "sections.0.lessons.1.exercises.0.id" in reasons["sections.0.lessons.1.exercises.1.id"]


def test_a_course_built_in_code_is_checked_against_its_schema_before_export(tmp_path: Path) -> None:
    course = sample_course()
    course.sections[0].lessons[0].exercises[0].type = "matching"  # type: ignore[assignment]
    with pytest.raises(UserError) as caught:
        export_course(course, "html", tmp_path / "site")
    assert caught.value.problems[0][0] == "sections.0.lessons.0.exercises.0.type"
    assert not (tmp_path / "site").exists()


_HOSTILE = '<script>alert(1)</script> <img src=x onerror="alert(1)"> a & b'


def test_gift_escapes_html_in_questions_options_feedback_and_categories(tmp_path: Path) -> None:
    data = sample_course_data()
    data["metadata"]["course_title"] = f"Web/{_HOSTILE}"
    lesson = data["sections"][0]["lessons"][0]
    lesson["title"] = _HOSTILE
    mc = lesson["exercises"][0]
    mc["question"], mc["explanation"] = f"Which is a tag? {_HOSTILE}", _HOSTILE
    mc["options"] = ["<script>", "<img onerror=x>", "print"]
    mc["answer"] = "print"
    out = tmp_path / "bank.gift"
    export_course(load_course(data), "gift", out)
    text = out.read_text("utf-8")
    assert "<script" not in text and "<img" not in text
    assert "$CATEGORY: $course$/Web//&lt;script&gt;alert(1)&lt;//script&gt;" in text
    assert "[html]Which is a tag? &lt;script&gt;" in text and "~&lt;img onerror\\=x&gt;" in text
    assert "a &amp; b" in text
    # every question says its text is HTML, and the bank still parses
    questions = [b for b in text.split("\n\n") if b.startswith("::")]
    assert questions and all(":: [html]" in q for q in questions)
    parser = pytest.importorskip("pygiftparser.parser")
    assert len(parser.parseFile(io.StringIO(text))) == len(questions)
