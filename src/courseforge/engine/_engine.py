"""The engine: one config's model stacks, breakers and embedder, shared by the courses it runs.

What is shared between courses is meant to be (the providers and their connections, the rate
limiters, the circuit breakers, the embedder and its cache) and is held here, passed
explicitly to each course as its `Runtime`; everything a course owns (ledger, state, decisions,
samples) lives in that course's `run_course` call.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from decimal import Decimal

from ..cache import ResponseCache
from ..config import Settings
from ..domain import AnalysisResult, BreakerReport, Course, Exercise, Report
from ..ledger import Ledger, course_cap
from ..pipeline import PipelineContext, ProgressEvent
from ..pipeline.revise import revise_lesson, state_from_course
from ..pipeline.state import PlanControl
from ..providers import ChatModel, Embedder
from ..providers.embeddings import make_embedder
from ..resilience import (
    BreakerPolicy,
    BreakerRegistry,
    CallRecorded,
    Clock,
    CountingHooks,
    EventCounts,
    Hooks,
    ResilienceEvent,
    ScopedHooks,
    fan_out,
    log_event,
)
from ..storage import Store
from .batching import Batcher
from .calls import Checkpoints, CourseCalls, Runtime
from .course import GenerationResult, RevisionResult, run_course
from .offload import GateExecutor
from .stacks import ModelStacks

log = logging.getLogger("courseforge.engine")

__all__ = ["Engine"]


class Engine:
    """Generates courses. Build once, run many courses, `aclose()` at the end."""

    def __init__(
        self,
        settings: Settings,
        *,
        env: Mapping[str, str] | None = None,
        models: Mapping[str, ChatModel] | None = None,
        embedder: Embedder | None = None,
        clock: Clock | None = None,
        breaker_cooldown_s: float | None = None,
    ) -> None:
        """`models` injects providers by model id (tests, doubles); `clock` drives the breakers
        (tests pass a FakeClock); `breaker_cooldown_s` replaces `breakers.cooldown_s`, how long a
        breaker that judged its model down skips it (a time-compressed benchmark compresses it,
        and the flaky cooldown with it)."""
        self.settings = settings
        #: Counts of every resilience event of the engine's life (counts only: a service's engine
        #: lives for thousands of courses); each course records its own events in its scope.
        self.hooks = CountingHooks()
        self._scoped = ScopedHooks()
        #: Hooks added later (`add_hook`: metrics), called with every event after these.
        self._observers: list[Hooks] = []
        self._events = fan_out(self._keep, self._scoped, log_event, self._observe)
        policy = BreakerPolicy.from_settings(settings.breakers, breaker_cooldown_s)
        self.breakers = BreakerRegistry(
            hooks=self._events, clock=clock, policy=policy, provider_policy=policy.for_provider()
        )
        self.stacks = ModelStacks(
            settings,
            env=os.environ if env is None else env,
            breakers=self.breakers,
            hooks=self._events,
            models=models,
        )
        self._clock = clock
        self._breaker_cooldown_s = policy.cooldown_s
        self._embedder = embedder
        self.gate_executor = GateExecutor(settings.gates.workers, settings.gates.workers_kind)
        self._runtime: Runtime | None = None
        self._batcher: Batcher | None = None

    def _keep(self, event: ResilienceEvent) -> None:
        # Call records belong to their course's ledger; the engine's own list would only grow.
        if not isinstance(event, CallRecorded):
            self.hooks(event)

    def _observe(self, event: ResilienceEvent) -> None:
        for hook in self._observers:
            hook(event)

    def add_hook(self, hook: Hooks) -> Callable[[], None]:
        """Send every event of this engine from now on to `hook` too: each call as it is
        recorded (`CallRecorded`), retries, faults, fallbacks, breaker transitions. Returns the
        function that stops it (an app's metrics leave with the app; the engine may outlive it)."""
        self._observers.append(hook)

        def remove() -> None:
            if hook in self._observers:
                self._observers.remove(hook)

        return remove

    def embedder(self) -> Embedder:
        if self._embedder is None:
            gates = self.settings.gates
            self._embedder = make_embedder(
                gates.embedding_model,
                batch_size=gates.embedding_batch_size,
                threads=gates.embedding_threads,
                dtype=gates.embedding_dtype,
                max_items=gates.embedding_cache_items,
            )
        return self._embedder

    def runtime(self) -> Runtime:
        """What this engine's courses run on (built once; building the stacks checks API keys)."""
        if self._runtime is None:
            self._runtime = Runtime(
                chains=self.stacks.chains(),
                embedder=self.embedder(),
                hooks=self._events,
                open_wait_s=self._breaker_cooldown_s,
                events=self.event_scope,
                warm=self.warm,
                blocking=self.gate_executor,
                breakers=self.breaker_report,
                success_rate=self.breakers.success_rate,
            )
            if self._clock is not None:
                self._runtime.clock = self._clock
        return self._runtime

    def batcher(self, store: Store | None = None) -> Batcher:
        """The provider batches every batch-mode course of this engine shares (one per model
        per round); `store` records batches in flight so a restart polls them again."""
        if self._batcher is None:
            self.runtime()  # the providers exist once the stacks are built
            self._batcher = Batcher(self.settings, self.stacks.provider, store=store)
        elif store is not None and self._batcher.store is None:
            self._batcher.store = store
        return self._batcher

    def breaker_report(self) -> dict[str, BreakerReport]:
        """Every breaker's state now (the report and the metrics read this)."""
        return {
            model_id: BreakerReport(
                state=s.state,
                consecutive_failures=s.consecutive_failures,
                opens=s.opens,
                failure_rate=s.failure_rate,
                window_calls=s.window_calls,
                health=s.health,
                cooldown_s=s.cooldown_s,
                reason=s.reason,
            )
            for model_id, s in self.breakers.snapshots().items()
        }

    def event_scope(self) -> AbstractContextManager[EventCounts]:
        """`with engine.event_scope() as events:` counts the resilience events of the calls made
        inside it (and in tasks it starts) — one course's, or one activity's."""
        return self._scoped.scope()

    async def generate(
        self,
        analysis: AnalysisResult,
        *,
        progress: Callable[[ProgressEvent], None] | None = None,
        checkpoints: Checkpoints | None = None,
        on_cancel: Callable[[Report], None] | None = None,
        cache: ResponseCache | None = None,
        batcher: Batcher | None = None,
        plan: PlanControl | None = None,
        bank: Sequence[Exercise] = (),
    ) -> GenerationResult:
        """One course on this engine; `checkpoints` replays and records a durable job's calls,
        `cache` serves (and keeps) answers across jobs, `batcher` runs it in batch mode;
        `on_cancel` gets the spend report of a cancelled run (see `run_course`)."""
        return await run_course(
            analysis,
            self.settings,
            self.runtime(),
            checkpoints=checkpoints,
            progress=progress,
            on_cancel=on_cancel,
            cache=cache,
            batcher=batcher,
            plan=plan,
            bank=bank,
        )

    async def revise(
        self,
        analysis: AnalysisResult,
        course: Course,
        lesson_id: str,
        *,
        note: str,
        tag: str,
        spent_usd: Decimal,
        checkpoints: Checkpoints | None = None,
        best_quality: bool = False,
    ) -> RevisionResult:
        """Generate one lesson of a finished course again (a reviewer's request; see
        `pipeline/revise.py`), under what is left of the course's budget; `best_quality`: on the
        top tier directly."""
        cap = course_cap(analysis, self.settings)
        ledger = Ledger(cap, spent_usd=min(spent_usd, cap))
        calls = CourseCalls(self.settings, self.runtime(), ledger, checkpoints=checkpoints)
        state = state_from_course(analysis, course)
        revision = await revise_lesson(
            state, lesson_id, note, tag, PipelineContext(self.settings, calls, cap), best_quality=best_quality
        )
        return RevisionResult(revision, list(ledger.records), state.decisions)

    async def warm(self) -> None:
        """Load what the gates need (the safety classifier, the embedding model) and the models'
        tokenizers in worker threads. Every course starts this beside phase 2; a service calls it at start-up, so its
        first course finds them loaded. Best effort: a failure resurfaces, with its real error,
        at the first gate."""
        from ..ledger.tokens import tokenizer_for
        from ..quality.safety import prewarm

        gates = self.settings.gates
        embedder = self.embedder()
        names = sorted({m.name for m in self.settings.models.values()})
        try:
            # The models' tokenizers load on first count (≈ 1 s of CPU each): not on the event
            # loop of a service, nor in a workflow task (Temporal's 2 s deadlock detector).
            await asyncio.to_thread(lambda: [tokenizer_for(n) for n in names])
            if gates.safety.enabled:
                await asyncio.to_thread(prewarm, gates.safety.allow_words)
            await embedder.warm()
        except Exception as exc:  # warming must never fail a course
            log.debug("warming the gates failed: %s", exc)

    async def aclose(self) -> None:
        self.gate_executor.close()
        if self._batcher is not None:
            await self._batcher.aclose()
        await self.stacks.aclose()
