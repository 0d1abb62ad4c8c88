"""The one Markdown renderer: structure, code escaped exactly once, tables, raw HTML as text,
script URLs dropped only from real attributes (never from prose or code)."""

from __future__ import annotations

import pytest

from courseforge.safehtml import esc, markdown_html, safe_url


def test_inline_code_and_fences_are_escaped_once() -> None:
    assert markdown_html("`a < b && c > d`") == "<p><code>a &lt; b &amp;&amp; c &gt; d</code></p>"
    assert markdown_html("```\nif a < b:\n    x = '&amp;'\n```") == (
        "<pre><code>if a &lt; b:\n    x = &#x27;&amp;amp;&#x27;</code></pre>"
    )
    assert markdown_html("``a ` b``") == "<p><code>a ` b</code></p>"


def test_url_looking_text_in_prose_and_code_is_left_alone() -> None:
    out = markdown_html('Write `<img src="data:x">`, or say src="data:x" and href="javascript:y" in prose.')
    assert "<code>&lt;img src=&quot;data:x&quot;&gt;</code>" in out
    assert "src=&quot;data:x&quot; and href=&quot;javascript:y&quot; in prose." in out


def test_tables_with_alignment_code_and_escaped_pipes() -> None:
    out = markdown_html("| op | means |\n|:--|:-:|\n| `a | b` | either \\| or |\n| only one |")
    assert out == (
        '<table><thead><tr><th style="text-align:left">op</th><th style="text-align:center">means</th>'
        '</tr></thead><tbody><tr><td style="text-align:left"><code>a | b</code></td>'
        '<td style="text-align:center">either | or</td></tr><tr><td style="text-align:left">only one</td>'
        '<td style="text-align:center"></td></tr></tbody></table>'
    )
    assert markdown_html("a | b\nnot a delimiter") == "<p>a | b not a delimiter</p>"


def test_lists_nest_continue_over_blank_lines_and_keep_their_start() -> None:
    source = "3. three\n\n4. four\n   - sub `x<y`\n   - sub two\n\n   ```\n   a<b\n   ```\n5. five"
    assert markdown_html(source) == (
        '<ol start="3"><li>three</li><li>four<ul><li>sub <code>x&lt;y</code></li><li>sub two</li></ul>\n'
        "<pre><code>a&lt;b</code></pre></li><li>five</li></ol>"
    )
    assert (
        markdown_html("- a\nlazy\n- b\n\n1. c") == "<ul><li>a lazy</li><li>b</li></ul>\n<ol><li>c</li></ol>"
    )


def test_links_images_and_emphasis_never_reach_into_attributes() -> None:
    out = markdown_html('[x](/_a_/b__c__ "t *i*") ![p](i.png) [![l](l.png)](https://e.org) ~~s~~ \\*n\\*')
    assert out == (
        '<p><a href="/_a_/b__c__" title="t *i*" rel="noopener noreferrer">x</a> <img src="i.png" alt="p"> '
        '<a href="https://e.org" rel="noopener noreferrer"><img src="l.png" alt="l"></a> <del>s</del> *n*</p>'
    )
    # an image inside a link's URL becomes plain text there: no quote can break out
    out = markdown_html('[a](![x"y](z.png))')
    assert '"y' not in out and "<img" not in out.split("href=")[1].split(">")[0]


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://e.org/a?b=1&c=2&copy=3", "https://e.org/a?b=1&c=2&copy=3"),
        ("S1-L2.html#top", "S1-L2.html#top"),
        ("mailto:a@b.org", "mailto:a@b.org"),
        ("a&amp;b", "a&b"),
        ("javascript:alert(1)", None),
        ("&#106;avascript:alert(1)", None),
        ("&#x6A;avascript&colon;alert(1)", None),
        (" java\tscript:x", None),
        ("data:text/html,x", None),
        ("VBScript:x", None),
        ("http://[::1", None),
    ],
)
def test_safe_url(url: str, kept: str | None) -> None:
    assert safe_url(url) == kept


def test_raw_html_stays_text_and_placeholders_cannot_be_forged() -> None:
    assert markdown_html("<b onclick=x>hi</b>") == "<p>&lt;b onclick=x&gt;hi&lt;/b&gt;</p>"
    assert markdown_html("\ue0000\ue001 `c`") == "<p>\ufffd0\ufffd <code>c</code></p>"
    assert esc("<'\"&>") == "&lt;&#x27;&quot;&amp;&gt;"
