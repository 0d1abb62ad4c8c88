"""What makes two requests the same request: the response cache's key and namespace.

A key leaves nothing out that could change the answer (LiteLLM and GPTCache users report caches
whose keys drop a parameter and answer a different request): the provider and the provider's
model name, the output mode, every message, the response schema and its name, the sampling
parameters and token limit, the version of our prompt templates, and the draw — the attempt
and self-consistency sample numbers, so that a retry of an identical request is a new draw, not
the answer that was just rejected. The timeout and log tags are left out: they do not change
what the model writes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..config import ModelSettings, Settings
from ..providers import ChatRequest

__all__ = ["KEY_VERSION", "canonical_request", "config_namespace", "request_key"]

#: Bumped when the key's layout changes (old entries then simply stop matching).
KEY_VERSION = 1


def canonical_request(
    model: ModelSettings, request: ChatRequest, *, templates: str, attempt: int = 1, sample: int = 0
) -> dict[str, Any]:
    """The request as the data the key is a digest of."""
    canonical: dict[str, Any] = {
        "v": KEY_VERSION,
        "provider": model.provider,
        "model": model.name,
        "output_mode": model.output_mode,
        "messages": [[m.role, m.content] for m in request.messages],
        "schema": request.json_schema,
        "schema_name": request.schema_name if request.json_schema is not None else "",
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "templates": templates,
        "draw": [attempt, sample],
    }
    if request.prose_first is not None:  # a second turn the messages do not show
        pf = request.prose_first
        canonical["prose_first"] = [pf.follow_up, list(pf.stop), pf.max_prose_tokens]
        if pf.min_words:  # the answer may hold a part asked for by a third turn
            canonical["prose_first"] += [pf.min_words, pf.extend]
    return canonical


def _digest(data: Any) -> str:
    raw = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def request_key(
    model: ModelSettings, request: ChatRequest, *, templates: str, attempt: int = 1, sample: int = 0
) -> str:
    return _digest(canonical_request(model, request, templates=templates, attempt=attempt, sample=sample))


def config_namespace(settings: Settings) -> str:
    """The default namespace: a digest of the config's providers and models (where requests go
    and how they are priced). Two configs sending the same request to the same model share
    answers only when they agree on those; a tenant passes its own namespace instead."""
    data = {
        "providers": {k: {"kind": p.kind, "base_url": p.base_url} for k, p in settings.providers.items()},
        "models": {k: m.model_dump(mode="json") for k, m in settings.models.items()},
    }
    return "cfg-" + _digest(data)[:16]
