"""JSON Schema → llama.cpp GBNF grammar with explicit bounds on everything the model writes.

Why our own converter: llama.cpp's built-in one turns a `maxLength` above ≈ 1,000 into a grammar
that crashes the process, and unbounded JSON lets a small model loop until max_tokens. Here
every repetition has an upper bound: strings are `char{m,n}`, arrays `item ("," item){m-1,n-1}`,
integers a digit pattern for their exact range, whitespace at most 17 characters per slot.
Schemas we cannot bound (a bare `{}`, `pattern`, open objects without properties) are refused
with `ValueError` rather than turned into something the model could loop in.

Objects emit every property, in schema order (our draft schemas mark all of them required).
The result is a pure function of the schema, so grammars can be cached by schema digest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = [
    "DEFAULT_MAX_ITEMS",
    "DEFAULT_MAX_STRING",
    "MAX_STRING_LENGTH",
    "gbnf_for_schema",
]

#: Upper bound for a string without `maxLength` (ids, tags, option texts).
DEFAULT_MAX_STRING = 200
#: Upper bound for an array without `maxItems`.
DEFAULT_MAX_ITEMS = 16
#: Largest `maxLength` we accept: llama.cpp expands `x{m,n}` into one rule per optional copy
#: (generation measured fine with 4,000; the crash-prone shape is deep nesting, not `{m,n}`).
MAX_STRING_LENGTH = 8_000
#: Integers without `minimum`/`maximum` get at most this many digits.
_DEFAULT_INT_DIGITS = 15

# One JSON string character: anything but a quote, a backslash or a control character, or a short
# escape. No \uXXXX: the model writes non-ASCII text directly and cannot smuggle control bytes in.
_CHAR_RULE = r'[^"\\\x00-\x1F\x7F] | "\\" ["\\/nrt]'
# Between tokens: nothing, a space, or a newline with indentation (pretty-printing to depth 8 keeps
# the model in its habits). Bounded on purpose: no slot can hold more than 17 characters.
_WS_RULE = r"([ ] | [\n] [ ]{0,16})?"


class _Builder:
    def __init__(self, *, default_max_string: int, default_max_items: int) -> None:
        self.rules: dict[str, str] = {}
        self._by_body: dict[str, str] = {}
        self.default_max_string = default_max_string
        self.default_max_items = default_max_items

    def rule(self, hint: str, body: str) -> str:
        """Name `body` as a rule (reusing an identical one) and return the name."""
        if body in self._by_body:
            return self._by_body[body]
        name = hint
        n = 1
        while name in self.rules:
            n += 1
            name = f"{hint}-{n}"
        self.rules[name] = body
        self._by_body[body] = name
        return name

    # -- values --------------------------------------------------------------------------------

    def value(self, schema: Any, hint: str) -> str:
        if not isinstance(schema, Mapping):
            raise ValueError(f"{hint}: schema must be an object, got {schema!r}")
        if "pattern" in schema:
            raise ValueError(f"{hint}: 'pattern' cannot be enforced by this grammar")
        if "const" in schema:
            return _literal(json.dumps(schema["const"], ensure_ascii=False))
        if "enum" in schema:
            options = [_literal(json.dumps(v, ensure_ascii=False)) for v in schema["enum"]]
            if not options:
                raise ValueError(f"{hint}: empty enum")
            return self.rule(f"{hint}-enum", " | ".join(options))
        for key in ("anyOf", "oneOf"):
            if key in schema:
                alts = [self.value(sub, f"{hint}-{i}") for i, sub in enumerate(schema[key])]
                if not alts:
                    raise ValueError(f"{hint}: empty {key}")
                return self.rule(f"{hint}-alt", " | ".join(alts))
        kind = schema.get("type")
        if isinstance(kind, list):
            alts = [self.value({**schema, "type": t}, f"{hint}-{t}") for t in kind]
            return self.rule(f"{hint}-alt", " | ".join(alts))
        if kind == "object":
            return self.object(schema, hint)
        if kind == "array":
            return self.array(schema, hint)
        if kind == "string":
            return self.string(schema, hint)
        if kind == "integer":
            return self.integer(schema, hint)
        if kind == "number":
            return self.rule("number", r'"-"? ("0" | [1-9] [0-9]{0,14}) ("." [0-9]{1,6})?')
        if kind == "boolean":
            return self.rule("boolean", '"true" | "false"')
        if kind == "null":
            return self.rule("null", '"null"')
        raise ValueError(f"{hint}: cannot bound a schema without a known type: {dict(schema)!r}")

    def object(self, schema: Mapping[str, Any], hint: str) -> str:
        props: Mapping[str, Any] = schema.get("properties") or {}
        if not props:
            if schema.get("additionalProperties", True) is not False:
                raise ValueError(f"{hint}: an open object without properties cannot be bounded")
            return self.rule(f"{hint}-empty", '"{" ws "}"')
        parts = []
        for i, (name, sub) in enumerate(props.items()):
            key = _literal(json.dumps(name, ensure_ascii=False))
            sep = "" if i == 0 else '"," ws '
            parts.append(f'{sep}{key} ws ":" ws {self.value(sub, _name(name))} ws')
        return self.rule(hint, '"{" ws ' + " ".join(parts) + ' "}"')

    def array(self, schema: Mapping[str, Any], hint: str) -> str:
        lo = int(schema.get("minItems", 0))
        hi = int(schema.get("maxItems", max(lo, self.default_max_items)))
        if lo < 0 or hi < lo:
            raise ValueError(f"{hint}: bad item bounds {lo}..{hi}")
        if "items" not in schema:
            raise ValueError(f"{hint}: an array without 'items' cannot be bounded")
        if hi == 0:
            return self.rule("empty-array", '"[" ws "]"')
        item = self.value(schema["items"], f"{hint}-item")
        more = f'("," ws {item} ws){_bounds(max(lo - 1, 0), hi - 1)}'
        body = f"{item} ws {more}" if hi > 1 else f"{item} ws"
        if lo == 0:
            body = f"({body})?"
        return self.rule(f"{hint}-array", f'"[" ws {body} "]"')

    def string(self, schema: Mapping[str, Any], hint: str) -> str:
        lo = int(schema.get("minLength", 0))
        hi = int(schema.get("maxLength", max(lo, self.default_max_string)))
        if lo < 0 or hi < lo:
            raise ValueError(f"{hint}: bad length bounds {lo}..{hi}")
        if hi > MAX_STRING_LENGTH:
            raise ValueError(f"{hint}: maxLength {hi} exceeds {MAX_STRING_LENGTH}")
        if hi == 0:
            return self.rule("empty-string", r'"\"\""')
        return self.rule(f"string-{lo}-{hi}", rf'"\"" char{_bounds(lo, hi)} "\""')

    def integer(self, schema: Mapping[str, Any], hint: str) -> str:
        limit = 10**_DEFAULT_INT_DIGITS - 1
        lo, hi = -limit, limit
        if "minimum" in schema:
            lo = _ceil_int(schema["minimum"])
        if "exclusiveMinimum" in schema:
            lo = max(lo, _floor_int(schema["exclusiveMinimum"]) + 1)
        if "maximum" in schema:
            hi = _floor_int(schema["maximum"])
        if "exclusiveMaximum" in schema:
            hi = min(hi, _ceil_int(schema["exclusiveMaximum"]) - 1)
        if hi < lo:
            raise ValueError(f"{hint}: empty integer range {lo}..{hi}")
        return self.rule(f"int-{lo}-{hi}".replace("--", "-m"), " | ".join(_int_range(lo, hi)))


def gbnf_for_schema(
    schema: Mapping[str, Any],
    *,
    default_max_string: int = DEFAULT_MAX_STRING,
    default_max_items: int = DEFAULT_MAX_ITEMS,
) -> str:
    """A GBNF grammar (root rule `root`) accepting exactly the bounded JSON `schema` describes.

    `schema` is self-contained (no `$ref`), as `courseforge.domain.drafts.json_schema_of` makes.
    Strings and arrays without an upper bound get `default_max_string` / `default_max_items`.
    """
    b = _Builder(default_max_string=default_max_string, default_max_items=default_max_items)
    top = b.value(schema, "value")
    lines = [f"root ::= {top}", f"ws ::= {_WS_RULE}", f"char ::= {_CHAR_RULE}"]
    lines += [f"{name} ::= {body}" for name, body in b.rules.items()]
    return "\n".join(lines) + "\n"


def _bounds(lo: int, hi: int) -> str:
    return f"{{{lo}}}" if lo == hi else f"{{{lo},{hi}}}"


def _name(text: str) -> str:
    cleaned = "".join(c if c.isascii() and c.isalnum() else "-" for c in text).strip("-").lower()
    return cleaned or "field"


def _literal(text: str) -> str:
    """`text` as a GBNF string literal."""
    out = []
    for c in text:
        if c in ('"', "\\"):
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\x{ord(c):02X}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _floor_int(x: Any) -> int:
    v = float(x)
    return int(v) if v >= 0 or v == int(v) else int(v) - 1


def _ceil_int(x: Any) -> int:
    return -_floor_int(-float(x))


def _int_range(lo: int, hi: int) -> list[str]:
    """GBNF alternatives for the decimal integers lo..hi (no leading zeros, no "-0")."""
    alts: list[str] = []
    if lo < 0:
        neg_hi = -lo  # most negative, as a magnitude
        neg_lo = 1 if hi >= 0 else -hi
        alts += [f'"-" {p}' for p in _nonneg_range(neg_lo, neg_hi)]
    if hi >= 0:
        alts += _nonneg_range(max(lo, 0), hi)
    return alts


def _nonneg_range(lo: int, hi: int) -> list[str]:
    out: list[str] = []
    for digits in range(len(str(lo)), len(str(hi)) + 1):
        a = max(lo, 10 ** (digits - 1) if digits > 1 else 0)
        b = min(hi, 10**digits - 1)
        if a <= b:
            out += _same_length(str(a), str(b))
    return out


def _same_length(a: str, b: str) -> list[str]:
    """Patterns for numbers a..b of the same digit count (a <= b)."""
    if len(a) == 1:
        return [_digit_class(a, b)]
    rest = len(a) - 1
    if a[0] == b[0]:
        return [f'"{a[0]}" {p}' for p in _same_length(a[1:], b[1:])]
    out: list[str] = []
    first, last = int(a[0]), int(b[0])
    if a[1:] != "0" * rest:
        out += [f'"{a[0]}" {p}' for p in _same_length(a[1:], "9" * rest)]
        first += 1
    tail = [f'"{b[0]}" {p}' for p in _same_length("0" * rest, b[1:])] if b[1:] != "9" * rest else []
    if tail:
        last -= 1
    if first <= last:
        out.append(f"{_digit_class(str(first), str(last))} [0-9]{{{rest}}}")
    return out + tail


def _digit_class(a: str, b: str) -> str:
    return f'"{a}"' if a == b else f"[{a}-{b}]"
