"""The one interface every model speaks: `ChatModel.complete(request) -> ChatResponse`.

Providers (OpenAI-compatible HTTP, in-process llama.cpp, scripted doubles) implement it, and so
do the resilience wrappers (retry, breaker, rate limit), which is why they stack. Structured
output is part of the request: the model's configured `output_mode` decides how the schema is
sent (json_schema, json_object with schema, or in the prompt only); the caller always gets text
and parses it itself, so every mode is validated the same way.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

__all__ = [
    "ChatModel",
    "ChatRequest",
    "ChatResponse",
    "Embedder",
    "Message",
    "OutputMode",
    "ProseFirst",
    "Usage",
    "Vector",
]

OutputMode = Literal["json_schema", "json_object", "prompt"]
#: An embedding: unit length, read-only.
Vector = Sequence[float]
Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class ProseFirst:
    """How a model that decodes under a grammar may answer a JSON request faster: the schema's
    first property (a long string, e.g. a lesson's markdown) is the model's free-text answer to
    the messages as they are (ending at end of turn or at a `stop` string), and the other
    properties are its JSON answer, under the grammar, to a second user turn asking `follow_up`
    (the first answer stays in the context). The caller still gets one JSON text matching the
    schema. Only `LocalLlamaModel` reads it (`local.prose_first`); the pipeline asks for it only
    from such a model, since the messages then ask for prose, not JSON."""

    follow_up: str
    stop: tuple[str, ...] = ()
    #: Output tokens the free-text part may take (the JSON part gets the rest of max_tokens).
    max_prose_tokens: int = 1024
    #: Words the free-text part should have (0: no floor). A shorter one is asked, in the same
    #: sequence, for one more part (`extend`, with `{have}` and `{need}` filled in: its words
    #: and how many more), which goes before its last `## ` heading (the summary) — one short
    #: turn instead of the whole lesson again.
    min_words: int = 0
    extend: str = ""


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat completion. Sampling and limits are explicit so a call is reproducible."""

    messages: Sequence[Message]
    #: JSON Schema the answer must match, or None for free text.
    json_schema: Mapping[str, Any] | None = None
    #: Name sent with the schema (json_schema mode requires one).
    schema_name: str = "answer"
    max_tokens: int = 1024
    temperature: float = 0.7
    #: Seconds the whole call may take, or None for no limit of ours.
    timeout_s: float | None = None
    #: Free-form labels (phase, task) for logs and the simulator; never sent as content.
    tags: Mapping[str, str] = field(default_factory=dict)
    #: OpenRouter's `reasoning` object for a reasoning model (`{"effort": "low"}`,
    #: `{"max_tokens": 800}`, `{"enabled": false}`, with `exclude`), or None to send none.
    #: `engine.reasoning` sets it per model; `max_tokens` then already holds its budget.
    reasoning: Mapping[str, Any] | None = None
    #: Answer the schema's first property as free text, the rest as JSON (local models only).
    prose_first: ProseFirst | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    #: Prompt tokens the provider served from its cache (billed cheaper by some).
    cached_tokens: int = 0
    #: The provider's own figure for this call (OpenRouter `usage.cost`), which wins over ours.
    cost_usd: Decimal | None = None
    #: Prompt tokens the provider wrote into its cache (billed dearer by some).
    cache_write_tokens: int = 0
    #: Output tokens the model spent thinking (`completion_tokens_details.reasoning_tokens`);
    #: already inside `output_tokens`, as they are billed as output.
    reasoning_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ChatResponse:
    text: str
    usage: Usage
    latency_ms: float
    #: The model name the provider says answered (may differ from the one asked for).
    model: str = ""
    finish_reason: str = ""
    #: Repairs made to the answer by its schema (`schemacheck.repair_to_schema`), "path: what";
    #: `text` is then the repaired JSON.
    repairs: tuple[str, ...] = ()
    #: The provider batch that answered (batch mode), or "" for a call of its own.
    batch_id: str = ""
    #: The upstream provider's own finish reason (OpenRouter's `native_finish_reason`).
    native_finish_reason: str = ""


class ChatModel(abc.ABC):
    """A model you can ask for one completion. Subclasses implement `complete` only."""

    #: Our config id of the model (e.g. "gpt-oss-120b"); wrappers keep the inner one's.
    model_id: str = ""

    @abc.abstractmethod
    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Send one request. Raise a `courseforge.errors.ProviderError` subclass on failure."""

    async def aclose(self) -> None:
        """Release connections or loaded weights. Optional."""


class Embedder(abc.ABC):
    """Turns texts into unit-length vectors. Implement `embed`; `name` keys gate thresholds."""

    name: str = ""
    dimensions: int = 0

    @abc.abstractmethod
    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        """One L2-normalised vector per text, in order. Read-only: a caching embedder hands out
        the vectors it keeps (as tuples), not copies."""

    async def warm(self) -> None:
        """Load what the first `embed` would (a model's weights) ahead of time. Optional."""
