"""Typed settings: what each config key means. Loaded from YAML by `loader.py`."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from ..domain.tasks import TaskKind
from .quality_settings import (
    CompletenessSettings,
    ConsistencySettings,
    GroundingSettings,
    JudgeSettings,
    MetadataGateSettings,
    RedundancySettings,
    SafetySettings,
    TeachesSettings,
)

__all__ = [
    "DEFAULT_N_PARALLEL",
    "BatchSettings",
    "BreakerSettings",
    "BudgetSettings",
    "CacheSettings",
    "GateSettings",
    "HedgingSettings",
    "LocalModelSettings",
    "ModelSettings",
    "PrioritySettings",
    "ProviderSettings",
    "ReasoningSettings",
    "RoutingSettings",
    "SecondProviderSettings",
    "SectionTypeSettings",
    "ServiceSettings",
    "Settings",
    "ShadowSettings",
    "SimilarityThresholds",
    "StorageSettings",
    "TenantSettings",
    "second_model_id",
]

Tier = str
Priority = Literal["critical", "standard", "supplementary"]


class _S(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderSettings(_S):
    """Where a provider lives. `kind: openai` is any OpenAI-compatible HTTP endpoint."""

    kind: Literal["openai", "local", "scripted"] = "openai"
    base_url: str = ""
    #: Name of the environment variable holding the API key (never the key itself).
    api_key_env: str | None = None
    #: Extra HTTP headers, e.g. OpenRouter's HTTP-Referer and X-Title attribution.
    headers: dict[str, str] = Field(default_factory=dict)
    #: Calls in flight to this provider at once.
    max_concurrency: int = Field(default=16, ge=1, le=1024)
    #: Requests / tokens per minute allowed; None means unlimited.
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    #: Share the RPM/TPM limits with every process using this provider (redis://host:port/db);
    #: None keeps them in this process. Needs the `redis` extra.
    redis_url: str | None = None
    #: Seconds without a byte from the server before a call fails, when its priority sets no
    #: timeout: the last guard against a hung connection. None waits forever.
    read_timeout_s: float | None = Field(default=300.0, gt=0)
    #: The endpoint speaks OpenRouter's extensions (`usage: {include: true}` accounting, the
    #: `provider` routing object with `require_parameters` whenever a JSON schema is sent);
    #: None: when the host is openrouter.ai. The hosted profile says true, so it keeps them when
    #: OPENROUTER_BASE_URL points it at a proxy or the simulator.
    openrouter: bool | None = None
    #: Where `courseforge models sync` keeps this provider's prices and capabilities (a JSON
    #: file); None: `<cache_dir>/prices/<provider>.json`. Read when the config is loaded.
    prices_file: str | None = None


#: Sequences one local model decodes at once. benchmarks/local_decode.py on 2 cores: 4 gives
#: 1.3-1.4x the total tok/s of 1 (2 and 3 gain little: llama.cpp's repacked Q4_K kernels work
#: on 4 rows at a time), at 3x the latency of each request.
DEFAULT_N_PARALLEL = 4


class LocalModelSettings(_S):
    """A GGUF file assembled from PyPI part packages (offline profile)."""

    #: Python modules, in order, each exposing get_part_path().
    parts: list[str] = Field(default_factory=list)
    #: Or a ready GGUF file path.
    path: str | None = None
    sha256: str = ""
    size_bytes: int | None = None
    #: Tokens one request may hold, prompt and answer together (each parallel sequence gets this
    #: many; memory grows with n_ctx × n_parallel).
    n_ctx: int = Field(default=4096, ge=512, le=131072)
    n_threads: int | None = Field(default=None, ge=1, le=256)
    #: Requests decoded at once in the model's one llama.cpp context (continuous batching). The
    #: provider's max_concurrency must be at least this for the batch to fill.
    n_parallel: int = Field(default=DEFAULT_N_PARALLEL, ge=1, le=16)
    #: Reuse the KV cache for a prompt prefix already decoded (e.g. a shared system prompt).
    prefix_cache: bool = True
    #: Lessons are asked as markdown decoded without a grammar, then their exercises as JSON
    #: under the grammar in a second turn of the same sequence (`providers.base.ProseFirst`):
    #: free text decodes ~2x faster than the same text inside a grammar-bound JSON string
    #: (benchmarks/local_decode.py `shapes`), and reads like a lesson, not like a JSON string.
    prose_first: bool = False


Effort = Literal["none", "minimal", "low", "medium", "high"]
#: Efforts from least to most thinking (OpenRouter's `reasoning.effort` values).
EFFORTS: tuple[Effort, ...] = ("none", "minimal", "low", "medium", "high")
#: What `reasoning.effort` may name: the task kinds (`domain.tasks.TaskKind`, read from the
#: type so that a new kind can be named at once), then the phases and the other places a call is
#: made from (a reviewer's regeneration, the eval's reference judge).
REASONING_KEYS: tuple[str, ...] = (
    *get_args(TaskKind),
    "metadata",
    "lessons",
    "quality",
    "completeness",
    "review",
    "eval_judge",
)
_PRIOR_TOKENS: dict[Effort, int] = {"minimal": 150, "low": 400, "medium": 1200, "high": 3000}


class ReasoningSettings(_S):
    """A model that thinks before it answers (OpenRouter's reasoning models: gpt-oss, Gemini
    2.5, ...). Its reasoning tokens count against `max_tokens` and are billed as output, so
    each call asks for the answer's budget plus the reasoning it is expected to need
    (docs/providers.md)."""

    #: How OpenRouter's `reasoning` object steers it: `effort` (OpenAI-style levels),
    #: `max_tokens` (a token budget for the thinking), `none` (it cannot be steered: only the
    #: budget grows).
    steer: Literal["effort", "max_tokens", "none"] = "effort"
    #: Whether its thinking can be switched off (`enabled: false`); gpt-oss cannot (low is
    #: its least), Gemini 2.5 Flash can.
    can_disable: bool = False
    #: The effort it uses when asked for none (gpt-oss: medium).
    default_effort: Effort = "medium"
    #: The effort asked for per task kind (metadata_core, metadata_extras, lesson, judge,
    #: judge_strong, gaps, exercises, lesson_group) or phase (metadata, lessons, ...; all in
    #: `REASONING_KEYS`); the kind wins; neither: the default effort. `none` on a model that cannot stop thinking asks for its least.
    effort: dict[str, Effort] = Field(default_factory=dict)
    #: Reasoning tokens expected per call at each effort before this model has answered one of
    #: that kind (the prior; observed usage replaces it, `engine.reasoning`).
    expected_tokens: dict[Effort, int] = Field(default_factory=lambda: dict(_PRIOR_TOKENS))
    #: The reasoning budget added to `max_tokens` is the expected tokens times this.
    headroom: float = Field(default=1.5, ge=1.0, le=10.0)
    #: Ask the provider not to return the reasoning text (`exclude: true`): it is still
    #: generated and billed, only not sent back (we never read it).
    exclude: bool = True

    @model_validator(mode="after")
    def _steerable(self) -> ReasoningSettings:
        if self.default_effort == "none" and not self.can_disable:
            raise ValueError("default_effort none needs can_disable: true")
        unknown = sorted(set(self.effort) - set(REASONING_KEYS))
        if unknown:
            raise ValueError(
                f"effort: {', '.join(unknown)} is neither a task kind nor a phase ({', '.join(REASONING_KEYS)})"
            )
        return self


#: OpenRouter's provider routing fields (its *Provider Routing* page) and what each takes.
ROUTING_KEYS: dict[str, str] = {
    "order": "a list of provider slugs (ends OpenRouter's sticky routing to the provider holding the prompt cache)",
    "allow_fallbacks": "true or false",
    "require_parameters": "true or false",
    "data_collection": "allow or deny",
    "zdr": "true or false",
    "enforce_distillable_text": "true or false",
    "only": "a list of provider slugs",
    "ignore": "a list of provider slugs",
    "quantizations": "a list of int4, int8, fp4, fp6, fp8, fp16, bf16, fp32, unknown",
    "sort": "price, throughput or latency",
    "max_price": "an object of USD per 1M tokens: prompt, completion, request, image",
    "preferred_min_throughput": "a number or an object of percentile cutoffs",
    "preferred_max_latency": "a number or an object of percentile cutoffs",
}
_QUANTIZATIONS = {"int4", "int8", "fp4", "fp6", "fp8", "fp16", "bf16", "fp32", "unknown"}


def _routing_problem(key: str, value: Any) -> str | None:
    """Why `value` is not what OpenRouter's `provider.<key>` takes, or None."""
    if key not in ROUTING_KEYS:
        return f"unknown provider routing field; OpenRouter documents {', '.join(ROUTING_KEYS)}"
    want = ROUTING_KEYS[key]
    ok: bool
    if key in ("allow_fallbacks", "require_parameters", "zdr", "enforce_distillable_text"):
        ok = isinstance(value, bool)
    elif key in ("order", "only", "ignore"):
        ok = isinstance(value, list) and all(isinstance(v, str) and v for v in value)
    elif key == "quantizations":
        ok = isinstance(value, list) and all(v in _QUANTIZATIONS for v in value)
    elif key == "data_collection":
        ok = value in ("allow", "deny")
    elif key == "sort":
        ok = value in ("price", "throughput", "latency") or isinstance(value, dict)
    elif key == "max_price":
        ok = isinstance(value, dict) and all(
            k in ("prompt", "completion", "request", "image")
            and isinstance(v, int | float | str)
            and not isinstance(v, bool)
            for k, v in value.items()
        )
    else:
        ok = isinstance(value, int | float | dict) and not isinstance(value, bool)
    return None if ok else f"must be {want}, not {value!r}"


class SecondProviderSettings(_S):
    """The same model served by another provider, tried right after it (before `fallbacks`).

    Either another OpenAI-compatible endpoint (`provider`: another `providers` entry) or the
    same gateway routed elsewhere (`provider_routing`: OpenRouter's provider routing object,
    e.g. `{order: [DeepInfra], allow_fallbacks: false}`). It becomes a model of its own,
    `model_id` (default `<model>@second`), with its own breaker, prices and report lines."""

    provider: str
    #: The second provider's name for the model; None: the same as the first.
    name: str | None = None
    provider_routing: dict[str, Any] | None = None
    #: Prices at the second provider; None: the same as the first.
    price_in_per_m: Decimal | None = Field(default=None, ge=0)
    price_out_per_m: Decimal | None = Field(default=None, ge=0)
    #: Its model id in the report and in `fallbacks`; "": `<model>@second`.
    model_id: str = ""


class ModelSettings(_S):
    provider: str
    #: The provider's name for the model (e.g. "openai/gpt-oss-120b").
    name: str
    #: USD per 1M input / output tokens.
    price_in_per_m: Decimal = Field(default=Decimal(0), ge=0)
    price_out_per_m: Decimal = Field(default=Decimal(0), ge=0)
    context_window: int = Field(default=131072, ge=512)
    #: How structured output is requested: json_schema (standard; llama.cpp's own server takes
    #: it too), json_object with the schema (some gateways), or prompt-only with JSON repair.
    output_mode: Literal["json_schema", "json_object", "prompt"] = "json_schema"
    #: Model family, so a judge can be picked from another family than the generator.
    family: str = ""
    max_output_tokens: int = Field(default=4096, ge=64)
    local: LocalModelSettings | None = None
    #: USD per 1M prompt tokens the provider serves from its prompt cache / writes into it;
    #: None: the input price. A provider-reported `usage.cost` still wins.
    price_cache_read_per_m: Decimal | None = Field(default=None, ge=0)
    price_cache_write_per_m: Decimal | None = Field(default=None, ge=0)
    #: How the shared prompt prefix is marked for the provider's prompt cache: `auto` or
    #: `implicit` (the provider caches prefixes by itself: OpenAI-style models, DeepSeek, Gemini
    #: 2.5 implicit), `cache_control` or `explicit` (an explicit breakpoint on the shared system
    #: message: Anthropic, Alibaba's Qwen, Gemini explicit caching through OpenRouter), `off`.
    prompt_cache: Literal["auto", "implicit", "cache_control", "explicit", "off"] = "auto"
    #: The shortest prefix the provider caches (OpenAI-family and Gemini 2.5: 1,024 tokens;
    #: Alibaba's explicit cache: 1,024). Above 0, a lesson call's shared prefix also holds the
    #: course's outcomes, the sections' summaries and the gates' rubric, so that it is long
    #: enough to be cached (docs/providers.md); 0 keeps it short (a local model's context).
    prompt_cache_min_tokens: int = Field(default=0, ge=0)
    #: Price of a call sent through the provider's batch API, as a share of the normal price
    #: (the synced `:batch` variant's, docs/caching.md); None: no cheaper batch price is known,
    #: so batch mode sends this model's calls the normal way.
    batch_price_multiplier: Decimal | None = Field(default=None, gt=0, lt=1)
    #: Where the prices come from: "" for this config's own table, else the synced prices
    #: file's source and date (set when a prices file is applied; `config show` prints it).
    price_source: str = ""
    #: Model ids tried in order when this one fails or answers badly (empty, not JSON, schema-
    #: invalid) within one call; every try is billed and recorded. A cheaper fallback answers only
    #: when this model is unavailable, never for its bad answer (`engine/calls.py`).
    fallbacks: list[str] = Field(default_factory=list)
    #: OpenRouter's provider routing, sent as the request's `provider` object (`order`, `only`,
    #: `ignore`, `allow_fallbacks`, `sort`, ...); None sends none. Any other endpoint ignores it.
    provider_routing: dict[str, Any] | None = None
    #: The same model at a second provider, tried first when this one fails (its own breaker).
    second_provider: SecondProviderSettings | None = None
    #: Set on the entry a `second_provider` expands into: the model it stands in for.
    second_of: str | None = None
    #: A reasoning model: how it thinks and how it is steered; None: it answers without
    #: thinking (nothing is sent, nothing is budgeted for thinking).
    reasoning: ReasoningSettings | None = None

    @model_validator(mode="after")
    def _routing_fields(self) -> ModelSettings:
        for key, value in (self.provider_routing or {}).items():
            problem = _routing_problem(key, value)
            if problem:
                raise ValueError(f"provider_routing.{key}: {problem}")
        return self


def second_model_id(model_id: str, second: SecondProviderSettings) -> str:
    return second.model_id or f"{model_id}@second"


def _expand_second_providers(models: dict[str, Any]) -> dict[str, Any]:
    """Each `second_provider` as a model entry of its own, next to the model it stands in for."""
    out = dict(models)
    for mid, raw in models.items():
        if not isinstance(raw, dict) or not isinstance(raw.get("second_provider"), dict):
            continue
        second = SecondProviderSettings.model_validate(raw["second_provider"])
        entry = {
            k: v for k, v in raw.items() if k not in ("second_provider", "fallbacks", "provider_routing")
        }
        entry.update(provider=second.provider, second_of=mid, provider_routing=second.provider_routing)
        for key in ("name", "price_in_per_m", "price_out_per_m"):
            value = getattr(second, key)
            if value is not None:
                entry[key] = value
        out.setdefault(second_model_id(mid, second), entry)
    return out


class HedgingSettings(_S):
    """Hedged requests: a second identical request when the first is slower than the model's
    observed p95 latency; the first answer wins, the other is cancelled and its cost (if any)
    stays on the ledger."""

    enabled: bool = False
    #: Phases whose calls are hedged (they sit on the course's critical path).
    phases: list[str] = Field(default_factory=lambda: ["metadata"])
    #: Latency quantile of the model's recent answered calls after which the hedge is sent.
    quantile: float = Field(default=0.95, gt=0, lt=1)
    #: Answered calls the model needs before its quantile is trusted; until then `initial_delay_s`.
    min_samples: int = Field(default=8, ge=1)
    initial_delay_s: float = Field(default=10.0, gt=0)
    #: Bounds on the hedge delay, whatever the quantile says.
    min_delay_s: float = Field(default=0.5, ge=0)
    max_delay_s: float = Field(default=60.0, gt=0)


class BreakerSettings(_S):
    """Circuit breakers, one per model and one per provider (docs/resilience.md). A breaker
    opens on `failure_threshold` consecutive failures; its sliding window says for how long:
    "down" (>= `down_rate` of at least `down_min_calls` outcomes failed, calls in flight counted
    as not failed) keeps the full `cooldown_s`; otherwise "flaky": `flaky_cooldown_s`,
    doubling while probes fail, at most `cooldown_s`. A provider's breaker opens only when its
    window says down."""

    failure_threshold: int = Field(default=3, ge=1, le=100)
    cooldown_s: float = Field(default=60.0, ge=0)
    flaky_cooldown_s: float = Field(default=1.0, ge=0)
    down_rate: float = Field(default=0.9, gt=0, le=1)
    down_min_calls: int = Field(default=10, ge=1, le=1000)
    #: Outcomes kept in the window, and their age limit.
    window_calls: int = Field(default=20, ge=1, le=10000)
    window_s: float = Field(default=60.0, gt=0)
    #: Calls let through at once when half-open.
    half_open_probes: int = Field(default=3, ge=1, le=100)

    @model_validator(mode="after")
    def _window_holds_enough(self) -> BreakerSettings:
        if self.down_min_calls > self.window_calls:
            raise ValueError("down_min_calls must not exceed window_calls (the window could never say down)")
        return self


class PrioritySettings(_S):
    #: Total attempts per task before it is flagged for review.
    max_attempts: int = Field(default=3, ge=1, le=10)
    #: Transport retries per attempt for provider errors (429, 5xx, timeouts).
    retries: int = Field(default=2, ge=0, le=10)
    #: Seconds per call, or None for no limit.
    timeout_s: float | None = Field(default=120.0, gt=0)
    #: May this priority escalate above its starting tier?
    escalate: bool = True


class SectionTypeSettings(_S):
    #: Tier to start on regardless of the pre-routing score, or None to use the score.
    start_tier: Tier | None = None
    priority: Priority = "standard"
    #: Added to the pre-routing score (positive pushes towards premium).
    score_bias: float = Field(default=0.0, ge=-1, le=1)


class RoutingSettings(_S):
    #: Tier name -> model id. Conventional names: cheap, mid, premium, long_context.
    tiers: dict[Tier, str]
    #: Escalation order, cheapest first.
    ladder: list[Tier]
    #: Tier for prompts larger than the chosen model's context window.
    long_context_tier: Tier | None = "long_context"
    #: The long-context tier: a request (prompt + answer room, counted by `ledger.tokens`) at or over
    #: this many tokens, or over the chosen model's window less `context_margin`, goes to
    #: `long_context_tier` — metadata, lesson and judge calls alike.
    long_context_at_tokens: int = Field(default=120_000, ge=1000)
    context_margin: float = Field(default=0.1, ge=0, lt=1)
    #: Pre-routing: score >= mid -> ladder[1]; score >= premium -> ladder[-1]; else ladder[0].
    threshold_mid: float = Field(default=0.3, ge=0, le=1)
    threshold_premium: float = Field(default=0.75, ge=0, le=1)
    #: The premium rule, before the score: `complexity_score` (the input's complexity 1-10 as
    #: (c - 1) / 8 plus the type's bias, so complexity 7 and above -> 0.75 and more) at or
    #: above `premium_complexity`, or `criticality_score` (1 for a critical section) at or above
    #: `premium_criticality`, starts the task on the last ladder tier. 1.01 turns either off.
    premium_complexity: float = Field(default=0.75, ge=0, le=1.01)
    premium_criticality: float = Field(default=0.80, ge=0, le=1.01)
    #: A lesson whose similarity is below the severe bound climbs straight to the highest tier
    #: allowed, not one tier: a severe failure needs the best model available (the bound is
    #: `gates.similarity.<model>.severe_below`, calibrated per embedder).
    severe_to_top: bool = True
    #: Tier for the critical metadata fields (outcomes, strategy, structure: premium, never less).
    metadata_tier: Tier = "premium"
    #: Starting tier for the non-critical metadata fields (cheap-first, escalating).
    metadata_extras_tier: Tier = "cheap"
    #: Two more shapes of a lesson request (docs/seed-rules.md, item 13). `exercises_tier`: a
    #: lesson's exercises are written apart, by this tier's model, from the lesson's text and
    #: outcomes (None: in the lesson's own answer). `group_lessons`: a section's first
    #: generations that start on the same tier go in one request, each lesson parsed, checked
    #: and checkpointed on its own; one that fails its gates is regenerated alone.
    exercises_tier: Tier | None = None
    group_lessons: bool = False
    #: Attempts at the critical metadata on its tier before human review.
    metadata_max_attempts: int = Field(default=2, ge=1, le=10)
    section_types: dict[str, SectionTypeSettings] = Field(default_factory=dict)
    priorities: dict[Priority, PrioritySettings] = Field(
        default_factory=lambda: {  # type: ignore[arg-type]
            "critical": PrioritySettings(max_attempts=4, retries=3, timeout_s=None),
            "standard": PrioritySettings(),
            "supplementary": PrioritySettings(max_attempts=2, escalate=False),
        }
    )
    #: Lesson generations in flight at once across the course.
    max_parallel_tasks: int = Field(default=16, ge=1, le=512)
    #: Lessons whose parallel run failed are retried one at a time before phase 5:
    #: a failure of the parallel run is not the lesson's fault.
    sequential_fallback: bool = True
    #: The sequential retry's per-call timeout: this times the priority's `timeout_s`.
    sequential_timeout_factor: float = Field(default=2.0, ge=1, le=10)
    #: Rounds of phase-5 repair (generate missing, regenerate failed) before giving up.
    completeness_rounds: int = Field(default=2, ge=0, le=5)
    #: Hedged requests on the critical path (off by default; the hosted profile hedges metadata).
    hedging: HedgingSettings = Field(default_factory=HedgingSettings)
    temperature: float = Field(default=0.7, ge=0, le=2)

    @model_validator(mode="after")
    def _tiers_known(self) -> RoutingSettings:
        names = [*self.ladder, self.metadata_tier, self.metadata_extras_tier]
        names += [self.exercises_tier] if self.exercises_tier else []
        names += [t.start_tier for t in self.section_types.values() if t.start_tier]
        if self.long_context_tier and self.long_context_tier in self.tiers:
            names.append(self.long_context_tier)
        missing = sorted({n for n in names if n not in self.tiers})
        if missing:
            raise ValueError(f"tiers used but not defined in routing.tiers: {', '.join(missing)}")
        if not self.ladder:
            raise ValueError("ladder must name at least one tier")
        if self.threshold_mid > self.threshold_premium:
            raise ValueError("threshold_mid must not exceed threshold_premium")
        return self


class SimilarityThresholds(_S):
    """Cosine of lesson text to its outcomes. >= pass_at passes; < severe_below escalates at once."""

    pass_at: float = Field(ge=-1, le=1)
    severe_below: float = Field(ge=-1, le=1)
    #: A higher pass mark for lessons written on these tiers: a premium lesson is held to a
    #: stricter bar than a cheap one (on this embedder's own scale).
    pass_at_by_tier: dict[str, float] = Field(default_factory=dict)
    #: Related but wrong: a lesson that passes `pass_at` yet fits an outcome of *another*
    #: section of its course better than its own by more than this is borderline (the judge
    #: decides; `check` flags it). None: off. Calibrated on the outside set's good lessons
    #: (docs/quality.md); a relative margin, since neighbouring sections score high in absolute.
    rival_margin: float | None = Field(default=None, ge=0, le=2)
    #: Embed each outcome (own and rival) as "<title of the lesson teaching it>: <outcome>"
    #: rather than the outcome alone: the title says what the lesson is about in the words of
    #: the plan (outside set, MiniLM: AUC on-topic vs related 0.935 -> 0.957; docs/quality.md).
    #: The thresholds above must have been calibrated the same way.
    titled: bool = False
    #: The bar for text-to-text fit in phase 2 (an outcome against "section: key concepts", a
    #: key concept against the plan, the metadata gates' default): those rules were measured
    #: on the untitled pass mark's scale, which a `titled` pass mark no longer is. None: pass_at.
    fit_at: float | None = Field(default=None, ge=-1, le=1)

    @property
    def fit_bar(self) -> float:
        return self.pass_at if self.fit_at is None else self.fit_at


class GateSettings(_S):
    #: "all-MiniLM-L6-v2" (packaged), any sentence-transformers name or path, or "hashing"
    #: (a lexical stand-in with no model; weak, for tests and machines without torch).
    embedding_model: str = "all-MiniLM-L6-v2"
    #: Thresholds per embedding model name; calibrated, not copied from the seeds.
    similarity: dict[str, SimilarityThresholds] = Field(default_factory=dict)
    lesson_min_words: int = Field(default=80, ge=1)
    lesson_max_words: int = Field(default=900, ge=10)
    min_exercises: int = Field(default=1, ge=0)
    #: Most exercises a lesson may have (bounds the schema: a small local model stays fast).
    max_exercises: int = Field(default=4, ge=1, le=4)
    #: Share of outcomes that must be taught and assessed for approval.
    outcome_coverage: float = Field(default=0.9, ge=0, le=1)
    #: Share of a section's key concepts its lessons must name, or the course is flagged
    #: (`quality.coverage.SectionConceptsGate`): catches a section whose lessons teach around it.
    section_concepts: float = Field(default=0.5, ge=0, le=1)
    #: Texts per batch the embedding model encodes (each batch is padded to its longest text).
    embedding_batch_size: int = Field(default=16, ge=1)
    #: torch intra-op threads for the embedding model (process-wide). 1 suits a service or a
    #: worker, whose concurrent courses use the cores: two threads on 2 loaded cores cost
    #: 1.7-1.9x the CPU of one (docs/scaling.md).
    embedding_threads: int = Field(default=1, ge=1)
    #: The embedding model's matrix products: "bfloat16" (torch autocast; layer norms and
    #: softmax stay float32) took 0.6x the CPU of "float32" for a course's texts and moved
    #: cosines by at most 0.0043 there, 0.0012 on the labelled set with no verdict changed
    #: (docs/scaling.md); "auto" uses it where the CPU computes bfloat16 natively.
    embedding_dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    #: Texts whose vectors an engine keeps (least recently used dropped first): 1.5 KB of
    #: numbers each for MiniLM, ≈ 5 KB an entry for the hashing embedder. A long-running
    #: service's memory grows with it until it is full (docs/scaling.md).
    embedding_cache_items: int = Field(default=50_000, ge=1)
    #: Workers that run each lesson attempt's rule gates (ending, teaching, answer keys, safety
    #: classifier...) off the event loop (`engine.offload`); 0 runs them on the loop.
    workers: int = Field(default=2, ge=0, le=64)
    #: "thread" or "process" workers (docs/scaling.md measured both).
    workers_kind: Literal["thread", "process"] = "thread"
    #: Cross-artifact consistency of the assembled course (exercise answerable from its lesson,
    #: every outcome taught and assessed, the plan's prerequisite order): flags for review.
    cross_artifact: bool = True
    #: Share of approved courses a person spot-checks: each goes into the review queue as one
    #: item (a person samples approved courses to catch systematic issues the gates pass),
    #: chosen by a seeded hash of the job id, so a job is always in or out. Its status stays
    #: approved. Off unless configured (the hosted profile: 0.1).
    spot_check_rate: float = Field(default=0.0, ge=0, le=1)
    spot_check_seed: str = ""
    #: Issue-4 gates (config/quality_settings.py documents each key).
    judge: JudgeSettings = Field(default_factory=JudgeSettings)
    consistency: ConsistencySettings = Field(default_factory=ConsistencySettings)
    grounding: GroundingSettings = Field(default_factory=GroundingSettings)
    redundancy: RedundancySettings = Field(default_factory=RedundancySettings)
    safety: SafetySettings = Field(default_factory=SafetySettings)
    completeness: CompletenessSettings = Field(default_factory=CompletenessSettings)
    metadata: MetadataGateSettings = Field(default_factory=MetadataGateSettings)
    teaches: TeachesSettings = Field(default_factory=TeachesSettings)


#: The phases whose calls a `budget.phase_shares` ceiling can cap (pipeline phases 2-5).
BUDGETED_PHASES = ("metadata", "lessons", "quality", "completeness")


class BudgetSettings(_S):
    #: Hard cap per course in USD; the input's budget_usd overrides it.
    per_course_usd: Decimal = Field(default=Decimal("0.45"), gt=0)
    #: Share of the cap after which new tasks start (and escalate) no higher than `step_down_tier`.
    step_down_at: float = Field(default=0.8, gt=0, le=1)
    step_down_tier: Tier | None = None
    #: A ceiling per phase, as a share of the course's cap (the budget split between phases: a call
    #: of that phase is refused, like one over the course's cap, once the phase's spend plus its
    #: calls in flight would pass it). Phases not named share the course's cap only; the shares
    #: are ceilings, not an allocation, so they may add up to more than 1.
    phase_shares: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _shares(self) -> BudgetSettings:
        bad = [f"{p}: {v}" for p, v in self.phase_shares.items() if not 0 < v <= 1]
        if bad:
            raise ValueError(f"phase_shares must be in (0, 1]: {', '.join(bad)}")
        # A misspelt phase would cap nothing, silently.
        unknown = sorted(set(self.phase_shares) - set(BUDGETED_PHASES))
        if unknown:
            raise ValueError(
                f"phase_shares names no phase {', '.join(unknown)}: one of {', '.join(BUDGETED_PHASES)}"
            )
        return self


class StorageSettings(_S):
    """Where jobs, checkpoints, courses and reports are kept."""

    #: `sqlite:///PATH` (created on first use; `~` expands) or `postgresql://user@host:port/db`.
    #: `$COURSEFORGE_STORAGE_URL` overrides it.
    url: str = "sqlite:///~/.cache/courseforge/courseforge.db"
    #: PostgreSQL connections a process keeps at most. Every answered call is checkpointed
    #: in its own transaction, so a service running many courses at once queues on the pool:
    #: `courseforge serve` uses this (the CLI keeps one course's few).
    pool_size: int = Field(default=10, ge=1, le=1000)
    #: PostgreSQL connections `courseforge serve` keeps apart for requests (the API and the
    #: dashboard), beside `pool_size`: a page never queues behind the running jobs' writes
    #: (0: requests share the jobs' pool).
    request_pool_size: int = Field(default=2, ge=0, le=100)


class TenantSettings(_S):
    """One tenant of the service: whose tokens, what role, what it may spend and submit."""

    #: Environment variable holding this tenant's bearer tokens, comma-separated (secrets never
    #: live in the file).
    tokens_env: str = Field(min_length=1)
    #: An admin sees, cancels and answers every tenant's jobs and reviews.
    admin: bool = False
    #: USD this tenant's jobs may spend in any 24 hours: spent plus the caps of its unfinished
    #: jobs plus the new job's cap must fit, or the submission is refused (402).
    budget_usd_per_day: Decimal | None = Field(default=None, gt=0)
    #: Jobs this tenant may submit per minute (per service process); more are refused (429).
    jobs_per_minute: int | None = Field(default=None, ge=1)


class ShadowSettings(_S):
    """Shadow runs (docs/evals.md): a share of the service's finished jobs re-run under another
    config, their figures paired with the real run's in the eval format. The job's result is
    never changed, and a shadow never spends past the job's own budget cap."""

    #: The other config: a YAML path (an eval config: `extends:` allowed) or a bundled profile.
    config: str
    #: Share of completed jobs re-run, chosen by a hash of the job id (0.1 = one in ten).
    rate: float = Field(default=0.1, ge=0, le=1)
    #: Where the pairs accumulate: `runs.jsonl`, `eval.json`, `index.html`.
    dir: str = "~/.cache/courseforge/shadow"
    #: Shadow runs at once (they run after their job, beside the service's own jobs).
    max_concurrent: int = Field(default=1, ge=1, le=64)


class CacheSettings(_S):
    """The response cache (`cache/`): answers kept across jobs and served for identical requests."""

    #: `exact` (default): the same canonical request gets the kept answer; `semantic`: also a
    #: near-duplicate request (same structured fields, free text within `semantic_threshold`);
    #: `off`. `courseforge generate --no-cache` turns it off for one run.
    mode: Literal["exact", "semantic", "off"] = "exact"
    #: Seconds an entry is served; None: until evicted.
    ttl_s: float | None = Field(default=30 * 24 * 3600.0, gt=0)
    #: Entries kept per namespace (the oldest are dropped first).
    max_entries: int = Field(default=100_000, ge=1)
    #: Keep entries in Redis (redis://host:port/db) instead of the job store. Needs the `redis` extra.
    redis_url: str | None = None
    #: Namespace of the entries; "" is a digest of the config's providers and models. A service
    #: passes each tenant's own.
    namespace: str = ""
    #: Semantic mode: least cosine between two requests' free text for a hit (calibrated on
    #: `src/courseforge/cache/data/near_duplicates.jsonl`, see docs/caching.md).
    semantic_threshold: float = Field(default=0.6, ge=0, le=1)
    #: Semantic mode: the embedder of the free text (names as `gates.embedding_model`).
    semantic_embedding_model: str = "hashing"


class BatchSettings(_S):
    """Batch mode (`courseforge generate --batch`, service jobs with `"mode": "batch"`): calls go
    through the provider's batch API at its batch price, one batch per model per round."""

    #: Seconds without a new request after which a model's round is sent as one batch.
    collect_s: float = Field(default=0.5, gt=0)
    #: Longest a round collects before it is sent, however many requests still arrive.
    max_collect_s: float = Field(default=5.0, gt=0)
    #: Seconds between polls of a batch's status.
    poll_s: float = Field(default=30.0, gt=0)
    #: The completion window asked for (OpenRouter: "24h").
    completion_window: str = "24h"


class ServiceSettings(_S):
    """The HTTP service (`courseforge serve`)."""

    #: Environment variable holding the accepted bearer tokens, comma-separated. They belong to
    #: the default tenant "" (the CLI's), with no limits.
    api_tokens_env: str = "COURSEFORGE_API_TOKENS"
    #: Tenant id (1-64 of A-Z a-z 0-9 . _ -) -> its tokens, role and limits.
    tenants: dict[
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")], TenantSettings
    ] = Field(default_factory=dict)
    #: Largest request body accepted, in bytes.
    max_body_bytes: int = Field(default=2_000_000, ge=1024)
    #: Jobs generated at once by one service process; the rest wait in the queue.
    max_concurrent_jobs: int = Field(default=8, ge=1, le=1024)
    #: Event-loop lag (seconds) a service process keeps under by starting fewer jobs at once:
    #: over it, the process's limit of jobs at once falls to three quarters; well under it,
    #: with jobs waiting, it climbs back by one, never past `max_concurrent_jobs`
    #: (`service/admission.py`). None: always `max_concurrent_jobs` at once.
    loop_lag_target_s: float | None = Field(default=0.05, gt=0, le=10)
    #: Jobs accepted by one service process and waiting for a slot at most; a submission past
    #: it is refused (503 with Retry-After) before anything is stored. Backpressure: a client
    #: sends it again later rather than the service taking work it cannot serve.
    max_queued_jobs: int = Field(default=200, ge=0, le=100_000)
    #: Seconds a service process's claim on a job it runs lasts unless renewed (every third of
    #: it): other processes on the same store adopt a dead process's jobs after this long.
    job_lease_s: float = Field(default=30.0, ge=1, le=3600)
    #: Seconds between a service process's looks at the store: queued jobs no process has
    #: taken yet, jobs whose process died, and progress of jobs another process runs (SSE).
    store_poll_s: float = Field(default=1.0, gt=0, le=60)
    #: Seconds a request waits through a busy store (a PostgreSQL pool with no free connection,
    #: a lost connection, a locked SQLite file) before it is answered 503 with Retry-After.
    #: A job's own reads and writes keep trying for 10 minutes instead.
    request_store_wait_s: float = Field(default=5.0, gt=0, le=600)
    #: Temporal frontend (HOST:PORT) to submit jobs to instead of running them in-process.
    temporal_address: str | None = None
    temporal_namespace: str = "default"
    temporal_task_queue: str = "courseforge"
    #: Seconds without a heartbeat before an activity of a dead worker goes to another worker.
    temporal_heartbeat_timeout_s: float = Field(default=20.0, gt=0)
    #: Temporal-level attempts per activity (lost worker, unexpected error); provider errors are
    #: retried by the model stack, never by Temporal.
    temporal_max_attempts: int = Field(default=3, ge=1, le=20)
    #: Re-run a share of finished jobs under another config, for comparison (None: off).
    shadow: ShadowSettings | None = None


class ExportSettings(_S):
    """LMS exports and fine-tuning data (`courseforge export`, `export-training`)."""

    #: Score (0-100) a SCORM learner needs to pass a lesson's quiz, when the LMS gives none.
    mastery_score: float = Field(default=80.0, ge=0, le=100)
    #: Share of courses (not lessons) held out as the validation split of `export-training`.
    validation_share: float = Field(default=0.1, ge=0, lt=1)
    #: @xapi/cmi5's browser bundle (`Cmi5.umd.js`; `make deps-npm` puts it in
    #: lms/node_modules/@xapi/cmi5/dist/): a cmi5 package's AUs then speak cmi5 through it.
    #: None: through our own minimal launch handshake (docs/exports.md).
    cmi5_library: str | None = None


class Settings(_S):
    #: Profile name, for the report and `config show`.
    profile: str = "custom"
    providers: dict[str, ProviderSettings]
    models: dict[str, ModelSettings]
    routing: RoutingSettings
    gates: GateSettings = Field(default_factory=GateSettings)
    budget: BudgetSettings = Field(default_factory=BudgetSettings)
    #: Largest analysis file accepted, in bytes.
    max_input_bytes: int = Field(default=2_000_000, ge=1024)
    #: Where assembled model files and other caches live.
    cache_dir: Path = Path("~/.cache/courseforge")
    storage: StorageSettings = Field(default_factory=StorageSettings)
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    exports: ExportSettings = Field(default_factory=ExportSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    breakers: BreakerSettings = Field(default_factory=BreakerSettings)

    @model_validator(mode="before")
    @classmethod
    def _second_providers(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("models"), dict):
            return {**data, "models": _expand_second_providers(data["models"])}
        return data

    @model_validator(mode="after")
    def _references(self) -> Settings:
        problems = [
            f"models.{mid}.second_provider.provider: unknown provider {m.second_provider.provider!r}"
            for mid, m in self.models.items()
            if m.second_provider is not None and m.second_provider.provider not in self.providers
        ]
        problems += [
            f"models.{mid}.provider: unknown provider {m.provider!r}"
            for mid, m in self.models.items()
            if m.provider not in self.providers and m.second_of is None
        ]
        problems += [
            f"routing.tiers.{tier}: unknown model {mid!r}"
            for tier, mid in self.routing.tiers.items()
            if mid not in self.models
        ]
        problems += [
            f"models.{mid}.fallbacks: unknown model {fb!r}"
            for mid, m in self.models.items()
            for fb in m.fallbacks
            if fb not in self.models or fb == mid
        ]
        if self.budget.step_down_tier and self.budget.step_down_tier not in self.routing.tiers:
            problems.append(f"budget.step_down_tier: unknown tier {self.budget.step_down_tier!r}")
        # Caught here, not at the first lesson gate: a config error must stop before any model call.
        if self.gates.embedding_model not in self.gates.similarity:
            problems.append(
                f"gates.similarity: no thresholds for embedding_model {self.gates.embedding_model!r} "
                "(thresholds must be calibrated per embedding model)"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def model_for_tier(self, tier: Tier) -> str:
        return self.routing.tiers[tier]
