"""Scripted doubles of `ChatModel` for tests — ours and our users'.

`ScriptedModel(fn)` answers each request with whatever `fn(request)` returns: a string (the
answer text), a `ChatResponse`, or an exception instance (raised). `fn` may be async. Usage is
counted as whitespace tokens unless the returned `ChatResponse` says otherwise, and latency is
whatever the optional `latency_s` sleeps (0 by default), so tests never wait for real.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable

from ..providers.base import ChatModel, ChatRequest, ChatResponse, Usage

__all__ = ["Script", "ScriptedModel", "sequence"]

Answer = str | ChatResponse | BaseException
Script = Callable[[ChatRequest], Answer | Awaitable[Answer]]


def _count_tokens(text: str) -> int:
    return max(1, len(text.split()))


class ScriptedModel(ChatModel):
    def __init__(self, script: Script, *, model_id: str = "scripted", latency_s: float = 0.0) -> None:
        self.model_id = model_id
        self._script = script
        self._latency_s = latency_s
        #: Every request received, in order, for assertions.
        self.requests: list[ChatRequest] = []

    async def complete(self, request: ChatRequest) -> ChatResponse:
        self.requests.append(request)
        if self._latency_s:
            await asyncio.sleep(self._latency_s)
        answer = self._script(request)
        if inspect.isawaitable(answer):
            answer = await answer
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, ChatResponse):
            return answer
        prompt = " ".join(m.content for m in request.messages)
        usage = Usage(input_tokens=_count_tokens(prompt), output_tokens=_count_tokens(answer))
        return ChatResponse(
            text=answer,
            usage=usage,
            latency_ms=self._latency_s * 1000,
            model=self.model_id,
            finish_reason="stop",
        )

    @property
    def calls(self) -> int:
        return len(self.requests)


def sequence(answers: Iterable[Answer]) -> Script:
    """A script that gives the answers in order (the last one repeats)."""
    items = list(answers)
    if not items:
        raise ValueError("sequence needs at least one answer")
    state = {"i": 0}

    def script(_: ChatRequest) -> Answer:
        i = min(state["i"], len(items) - 1)
        state["i"] += 1
        return items[i]

    return script
