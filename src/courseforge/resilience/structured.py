"""Structured-output downgrade: json_schema -> json_object -> prompt + JSON repair, per model.

A model proves it cannot do a mode in one of two ways: the provider answers HTTP 400 naming
`response_format` (llama.cpp's server does this to json_schema; some gateways to both), or the
model keeps answering JSON that ignores the schema (reported for gpt-oss-120b behind gateways):
`SCHEMA_MISSES_TO_DOWNGRADE` such answers in a row. A 400 is re-sent at once in the weaker mode
(it cost nothing); an ignored schema is not (it was billed and the fallback chain or cascade
decides). The mode is remembered for the life of the wrapper, i.e. the engine's.

This wrapper is also where every answer's content is checked (`content.check_content`), so a
model stack raises `BadResponse` for empty, unparseable or schema-invalid answers.
"""

from __future__ import annotations

import dataclasses

from ..errors import BadResponse, ProviderHTTPError
from ..providers.base import ChatModel, ChatRequest, ChatResponse, OutputMode
from ._wrapper import WrapperModel
from .content import check_content
from .hooks import FaultObserved, Hooks, OutputModeChanged, fault_kind, no_hooks

__all__ = ["SCHEMA_MISSES_TO_DOWNGRADE", "StructuredOutputModel", "weaker_mode"]

#: Schema-ignoring answers in a row, in one mode, that move a model to the weaker mode.
SCHEMA_MISSES_TO_DOWNGRADE = 3
_ORDER: tuple[OutputMode, ...] = ("json_schema", "json_object", "prompt")
_FORMAT_WORDS = ("response_format", "json_schema", "structured output")


def weaker_mode(mode: OutputMode) -> OutputMode | None:
    i = _ORDER.index(mode)
    return _ORDER[i + 1] if i + 1 < len(_ORDER) else None


def _rejects_format(error: ProviderHTTPError) -> bool:
    body = error.body.lower()
    return error.status == 400 and any(word in body for word in _FORMAT_WORDS)


class StructuredOutputModel(WrapperModel):
    """Sends JSON requests in this model's current mode (via `tags["output_mode"]`, which
    `OpenAICompatModel` honours) and checks every answer's content."""

    def __init__(
        self,
        inner: ChatModel,
        *,
        mode: OutputMode = "json_schema",
        hooks: Hooks = no_hooks,
        schema_misses_to_downgrade: int = SCHEMA_MISSES_TO_DOWNGRADE,
    ) -> None:
        super().__init__(inner)
        self.mode: OutputMode = mode
        self._hooks = hooks
        self._threshold = schema_misses_to_downgrade
        self._misses = 0

    async def complete(self, request: ChatRequest) -> ChatResponse:
        while True:
            mode = self.mode
            sent = request
            if request.json_schema is not None:
                sent = dataclasses.replace(request, tags={**request.tags, "output_mode": mode})
            try:
                response = await self.inner.complete(sent)
            except ProviderHTTPError as error:
                if request.json_schema is not None and _rejects_format(error) and weaker_mode(mode):
                    self._downgrade(mode, f"HTTP 400: {error.body[:160]}")
                    continue
                raise
            try:
                check_content(sent, response, model_id=self.model_id)
            except BadResponse as bad:
                self._hooks(FaultObserved(self.model_id, fault_kind(bad)))
                if bad.kind == "schema" and mode == self.mode and weaker_mode(mode):
                    self._misses += 1
                    if self._misses >= self._threshold:
                        self._downgrade(mode, f"{self._misses} answers in a row ignored the schema")
                raise
            if request.json_schema is not None:
                self._misses = 0
            return response

    def _downgrade(self, mode: OutputMode, reason: str) -> None:
        new = weaker_mode(mode)
        if self.mode != mode or new is None:
            return  # a concurrent call already moved it
        self.mode, self._misses = new, 0
        self._hooks(OutputModeChanged(self.model_id, mode, new, reason))
