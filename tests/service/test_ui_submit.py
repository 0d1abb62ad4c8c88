"""The course form's fields as an analysis_result (no browser): sources in row order with
CRLF made LF, removed and empty rows left out; a validator's path back to its field; the
question bank box read like `--question-bank`, refused naming the box."""

from __future__ import annotations

import pytest

from courseforge.errors import UserError
from courseforge.service.ui_submit import analysis_from_form, bank_from_form, field_of, parse_submission

FORM = {
    "topic": "Photosynthesis",
    "audience": "Students",
    "s0-title": "Light reactions",
    "s0-concepts": "chlorophyll, oxygen",
    "m0-title": "notes",
    "m0-text": "line one\r\nline two",
    "m1-title": "dropped",
    "m1-text": "x",
    "m1-remove": "1",
    "m2-title": "",
    "m2-text": "",
    "m3-title": "cycle",
    "m3-text": "",
}


def test_source_rows_become_source_material_and_errors_find_their_row() -> None:
    data = analysis_from_form(FORM)
    assert data["source_material"] == [
        {"id": "source-1", "title": "notes", "text": "line one\nline two"},
        {"id": "source-2", "title": "cycle", "text": ""},
    ]
    with pytest.raises(UserError) as refused:
        parse_submission(FORM, 2_000_000)
    path = refused.value.problems[0][0]
    assert path == "$.source_material[1].text"
    assert field_of(path, {**data, "_srows": [0, 3]}) == "m3-text"
    assert "source_material" not in analysis_from_form(
        {k: v for k, v in FORM.items() if not k.startswith("m")}
    )


def test_the_bank_box_is_read_like_a_bank_file() -> None:
    gift = "::Q1:: Plants release oxygen in the light reactions. {T}\n"
    assert [q.id for q in bank_from_form({"question_bank": gift})] == ["Q1"]
    assert bank_from_form({"question_bank": "  "}) == []
    with pytest.raises(UserError) as refused:
        bank_from_form({"question_bank": "// only a comment\n"})
    assert refused.value.problems[0][0] == "question_bank"
    assert field_of("question_bank", {}) == "question_bank"
