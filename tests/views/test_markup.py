"""The Markdown subset is rendered with every piece of text escaped and unsafe links dropped."""

from __future__ import annotations

import pytest

from courseforge.views import document, esc, markdown_html


def test_structure() -> None:
    out = markdown_html("# Title\n\nA **bold** and *soft* `x < y`.\n\n- one\n- two\n\n1. first\n2. second")
    assert out.split("\n") == [
        "<h1>Title</h1>",
        "<p>A <strong>bold</strong> and <em>soft</em> <code>x &lt; y</code>.</p>",
        "<ul><li>one</li><li>two</li></ul>",
        "<ol><li>first</li><li>second</li></ol>",
    ]


def test_code_fences_keep_text_verbatim_and_escaped() -> None:
    out = markdown_html("```python\nif a < b and c > d:\n    print('<b>')\n```")
    assert out == (
        '<pre><code class="language-python">if a &lt; b and c &gt; d:\n    print(&#x27;&lt;b&gt;&#x27;)</code></pre>'
    )


def test_headings_move_down() -> None:
    assert markdown_html("## Part", heading_offset=3) == "<h5>Part</h5>"
    assert markdown_html("##### Deep", heading_offset=3) == "<h6>Deep</h6>"


@pytest.mark.parametrize(
    "source",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "**<iframe src=//evil>**",
        "> <svg onload=alert(1)>",
    ],
)
def test_nothing_active_gets_through(source: str) -> None:
    out = markdown_html(source)
    assert "<script" not in out and "<img" not in out and "<iframe" not in out and "<svg" not in out
    assert 'href="javascript' not in out.lower() and 'href="data' not in out


def test_safe_links_are_kept() -> None:
    out = markdown_html("See [the docs](https://example.org/a?b=1&c=2) and [below](#part).")
    assert '<a href="https://example.org/a?b=1&amp;c=2" rel="noopener noreferrer">the docs</a>' in out
    assert '<a href="#part" rel="noopener noreferrer">below</a>' in out


def test_document_escapes_the_title_and_can_inline_the_css() -> None:
    page = document("<T>", "<p>x</p>", inline_css=True)
    assert "<title>&lt;T&gt;</title>" in page and "<style>" in page and ".k-escalation" in page
    assert esc('"&') == "&quot;&amp;"
