"""The lesson HTML every page-bearing export shares (html, SCORM, Common Cartridge): a model's
Markdown may link and show images, but never carry a script URL into a learner's browser."""

from __future__ import annotations

import html
import re
from urllib.parse import urlsplit

import pytest

from courseforge.exports.pages import _md


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
