"""extract_json: a table of the ways models wrap and break JSON."""

from __future__ import annotations

from typing import Any

import pytest

from courseforge.errors import BadResponse
from courseforge.providers import extract_json

FENCE = "```"

CASES: list[tuple[str, str, Any]] = [
    ("plain object", '{"a": 1}', {"a": 1}),
    ("surrounding whitespace", '  \n {"a": 1}\n\n', {"a": 1}),
    ("byte order mark", '\ufeff{"a": 1}', {"a": 1}),
    ("plain array", "[1, 2, 3]", [1, 2, 3]),
    ("bare scalar", "42", 42),
    ("json fence", f'{FENCE}json\n{{"a": 1}}\n{FENCE}', {"a": 1}),
    ("bare fence", f'{FENCE}\n{{"a": [1]}}\n{FENCE}', {"a": [1]}),
    ("fence left open", f'{FENCE}json\n{{"a": 1}}\n', {"a": 1}),
    (
        "fence inside a string value",
        '{"md": "```python\\nprint(1)\\n```"}',
        {"md": "```python\nprint(1)\n```"},
    ),
    (
        "fenced answer whose string holds a fence",
        f'{FENCE}json\n{{"md": "{FENCE}py\\nx\\n{FENCE}"}}\n{FENCE}',
        {"md": f"{FENCE}py\nx\n{FENCE}"},
    ),
    ("prose around", 'Sure! Here it is:\n{"a": {"b": 2}}\nHope this helps.', {"a": {"b": 2}}),
    ("prose then fence", f'Here you go:\n{FENCE}json\n{{"a": 1}}\n{FENCE}\nBye', {"a": 1}),
    ("bracket in prose before object", 'See [1] below: {"a": [1, 2]} done', {"a": [1, 2]}),
    ("raw newline in string", '{"text": "line one\nline two"}', {"text": "line one\nline two"}),
    ("raw tab in string", '{"text": "a\tb"}', {"text": "a\tb"}),
    ("trailing comma in object", '{"a": 1, "b": 2,}', {"a": 1, "b": 2}),
    ("trailing comma in array", '{"a": [1, 2, ], "b": 3}', {"a": [1, 2], "b": 3}),
    ("trailing comma and prose", 'Result: {"a": [1,],} thanks', {"a": [1]}),
    ("comma inside string kept", '{"a": "x,}", "b": [1,],}', {"a": "x,}", "b": [1]}),
    ("truncated inside string", '{"title": "Frac', {"title": "Frac"}),
    ("truncated after escape", '{"title": "a \\', {"title": "a "}),
    ("truncated nested", '{"a": {"b": [1, 2', {"a": {"b": [1, 2]}}),
    ("truncated after colon", '{"a": 1, "b":', {"a": 1, "b": None}),
    ("truncated after key", '{"a": 1, "b"', {"a": 1}),
    ("truncated in key", '{"a": 1, "be', {"a": 1}),
    ("truncated in literal", '{"a": 1, "b": tr', {"a": 1}),
    ("truncated after comma", '{"a": [1, 2], ', {"a": [1, 2]}),
    ("truncated array of objects", '[{"q": "x"}, {"q": "y', [{"q": "x"}, {"q": "y"}]),
    ("truncated with escaped quote", '{"a": "say \\"hi', {"a": 'say "hi'}),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_extract_json(text: str, expected: Any) -> None:
    assert extract_json(text) == expected


@pytest.mark.parametrize(
    "text",
    ["Sorry, I cannot help with that.", "{not json at all}", "{{{", "[oops]", "```json\nnope\n```"],
)
def test_unparseable_raises_bad_response(text: str) -> None:
    with pytest.raises(BadResponse) as info:
        extract_json(text)
    assert info.value.kind == "unparseable"
    assert info.value.text == text


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_blank_raises_bad_response_empty(text: str) -> None:
    with pytest.raises(BadResponse) as info:
        extract_json(text)
    assert info.value.kind == "empty"
