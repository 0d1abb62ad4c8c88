"""The dashboard's "Submit a course" form: topic, audience, difficulty, budget, the sections
with their key concepts (add a row, remove one, reorder by number), source files (the input's
`source_material`: a title and text per row; files picked are read into rows), a question bank
(GIFT or Moodle XML text) — or an analysis_result JSON pasted or read from a file — validated
by the same `parse_analysis` as the API, each problem shown beside the field it names. Works
without script (`app.js` reads the files into the fields; without it, paste)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from ..errors import UserError
from ..views import esc
from .ui_shell import Session, Ui, labelled_input

__all__ = ["analysis_from_form", "bank_from_form", "field_of", "parse_submission", "submit_form"]

#: Blank section rows a fresh form offers (each "Add a section" adds one more).
START_ROWS = 3
#: Blank source rows a fresh form offers (each "Add a source" or file picked adds one more).
START_SOURCES = 1
DIFFICULTIES = ("beginner", "intermediate", "advanced")


def _rows(form: dict[str, str], prefix: str = "s") -> int:
    numbers = [int(m.group(1)) for k in form if (m := re.fullmatch(rf"{prefix}(\d+)-title", k))]
    return max(numbers, default=-1) + 1


def _source_rows(form: dict[str, str]) -> list[int]:
    """The source rows that count: not removed, not empty."""
    return [
        i
        for i in range(_rows(form, "m"))
        if not form.get(f"m{i}-remove")
        and (form.get(f"m{i}-title", "").strip() or form.get(f"m{i}-text", "").strip())
    ]


def analysis_from_form(form: dict[str, str]) -> dict[str, Any]:
    """The analysis_result the form fields describe (the JSON box wins when filled): sections
    in the order of their `order` numbers, removed and empty rows left out."""
    if form.get("analysis", "").strip():
        loaded = json.loads(form["analysis"])
        return loaded if isinstance(loaded, dict) else {"$": loaded}
    sections = []
    for i in range(_rows(form)):
        title = form.get(f"s{i}-title", "").strip()
        concepts = [c.strip() for c in form.get(f"s{i}-concepts", "").split(",") if c.strip()]
        if form.get(f"s{i}-remove") or not (title or concepts):
            continue
        try:
            order = float(form.get(f"s{i}-order") or i + 1)
        except ValueError:
            order = float(i + 1)
        sections.append((order, i, {"title": title, "key_concepts": concepts}))
    data: dict[str, Any] = {
        "topic": form.get("topic", "").strip(),
        "target_audience": form.get("audience", "").strip(),
        "difficulty": form.get("difficulty", "beginner"),
        "sections": [s for _, _, s in sorted(sections, key=lambda x: (x[0], x[1]))],
    }
    if form.get("budget", "").strip():
        try:
            data["budget_usd"] = float(form["budget"])
        except ValueError:
            data["budget_usd"] = form["budget"]
    sources = [
        {
            "id": f"source-{n}",
            "title": form.get(f"m{i}-title", "").strip(),
            "text": form.get(f"m{i}-text", "").replace("\r\n", "\n"),
        }
        for n, i in enumerate(_source_rows(form), start=1)
    ]
    if sources:
        data["source_material"] = sources
    return data


def bank_from_form(form: dict[str, str]) -> list[Any]:
    """The question bank's questions (the `question_bank` box: GIFT or Moodle XML text read
    like `--question-bank`), [] when empty; a UserError naming the box when it is no bank."""
    from ..exports.bank_import import parse_bank

    text = form.get("question_bank", "")
    return parse_bank(text.encode("utf-8"), "question_bank").questions if text.strip() else []


def field_of(path: str, data: dict[str, Any]) -> str:
    """The form field a validator's JSON path names (`$.sections[1].key_concepts` -> the field
    of that section's row); "analysis" for anything the form has no field for."""
    path = path.removeprefix("$").removeprefix(".")
    simple = {
        "topic": "topic",
        "target_audience": "audience",
        "difficulty": "difficulty",
        "budget_usd": "budget",
    }
    if path in simple:
        return simple[path]
    m = re.match(r"sections\[(\d+)\](?:\.(title|key_concepts))?", path)
    if m and "_rows" in data and int(m.group(1)) < len(data["_rows"]):
        row = data["_rows"][int(m.group(1))]
        return f"s{row}-{'concepts' if m.group(2) == 'key_concepts' else 'title'}"
    m = re.match(r"source_material\[(\d+)\](?:\.(title|text))?", path)
    if m and "_srows" in data and int(m.group(1)) < len(data["_srows"]):
        return f"m{data['_srows'][int(m.group(1))]}-{m.group(2) or 'text'}"
    if path == "question_bank":
        return "question_bank"
    if path == "sections":
        return "sections"
    return "analysis"


def _input(name: str, label: str, value: str, errors: dict[str, str], **attrs: str) -> str:
    return f"<p>{labelled_input(name, label, value, errors, **attrs)}</p>"


def submit_form(
    ui: Ui,
    session: Session,
    form: dict[str, str],
    problems: Sequence[tuple[str, str]] = (),
    *,
    extra_row: bool = False,
    extra_source: bool = False,
) -> str:
    """The form, filled with `form` (what was typed) and each problem beside its field."""
    data = analysis_from_form({k: v for k, v in form.items() if k != "analysis"})
    data["_rows"] = [
        i
        for i in range(_rows(form))
        if not form.get(f"s{i}-remove") and (form.get(f"s{i}-title") or form.get(f"s{i}-concepts"))
    ]
    data["_srows"] = _source_rows(form)
    errors: dict[str, str] = {}
    json_used = bool(form.get("analysis", "").strip())  # its problems all belong to the JSON box
    for path, reason in problems:
        in_json = json_used and path != "question_bank"
        errors.setdefault(
            "analysis" if in_json else field_of(path, data), f"{path}: {reason}" if in_json else reason
        )
    rows = max(_rows(form), START_ROWS) + (1 if extra_row else 0)
    section_rows = []
    for i in range(rows):
        cells = []
        for key, label, size in (
            ("order", "order", "3"),
            ("title", "title", "28"),
            ("concepts", "key concepts (comma-separated)", "44"),
        ):
            name = f"s{i}-{key}"
            value = form.get(name, str(i + 1) if key == "order" else "")
            error = errors.get(name, "")
            invalid = f' aria-invalid="true" aria-describedby="{name}-err"' if error else ""
            note = f'<span class="field-error" id="{name}-err">{esc(error)}</span>' if error else ""
            kind = ' type="number" min="0" max="99"' if key == "order" else ""
            cells.append(
                f'<td><label for="{name}" class="sr-only">section {i + 1} {label}</label>'
                f'<input id="{name}" name="{name}" value="{esc(value)}" size="{size}"{kind}{invalid}>{note}</td>'
            )
        checked = " checked" if form.get(f"s{i}-remove") else ""
        cells.append(
            f'<td><input type="checkbox" id="s{i}-remove" name="s{i}-remove" value="1"{checked}>'
            f'<label for="s{i}-remove">remove</label></td>'
        )
        section_rows.append(f"<tr>{''.join(cells)}</tr>")
    difficulty = form.get("difficulty", "beginner")
    options = "".join(f"<option{' selected' if d == difficulty else ''}>{d}</option>" for d in DIFFICULTIES)
    general = [
        f"<li><code>{esc(p)}</code>: {esc(r)}</li>"
        for p, r in problems
        if (json_used and p != "question_bank") or field_of(p, data) in ("analysis", "sections")
    ]
    alert = (
        '<div class="error" role="alert"><p>The course was not submitted: see the fields marked below.</p>'
        + (f"<ul>{''.join(general)}</ul>" if general else "")
        + "</div>"
        if problems
        else ""
    )
    return (
        '<h2 id="submit-h">Submit a course</h2>'
        f'<form method="post" action="/ui/jobs" aria-labelledby="submit-h" class="course-form">{ui.hidden(session)}{alert}'
        + _input("topic", "Topic", form.get("topic", ""), errors, size="50")
        + _input("audience", "Audience", form.get("audience", ""), errors, size="50")
        + f'<p><label for="difficulty">Difficulty</label> <select id="difficulty" name="difficulty">{options}</select></p>'
        + _input(
            "budget", "Budget (USD, optional)", form.get("budget", ""), errors, size="8", inputmode="decimal"
        )
        + '<table class="sections"><caption>Sections (order by number; empty rows are ignored)</caption><thead><tr>'
        '<th scope="col">order</th><th scope="col">title</th><th scope="col">key concepts</th><th scope="col">remove</th>'
        f"</tr></thead><tbody>{''.join(section_rows)}</tbody></table>"
        + (
            f'<span class="field-error" id="sections-err">{esc(errors["sections"])}</span>'
            if "sections" in errors
            else ""
        )
        + '<p><button type="submit" name="action" value="add-section">Add a section</button></p>'
        + _sources_fieldset(form, errors, extra_source)
        + _bank_fieldset(form, errors)
        + "<fieldset><legend>Or an analysis_result JSON (pasted, or read from a file)</legend>"
        '<p><label for="analysis-file">JSON file</label> <input type="file" id="analysis-file" accept=".json,application/json" data-json-into="analysis"></p>'
        '<p><label for="analysis">analysis_result JSON</label></p>'
        f'<textarea id="analysis" name="analysis" rows="8" spellcheck="false">{esc(form.get("analysis", ""))}</textarea>'
        + (f'<span class="field-error">{esc(errors["analysis"])}</span>' if "analysis" in errors else "")
        + "</fieldset>"
        '<p><button type="submit" name="action" value="submit">Submit job</button></p></form>'
    )


def _cell_error(name: str, errors: dict[str, str]) -> tuple[str, str]:
    """(attributes marking the field invalid, the error beside it) for field `name`."""
    error = errors.get(name, "")
    if not error:
        return "", ""
    return (
        f' aria-invalid="true" aria-describedby="{name}-err"',
        f'<span class="field-error" id="{name}-err">{esc(error)}</span>',
    )


def _sources_fieldset(form: dict[str, str], errors: dict[str, str], extra: bool) -> str:
    """Source files: a row per source (title, text, remove); files picked are read into rows
    by `app.js` (new rows added as needed), the text pasted without script."""
    rows = []
    for i in range(max(_rows(form, "m"), START_SOURCES) + (1 if extra else 0)):
        title_attrs, title_err = _cell_error(f"m{i}-title", errors)
        text_attrs, text_err = _cell_error(f"m{i}-text", errors)
        checked = " checked" if form.get(f"m{i}-remove") else ""
        rows.append(
            f'<tr data-source-row="{i}">'
            f'<td><label for="m{i}-title" class="sr-only">source {i + 1} title</label>'
            f'<input id="m{i}-title" name="m{i}-title" value="{esc(form.get(f"m{i}-title", ""))}" size="24"{title_attrs}>{title_err}</td>'
            f'<td><label for="m{i}-text" class="sr-only">source {i + 1} text</label>'
            f'<textarea id="m{i}-text" name="m{i}-text" rows="3" cols="48"{text_attrs}>{esc(form.get(f"m{i}-text", ""))}</textarea>{text_err}</td>'
            f'<td><input type="checkbox" id="m{i}-remove" name="m{i}-remove" value="1"{checked}>'
            f'<label for="m{i}-remove">remove</label></td></tr>'
        )
    return (
        "<fieldset><legend>Source material (optional: lessons are grounded in it and cite it)</legend>"
        '<p><label for="source-files">Source files (text or Markdown)</label> '
        '<input type="file" id="source-files" multiple accept=".txt,.md,.markdown,text/plain,text/markdown" data-sources-into="sources"></p>'
        '<table class="sections" id="sources"><caption>Sources (empty rows are ignored)</caption><thead><tr>'
        '<th scope="col">title</th><th scope="col">text</th><th scope="col">remove</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        '<p><button type="submit" name="action" value="add-source">Add a source</button></p></fieldset>'
    )


def _bank_fieldset(form: dict[str, str], errors: dict[str, str]) -> str:
    attrs, note = _cell_error("question_bank", errors)
    return (
        "<fieldset><legend>Question bank (optional: vetted questions the lessons reuse)</legend>"
        '<p><label for="bank-file">Bank file (GIFT or Moodle XML)</label> '
        '<input type="file" id="bank-file" accept=".gift,.txt,.xml,text/plain,text/xml" data-json-into="question_bank"></p>'
        '<p><label for="question_bank">Question bank text</label></p>'
        f'<textarea id="question_bank" name="question_bank" rows="4" spellcheck="false"{attrs}>{esc(form.get("question_bank", ""))}</textarea>{note}'
        "</fieldset>"
    )


def parse_submission(form: dict[str, str], max_bytes: int) -> Any:
    """The AnalysisResult the form asks for, or a UserError with every problem (JSON paths)."""
    from ..pipeline import parse_analysis

    try:
        data = analysis_from_form(form)
    except json.JSONDecodeError as exc:
        raise UserError("not JSON", [("analysis", f"line {exc.lineno}: {exc.msg}")]) from exc
    return parse_analysis(json.dumps(data).encode("utf-8"), max_bytes=max_bytes)
