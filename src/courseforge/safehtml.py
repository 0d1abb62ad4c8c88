"""The one way text becomes HTML: escaping and a safe Markdown renderer.

The dashboard (`views`), the html, SCORM and Common Cartridge pages (`exports`) and the eval
page (`evals`) all render through here, so a fix to what may reach a learner's browser is made
once. It imports nothing of ours, so every layer may use it.

The Markdown is what lessons use: ATX headings, paragraphs, `-`/`*`/`+`/`1.` lists (nested by
indentation), `>` quotes, fenced code blocks, pipe tables, horizontal rules, inline code,
**bold**, *italic*, ~~strike~~, links and images. Safe by construction:

- every piece of source text is HTML-escaped exactly once, before any markup is added; code
  (inline or fenced) is escaped once and nothing else touches it, so `a < b && c > d` stays so;
- raw HTML in the source stays text: the only elements and attributes in the output are the
  ones this module writes;
- a link's or an image's URL is kept only when, decoded as a browser decodes it (entities,
  whitespace and control characters inside the scheme), its scheme is http(s) or mailto or it
  has none (a relative path or a fragment); otherwise the link keeps its text and the image its
  alt text, inert.
"""

from __future__ import annotations

import html
import re
from urllib.parse import urlsplit

__all__ = ["esc", "markdown_html", "safe_url"]


def esc(value: object) -> str:
    """`value` as text safe inside an element or a quoted attribute."""
    return html.escape(str(value), quote=True)


_SAFE_SCHEMES = frozenset({"", "http", "https", "mailto"})
_CONTROLS = re.compile(r"[\x00-\x20\x7f]")
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")


def safe_url(url: str) -> str | None:
    """`url` as written in Markdown source, its entities (`&...;`) decoded; None when a browser
    could read a scheme other than http(s)/mailto in it (`javascript:`, `data:`, `vbscript:` ...,
    however cased, entity-encoded or split by whitespace and control characters)."""
    decoded = _ENTITY.sub(lambda m: html.unescape(m.group(0)), url)
    for reading in (decoded, html.unescape(url)):  # ours, and a browser's looser one
        try:
            scheme = urlsplit(_CONTROLS.sub("", reading)).scheme.lower()
        except ValueError:
            return None
        if scheme not in _SAFE_SCHEMES:
            return None
    return decoded


# --- inline ---------------------------------------------------------------------------------

#: Placeholders for pieces already rendered (code spans, backslash escapes): private-use
#: characters, removed from the source first so that no text can forge one.
_OPEN, _CLOSE = "\ue000", "\ue001"
_SLOT = re.compile(f"{_OPEN}(\\d+){_CLOSE}")
_CODE = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")
_BACKSLASH = re.compile(r"\\([!-/:-@\[-`{-~])")
_URL = r"((?:[^()\s]|\([^()\s]*\))+)(?:\s+&quot;(.*?)&quot;)?"
_IMAGE = re.compile(r"!\[([^\]\n]*)\]\(" + _URL + r"\)")
_LINK = re.compile(r"\[([^\]\n]+)\]\(" + _URL + r"\)")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|(?<!\w)__(?=\S)(.+?)(?<=\S)__(?!\w)")
_ITALIC = re.compile(
    r"(?<![*\w])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![*\w])|(?<![_\w])_(?=\S)([^_\n]+?)(?<=\S)_(?![_\w])"
)
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")


def _title(escaped: str | None, slots: list[str]) -> str:
    return f' title="{esc(_plain(escaped, slots))}"' if escaped else ""


def _inline(text: str) -> str:
    """One run of Markdown text as HTML: code spans and backslash escapes set aside, the rest
    escaped, then images, links, bold, italic and strike added, then the set-aside put back."""
    slots: list[str] = []

    def keep(rendered: str) -> str:
        slots.append(rendered)
        return f"{_OPEN}{len(slots) - 1}{_CLOSE}"

    text = text.replace(_OPEN, "\ufffd").replace(_CLOSE, "\ufffd")
    text = _CODE.sub(lambda m: keep(f"<code>{esc(_code_text(m.group(2)))}</code>"), text)
    text = _BACKSLASH.sub(lambda m: keep(esc(m.group(1))), text)
    text = esc(text)

    def image(m: re.Match[str]) -> str:
        alt, url = _plain(m.group(1), slots), safe_url(_plain(m.group(2), slots))
        src = f' src="{esc(url)}"' if url is not None else ""
        return keep(f'<img{src} alt="{esc(alt)}"{_title(m.group(3), slots)}>')

    def link(m: re.Match[str]) -> str:
        url = safe_url(_plain(m.group(2), slots))
        if url is None:
            return m.group(1)
        opening = f'<a href="{esc(url)}"{_title(m.group(3), slots)} rel="noopener noreferrer">'
        return keep(opening) + m.group(1) + keep("</a>")  # emphasis never reaches into the tag

    text = _IMAGE.sub(image, text)
    text = _LINK.sub(link, text)
    text = _BOLD.sub(lambda m: f"<strong>{m.group(1) or m.group(2)}</strong>", text)
    text = _ITALIC.sub(lambda m: f"<em>{m.group(1) or m.group(2)}</em>", text)
    text = _STRIKE.sub(r"<del>\1</del>", text)
    while _SLOT.search(text):  # an image's slot may sit inside a link's label
        text = _SLOT.sub(lambda m: slots[int(m.group(1))], text)
    return text


def _code_text(body: str) -> str:
    """A code span's text: one leading and trailing space dropped when both are there."""
    if len(body) > 2 and body.startswith(" ") and body.endswith(" ") and body.strip():
        return body[1:-1]
    return body


def _plain(escaped: str, slots: list[str]) -> str:
    """Escaped source back to plain text (for an attribute: a URL, a title, alt text), the
    set-aside pieces in it without their tags (they may nest: an image inside a link's URL)."""
    while _SLOT.search(escaped):
        escaped = _SLOT.sub(lambda m: slots[int(m.group(1))], escaped)
    return html.unescape(re.sub(r"<[^>]*>", "", escaped))


# --- blocks ---------------------------------------------------------------------------------

_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:\s+(.*?))?\s*(?:\s#+)?\s*$")
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^`]*)$")
_RULE = re.compile(r"^ {0,3}([-*_])(?:\s*\1){2,}\s*$")
_ITEM = re.compile(r"^(\s*)(?:([-*+])|(\d{1,9})[.)])(\s+)(.*)$")
_DELIMITER = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")


def _width(line: str) -> int:
    """Columns of leading whitespace (a tab counts four)."""
    stripped = line.lstrip(" \t")
    return len(line[: len(line) - len(stripped)].expandtabs(4))


def _dedent(line: str, columns: int) -> str:
    expanded = line[: len(line) - len(line.lstrip(" \t"))].expandtabs(4)
    return expanded[columns:] + line.lstrip(" \t") if len(expanded) >= columns else line.lstrip(" \t")


def _cells(row: str) -> list[str]:
    """A table row's cells: split on `|` outside code spans and not escaped."""
    row = row.strip()
    row = row[1:] if row.startswith("|") else row
    row = row[:-1] if row.endswith("|") and not row.endswith("\\|") else row
    cells, current, i, ticks = [], "", 0, ""
    while i < len(row):
        ch = row[i]
        if ch == "\\" and i + 1 < len(row):
            current += row[i : i + 2]
            i += 2
            continue
        if ch == "`":
            run = re.match(r"`+", row[i:])
            assert run is not None
            ticks = "" if ticks == run.group(0) else (ticks or run.group(0))
            current += run.group(0)
            i += len(run.group(0))
            continue
        if ch == "|" and not ticks:
            cells.append(current.strip())
            current = ""
        else:
            current += ch
        i += 1
    cells.append(current.strip())
    return cells


def _table(header: str, delimiter: str, rows: list[str]) -> str:
    aligns = []
    for cell in _cells(delimiter):
        left, right = cell.startswith(":"), cell.endswith(":")
        aligns.append("center" if left and right else "right" if right else "left" if left else "")
    width = len(aligns)

    def row_html(line: str, tag: str) -> str:
        cells = (_cells(line) + [""] * width)[:width]
        styles = [f' style="text-align:{a}"' if a else "" for a in aligns]
        return (
            "<tr>"
            + "".join(f"<{tag}{s}>{_inline(c)}</{tag}>" for c, s in zip(cells, styles, strict=True))
            + "</tr>"
        )

    body = "".join(row_html(r, "td") for r in rows)
    return (
        f"<table><thead>{row_html(header, 'th')}</thead>"
        + (f"<tbody>{body}</tbody>" if body else "")
        + "</table>"
    )


class _Blocks:
    """The block structure of one Markdown text, rendered line by line into `out`."""

    def __init__(self, lines: list[str], heading_offset: int) -> None:
        self.lines, self.offset = lines, heading_offset
        self.out: list[str] = []
        self.para: list[str] = []
        self.quote: list[str] = []
        self.i = 0

    def flush(self) -> None:
        if self.para:
            self.out.append("<p>" + _inline(" ".join(self.para)) + "</p>")
            self.para.clear()
        if self.quote:
            inner = markdown_html("\n".join(self.quote), heading_offset=self.offset)
            self.out.append(f"<blockquote>{inner}</blockquote>")
            self.quote.clear()

    def render(self) -> str:
        while self.i < len(self.lines):
            self.step(self.lines[self.i])
        self.flush()
        return "\n".join(self.out)

    def step(self, line: str) -> None:
        stripped = line.strip()
        heading, item = _HEADING.match(line), _ITEM.match(line)
        if not stripped:
            self.flush()
        elif _FENCE.match(line):
            self.flush()
            self.fence()
            return
        elif stripped.startswith(">"):
            if self.para:
                self.flush()
            self.quote.append(stripped[1:].removeprefix(" "))
        elif heading:
            self.flush()
            level = min(6, len(heading.group(1)) + self.offset)
            self.out.append(f"<h{level}>{_inline(heading.group(2) or '')}</h{level}>")
        elif _RULE.match(line):
            self.flush()
            self.out.append("<hr>")
        elif item:
            self.flush()
            self.out.append(self.list_block())
            return
        elif "|" in stripped and self.i + 1 < len(self.lines) and self.is_table():
            self.flush()
            self.table()
            return
        else:
            if self.quote:
                self.flush()
            self.para.append(stripped)
        self.i += 1

    def fence(self) -> None:
        m = _FENCE.match(self.lines[self.i])
        assert m is not None
        indent, marker, info = len(m.group(1)), m.group(2), m.group(3).strip()
        body: list[str] = []
        self.i += 1
        while self.i < len(self.lines):
            line = self.lines[self.i]
            if re.fullmatch(rf"\s*{re.escape(marker[0])}{{{len(marker)},}}\s*", line):
                break
            body.append(_dedent(line, indent))
            self.i += 1
        self.i += 1
        lang = info.split(" ")[0]
        cls = f' class="language-{esc(lang)}"' if re.fullmatch(r"[\w+#.-]{1,30}", lang) else ""
        self.out.append(f"<pre><code{cls}>{esc(chr(10).join(body))}</code></pre>")

    def is_table(self) -> bool:
        delimiter = self.lines[self.i + 1]
        return bool(_DELIMITER.match(delimiter)) and (
            len(_cells(delimiter)) == len(_cells(self.lines[self.i])) and "-" in delimiter
        )

    def table(self) -> None:
        header, delimiter = self.lines[self.i], self.lines[self.i + 1]
        self.i += 2
        rows: list[str] = []
        while self.i < len(self.lines) and "|" in self.lines[self.i] and self.lines[self.i].strip():
            rows.append(self.lines[self.i])
            self.i += 1
        self.out.append(_table(header, delimiter, rows))

    def list_block(self) -> str:
        """A list from the current line on: items of the same kind at the same indentation,
        each with its continuation (lazy text or indented blocks, nested lists included)."""
        first = _ITEM.match(self.lines[self.i])
        assert first is not None
        base, ordered = _width(first.group(1)), first.group(3) is not None
        items: list[list[str]] = []
        while self.i < len(self.lines):
            line = self.lines[self.i]
            m = _ITEM.match(line)
            if m and _width(m.group(1)) <= base + 1 and (m.group(3) is not None) == ordered:
                content = base + len(m.group(2) or m.group(3)) + (0 if m.group(2) else 1)
                items.append([" " * (content + len(m.group(4))) + m.group(5)])
                self.i += 1
                continue
            if m and _width(m.group(1)) <= base + 1:
                break  # a list of the other kind starts
            if line.strip() and (_width(line) > base or self.lazy(items[-1], line)):
                items[-1].append(line)
                self.i += 1
                continue
            if not line.strip() and self.continues(base, ordered):
                items[-1].append("")
                self.i += 1
                continue
            break
        tag = "ol" if ordered else "ul"
        start = int(first.group(3)) if ordered else 1
        attr = f' start="{start}"' if start != 1 else ""
        return f"<{tag}{attr}>" + "".join(self.item(lines) for lines in items) + f"</{tag}>"

    @staticmethod
    def lazy(item: list[str], line: str) -> bool:
        """A line at the list's own indentation that only continues the item's last paragraph."""
        return bool(item[-1].strip()) and not (
            _FENCE.match(line) or _HEADING.match(line) or _RULE.match(line) or line.strip().startswith(">")
        )

    def continues(self, base: int, ordered: bool) -> bool:
        """After a blank line: does the list go on (another item of its kind, or an indented block)?"""
        j = self.i
        while j < len(self.lines) and not self.lines[j].strip():
            j += 1
        if j == len(self.lines):
            return False
        m = _ITEM.match(self.lines[j])
        if m and _width(m.group(1)) <= base + 1:
            return (m.group(3) is not None) == ordered
        return _width(self.lines[j]) > base + 1

    def item(self, lines: list[str]) -> str:
        columns = min((_width(x) for x in lines if x.strip()), default=0)
        columns = min(columns, _width(lines[0]))
        body = [_dedent(x, columns) if x.strip() else "" for x in lines]
        while body and not body[-1]:
            body.pop()
        lead = [body[0].strip()]  # the item's own line, then its paragraph's lazy lines
        for line in body[1:]:
            if not line.strip() or _ITEM.match(line) or _FENCE.match(line) or line.strip().startswith(">"):
                break
            if _HEADING.match(line) or _RULE.match(line):
                break
            lead.append(line.strip())
        rest = body[len(lead) :]
        html_lead = _inline(" ".join(lead))
        if not rest:
            return f"<li>{html_lead}</li>"
        inner = markdown_html("\n".join(rest), heading_offset=self.offset)
        return f"<li>{html_lead}{inner}</li>"


def markdown_html(source: str, *, heading_offset: int = 0) -> str:
    """`source` Markdown as safe HTML; headings move down by `heading_offset` levels (at most h6)."""
    lines = source.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return _Blocks(lines, heading_offset).render()
