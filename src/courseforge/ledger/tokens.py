"""Token counts of text, for phase 5's bounds and context routing.

No generator tokenizer is installable here: `tiktoken`'s wheel carries no BPE ranks (it fetches
them from the internet on first use), and the seeds' models (gpt-oss, qwen, gemini) publish
theirs only on model hubs. So the count is a stated estimate, not a tokenizer's.

The estimate is 1 token per 4 UTF-8 bytes for ASCII-heavy text and 1 per 2 bytes otherwise,
rounded up: English BPE tokenizers average 3.5-4.5 bytes per token, CJK and Cyrillic ~2.
"""

from __future__ import annotations

import math

__all__ = ["ESTIMATE", "count_text_tokens"]

#: How `count_text_tokens` counts when no tokenizer is available (said in logs and reports).
ESTIMATE = "estimate: ceil(bytes / 4) for ASCII text, ceil(bytes / 2) otherwise"


def count_text_tokens(text: str) -> int:
    raw = text.encode("utf-8")
    if not raw:
        return 0
    ascii_share = sum(1 for b in raw if b < 128) / len(raw)
    per_token = 4 if ascii_share >= 0.9 else 2
    return math.ceil(len(raw) / per_token)
