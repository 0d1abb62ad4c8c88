"""Batch mode: the calls of a round go to the provider's batch API, one batch per model.

OpenRouter's Batch API (`POST {base_url}/batches` with `endpoint`, `model`,
`completion_window` and inline `requests` of `{custom_id, body}`; `GET {base_url}/batches/{id}`
until its `status` is terminal — completed, failed, expired, cancelled — with `results` of
`{custom_id, response: {status_code, body}, error}`) answers at a discount (each model's
`batch_price_multiplier`, typically 0.5) and slowly. A `Batcher` belongs to an engine, so the
courses of a service that wait in the same round share a batch: a model's requests are
collected until none arrives for `batch.collect_s` (at most `batch.max_collect_s`), then sent as
one batch. Every request reserved its worst case on its course's ledger before it joined, so the
whole batch is covered before it is sent.

A batch just created is recorded in the store (`PendingBatch`); a process that died while it
ran finds it there when the resumed job asks the same requests again (custom ids are digests of
the request and its draw) and polls it instead of paying again. A request the batch failed (an
error result, a missing result, a failed or expired batch, a batch that could not be created)
falls back to the model's normal path; a model that is not an OpenAI-compatible HTTP model
(local, scripted) always takes its normal path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from ..config import Settings
from ..errors import ProviderError, ProviderHTTPError
from ..providers import ChatModel, ChatRequest, ChatResponse
from ..providers.openai_compat import OpenAICompatModel
from ..storage import PendingBatch, Store

__all__ = ["BatchFailed", "BatchRoute", "Batcher"]

log = logging.getLogger("courseforge.batch")

_TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
#: Polls in a row that fail (a network or server error) before a batch is given up on.
_MAX_POLL_ERRORS = 10


class BatchRoute(Protocol):
    """Where a course in batch mode sends a primary model's call: this process's `Batcher`, or
    (a course on the Temporal fleet) a worker's, through an activity."""

    async def complete(
        self, model_id: str, fallback: ChatModel, request: ChatRequest, custom_id: str
    ) -> ChatResponse:
        """The batch's answer to `request` (`custom_id`: its digest), else `fallback`'s."""
        ...


class BatchFailed(Exception):
    """The batch did not answer this request (it takes the normal path instead)."""


@dataclass(slots=True)
class _Round:
    started: float
    last: float
    #: custom id -> (request, the futures waiting for its raw result body)
    items: dict[str, tuple[ChatRequest, list[asyncio.Future[dict[str, Any]]]]] = field(default_factory=dict)


class Batcher:
    """Provider batches for the calls of an engine's courses that run in batch mode."""

    def __init__(
        self,
        settings: Settings,
        provider_for: Callable[[str], ChatModel],
        *,
        store: Store | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`provider_for(model_id)`: the model's innermost provider (its HTTP client)."""
        self.settings = settings
        self.store = store
        self._provider_for = provider_for
        self._clock = clock
        self._rounds: dict[str, _Round] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: Resumed batches: custom id -> batch id, and results read back for late joiners.
        self._resumable: dict[str, tuple[str, str]] | None = None
        self._loading = asyncio.Lock()
        self._waiting: dict[str, dict[str, list[asyncio.Future[dict[str, Any]]]]] = {}
        self._polling: set[str] = set()
        self._results: dict[str, tuple[dict[str, Any] | BatchFailed, str]] = {}
        #: Batches created, by model (for reports and tests).
        self.created: list[tuple[str, str, int]] = []

    def api(self, model_id: str) -> OpenAICompatModel | None:
        provider = self._provider_for(model_id)
        return provider if isinstance(provider, OpenAICompatModel) else None

    async def complete(
        self, model_id: str, fallback: ChatModel, request: ChatRequest, custom_id: str
    ) -> ChatResponse:
        """The batch's answer to `request`, else `fallback`'s (the normal path)."""
        api = self.api(model_id)
        if api is None:
            return await fallback.complete(request)
        started = self._clock()
        try:
            body, batch_id = await self._join(model_id, api, request, custom_id)
        except BatchFailed as exc:
            log.info("batch did not answer %s (%s): normal path", custom_id[:12], exc)
            return await fallback.complete(request)
        response = api.parse_completion(body, request, (self._clock() - started) * 1000)
        return replace(response, batch_id=batch_id)

    # -- joining a round, or a batch resumed from the store --------------------------------------
    async def _join(
        self, model_id: str, api: OpenAICompatModel, request: ChatRequest, custom_id: str
    ) -> tuple[dict[str, Any], str]:
        read = self._results.pop(custom_id, None)  # a resumed batch read before this request came
        if read is not None:
            outcome, read_from = read
            if isinstance(outcome, BatchFailed):
                raise outcome
            return outcome, read_from
        resumed = await self._resumed(custom_id)
        if resumed is not None:
            batch_id, model = resumed
            fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(batch_id, {}).setdefault(custom_id, []).append(fut)
            if batch_id not in self._polling:
                self._start(self._poll(batch_id, self.api(model) or api, resumed_ids=True))
            return await fut, batch_id
        now = self._clock()
        rnd = self._rounds.get(model_id)
        if rnd is None:
            rnd = self._rounds[model_id] = _Round(started=now, last=now)
            self._start(self._collect(model_id, api))
        rnd.last = now
        fut = asyncio.get_running_loop().create_future()
        rnd.items.setdefault(custom_id, (request, []))[1].append(fut)
        body = await fut
        return body, str(body.get("_batch_id", ""))

    async def _resumed(self, custom_id: str) -> tuple[str, str] | None:
        async with self._loading:  # the first calls arrive together: one read of the store
            if self._resumable is None:
                found: dict[str, tuple[str, str]] = {}
                if self.store is not None:
                    for batch in await self.store.pending_batches():
                        for cid in batch.custom_ids:
                            found[cid] = (batch.id, batch.model)
                self._resumable = found
        return self._resumable.get(custom_id)

    def _start(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- a round: collect, send, poll ----------------------------------------------------------
    async def _collect(self, model_id: str, api: OpenAICompatModel) -> None:
        cfg = self.settings.batch
        while True:
            await asyncio.sleep(cfg.collect_s)
            rnd = self._rounds[model_id]
            now = self._clock()
            if now - rnd.last >= cfg.collect_s or now - rnd.started >= cfg.max_collect_s:
                break
        rnd = self._rounds.pop(model_id)
        waiting = {cid: futs for cid, (_, futs) in rnd.items.items()}
        body = {
            "endpoint": "/v1/chat/completions",
            "model": api.model_name,
            "completion_window": cfg.completion_window,
            "requests": [
                {"custom_id": cid, "body": api.build_payload(req)} for cid, (req, _) in rnd.items.items()
            ],
        }
        try:
            created = await api.request_json("POST", "/batches", body)
            batch_id = str(created["id"])
        except (ProviderError, KeyError) as exc:
            _fail_all(waiting, BatchFailed(f"batch not created: {exc}"))
            return
        self.created.append((model_id, batch_id, len(waiting)))
        if self.store is not None:
            await asyncio.shield(self.store.save_batch(PendingBatch(batch_id, model_id, tuple(waiting))))
        self._waiting[batch_id] = waiting
        await self._poll(batch_id, api)

    async def _poll(self, batch_id: str, api: OpenAICompatModel, *, resumed_ids: bool = False) -> None:
        self._polling.add(batch_id)
        try:
            errors = 0
            while True:
                try:
                    batch = await api.request_json("GET", f"/batches/{batch_id}")
                    errors = 0
                except ProviderError as exc:
                    errors += 1
                    gone = (
                        isinstance(exc, ProviderHTTPError) and 400 <= exc.status < 500 and exc.status != 429
                    )
                    if gone or errors >= _MAX_POLL_ERRORS:
                        log.warning(
                            "batch %s cannot be read (%s): its requests take the normal path", batch_id, exc
                        )
                        batch = {"status": "unreadable"}
                        break
                    log.info("polling batch %s failed (%s); polling again", batch_id, exc)
                    batch = {}
                status = str(batch.get("status", ""))
                if status in _TERMINAL:
                    break
                await asyncio.sleep(self.settings.batch.poll_s)
            status = str(batch.get("status", ""))
            results = {str(r.get("custom_id")): r for r in batch.get("results") or [] if isinstance(r, dict)}
            waiting = self._waiting.pop(batch_id, {})
            ids = set(waiting)
            if resumed_ids and self._resumable is not None:
                mine = {cid for cid, (bid, _) in self._resumable.items() if bid == batch_id}
                ids |= mine
                for cid in mine:  # read back: later requests are new draws of a new round
                    del self._resumable[cid]
            for cid in ids:
                outcome = _outcome(status, results.get(cid), batch_id)
                futures = waiting.get(cid)
                if futures:
                    for fut in futures:
                        if fut.done():
                            continue
                        if isinstance(outcome, BatchFailed):
                            fut.set_exception(outcome)
                        else:
                            fut.set_result(outcome)
                else:
                    self._results[cid] = (outcome, batch_id)
            if self.store is not None:
                await asyncio.shield(self.store.close_batch(batch_id))
        finally:
            self._polling.discard(batch_id)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _outcome(status: str, result: dict[str, Any] | None, batch_id: str) -> dict[str, Any] | BatchFailed:
    if status != "completed":
        return BatchFailed(f"batch {batch_id} {status}")
    if result is None:
        return BatchFailed(f"batch {batch_id} has no result for the request")
    response = result.get("response")
    if result.get("error") or not isinstance(response, dict) or int(response.get("status_code") or 0) != 200:
        return BatchFailed(f"batch {batch_id}: request failed: {result.get('error')}")
    body = response.get("body")
    if not isinstance(body, dict):
        return BatchFailed(f"batch {batch_id}: result without a body")
    return {**body, "_batch_id": batch_id}


def _fail_all(waiting: dict[str, list[asyncio.Future[dict[str, Any]]]], error: BatchFailed) -> None:
    for futures in waiting.values():
        for fut in futures:
            if not fut.done():
                fut.set_exception(error)
