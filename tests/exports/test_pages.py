"""The lesson HTML every page-bearing export shares (html, SCORM, Common Cartridge): a model's
Markdown may link and show images, but never carry a script URL into a learner's browser, and
code reaches the learner exactly as written (escaped once, by the one renderer)."""

from __future__ import annotations

import html
import re
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from course_helpers import sample_course_data

from courseforge.exports import export_course, load_course
from courseforge.safehtml import markdown_html as _md


def _schemes(out: str) -> set[str]:
    """The scheme a browser sees in each href/src of `out` (entities decoded, as it decodes them)."""
    urls = [html.unescape(u) for u in re.findall(r'(?:href|src)="([^"]*)"', out)]
    return {urlsplit(re.sub(r"[\x00-\x20]", "", u)).scheme.lower() for u in urls}


@pytest.mark.parametrize(
    "source",
    [
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        "[click](java\tscript:alert(1))",
        "[click](&#106;avascript:alert(1))",
        "![pic](data:text/html;base64,PHNjcmlwdD4=)",
        "[vb](vbscript:msgbox(1))",
    ],
)
def test_a_script_url_is_dropped_and_its_text_kept(source: str) -> None:
    out = _md(source)
    assert not _schemes(out) & {"javascript", "data", "vbscript"}, out
    assert "click" in out or "<img" in out or "vb" in out  # the text stays


def test_safe_urls_stay() -> None:
    out = _md("[site](https://example.org/a?b=1) [next](S1-L2.html#top) [top](#top) [mail](mailto:a@b.org)")
    for href in ("https://example.org/a?b=1", "S1-L2.html#top", "#top", "mailto:a@b.org"):
        assert f'href="{href}"' in out
    assert "&lt;script&gt;" in _md("<script>alert(1)</script>")  # raw HTML stays text


class _Text(HTMLParser):
    """What a browser shows of a page: the text of each <code> element, and which elements exist."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.codes: list[str] = []
        self.tags: list[str] = []
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "code":
            self._depth += 1
            self.codes.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "code":
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth:
            self.codes[-1] += data


_CODE_LESSON = (
    "Compare with `a < b && c > d` before you branch.\n\n"
    "```python\nif a < b:\n    print('<b>&amp;</b>')\n```\n\n"
    'To show a picture, write `<img src="data:image/png;base64,AAAA">` in the page.\n\n'
    "| operator | meaning |\n|---|---|\n| `<=` | at most |\n| `a || b` | either |\n"
)
_EXPECTED_CODE = [
    "a < b && c > d",
    "if a < b:\n    print('<b>&amp;</b>')",
    '<img src="data:image/png;base64,AAAA">',
    "<=",
    "a || b",
]


def _lesson_pages(tmp_path: Path, fmt: str) -> list[str]:
    data = sample_course_data()
    data["sections"][0]["lessons"][0]["content"] = _CODE_LESSON
    course = load_course(data)
    out = tmp_path / ("site" if fmt == "html" else f"{fmt}.zip")
    export_course(course, fmt, out)
    if fmt == "html":
        pages = [p.read_text("utf-8") for p in out.glob("*.html")]
    else:
        with zipfile.ZipFile(out) as z:
            pages = [z.read(n).decode("utf-8") for n in z.namelist() if n.endswith(".html")]
    return [p for p in pages if "before you branch" in p]


@pytest.mark.parametrize("fmt", ["html", "scorm12", "scorm2004", "cc"])
def test_code_reaches_the_learner_exactly_as_written(tmp_path: Path, fmt: str) -> None:
    [page] = _lesson_pages(tmp_path, fmt)
    seen = _Text()
    seen.feed(page)
    assert seen.codes == _EXPECTED_CODE, seen.codes  # escaped once: shown as written
    assert "img" not in seen.tags  # the image in prose code stays code
    assert "<table>" in page and "<th>operator</th>" in page  # tables are rendered
