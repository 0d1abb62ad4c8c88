"""Cut sections out of the human-written teaching text shipped in Debian documentation packages.

Three readers, one result shape (`Section`): the Python tutorial's reStructuredText sources
(`python3-doc`), "An Introduction to R" as HTML (`r-doc-html`) and "A Brief History of Debian"
as plain text (`debian-history`). Each turns its markup into the Markdown a lesson is written
in (code blocks fenced, roles and links reduced to their text) and keeps every section body
apart from its subsections, so a section is a piece of text one person wrote under one heading.
Standard library only, so the builder runs wherever the packages are installed.
"""

from __future__ import annotations

import gzip
import html
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

__all__ = ["Section", "debian_history", "python_tutorial", "r_intro"]


@dataclass(frozen=True)
class Section:
    source: str
    file: str
    title: str
    text: str

    @property
    def words(self) -> int:
        return len(re.findall(r"\w+(?:['’-]\w+)*", self.text))


# -- Python tutorial (reStructuredText) --------------------------------------------------------
_UNDERLINE = re.compile(r"^([=\-~^*\"'])\1{3,}\s*$")
_ROLE = re.compile(r":[\w:.-]+:`([^`]*)`")
_LITERAL = re.compile(r"``([^`]+)``")
_LINK = re.compile(r"`([^`<]+?)\s*<[^>]+>`_+")


def _role(match: re.Match[str]) -> str:
    inner = match.group(1).lstrip("!~")
    explicit = re.match(r"(.+?)\s*<[^>]+>$", inner)
    return f"`{explicit.group(1) if explicit else inner}`"


def _inline(text: str) -> str:
    text = _ROLE.sub(_role, text)
    text = _LITERAL.sub(r"`\1`", text)
    text = _LINK.sub(r"\1", text)
    return text.replace("\\", "")


def _rst_to_markdown(lines: list[str]) -> str:
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        directive = re.match(r"^\.\.\s+([\w-]+)::(.*)$", stripped)
        if stripped.startswith("..") and (directive is None or directive.group(1) not in _KEEP):
            # A comment, label, index or other directive: skip it and its indented body.
            i += 1
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
                if lines[i].strip() and not lines[i].startswith((" ", "\t")):
                    break
                i += 1
            continue
        if directive is not None and directive.group(1) in ("code-block", "sourcecode", "code"):
            block, i = _indented_block(lines, i + 1)
            out += ["```", *block, "```", ""]
            continue
        if directive is not None:  # note, seealso, tip: keep the body as a paragraph
            i += 1
            block, i = _indented_block(lines, i)
            out += [_inline(b.strip()) for b in block] + [""]
            continue
        if stripped.endswith("::"):
            head = stripped[:-2].rstrip()
            if head:
                out.append(_inline(line.rstrip()[:-2].rstrip() + ":"))
            block, i = _indented_block(lines, i + 1)
            out += ["", "```", *block, "```", ""]
            continue
        if stripped.startswith(">>>"):
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i].rstrip())
                i += 1
            out += ["```", *block, "```", ""]
            continue
        out.append(_inline(line.rstrip()))
        i += 1
    text = "\n".join(out)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return _unwrap(text.strip())


_KEEP = ("note", "seealso", "tip", "code-block", "sourcecode", "code", "important", "warning")


def _indented_block(lines: list[str], i: int) -> tuple[list[str], int]:
    while i < len(lines) and not lines[i].strip():
        i += 1
    block: list[str] = []
    indent = None
    while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
        if lines[i].strip():
            here = len(lines[i]) - len(lines[i].lstrip())
            indent = here if indent is None else min(indent, here)
        block.append(lines[i])
        i += 1
    while block and not block[-1].strip():
        block.pop()
    cut = indent or 0
    return [b[cut:].rstrip() for b in block], i


def _unwrap(text: str) -> str:
    """Join hard-wrapped prose lines (outside code fences and lists) into one line each."""
    out: list[str] = []
    fenced = False
    for line in text.split("\n"):
        if line.startswith("```"):
            fenced = not fenced
            out.append(line)
            continue
        joinable = (
            not fenced
            and out
            and out[-1].strip()
            and line.strip()
            and not out[-1].startswith("```")
            and not re.match(r"^\s*(?:[-*+]|\d+[.)])\s", line)
        )
        if joinable:
            out[-1] = out[-1].rstrip() + " " + line.strip()
        else:
            out.append(line)
    return "\n".join(out)


def python_tutorial(root: Path) -> list[Section]:
    """Every section of the tutorial's `*.rst.txt` files under `root`."""
    sections: list[Section] = []
    for path in sorted(root.glob("*.rst.txt")):
        lines = path.read_text("utf-8").splitlines()
        heads = [
            i
            for i in range(1, len(lines))
            if _UNDERLINE.match(lines[i]) and lines[i - 1].strip() and not _UNDERLINE.match(lines[i - 1])
        ]
        for n, h in enumerate(heads):
            end = heads[n + 1] - 1 if n + 1 < len(heads) else len(lines)
            body = lines[h + 1 : end]
            if body and _UNDERLINE.match(body[0]):
                body = body[1:]
            title = _inline(lines[h - 1].strip()).replace("`", "")
            sections.append(Section("python3-doc", path.name, title, _rst_to_markdown(body)))
    return sections


# -- An Introduction to R (HTML) -----------------------------------------------------------------
_NOISE = ("header", "menu", "mini-toc", "section-toc", "contents", "footnote", "nav-panel", "shortcontents")


class _RIntro(HTMLParser):
    """Headings and the blocks under them: paragraphs, list items, definitions, examples."""

    _BLOCKS = ("p", "li", "dt", "dd", "pre")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[tuple[str, list[str]]] = []
        self._in: str | None = None
        self._buf: list[str] = []
        self._code = 0
        self._skip = 0
        self._skip_tag = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = dict(attrs).get("class") or ""
        if self._skip:
            self._skip += tag == self._skip_tag
            return
        if tag == "sup" or any(c in classes.split() for c in _NOISE):
            # Navigation, menus, tables of contents and footnote marks are not the author's prose.
            self._skip, self._skip_tag = 1, tag
            return
        if tag in ("h2", "h3", "h4") or (tag in self._BLOCKS and self._in != "pre"):
            self._flush()
            self._in, self._buf = tag, []
        elif tag in ("code", "samp", "var", "kbd") and self._in != "pre":
            self._code += 1
            self._buf.append("`")

    def handle_endtag(self, tag: str) -> None:
        if self._skip:
            self._skip -= tag == self._skip_tag
            return
        if tag in ("code", "samp", "var", "kbd") and self._code and self._in != "pre":
            self._code -= 1
            self._buf.append("`")
        elif tag == self._in:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self._skip and self._in is not None:
            self._buf.append(data)

    def _flush(self) -> None:
        kind, raw = self._in, "".join(self._buf)
        self._in, self._buf = None, []
        if kind is None:
            return
        if kind in ("h2", "h3", "h4"):
            self.sections.append((" ".join(raw.split()), []))
            return
        if not self.sections:
            return
        if kind == "pre":
            code = raw.strip("\n")
            if code.strip():
                self.sections[-1][1].append("```\n" + code + "\n```")
            return
        text = " ".join(raw.split()).replace("``", "`").replace("` `", " ")
        if not text:
            return
        self.sections[-1][1].append(("- " if kind == "li" else "") + text)


def r_intro(path: Path) -> list[Section]:
    parser = _RIntro()
    parser.feed(path.read_text("utf-8"))
    parser.close()
    out = []
    for title, blocks in parser.sections:
        text = "\n\n".join(blocks)
        text = re.sub(r"\n\n(?=- )", "\n", text)  # list items of one list stay together
        out.append(Section("r-doc-html", path.name, html.unescape(title), text.strip()))
    return out


# -- A Brief History of Debian (plain text) --------------------------------------------------------
_DH_HEAD = re.compile(r"^(?:Chapter |Appendix )?((?:\d+|A)(?:\.\d+)*\.)\s+(\S.*)$")


def debian_history(path: Path) -> list[Section]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = f.read().replace("\u00a0", " ").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Chapter 1."))
    sections: list[Section] = []
    title, body = "", []  # type: ignore[var-annotated]

    def flush() -> None:
        if title:
            paragraphs, current = [], []
            for line in body:
                if not line.strip():
                    if current:
                        paragraphs.append(" ".join(current))
                        current = []
                    continue
                item = re.match(r"^\s*\*\s+(.*)$", line)
                if item:
                    if current:
                        paragraphs.append(" ".join(current))
                    current = ["- " + item.group(1).strip()]
                else:
                    current.append(line.strip())
            if current:
                paragraphs.append(" ".join(current))
            text = "\n\n".join(paragraphs)
            text = re.sub(r"\n\n(?=- )", "\n", text)
            sections.append(Section("debian-history", path.name, title, text.strip()))

    for line in lines[start:]:
        head = _DH_HEAD.match(line)
        if head and not line.startswith(" "):
            flush()
            title, body = f"{head.group(1)} {head.group(2).strip()}", []
        else:
            body.append(line)
    flush()
    return sections
