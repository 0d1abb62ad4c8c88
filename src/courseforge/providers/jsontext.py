"""Turn a model's answer into JSON, forgiving the usual ways models wrap or break it.

Every output mode ends here (see `base.py`), so a grammar-constrained answer and a prompt-only
answer are parsed alike. In order: the text as is; inside a markdown code fence; then, for
prose around the JSON or a broken answer, the outermost `{...}` / `[...]` span, repaired when
needed (trailing commas; a truncated answer closed by adding the missing quote and brackets,
dropping a half-written last element). Parsing uses
`json.loads(strict=False)` because small models put raw newlines inside strings.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import BadResponse

__all__ = ["extract_json"]

_CLOSERS = {"{": "}", "[": "]"}
#: Incomplete trailing elements dropped, at most, while repairing a truncated answer.
_MAX_DROPS = 4


def extract_json(text: str) -> Any:
    """Parse `text` into JSON; raise `BadResponse(kind="unparseable")` when nothing works."""
    s = text.strip().lstrip("\ufeff")
    if not s:
        raise BadResponse("answer is empty", kind="empty")
    ok, value = _loads(s)
    if ok:
        return value
    if s.startswith("```"):
        s = _unfence(s)
        ok, value = _loads(s)
        if ok:
            return value
    # Prose around it, or broken: for each opener, its outermost span (as is, then repaired) or,
    # with no closer after it, everything from it on (a truncated answer). The longest result
    # wins, so a complete inner array never beats the truncated object that holds it.
    results: list[tuple[int, Any]] = []
    for opener, closer in _CLOSERS.items():
        start = s.find(opener)
        if start == -1:
            continue
        end = s.rfind(closer)
        if end > start:
            span = s[start : end + 1]
            ok, value = _loads(span)
            if not ok:
                ok, value = _repair(span)
            if ok:
                results.append((len(span), value))
                continue
        ok, value = _repair(s[start:])
        if ok:
            results.append((len(s) - start, value))
    if results:
        return max(results, key=lambda r: r[0])[1]
    raise BadResponse("answer is not JSON", kind="unparseable", text=text)


def _loads(s: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(s, strict=False)
    except ValueError:
        return False, None


def _unfence(s: str) -> str:
    """Drop the opening fence line (```json) and a closing fence, if any (it may be cut off)."""
    newline = s.find("\n")
    body = s[newline + 1 :] if newline != -1 else s[3:]
    body = body.rstrip()
    if body.endswith("```"):
        body = body[:-3]
    return body.strip()


def _repair(s: str) -> tuple[bool, Any]:
    """Close what a truncated answer left open; if that fails, drop the last element and retry."""
    for _ in range(_MAX_DROPS + 1):
        closed, last_comma = _close(s)
        ok, value = _loads(closed)
        if ok or last_comma <= 0:
            return ok, value
        s = s[:last_comma]
    return False, None


def _close(s: str) -> tuple[str, int]:
    """Remove trailing commas and append missing closers. Returns (text, last comma position)."""
    out: list[str] = []
    stack: list[str] = []
    in_string = escaped = False
    last_comma = -1
    for i, ch in enumerate(s):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            out.append(ch)
            continue
        if ch == '"':
            in_string = True
        elif ch in _CLOSERS:
            stack.append(_CLOSERS[ch])
        elif ch in "}]":
            _drop_trailing_comma(out)
            if stack and stack[-1] == ch:
                stack.pop()
        elif ch == ",":
            last_comma = i
        out.append(ch)
    if in_string:
        if escaped:
            out.pop()  # a lone backslash cannot end a string
        out.append('"')
    _drop_trailing_comma(out)
    tail = "".join(out).rstrip()
    if tail.endswith(":"):
        tail += " null"
    return tail + "".join(reversed(stack)), last_comma


def _drop_trailing_comma(out: list[str]) -> None:
    i = len(out) - 1
    while i >= 0 and out[i].isspace():
        i -= 1
    if i >= 0 and out[i] == ",":
        del out[i:]
