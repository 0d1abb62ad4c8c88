"""A question bank read back: GIFT, Moodle XML or QTI 2.1 (a zip package or one item), the
formats the exports write, into exercises a course can reuse (`generate --question-bank`).

Each question keeps its source id (GIFT `::name::`, Moodle `<name>`, QTI `identifier`) as its
exercise id; `outcome_ids` stay empty until the pipeline maps it to an outcome. What cannot be
a graded or open exercise (matching, numerical, cloze, drag and drop ...) is skipped and listed.
"""

from __future__ import annotations

import html
import io
import re
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..domain import Exercise
from ..errors import UserError

__all__ = ["BankImport", "parse_bank", "read_bank"]

#: A bank larger than this is refused (a bank is a few hundred questions, not a database dump).
MAX_BANK_BYTES = 5_000_000


@dataclass(slots=True)
class BankImport:
    format: str
    questions: list[Exercise] = field(default_factory=list)
    #: (source id or position, why it was not imported)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _exercise(
    qid: str, kind: str, question: str, answer: str, explanation: str, options: list[str] | None = None
) -> Exercise:
    return Exercise(
        id=qid,
        type=kind,
        question=" ".join(question.split()),
        options=options,
        answer=answer.strip(),
        explanation=explanation.strip() or "From the question bank.",
        outcome_ids=[],
    )


# -- GIFT --------------------------------------------------------------------------------------

_TAG = re.compile(r"<[^>]+>")
_GIFT_ESCAPED = re.compile(r"\\([~=#{}:\\n])")
_GIFT_NAME = re.compile(r"^::((?:\\.|[^:])*)::\s*")


def _unescape(text: str) -> str:
    return _GIFT_ESCAPED.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), text).strip()


def _split_unescaped(text: str, marks: str) -> list[tuple[str, str]]:
    """(mark, text) parts of `text` cut at each unescaped character of `marks`."""
    parts: list[tuple[str, str]] = []
    mark, current, i = "", [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if ch in marks:
            parts.append((mark, "".join(current)))
            mark, current = ch, []
        else:
            current.append(ch)
        i += 1
    parts.append((mark, "".join(current)))
    return parts


_GIFT_FORMAT = re.compile(r"^\[(html|moodle|plain|markdown)\]\s*")


def _gift_block(block: str, n: int, out: BankImport) -> None:
    name = _GIFT_NAME.match(block)
    qid = _unescape(name.group(1)) if name else f"Q{n}"
    rest = block[name.end() :] if name else block
    marker = _GIFT_FORMAT.match(rest)
    block_html = marker is not None and marker.group(1) == "html"  # [html] text is entity-escaped
    if marker is not None:
        rest = rest[marker.end() :]

    def clean(text: str) -> str:
        text = _unescape(text)
        return html.unescape(_TAG.sub(" ", text)).strip() if block_html else text

    body = _split_unescaped(rest, "{}")
    if len(body) < 3 or body[1][0] != "{" or body[2][0] != "}":
        out.skipped.append((qid, "no answer block {...}"))
        return
    question, answers = clean(body[0][1]), body[1][1].strip()
    feedback = ""
    if "####" in answers:
        answers, feedback = answers.split("####", 1)
        feedback = clean(feedback)
    upper = answers.strip().upper()
    if upper in ("T", "TRUE", "F", "FALSE"):
        out.questions.append(
            _exercise(qid, "true_false", question, "true" if upper.startswith("T") else "false", feedback)
        )
        return
    if not answers.strip():
        out.questions.append(_exercise(qid, "open", question, feedback or "(open answer)", feedback))
        return
    choices = [(m, clean(t.split("#", 1)[0])) for m, t in _split_unescaped(answers, "=~") if m]
    if any("->" in t for _, t in choices) or answers.lstrip().startswith("#"):
        out.skipped.append((qid, "matching and numerical GIFT questions are not exercises here"))
        return
    right = [t for m, t in choices if m == "="]
    if any(m == "~" for m, _ in choices):
        if len(right) != 1:
            out.skipped.append((qid, "a multiple choice needs exactly one right answer"))
            return
        out.questions.append(
            _exercise(qid, "multiple_choice", question, right[0], feedback, [t for _, t in choices])
        )
    elif right:
        out.questions.append(_exercise(qid, "short_answer", question, right[0], feedback))
    else:
        out.skipped.append((qid, "unsupported GIFT question (matching, numerical, ...)"))


def _gift(text: str) -> BankImport:
    out = BankImport("gift")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith(("//", "$CATEGORY"))]
    blocks = [b.strip() for b in re.split(r"\n\s*\n", "\n".join(lines)) if b.strip()]
    for n, block in enumerate(blocks, start=1):
        _gift_block(block, n, out)
    return out


# -- Moodle XML --------------------------------------------------------------------------------


def _plain(node: ET.Element | None) -> str:
    text = node.findtext("text", "") if node is not None else ""
    return html.unescape(_TAG.sub(" ", text or "")).strip()


def _moodle(root: ET.Element) -> BankImport:
    out = BankImport("moodle-xml")
    for n, q in enumerate(root.findall("question"), start=1):
        kind = q.get("type", "")
        if kind == "category":
            continue
        qid = _plain(q.find("name")) or f"Q{n}"
        question, explanation = _plain(q.find("questiontext")), _plain(q.find("generalfeedback"))
        answers = [(float(a.get("fraction", "0")), _plain(a)) for a in q.findall("answer")]
        right = [t for f, t in answers if f >= 100]
        if kind == "multichoice" and len(right) == 1:
            out.questions.append(
                _exercise(qid, "multiple_choice", question, right[0], explanation, [t for _, t in answers])
            )
        elif kind == "truefalse" and right:
            out.questions.append(_exercise(qid, "true_false", question, right[0].lower(), explanation))
        elif kind == "shortanswer" and right:
            out.questions.append(_exercise(qid, "short_answer", question, right[0], explanation))
        elif kind == "essay":
            model = _plain(q.find("graderinfo")).removeprefix("Model answer:").strip()
            out.questions.append(_exercise(qid, "open", question, model or "(open answer)", explanation))
        else:
            out.skipped.append((qid, f"Moodle question type {kind!r} with {len(right)} right answer(s)"))
    return out


# -- QTI 2.1 -----------------------------------------------------------------------------------

_QTI = "{http://www.imsglobal.org/xsd/imsqti_v2p1}"


def _qti_item(root: ET.Element, out: BankImport) -> None:
    qid = root.get("identifier", f"Q{len(out.questions) + len(out.skipped) + 1}")
    correct = root.findtext(f"{_QTI}responseDeclaration/{_QTI}correctResponse/{_QTI}value", "").strip()
    body = root.find(f"{_QTI}itemBody")
    if body is None:
        out.skipped.append((qid, "no itemBody"))
        return
    choice = body.find(f".//{_QTI}choiceInteraction")
    if choice is not None:
        prompt = "".join(choice.findtext(f"{_QTI}prompt", "") or "")
        options = [
            (c.get("identifier", ""), "".join(c.itertext()).strip())
            for c in choice.findall(f"{_QTI}simpleChoice")
        ]
        right = [t for i, t in options if i == correct]
        if not right:
            out.skipped.append((qid, "choiceInteraction without a correct response"))
            return
        texts = [t for _, t in options]
        if [t.lower() for t in texts] == ["true", "false"]:
            out.questions.append(_exercise(qid, "true_false", prompt, right[0].lower(), ""))
        else:
            out.questions.append(_exercise(qid, "multiple_choice", prompt, right[0], "", texts))
        return
    if body.find(f".//{_QTI}textEntryInteraction") is not None and correct:
        out.questions.append(_exercise(qid, "short_answer", "".join(body.itertext()), correct, ""))
        return
    extended = body.find(f".//{_QTI}extendedTextInteraction")
    if extended is not None:
        out.questions.append(
            _exercise(qid, "open", extended.findtext(f"{_QTI}prompt", "") or "", "(open answer)", "")
        )
        return
    out.skipped.append((qid, "unsupported QTI interaction"))


def _qti_zip(raw: bytes) -> BankImport:
    out = BankImport("qti")
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        for name in sorted(archive.namelist()):
            if not name.endswith(".xml") or name == "imsmanifest.xml":
                continue
            root = _xml(archive.read(name), name)
            if root.tag == f"{_QTI}assessmentItem":
                _qti_item(root, out)
    return out


def _xml(raw: bytes, where: str) -> ET.Element:
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise UserError("question bank refused", [(where, "XML with a DOCTYPE or entities is not read")])
    try:
        return ET.fromstring(raw)
    except ET.ParseError as exc:
        raise UserError("question bank is not XML", [(where, str(exc))]) from exc


def read_bank(path: Path) -> BankImport:
    """The questions of a GIFT (`.gift`, `.txt`), Moodle XML (`<quiz>`) or QTI 2.1 (a package zip
    or one `assessmentItem`) bank file; a UserError naming the file when it is none of them."""
    try:
        if path.stat().st_size > MAX_BANK_BYTES:
            raise UserError("question bank too large", [(str(path), f"more than {MAX_BANK_BYTES} bytes")])
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError("cannot read question bank", [(str(path), exc.strerror or str(exc))]) from exc
    return parse_bank(raw, str(path))


def parse_bank(raw: bytes, where: str) -> BankImport:
    """The questions of a bank's bytes (`read_bank`; the service's upload); `where` names it in
    errors."""
    if len(raw) > MAX_BANK_BYTES:
        raise UserError("question bank too large", [(where, f"more than {MAX_BANK_BYTES} bytes")])
    try:
        if raw.startswith(b"PK"):
            bank = _qti_zip(raw)
        elif raw.lstrip().startswith(b"<"):
            root = _xml(raw, where)
            if root.tag == "quiz":
                bank = _moodle(root)
            elif root.tag == f"{_QTI}assessmentItem":
                bank = BankImport("qti")
                _qti_item(root, bank)
            else:
                raise UserError("unknown question bank", [(where, f"root element {root.tag!r}")])
        else:
            bank = _gift(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, zipfile.BadZipFile) as exc:
        raise UserError("question bank unreadable", [(where, str(exc)[:200])]) from exc
    if not bank.questions:
        raise UserError("empty question bank", [(where, f"no usable question ({len(bank.skipped)} skipped)")])
    return bank
