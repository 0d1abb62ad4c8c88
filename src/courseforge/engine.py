"""Wires everything: config -> model stacks -> effects -> pipeline -> course and report.

The only module that knows every part. A model stack, outermost first:
Structured(Retrying(Breaking(RateLimited(ConcurrencyLimited(Timeout(provider)))))); each tier's
model is a Fallback over its stack and its configured fallbacks' stacks. The concurrency limit
and rate limit (in-process, or in Redis when `redis_url` is set) are per provider, the breaker
and structured-output mode per model, shared by every course this engine runs. Resilience
events are counted per course (a scope per `generate`) and logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import aiohttp

from .config import Settings, api_key_for
from .domain import AnalysisResult, BreakerReport, CallRecord, Course, Decision, Report
from .domain.quality import QualitySummary
from .errors import ConfigError
from .ledger import Ledger
from .pipeline import CourseState, PipelineContext, ProgressEvent, run_pipeline
from .pipeline.course_quality import quality_summary
from .pipeline.review import lesson_gate_report
from .pipeline.revise import Revision, revise_lesson, state_from_course
from .providers import ChatModel, Embedder
from .providers.effects import Effects
from .providers.embeddings import make_embedder
from .providers.openai_compat import OpenAICompatModel
from .resilience import (
    BREAKER_COOLDOWN_S,
    BreakerRegistry,
    Clock,
    ConcurrencyLimitedModel,
    FallbackModel,
    Limiter,
    RateLimitedModel,
    RateLimiter,
    RecordingHooks,
    RedisRateLimiter,
    RetryingModel,
    ScopedHooks,
    StructuredOutputModel,
    TimeoutModel,
    fan_out,
    log_event,
)
from .runtime import InProcessEffects

log = logging.getLogger("courseforge.engine")

__all__ = ["EffectsFactory", "Engine", "GenerationResult", "RevisionResult", "course_id_for"]

#: Builds the effects of one course from (settings, model stacks, ledger, embedder).
EffectsFactory = Callable[[Settings, Mapping[str, ChatModel], Ledger, Embedder], Effects]


@dataclass(slots=True)
class GenerationResult:
    course: Course | None
    report: Report
    state: CourseState | None = field(default=None, repr=False)


@dataclass(slots=True)
class RevisionResult:
    revision: Revision
    #: The calls the revision made (replayed ones marked), in order.
    calls: list[CallRecord]
    decisions: list[Decision]


def course_id_for(analysis: AnalysisResult) -> str:
    """The input's course_id, else a stable id from the topic and the input's digest."""
    if analysis.course_id:
        return analysis.course_id
    slug = re.sub(r"[^a-z0-9]+", "-", analysis.topic.lower()).strip("-")[:40] or "course"
    digest = hashlib.sha256(analysis.model_dump_json().encode()).hexdigest()[:8]
    return f"{slug}-{digest}"


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
        breaker_cooldown_s: float = BREAKER_COOLDOWN_S,
    ) -> None:
        """`clock` drives the breakers (tests pass a FakeClock); `breaker_cooldown_s` is how long
        an opened breaker skips its model (a time-compressed benchmark compresses it too)."""
        self.settings = settings
        self._env = os.environ if env is None else env
        #: Every resilience event of the engine's life; each course also gets its own scope.
        self.hooks = RecordingHooks()
        self._scoped = ScopedHooks()
        self._events = fan_out(self.hooks, self._scoped, log_event)
        self.breakers = BreakerRegistry(hooks=self._events, clock=clock, cooldown_s=breaker_cooldown_s)
        self._clock = clock
        self._breaker_cooldown_s = breaker_cooldown_s
        self._redis_limiters: list[RedisRateLimiter] = []
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._raw: dict[str, ChatModel] = dict(models or {})
        self._stacks: dict[str, ChatModel] | None = None
        self._embedder = embedder

    # -- building ------------------------------------------------------------------------------
    def _provider_model(self, model_id: str) -> ChatModel:
        if model_id in self._raw:
            return self._raw[model_id]
        ms = self.settings.models[model_id]
        provider = self.settings.providers[ms.provider]
        if provider.kind == "openai":
            key = api_key_for(self.settings, ms.provider, self._env)
            if provider.api_key_env and not key:
                raise ConfigError(
                    "missing API key",
                    [(f"providers.{ms.provider}.api_key_env", f"${provider.api_key_env} is not set")],
                )
            if ms.provider not in self._sessions:
                self._sessions[ms.provider] = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=provider.max_concurrency),
                    # sock_read guards calls whose priority sets no timeout against hung sockets.
                    timeout=aiohttp.ClientTimeout(
                        total=None, sock_connect=30, sock_read=provider.read_timeout_s
                    ),
                )
            model: ChatModel = OpenAICompatModel(
                model_id=model_id,
                model_name=ms.name,
                base_url=provider.base_url,
                api_key=key,
                output_mode=ms.output_mode,
                headers=provider.headers,
                session=self._sessions[ms.provider],
                max_output_tokens=ms.max_output_tokens,
            )
        elif provider.kind == "local":
            from .providers.local_llama import LocalLlamaModel
            from .providers.model_files import assemble_model

            if ms.local is None:
                raise ConfigError("local model without files", [(f"models.{model_id}.local", "required")])
            path = assemble_model(ms.local, Path(self.settings.cache_dir).expanduser())
            model = LocalLlamaModel(
                model_id=model_id,
                path=path,
                n_ctx=ms.local.n_ctx,
                n_threads=ms.local.n_threads,
                max_output_tokens=ms.max_output_tokens,
                n_parallel=ms.local.n_parallel,
                prefix_cache=ms.local.prefix_cache,
            )
        else:
            raise ConfigError(
                "provider has no implementation here",
                [(f"providers.{ms.provider}.kind", f"{provider.kind!r} needs models= injected")],
            )
        self._raw[model_id] = model
        return model

    def _build_stacks(self) -> dict[str, ChatModel]:
        semaphores: dict[str, asyncio.Semaphore] = {}
        limiters: dict[str, Limiter] = {}
        retries = max(p.retries for p in self.settings.routing.priorities.values())
        models = self.settings.models
        tier_models = sorted(set(self.settings.routing.tiers.values()))
        needed = sorted({*tier_models, *(fb for m in tier_models for fb in models[m].fallbacks)})
        stacks: dict[str, ChatModel] = {}
        for model_id in needed:
            ms = models[model_id]
            provider = self.settings.providers[ms.provider]
            stack: ChatModel = TimeoutModel(self._provider_model(model_id))
            sem = semaphores.setdefault(ms.provider, asyncio.Semaphore(provider.max_concurrency))
            stack = ConcurrencyLimitedModel(stack, sem)
            if provider.rpm or provider.tpm:
                if ms.provider not in limiters:
                    limiters[ms.provider] = self._limiter(ms.provider)
                stack = RateLimitedModel(stack, limiters[ms.provider], hooks=self._events)
            stack = RetryingModel(self.breakers.wrap(stack), max_retries=retries, hooks=self._events)
            stacks[model_id] = StructuredOutputModel(stack, mode=ms.output_mode, hooks=self._events)
        return {
            m: FallbackModel(
                [stacks[m], *(stacks[fb] for fb in models[m].fallbacks)],
                hooks=self._events,
                max_open_wait_s=self._breaker_cooldown_s,
                clock=self._clock,
            )
            for m in tier_models
        }

    def _limiter(self, provider_name: str) -> Limiter:
        provider = self.settings.providers[provider_name]
        if provider.redis_url:
            shared = RedisRateLimiter(
                provider.redis_url,
                key=f"courseforge:ratelimit:{provider_name}",
                rpm=provider.rpm,
                tpm=provider.tpm,
            )
            self._redis_limiters.append(shared)
            return shared
        return RateLimiter(rpm=provider.rpm, tpm=provider.tpm)

    def breaker_report(self) -> dict[str, BreakerReport]:
        """Every breaker's state now (the report and, later, the metrics read this)."""
        return {
            model_id: BreakerReport(state=s.state, consecutive_failures=s.consecutive_failures, opens=s.opens)
            for model_id, s in self.breakers.snapshots().items()
        }

    def embedder(self) -> Embedder:
        if self._embedder is None:
            gates = self.settings.gates
            self._embedder = make_embedder(gates.embedding_model, batch_size=gates.embedding_batch_size)
        return self._embedder

    def model_stacks(self) -> dict[str, ChatModel]:
        """Each tier model's stack (a `FallbackModel` over its own and its fallbacks' stacks),
        built once per engine. The distributed worker runs its activities on these."""
        if self._stacks is None:
            self._stacks = self._build_stacks()
        return self._stacks

    def event_scope(self) -> AbstractContextManager[RecordingHooks]:
        """`with engine.event_scope() as events:` records the resilience events of the calls
        made inside it (and in tasks it starts) — one course's, or one activity's."""
        return self._scoped.scope()

    # -- running -------------------------------------------------------------------------------
    async def generate(
        self,
        analysis: AnalysisResult,
        *,
        progress: Callable[[ProgressEvent], None] | None = None,
        effects_factory: EffectsFactory | None = None,
    ) -> GenerationResult:
        """`effects_factory` swaps the in-process effects (e.g. for checkpointing ones; see
        `durable.py`); it gets the same arguments as `InProcessEffects`."""
        if self._stacks is None:
            self._stacks = self._build_stacks()
        cap = analysis.budget_usd or self.settings.budget.per_course_usd
        ledger = Ledger(Decimal(cap))
        effects = (effects_factory or InProcessEffects)(self.settings, self._stacks, ledger, self.embedder())
        ctx = PipelineContext(self.settings, effects, Decimal(cap))
        if progress:
            ctx.progress = progress
        course_id = course_id_for(analysis)
        # This course's events only, even when other courses share the engine concurrently.
        with self._scoped.scope() as course_events:
            started = time.perf_counter()
            # Load the gates' models while metadata is generated: off the critical path.
            warming = asyncio.create_task(self._warm_gates())
            try:
                result = await run_pipeline(analysis, course_id, ctx)
            finally:
                # Best effort: never keep a finished (or cancelled) run waiting for it.
                warming.cancel()
                await asyncio.gather(warming, return_exceptions=True)
            wall = time.perf_counter() - started
        report = build_report(
            result.state,
            ledger,
            self.settings,
            wall,
            cap=Decimal(cap),
            transport_retries=len(course_events.retries),
            course=result.course,
        )
        report.breakers = self.breaker_report()
        report.faults = course_events.fault_counts()
        return GenerationResult(result.course, report, result.state)

    async def revise(
        self,
        analysis: AnalysisResult,
        course: Course,
        lesson_id: str,
        *,
        note: str,
        tag: str,
        spent_usd: Decimal,
        effects_factory: EffectsFactory | None = None,
    ) -> RevisionResult:
        """Generate one lesson of a finished course again (a reviewer's request; see
        `pipeline/revise.py`), under what is left of the course's budget."""
        if self._stacks is None:
            self._stacks = self._build_stacks()
        cap = Decimal(analysis.budget_usd or self.settings.budget.per_course_usd)
        ledger = Ledger(cap, spent_usd=min(spent_usd, cap))
        effects = (effects_factory or InProcessEffects)(self.settings, self._stacks, ledger, self.embedder())
        ctx = PipelineContext(self.settings, effects, cap)
        state = state_from_course(analysis, course)
        revision = await revise_lesson(state, lesson_id, note, tag, ctx)
        return RevisionResult(revision, list(ledger.records), state.decisions)

    async def _warm_gates(self) -> None:
        """Best effort: a failure here resurfaces, with its real error, at the first gate."""
        from .quality.safety import prewarm

        gates = self.settings.gates
        embedder = self.embedder()
        try:
            if gates.safety.enabled:
                await asyncio.to_thread(prewarm, gates.safety.allow_words)
            warm = getattr(embedder, "warm", None)
            if warm is not None:
                await warm()
        except Exception as exc:  # warming must never fail a course
            log.debug("warming the gates failed: %s", exc)

    async def aclose(self) -> None:
        for model in self._raw.values():
            await model.aclose()
        for session in self._sessions.values():
            await session.close()
        for limiter in self._redis_limiters:
            await limiter.aclose()


def _critical_path_s(state: CourseState, ledger: Ledger) -> float:
    """Longest chain of calls that must follow each other: per stage (metadata, lessons, quality,
    each completeness round), the slowest task's attempts in sequence; stages follow one another.

    A regenerated lesson's task is `lesson:<id>/r<k>` where k counts that lesson's regenerations
    across phases 4 and 5, so k is not the completeness round (a lesson resent by phase 4 runs as
    /r2 next to another lesson's /r1 in the same round). The k-th `regenerate` decision of the
    lesson holds the round it ran in."""
    round_of: dict[str, str] = {}
    regenerations: dict[str, int] = defaultdict(int)
    for d in state.decisions:
        if d.action == "regenerate":
            regenerations[d.task] += 1
            round_of[f"{d.task}/r{regenerations[d.task]}"] = str(d.inputs.get("round", ""))
    chains: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    # A lesson's judge calls (`judge:<lesson>:<digest>`, and `judge_strong:` beside it, sent
    # together) follow that lesson's attempt: they extend its chain by the slower of the two.
    judged: dict[tuple[tuple[str, str], str, str], float] = defaultdict(float)
    # Calibration-only judging runs beside the later phases: it forms its own path (what came
    # before its lesson's stage, the lesson's chain, then the judge) instead of delaying them.
    calibration = {d.task.removeprefix("lesson:") for d in state.decisions if d.action == "judge_calibration"}
    for r in ledger.records:
        if r.phase == "completeness":
            fallback = "tag:" + (r.task.rsplit("/", 1)[1] if "/" in r.task else "")
            stage = (r.phase, round_of.get(r.task, fallback))
        else:
            stage = (r.phase, "")
        kind, _, rest = r.task.partition(":")
        if kind in ("judge", "judge_strong"):
            lesson, _, digest = rest.partition(":")
            key = (stage, lesson, digest)
            judged[key] = max(judged[key], r.latency_ms)
            continue
        chains[stage][rest.split("/")[0] if kind == "lesson" else r.task] += r.latency_ms
    side: list[tuple[tuple[str, str], str, float]] = []
    for (stage, lesson, _), latency in judged.items():
        if lesson in calibration:
            side.append((stage, lesson, latency))
        else:
            chains[stage][lesson] += latency
    stages = list(chains)  # in order of first record: the order the stages ran
    main = sum(max(tasks.values()) for tasks in chains.values())
    paths = [main]
    for stage, lesson, latency in side:
        if stage in chains:
            before = sum(max(chains[s].values()) for s in stages[: stages.index(stage)])
            paths.append(before + chains[stage].get(lesson, 0.0) + latency)
    return max(paths) / 1000


def build_report(
    state: CourseState,
    ledger: Ledger,
    settings: Settings,
    wall_s: float,
    *,
    cap: Decimal,
    transport_retries: int,
    course: Course | None,
) -> Report:
    records = ledger.records
    decisions = state.decisions
    status = course.status if course else "failed"
    lessons = lesson_gate_report(state)
    sims = [
        g.score for lesson in lessons for g in lesson.gates if g.gate == "similarity" and g.score is not None
    ]
    first_pass = sum(1 for lesson in lessons if lesson.attempts == 1)
    escalations = sum(1 for d in decisions if d.action == "escalate")
    summary = {
        "lessons": sum(len(s.lessons) for s in course.sections) if course else len(state.usable_slots()),
        "similarity_mean": round(sum(sims) / len(sims), 4) if sims else None,
        "first_attempt_pass_rate": round(first_pass / len(lessons), 4) if lessons else None,
        "escalation_rate": round(escalations / len(lessons), 4) if lessons else None,
        "same_tier_retries": sum(1 for d in decisions if d.action == "retry"),
        "fallbacks": sum(1 for d in decisions if d.action == "fallback"),
        "rejected_calls": sum(1 for r in records if r.outcome == "rejected"),
        "peak_committed_usd": float(ledger.peak_committed),
        "calls_by_tier": dict(
            sorted({r.tier: sum(1 for x in records if x.tier == r.tier) for r in records}.items())
        ),
    }
    return Report(
        course_id=state.course_id,
        status=status,
        failure_reason=state.failure,
        profile=settings.profile,
        total_cost_usd=ledger.spent,
        budget_usd=cap,
        by_phase=Ledger.totals(records, "phase"),
        by_model=Ledger.totals(records, "model"),
        calls=list(records),
        decisions=list(decisions),
        escalations=escalations,
        retries=transport_retries,
        cache_hits=0,
        lessons=lessons,
        review_flags=len(course.review) if course else len(state.flags),
        wall_time_s=round(wall_s, 3),
        sum_call_latency_s=round(sum(r.latency_ms for r in records) / 1000, 3),
        critical_path_s=round(_critical_path_s(state, ledger), 3),
        summary=summary,
        quality=QualitySummary.model_validate(
            quality_summary(lessons, decisions, course, len(course.review) if course else len(state.flags))
        ),
    )


def dumps(obj: Course | Report) -> str:
    return json.dumps(obj.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"
