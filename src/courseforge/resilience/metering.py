"""Every underlying call on the bill: the `Meter` the runtime provides, reached by wrappers.

A model stack is built once per engine, a ledger once per course, so the runtime hands its
per-call `Meter` down through a context variable (`use_meter`). Whoever actually sends a call to
one model — `FallbackModel` for each model it tries, or `call_metered` for a plain stack — asks
the meter first (`begin` reserves the worst-case cost and may raise `BudgetExceeded`) and
reports after (`end`), so an answer a fallback chain rejected is still recorded and priced.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Protocol

from ..providers.base import ChatModel, ChatRequest, ChatResponse

__all__ = ["Meter", "call_metered", "metered_complete", "use_meter"]


class Meter(Protocol):
    def begin(self, model_id: str, request: ChatRequest) -> object:
        """Reserve budget for one call to `model_id`; raise `BudgetExceeded` to stop it."""
        ...

    def end(
        self, ticket: object, *, response: ChatResponse | None = None, error: BaseException | None = None
    ) -> None:
        """Settle the call `begin` returned `ticket` for, with its answer or its error."""
        ...


_meter: contextvars.ContextVar[Meter | None] = contextvars.ContextVar("courseforge_meter", default=None)


@contextlib.contextmanager
def use_meter(meter: Meter) -> Iterator[None]:
    token = _meter.set(meter)
    try:
        yield
    finally:
        _meter.reset(token)


async def metered_complete(model: ChatModel, request: ChatRequest) -> ChatResponse:
    """`model.complete(request)` reported to the current meter (if any) as one call."""
    meter = _meter.get()
    if meter is None or getattr(model, "meters_calls", False):
        return await model.complete(request)
    ticket = meter.begin(model.model_id, request)
    try:
        response = await model.complete(request)
    except BaseException as error:
        meter.end(ticket, error=error)
        raise
    meter.end(ticket, response=response)
    return response


async def call_metered(model: ChatModel, request: ChatRequest, meter: Meter) -> ChatResponse:
    """Run one logical call under `meter`: a self-metering model (`meters_calls = True`, e.g.
    `FallbackModel`) reports each model it tries; any other model is metered as one call."""
    with use_meter(meter):
        return await metered_complete(model, request)
