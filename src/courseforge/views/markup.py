"""HTML building blocks: escaping, a small safe Markdown renderer, the page shell.

The Markdown subset is what the lessons use: ATX headings, paragraphs, `-`/`*`/`1.` lists,
`>` quotes, fenced code blocks, inline code, **bold**, *italic* and links. Every piece of text
is HTML-escaped before any markup is added, raw HTML in the source stays text, and a link is
kept only when its target is http(s), a fragment or a relative path (never `javascript:`).
"""

from __future__ import annotations

import html
import re
from importlib import resources

__all__ = ["document", "esc", "markdown_html", "stylesheet"]


def esc(value: object) -> str:
    """`value` as text safe inside an element or a quoted attribute."""
    return html.escape(str(value), quote=True)


_CODE = re.compile(r"`([^`\n]+)`")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_ITALIC = re.compile(r"(?<![*\w])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![*\w])")
_LINK = re.compile(r"\[([^\]\n]+)\]\(([^)\s]+)\)")
_SAFE_URL = re.compile(r"^(https?://|#|/(?!/)|\./|[A-Za-z0-9_-]+(?:[./][A-Za-z0-9_.-]*)*(?:#[\w-]*)?$)")


def _inline(text: str) -> str:
    """One line of Markdown: escaped first, then code spans, links, bold and italic."""
    pieces = _CODE.split(text)
    out: list[str] = []
    for i, piece in enumerate(pieces):
        if i % 2:
            out.append(f"<code>{esc(piece)}</code>")
            continue
        part = esc(piece)

        def link(m: re.Match[str]) -> str:
            label, url = m.group(1), html.unescape(m.group(2))
            if not _SAFE_URL.match(url):
                return m.group(0)
            return f'<a href="{esc(url)}" rel="noopener noreferrer">{label}</a>'

        part = _LINK.sub(link, part)
        part = _BOLD.sub(r"<strong>\1</strong>", part)
        part = _ITALIC.sub(r"<em>\1</em>", part)
        out.append(part)
    return "".join(out)


_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^\s*[-*+]\s+(.*)$")
_NUMBERED = re.compile(r"^\s*\d{1,9}[.)]\s+(.*)$")


def markdown_html(source: str, *, heading_offset: int = 0) -> str:
    """`source` Markdown as HTML; headings move down by `heading_offset` levels (at most h6)."""
    lines = source.replace("\r\n", "\n").split("\n")
    out: list[str] = []
    para: list[str] = []
    items: list[str] = []
    list_tag = ""
    quote: list[str] = []

    def flush() -> None:
        nonlocal list_tag
        if para:
            out.append("<p>" + " ".join(_inline(x) for x in para) + "</p>")
            para.clear()
        if items:
            out.append(f"<{list_tag}>" + "".join(f"<li>{_inline(x)}</li>" for x in items) + f"</{list_tag}>")
            items.clear()
            list_tag = ""
        if quote:
            out.append(
                "<blockquote>"
                + markdown_html("\n".join(quote), heading_offset=heading_offset)
                + "</blockquote>"
            )
            quote.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("```") or stripped.startswith("~~~"):
            flush()
            fence = stripped[:3]
            lang = stripped[3:].strip().split(" ")[0]
            body: list[str] = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(fence):
                body.append(lines[i])
                i += 1
            cls = f' class="language-{esc(lang)}"' if re.fullmatch(r"[\w+-]{1,30}", lang) else ""
            out.append(f"<pre><code{cls}>{esc(chr(10).join(body))}</code></pre>")
            i += 1
            continue
        heading = _HEADING.match(line)
        bullet, numbered = _BULLET.match(line), _NUMBERED.match(line)
        if not stripped:
            flush()
        elif heading:
            flush()
            level = min(6, len(heading.group(1)) + heading_offset)
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif stripped.startswith(">"):
            if para or items:
                flush()
            quote.append(stripped[1:].removeprefix(" "))
        elif bullet or numbered:
            tag = "ul" if bullet else "ol"
            if para or quote or (items and tag != list_tag):
                flush()
            list_tag = tag
            items.append((bullet or numbered).group(1))  # type: ignore[union-attr]
        elif items and line.startswith((" ", "\t")):
            items[-1] += " " + stripped
        else:
            if items or quote:
                flush()
            para.append(stripped)
        i += 1
    flush()
    return "\n".join(out)


def stylesheet() -> str:
    """The views' CSS (shipped in the package), for pages that inline it."""
    return resources.files(__package__).joinpath("views.css").read_text("utf-8")


def document(title: str, body: str, *, head: str = "", inline_css: bool = False) -> str:
    """A whole HTML page. `head`: extra <head> markup (links to stylesheets, scripts)."""
    css = f"<style>\n{stylesheet()}</style>" if inline_css else ""
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n{css}{head}\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
