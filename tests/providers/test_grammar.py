"""GBNF from our schemas: llama.cpp parses it, it accepts valid JSON, and nothing is unbounded.

Acceptance is checked without a model: our grammars are never recursive, so a small converter
below turns them into one Python regex (rule references inlined), and hypothesis draws JSON
instances from the same schemas. llama.cpp itself parses every grammar (`check_gbnf`), through the
same binding the local model runs on.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import courseforge.domain.drafts as drafts
from courseforge.providers.grammar import gbnf_for_schema

try:
    import xllamacpp  # noqa: F401
except ImportError:  # pragma: no cover - depends on the optional extra
    HAVE_LLAMA = False
else:
    HAVE_LLAMA = True

#: Compiling a grammar needs the llama.cpp binding: left out of the fast suite, run by `make test`.
needs_llama = pytest.mark.local_model

DRAFTS = [
    obj
    for name in drafts.__all__
    if isinstance(obj := getattr(drafts, name), type) and issubclass(obj, BaseModel)
]

# -- a tiny GBNF reader, enough for what gbnf_for_schema writes --------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<lit>"(?:[^"\\]|\\.)*")
    | (?P<cls>\[(?:[^\]\\]|\\.)*\])
    | (?P<rep>\{\d+(?:,\d*)?\}|[*+?])
    | (?P<name>[A-Za-z][A-Za-z0-9-]*)
    | (?P<op>[()|])
    )""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def tokens(body: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(body.rstrip()):
        m = _TOKEN.match(body, pos)
        assert m, f"cannot read grammar at {body[pos:]!r}"
        kind = m.lastgroup
        assert kind is not None
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def rules_of(gbnf: str) -> dict[str, list[tuple[str, str]]]:
    rules = {}
    for line in gbnf.strip("\n").split("\n"):  # not splitlines(): literals may hold U+0085
        name, body = line.split(" ::= ", 1)
        rules[name] = tokens(body)
    return rules


def unbounded_repetitions(gbnf: str) -> list[str]:
    """Every `*`, `+` or `{n,}` outside literals and character classes."""
    return [
        f"{name}: {text}"
        for name, toks in rules_of(gbnf).items()
        for kind, text in toks
        if kind == "rep" and (text in "*+" or text.endswith(",}"))
    ]


def to_regex(gbnf: str) -> re.Pattern[str]:
    rules = rules_of(gbnf)
    memo: dict[str, str] = {}

    def rule(name: str, depth: int = 0) -> str:
        assert depth < 50, "grammar is recursive"
        if name not in memo:
            parts = []
            for kind, text in rules[name]:
                if kind == "lit":
                    raw = re.sub(r"\\(x[0-9A-Fa-f]{2}|.)", _unescape, text[1:-1])
                    parts.append(f"(?:{re.escape(raw)})")
                elif kind == "cls":
                    parts.append(text)
                elif kind == "name":
                    parts.append(f"(?:{rule(text, depth + 1)})")
                elif kind == "op":
                    parts.append("(?:" if text == "(" else text)
                else:
                    parts.append(text)
            memo[name] = "".join(parts)
        return memo[name]

    return re.compile(rule("root"), re.DOTALL)


def _unescape(m: re.Match[str]) -> str:
    esc = m.group(1)
    return chr(int(esc[1:], 16)) if esc.startswith("x") else _ESCAPES[esc]


# -- drawing valid instances from a schema -----------------------------------------------------

#: What a model may write inside a string: no raw control characters except the escaped ones.
CHARS = st.characters(exclude_categories=("Cs", "Cc")) | st.sampled_from('\n\t\r"\\/')


def instances(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema:
        return st.one_of([instances(s) for s in schema["anyOf"]])
    kind = schema["type"]
    if kind == "object":
        names = list(schema["properties"])  # built in schema order: the grammar fixes the order
        values = st.tuples(*(instances(schema["properties"][k]) for k in names))
        return values.map(lambda vs: dict(zip(names, vs, strict=True)))
    if kind == "array":
        return st.lists(
            instances(schema["items"]),
            min_size=schema.get("minItems", 0),
            max_size=min(schema.get("maxItems", 3), 3 + schema.get("minItems", 0)),
        )
    if kind == "string":
        lo = schema.get("minLength", 0)
        return st.text(CHARS, min_size=lo, max_size=max(lo, min(schema.get("maxLength", 30), 30)))
    if kind == "integer":
        return st.integers(schema.get("minimum", -(10**6)), schema.get("maximum", 10**6))
    if kind == "boolean":
        return st.booleans()
    assert kind == "null"
    return st.none()


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# -- small schemas for the property test --------------------------------------------------------


@st.composite
def bounded_string(draw: st.DrawFn) -> dict[str, Any]:
    lo = draw(st.integers(0, 40))
    return {"type": "string", "minLength": lo, "maxLength": draw(st.integers(max(lo, 1), 120))}


@st.composite
def bounded_int(draw: st.DrawFn) -> dict[str, Any]:
    lo = draw(st.integers(-10_000, 10_000))
    return {"type": "integer", "minimum": lo, "maximum": draw(st.integers(lo, lo + 20_000))}


ENUM = st.lists(st.text(max_size=12), min_size=1, max_size=5, unique=True).map(
    lambda xs: {"type": "string", "enum": xs}
)
LEAF = st.one_of(bounded_string(), bounded_int(), ENUM, st.just({"type": "boolean"}))


def extend(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    @st.composite
    def array(draw: st.DrawFn) -> dict[str, Any]:
        lo = draw(st.integers(0, 3))
        return {
            "type": "array",
            "items": draw(children),
            "minItems": lo,
            "maxItems": draw(st.integers(max(lo, 1), 8)),
        }

    obj = st.dictionaries(
        st.from_regex(r"[a-z_\"é]{1,8}", fullmatch=True), children, min_size=1, max_size=4
    ).map(
        lambda props: {
            "type": "object",
            "properties": props,
            "required": list(props),
            "additionalProperties": False,
        }
    )
    nullable = children.map(lambda s: {"anyOf": [s, {"type": "null"}]})
    return st.one_of(array(), obj, nullable)


SCHEMAS = st.recursive(LEAF, extend, max_leaves=8)


# -- tests --------------------------------------------------------------------------------------


@needs_llama
@pytest.mark.parametrize("model", DRAFTS, ids=lambda m: m.__name__)
def test_every_draft_schema_compiles_in_llama_cpp(model: type[BaseModel]) -> None:
    from courseforge.providers.local_llama import check_gbnf

    gbnf = gbnf_for_schema(drafts.json_schema_of(model))
    check_gbnf(gbnf)
    assert unbounded_repetitions(gbnf) == []


@pytest.mark.parametrize("model", DRAFTS, ids=lambda m: m.__name__)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_draft_grammars_accept_valid_drafts(model: type[BaseModel], data: st.DataObject) -> None:
    schema = drafts.json_schema_of(model)
    pattern = to_regex(gbnf_for_schema(schema))
    value = data.draw(instances(schema))
    assert pattern.fullmatch(compact(value))
    assert pattern.fullmatch(json.dumps(value, ensure_ascii=False))  # ", " and ": " separators


def test_lesson_content_bounds_are_exact() -> None:
    pattern = to_regex(gbnf_for_schema(drafts.json_schema_of(drafts.LessonDraft)))
    schema = drafts.json_schema_of(drafts.LessonDraft)
    exercise = {
        name: (
            "short_answer"
            if name == "type"
            else 1
            if name == "outcome"
            else None
            if name == "options"
            else "x" * 10
        )
        for name in schema["properties"]["exercises"]["items"]["properties"]
    }

    def lesson(content: str) -> str:
        return compact({"content": content, "exercises": [exercise], "citations": []})

    assert pattern.fullmatch(lesson("a" * 4000))
    assert pattern.fullmatch(lesson('é\n"\\' * 50))  # escapes count as one character each
    assert not pattern.fullmatch(lesson("a" * 4001))
    assert not pattern.fullmatch(lesson("a" * 199))
    assert not pattern.fullmatch(lesson("a" * 300).replace("aaaa", "a\na", 1))  # raw newline


@given(lo=st.integers(-(10**7), 10**7), width=st.integers(0, 10**6), data=st.data())
@settings(max_examples=200, deadline=None)
def test_integer_ranges_are_exact(lo: int, width: int, data: st.DataObject) -> None:
    hi = lo + width
    pattern = to_regex(gbnf_for_schema({"type": "integer", "minimum": lo, "maximum": hi}))
    inside = data.draw(st.integers(lo, hi))
    outside = data.draw(st.one_of(st.integers(hi + 1, hi + 10**6), st.integers(lo - 10**6, lo - 1)))
    assert pattern.fullmatch(str(inside))
    assert not pattern.fullmatch(str(outside))
    assert not pattern.fullmatch("-0") and not pattern.fullmatch(f"0{abs(inside)}")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=SCHEMAS, data=st.data())
def test_generated_schemas_give_bounded_grammars_that_accept_their_instances(
    schema: dict[str, Any], data: st.DataObject
) -> None:
    gbnf = gbnf_for_schema(schema)
    assert unbounded_repetitions(gbnf) == []
    if HAVE_LLAMA:
        from courseforge.providers.local_llama import check_gbnf

        check_gbnf(gbnf)
    value = data.draw(instances(schema))
    assert to_regex(gbnf).fullmatch(compact(value)), compact(value)


def test_strings_and_arrays_without_bounds_get_defaults() -> None:
    gbnf = gbnf_for_schema(
        {"type": "array", "items": {"type": "string"}}, default_max_string=7, default_max_items=3
    )
    assert unbounded_repetitions(gbnf) == []
    pattern = to_regex(gbnf)
    assert pattern.fullmatch('["1234567","","x"]')
    assert not pattern.fullmatch('["12345678"]')
    assert not pattern.fullmatch('["a","b","c","d"]')


@pytest.mark.parametrize(
    "schema",
    [
        {},
        {"type": "object"},
        {"type": "string", "pattern": "^a+$"},
        {"type": "array"},
        {"type": "string", "minLength": 5, "maxLength": 2},
        {"type": "string", "maxLength": 10**6},
        {"type": "integer", "minimum": 3, "maximum": 2},
    ],
)
def test_schemas_that_cannot_be_bounded_are_refused(schema: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        gbnf_for_schema(schema)


@needs_llama
def test_check_gbnf_rejects_a_broken_grammar() -> None:
    from courseforge.providers.local_llama import check_gbnf

    with pytest.raises(ValueError):
        check_gbnf('root ::= "a" [b-')
