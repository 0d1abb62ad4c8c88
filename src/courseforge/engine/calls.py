"""Where the money is spent: every model call of a course, metered in one place.

`CourseCalls` is the `Effects` a course runs with (in-process, and inside the Temporal
workflow). One call of the pipeline (`call(spec)`) goes:

    checkpoint?  -- a finished call of an earlier run of this job: replayed, not paid again
    response cache?  -- the same request answered before, by any job of the namespace: served
                        free (`cache_hit`, what it saved), through the same gates as a fresh one
    for each model of the tier's chain (its own stack, then its fallbacks' stacks):
        reserve its worst case on the ledger   (BudgetExceeded: the primary stops the call,
                                                a fallback that does not fit is skipped)
        send it through that model's stack      (structured output, retries, breaker, limits)
        settle and record it                    (ok / rejected: answered but unusable, still
                                                billed / error / skipped by an open breaker)
        ok: checkpoint it and hand it back; otherwise move on to the next model
    every model skipped by an open breaker: wait for the soonest probe (bounded), then again
    every model failed on a flaky provider (none down): back off and send again to the model
    that still succeeds most, through its flaky breaker (`resilience.degrade`)

The resilience stacks know nothing of the ledger; nothing here is reached through a context
variable. A fallback's answer is recorded under its own model with "fallback for <primary>".
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, TypeVar

from ..cache import ResponseCache, request_key
from ..config import ModelSettings, Settings
from ..domain import BreakerReport, CallRecord
from ..domain.report import tokens_of
from ..domain.tasks import lesson_key
from ..errors import BadResponse, BudgetExceeded, CircuitOpen, JobStopped, ModerationRefused, ProviderError
from ..ledger import (
    Ledger,
    Reservation,
    estimate_input_tokens,
    price_of,
    prompt_cache_saving,
    worst_case_cost,
)
from ..providers import ChatModel, ChatRequest, ChatResponse, Embedder, Usage, Vector
from ..providers.effects import CallResult, CallSpec
from ..resilience import (
    CallRecorded,
    Clock,
    EventCounts,
    FallbackTaken,
    Hooks,
    RecordingHooks,
    RetryScheduled,
    SystemClock,
    fault_kind,
    no_hooks,
)
from ..resilience.degrade import DEGRADED_ROUNDS, best_model, degraded_delay_s, forced, should_force
from ..resilience.hedge import LatencyTracker, hedge_delay_s, race
from ..routing import WEAKER_FALLBACK
from ..storage import CachedResponse, Checkpoint, Store
from ..telemetry import ModelCallSpan, model_call_span
from .batching import BatchRoute
from .reasoning import ReasoningBudgets, ReasoningPlan, after_length, observe, plan_reasoning

__all__ = ["OPEN_CHAIN_ROUNDS", "Checkpoints", "CourseCalls", "Runtime", "request_digest"]

T = TypeVar("T")
_log = logging.getLogger(__name__)

#: Times a call whose whole chain is open waits for a probe before it gives up.
OPEN_CHAIN_ROUNDS = 2
#: Share of `Runtime.open_wait_s` waited when a breaker is half-open with its probe in flight.
_PROBE_WAIT_SHARE = 0.05


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(fn, *args)


@contextlib.contextmanager
def _no_events() -> Iterator[EventCounts]:
    yield RecordingHooks()


@dataclass(slots=True)
class Runtime:
    """What courses run on; shared by every course of an engine (or of a workflow)."""

    #: Tier model id -> the stacks tried in order: its own, then its configured fallbacks'.
    chains: Mapping[str, Sequence[ChatModel]]
    embedder: Embedder
    clock: Clock = field(default_factory=SystemClock)
    hooks: Hooks = no_hooks
    #: Longest wait for a probe when every model of a chain is skipped by its open breaker.
    open_wait_s: float = 0.0
    #: How CPU-bound gate work leaves the event loop (a worker thread; inline in a workflow).
    blocking: Callable[..., Awaitable[Any]] = _in_thread
    #: Opens the scope in which one course's resilience events are counted.
    events: Callable[[], AbstractContextManager[EventCounts]] = _no_events
    #: Loads what the gates need (embedding model, safety classifier) while phase 2 runs.
    warm: Callable[[], Awaitable[None]] | None = None
    #: The breakers' states for the report (in-process only: a workflow's are in its workers).
    breakers: Callable[[], dict[str, BreakerReport]] | None = None
    #: Model id -> share of its recent calls answered (the breaker's window; 1.0 unknown).
    success_rate: Callable[[str], float] = lambda _model_id: 1.0
    #: Each model's recent answered latencies: the hedge delay is their p95.
    latency: LatencyTracker = field(default_factory=LatencyTracker)
    #: May `routing.hedging` send hedges here? (Not inside a Temporal workflow: a hedge's timer
    #: and cancelled activity would change the workflow's history; docs/resilience.md.)
    hedge: bool = True
    #: Reasoning tokens observed per model, task kind and effort (`engine.reasoning`).
    reasoning: ReasoningBudgets = field(default_factory=ReasoningBudgets)


def request_digest(model_id: str, request: ChatRequest) -> str:
    """Identity of a request's content (not its timeout or log tags)."""
    payload = {
        "model": model_id,
        "messages": [[m.role, m.content] for m in request.messages],
        "schema": request.json_schema,
        "schema_name": request.schema_name,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
    }
    raw = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


class Checkpoints:
    """A job's finished calls in the store, by step key. A checkpoint replays only for an
    identical request to the same model; only answered calls are written (both accepted and
    gate-rejected answers were paid for; a provider error was not, and may succeed now)."""

    def __init__(self, store: Store, job_id: str, loaded: Mapping[str, Checkpoint]) -> None:
        self.store = store
        self.job_id = job_id
        self._by_key = dict(loaded)

    @classmethod
    async def load(cls, store: Store, job_id: str) -> Checkpoints:
        return cls(store, job_id, await store.load_checkpoints(job_id))

    def find(self, key: str, model_id: str, digest: str) -> Checkpoint | None:
        cp = self._by_key.get(key)
        return cp if cp is not None and cp.model == model_id and cp.request_digest == digest else None

    async def save(self, key: str, digest: str, result: CallResult) -> None:
        response, record = result.response, result.record
        checkpoint = Checkpoint(
            job_id=self.job_id,
            step_key=key,
            request_digest=digest,
            model=record.model,
            text=response.text,
            **tokens_of(response.usage),
            cost_usd=record.cost_usd,
            cost_source=record.cost_source,
            latency_ms=record.latency_ms,
            response_model=response.model,
            finish_reason=response.finish_reason,
            native_finish_reason=response.native_finish_reason,
        )
        # Shielded: a cancelled job still keeps what it has paid for.
        await asyncio.shield(self.store.put_checkpoint(checkpoint))
        self._by_key[key] = checkpoint


def _prompt_of(spec: CallSpec) -> str:
    """What a moderation refusal is remembered by: the lesson (its regenerations carry the same
    subject), else the task."""
    return lesson_key(spec.task.lesson) if spec.task.kind == "lesson" else spec.task.key()


def _identity(spec: CallSpec, model_id: str, started_ms: float) -> dict[str, Any]:
    """The fields naming one call in its record: where it ran, for what, on which model."""
    return dict(
        phase=spec.phase,
        task=spec.task.key(),
        round=spec.round,
        model=model_id,
        tier=spec.tier,
        attempt=spec.attempt,
        started_ms=round(started_ms, 1),
    )


class CourseCalls:
    """The `Effects` of one course: metered model calls, embeddings, the clock."""

    def __init__(
        self,
        settings: Settings,
        runtime: Runtime,
        ledger: Ledger,
        *,
        checkpoints: Checkpoints | None = None,
        cache: ResponseCache | None = None,
        batcher: BatchRoute | None = None,
    ) -> None:
        """`batcher`: batch mode — each primary model's call goes through its provider's batch
        API (at the batch price), its normal path when the batch fails it."""
        self._settings = settings
        self._runtime = runtime
        self.ledger = ledger
        self._checkpoints = checkpoints
        self._cache = cache
        self._batcher = batcher
        self._t0 = runtime.clock.monotonic()
        #: The provider error that stopped this course (401, 402): no further call is sent.
        self._stopped: ProviderError | None = None
        #: (model id, lesson or task) -> that model's moderation refusal of its prompt: the same
        #: prompt (a lesson's every generation) is not sent to that model again.
        self._refused: dict[tuple[str, str], ModerationRefused] = {}

    def now_ms(self) -> float:
        return (self._runtime.clock.monotonic() - self._t0) * 1000

    def budget_fraction(self) -> float:
        return self.ledger.fraction_used

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        return await self._runtime.embedder.embed(list(texts))

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        result: T = await self._runtime.blocking(fn, *args)
        return result

    async def call(self, spec: CallSpec) -> CallResult:
        """Checkpoint, else the response cache, else the chain (the cache and the checkpoint
        keep what the chain answered). Lookups are awaited here, beside the send, so they add
        no frame to the path a call takes to the provider."""
        model_id = self._settings.routing.tiers[spec.tier]
        if self._stopped is not None:
            raise JobStopped(self._stopped)
        key = digest = ""
        if self._checkpoints is not None:
            key, digest = spec.step_key, request_digest(model_id, spec.request)
            found = self._checkpoints.find(key, model_id, digest)
            if found is not None:
                return self._replay(spec, found)
        result = await self._from_cache(spec, model_id)
        if result is None:
            result = await self._send(spec, model_id)
            await self._keep_in_cache(spec, model_id, result)
        if self._checkpoints is not None:
            await self._checkpoints.save(key, digest, result)
        return result

    # -- the response cache ------------------------------------------------------------------
    async def _from_cache(self, spec: CallSpec, model_id: str) -> CallResult | None:
        """The response cache's answer to this request, recorded as a free call; None: a miss."""
        if self._cache is None:
            return None
        started = self.now_ms()
        settings = self._settings.models[model_id]
        hit = await self._cache.lookup(settings, spec.request, attempt=spec.attempt, sample=spec.task.sample)
        return None if hit is None else self._serve_cached(spec, model_id, hit, started)

    async def _keep_in_cache(self, spec: CallSpec, model_id: str, result: CallResult) -> None:
        """Keep the chain's answer when the primary gave it (a fallback's answer is not the
        primary's)."""
        if self._cache is None or result.record.model != model_id:
            return
        await asyncio.shield(
            self._cache.keep(
                model_id,
                self._settings.models[model_id],
                spec.request,
                result.response,
                cost_usd=result.record.cost_usd,
                latency_ms=result.record.latency_ms,
                attempt=spec.attempt,
                sample=spec.task.sample,
            )
        )

    def _serve_cached(self, spec: CallSpec, model_id: str, hit: CachedResponse, started: float) -> CallResult:
        record = CallRecord(
            **_identity(spec, model_id, started),
            **tokens_of(hit),
            cost_usd=Decimal(0),
            saved_usd=hit.cost_usd,
            latency_ms=round(self.now_ms() - started, 1),
            outcome="ok",
            reason=f"response cache hit (paid ${hit.cost_usd} and took {hit.latency_ms:.0f} ms then)",
            cache_hit=True,
            cost_source="none",
            finish_reason=hit.finish_reason,
            native_finish_reason=hit.native_finish_reason,
        )
        with self._span(spec, model_id, model_id) as span:
            self._recorded(self.ledger.record(record), span)
        usage = Usage(
            hit.input_tokens,
            hit.output_tokens,
            hit.cached_tokens,
            Decimal(0),
            cache_write_tokens=hit.cache_write_tokens,
            reasoning_tokens=hit.reasoning_tokens,
        )
        response = ChatResponse(
            hit.text,
            usage,
            record.latency_ms,
            hit.response_model,
            hit.finish_reason,
            native_finish_reason=hit.native_finish_reason,
        )
        return CallResult(response, record)

    # -- the chain -------------------------------------------------------------------------
    async def _send(self, spec: CallSpec, primary: str) -> CallResult:
        chain = self._runtime.chains[primary]
        attempt = self._try_hedged if self._hedges(spec) else self._try
        for round_no in range(OPEN_CHAIN_ROUNDS + 1):
            last: ProviderError | None = None
            blocked: BudgetExceeded | None = None
            reopens: list[float] = []
            errors: list[ProviderError] = []
            primary_answered_badly = False
            for i, model in enumerate(chain):
                if primary_answered_badly and self._weaker(model.model_id, primary):
                    # Never escalate down on bad content; a weaker fallback answers only when
                    # the primary is unavailable (rate limited, down).
                    continue
                if last is not None:
                    self._runtime.hooks(
                        FallbackTaken(chain[i - 1].model_id, model.model_id, fault_kind(last))
                    )
                refused = self._refused.get((model.model_id, _prompt_of(spec)))
                if refused is not None:  # its moderation flagged this task's prompt: not again
                    last = refused
                    errors.append(refused)
                    continue
                try:
                    return await attempt(spec, model, primary)
                except BudgetExceeded as exc:
                    if i == 0:
                        raise
                    blocked = exc
                except ProviderError as exc:
                    if exc.stops_job:  # 401, 402: every call would fail so; no fallback either
                        self._stopped = exc
                        raise JobStopped(exc) from exc
                    if isinstance(exc, ModerationRefused):
                        self._refused[model.model_id, _prompt_of(spec)] = exc
                    last = exc
                    errors.append(exc)
                    if isinstance(exc, CircuitOpen):
                        reopens.append(exc.reopens_in_s)
                    if isinstance(exc, BadResponse) and not self._weaker(model.model_id, primary):
                        primary_answered_badly = True
            if last is None:
                assert blocked is not None
                raise blocked
            if should_force(errors):
                return await self._force(spec, chain, primary, last)
            every_open = len(reopens) == len(chain)
            soonest = min(reopens, default=0.0)
            if every_open and round_no < OPEN_CHAIN_ROUNDS and soonest <= self._runtime.open_wait_s:
                await self._runtime.clock.sleep(soonest or self._runtime.open_wait_s * _PROBE_WAIT_SHARE)
                continue
            if len(chain) > 1:
                last.add_note(f"fallback chain {' -> '.join(m.model_id for m in chain)}: every model failed")
            raise last
        raise AssertionError("unreachable")  # pragma: no cover

    def _weaker(self, model_id: str, primary: str) -> bool:
        """Is `model_id` a weaker stand-in for `primary` (cheaper output, not the same model at a
        second provider)? Such a fallback is taken for availability only, and flagged."""
        models = self._settings.models
        fallback, first = models[model_id], models[primary]
        return fallback.second_of != primary and fallback.price_out_per_m < first.price_out_per_m

    async def _force(
        self, spec: CallSpec, chain: Sequence[ChatModel], primary: str, last: ProviderError
    ) -> CallResult:
        """Every model failed on a flaky provider: back off, send again to the best one."""
        model = best_model(chain, self._runtime.success_rate)
        request = forced(spec.request)
        for n in range(1, DEGRADED_ROUNDS + 1):
            delay = degraded_delay_s(n, spec.step_key)
            self._runtime.hooks(RetryScheduled(model.model_id, n, delay, "degraded_chain"))
            if delay:
                await self._runtime.clock.sleep(delay)
            try:
                return await self._try(spec, model, primary, request)
            except ProviderError as exc:
                last = exc
                if isinstance(exc, CircuitOpen) and exc.down:
                    break
        last.add_note(f"{model.model_id}: still failing after {DEGRADED_ROUNDS} forced sends")
        raise last

    def _hedges(self, spec: CallSpec) -> bool:
        """Whether `routing.hedging` covers the call's phase (resilience.hedge). Never in batch
        mode: a batched call is slow by design, and a hedge would pay twice."""
        hedging = self._settings.routing.hedging
        on = hedging.enabled and self._runtime.hedge and self._batcher is None
        return on and spec.phase in hedging.phases

    async def _try_hedged(self, spec: CallSpec, model: ChatModel, primary: str) -> CallResult:
        """`_try` twice: a second request after the model's p95 latency, the first answer wins."""
        hedging = self._settings.routing.hedging
        delay = hedge_delay_s(self._runtime.latency, model.model_id, hedging)
        return await race(
            lambda: self._try(spec, model, primary, hedge_leg=True),
            lambda: self._try(spec, model, primary, hedge_leg=True),
            delay,
        )

    async def _try(
        self,
        spec: CallSpec,
        model: ChatModel,
        primary: str,
        request: ChatRequest | None = None,
        *,
        hedge_leg: bool = False,
    ) -> CallResult:
        """One model of the chain: its request with the model's reasoning budget
        (`engine.reasoning`), sent once, and once more on the same model after a `length` cut
        (a bigger cap, a lower effort). Each try runs in its own model-call span: reserve, send,
        settle, record, billed. The retry is a loop here, not a frame: nothing stands between
        this method and the model's stack.

        A hedge leg cancelled because the other leg answered first is recorded `cancelled`,
        its prompt billed (the provider has read it; what it generated before the cancel is
        not known)."""
        settings = self._settings.models[model.model_id]
        budgets, kind = self._runtime.reasoning, spec.task.kind
        plan = plan_reasoning(settings, model.model_id, kind, spec.phase, request or spec.request, budgets)
        for cut_before in (False, True):
            try:
                with self._span(spec, model.model_id, primary) as span:
                    span.request(plan.request)
                    started = self.now_ms()
                    base = _identity(spec, model.model_id, started)
                    reservation = self._reserve(spec, settings, plan.request, base, span)
                    try:
                        # Batch only a model whose batch price is known and below its normal one.
                        if (
                            self._batcher is not None
                            and model.model_id == primary
                            and settings.batch_price_multiplier
                        ):
                            custom_id = request_key(
                                settings,
                                plan.request,
                                templates="",
                                attempt=spec.attempt,
                                sample=spec.task.sample,
                            )
                            sent = self._batcher.complete(model.model_id, model, plan.request, custom_id)
                        else:
                            sent = model.complete(plan.request)
                        response = await sent
                    except ProviderError as error:
                        latency_ms = self.now_ms() - started
                        failed = self._settle_failure(
                            reservation, base, settings, error, latency_ms, plan.note
                        )
                        self._recorded(failed, span)
                        raise
                    except asyncio.CancelledError:
                        self._recorded(
                            self._settle_in_flight(reservation, base, settings, plan, started, hedge_leg),
                            span,
                        )
                        raise
                    except BaseException:  # a bug of ours: nothing was billed that we know of
                        self.ledger.release(reservation)
                        raise
                    result = self._settle_answer(
                        reservation, base, settings, response, primary, plan, started, span
                    )
            except BadResponse as error:
                observe(budgets, model.model_id, kind, plan, error.usage)
                again = None if cut_before else after_length(settings, plan, error)
                if again is None:
                    raise
                _log.info("%s %s: %s", spec.task.key(), model.model_id, again.note)
                self._runtime.hooks(RetryScheduled(model.model_id, 1, 0.0, "length"))
                plan = again
                continue
            observe(budgets, model.model_id, kind, plan, result.response.usage)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _reserve(
        self,
        spec: CallSpec,
        settings: ModelSettings,
        request: ChatRequest,
        base: dict[str, Any],
        span: ModelCallSpan,
    ) -> Reservation:
        """The request's worst case on the ledger; a call it does not fit is recorded blocked."""
        estimate = worst_case_cost(settings, estimate_input_tokens(request.messages), request.max_tokens)
        try:
            return self.ledger.reserve(estimate, spec.phase)
        except BudgetExceeded as exc:
            blocked = CallRecord(**base, outcome="budget_blocked", reason=str(exc), cost_source="none")
            self._recorded(self.ledger.record(blocked), span)
            raise

    def _settle_answer(
        self,
        reservation: Reservation,
        base: dict[str, Any],
        settings: ModelSettings,
        response: ChatResponse,
        primary: str,
        plan: ReasoningPlan,
        started_ms: float,
        span: ModelCallSpan,
    ) -> CallResult:
        """An answered request: priced (the provider's figure, checked against the table),
        settled, recorded; its latency feeds the hedge delay."""
        model_id = base["model"]
        cost, source = price_of(settings, response.usage, batch=bool(response.batch_id))
        table = None
        if source == "provider":
            no_cost = replace(response.usage, cost_usd=None)
            table = price_of(settings, no_cost, batch=bool(response.batch_id))[0]
        fallback = _fallback_reason(model_id, primary, self._weaker)
        record = CallRecord(
            **base,
            **tokens_of(response.usage),
            saved_usd=prompt_cache_saving(settings, response.usage),
            cost_usd=cost,
            latency_ms=round(self.now_ms() - started_ms, 1),
            outcome="ok",
            reason="; ".join(x for x in (fallback, plan.note) if x),
            cost_source=source,
            batch_id=response.batch_id,
            finish_reason=response.finish_reason,
            native_finish_reason=response.native_finish_reason,
            price_table_usd=table,
        )
        span.response(response)
        if not response.batch_id:  # a batch's hours say nothing of the model's latency
            self._runtime.latency.observe(model_id, record.latency_ms / 1000)
        return CallResult(response, self._recorded(self.ledger.settle(reservation, record), span))

    def _settle_in_flight(
        self,
        reservation: Reservation,
        base: dict[str, Any],
        settings: ModelSettings,
        plan: ReasoningPlan,
        started_ms: float,
        hedge_leg: bool,
    ) -> CallRecord:
        """A request cancelled in flight: a lost hedge leg bills its prompt; a cancelled job's
        request is listed with no usage known (it was sent, so a provider may bill it)."""
        if hedge_leg:
            return self._settle_cancelled(reservation, base, settings, plan.request, started_ms)
        self.ledger.release(reservation)
        cancelled = CallRecord(
            **base,
            outcome="cancelled",
            reason="cancelled in flight; the provider's usage is unknown",
            latency_ms=round(self.now_ms() - started_ms, 1),
            cost_source="none",
        )
        return self.ledger.record(cancelled)

    def _settle_cancelled(
        self,
        reservation: Reservation,
        base: dict[str, Any],
        settings: ModelSettings,
        request: ChatRequest,
        started_ms: float,
    ) -> CallRecord:
        """A hedge leg that lost: its prompt tokens at the input price stay on the ledger."""
        usage = Usage(estimate_input_tokens(request.messages), 0)
        cost, source = price_of(settings, usage)
        record = CallRecord(
            **base,
            input_tokens=usage.input_tokens,
            cost_usd=cost,
            latency_ms=round(self.now_ms() - started_ms, 1),
            outcome="cancelled",
            reason="hedge lost: the other request answered first; prompt tokens estimated",
            cost_source=source,
        )
        return self.ledger.settle(reservation, record)

    def _span(self, spec: CallSpec, model_id: str, primary: str) -> AbstractContextManager[ModelCallSpan]:
        settings = self._settings.models[model_id]
        return model_call_span(
            model_id=model_id,
            provider=settings.provider,
            request_model=settings.name,
            phase=spec.phase,
            task=spec.task.key(),
            tier=spec.tier,
            attempt=spec.attempt,
            round=spec.round,
            fallback_for="" if model_id == primary else primary,
        )

    def _recorded(self, record: CallRecord, span: ModelCallSpan) -> CallRecord:
        """Every record of a call passes here once: onto its span, and out to the hooks (metrics)."""
        span.record(record)
        self._runtime.hooks(CallRecorded(record))
        return record

    def _settle_failure(
        self,
        reservation: Reservation,
        base: dict[str, Any],
        settings: ModelSettings,
        error: ProviderError,
        latency_ms: float,
        note: str = "",
    ) -> CallRecord:
        reason = "; ".join(x for x in (f"{type(error).__name__}: {error}", note) if x)[:500]
        if isinstance(error, CircuitOpen):
            self.ledger.release(reservation)
            return self.ledger.record(
                CallRecord(
                    **base, outcome="skipped", reason=f"CircuitOpen: {error}"[:500], cost_source="none"
                )
            )
        usage = error.usage if isinstance(error, BadResponse) else None
        if isinstance(usage, Usage):
            # Answered and billed, but unusable (empty, cut off, not JSON, schema-invalid).
            cost, source = price_of(settings, usage)
            record = CallRecord(
                **base,
                **tokens_of(usage, cache_writes=False),
                cost_usd=cost,
                latency_ms=round(latency_ms, 1),
                outcome="rejected",
                reason=reason,
                cost_source=source,
                finish_reason=getattr(error, "finish_reason", ""),
                native_finish_reason=getattr(error, "native_finish_reason", ""),
            )
        else:
            record = CallRecord(
                **base, outcome="error", reason=reason, latency_ms=round(latency_ms, 1), cost_source="none"
            )
        return self.ledger.settle(reservation, record)

    def _replay(self, spec: CallSpec, cp: Checkpoint) -> CallResult:
        record = CallRecord(
            **_identity(spec, cp.model, self.now_ms()),
            **tokens_of(cp),
            cost_usd=cp.cost_usd,
            latency_ms=0.0,
            outcome="ok",
            reason=f"replayed from checkpoint (paid in an earlier run; took {cp.latency_ms:.0f} ms then)",
            replayed=True,
            cost_source=cp.cost_source,
            finish_reason=cp.finish_reason,
            native_finish_reason=cp.native_finish_reason,
        )
        # Counted as spent (the course did pay it, once) but never reserved or sent again.
        with self._span(spec, cp.model, self._settings.routing.tiers[spec.tier]) as span:
            self._recorded(self.ledger.record(record), span)
        usage = Usage(
            cp.input_tokens,
            cp.output_tokens,
            cp.cached_tokens,
            None,
            cache_write_tokens=cp.cache_write_tokens,
            reasoning_tokens=cp.reasoning_tokens,
        )
        response = ChatResponse(
            cp.text,
            usage,
            0.0,
            cp.response_model,
            cp.finish_reason,
            native_finish_reason=cp.native_finish_reason,
        )
        return CallResult(response, record)


def _fallback_reason(model_id: str, primary: str, weaker: Callable[[str, str], bool]) -> str:
    if model_id == primary:
        return ""
    if weaker(model_id, primary):
        return f"{WEAKER_FALLBACK} {primary} (unavailable)"
    return f"fallback for {primary}"
