"""`courseforge export` on the command line: what it refuses to write over, and where it
cannot write, before anything is written (exit 2 and a sentence naming the option)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from course_helpers import sample_course_data
from typer.testing import CliRunner

from courseforge.cli import app


def invoke(*args: str) -> Any:
    env = {"OPENROUTER_API_KEY": "", "COURSEFORGE_CONFIG": ""}
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def _course_file(tmp_path: Path) -> Path:
    path = tmp_path / "course.json"
    path.write_text(json.dumps(sample_course_data()), "utf-8")
    return path


_EXPORT_OUTPUTS = {
    # case: (format, -o, the reason given)
    "zip-over-the-input": ("scorm12", "{course}", "is the input file"),
    "file-over-the-input": ("gift", "{course}", "is the input file"),
    "folder-holding-the-input": ("html", "{tmp}", "holds the input"),
    "zip-in-proc": ("scorm12", "/proc/nope/x.zip", "cannot create"),
    "file-in-sys": ("gift", "/sys/kernel/x.gift", "cannot create"),
    "zip-is-a-directory": ("scorm12", "{tmp}/a-dir", "is a directory"),
    "folder-is-a-file": ("html", "{tmp}/a-file", "exists and is not a folder"),
    "name-over-255-bytes": ("qti", "{tmp}/" + "q" * 300 + ".zip", "File name too long"),
}


@pytest.mark.parametrize("case", list(_EXPORT_OUTPUTS))
def test_export_checks_its_output_before_writing(tmp_path: Path, case: str) -> None:
    course = _course_file(tmp_path)
    before = course.read_bytes()
    (tmp_path / "a-dir").mkdir()
    (tmp_path / "a-file").write_text("x")
    fmt, out, reason = _EXPORT_OUTPUTS[case]
    listing = sorted(p.name for p in tmp_path.iterdir())
    result = invoke("export", str(course), "--format", fmt, "-o", out.format(tmp=tmp_path, course=course))
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.exception)
    assert "cannot write the output" in result.stderr and reason in result.stderr and "  -o " in result.stderr
    assert course.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == listing


def test_export_into_an_existing_folder_replaces_it(tmp_path: Path) -> None:
    course = _course_file(tmp_path)
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "old.html").write_text("old")
    result = invoke("export", str(course), "--format", "html", "-o", str(tmp_path / "site"))
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "site" / "index.html").is_file() and not (tmp_path / "site" / "old.html").exists()
