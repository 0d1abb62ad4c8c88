"""Simulator profiles: per-model latency and fault rates, as data (YAML).

A profile has `defaults` (one `ModelProfile`) and `models` (provider model name -> overrides
of the defaults; fault rates merge key by key). A model the profile does not list gets the
defaults, so any model name works. Durations are simulated seconds: the server multiplies them
by its `time_scale` (latency, Retry-After, the RPM/TPM window), except `timeout_hang_s`, which
must outlast the client's real timeout and so is real seconds.

Bundled: `ideal` (no faults, fast), `realistic` (published latencies, rare faults), `chaos`
(the issue's rates: 10 % 429, 10 % 5xx, 5 % hangs, 5 % malformed JSON, 2 % empty 200s),
`reasoning` (`ideal`, with the seed models that think on OpenRouter thinking: `ThinkingProfile`).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import ConfigError

__all__ = [
    "BUNDLED_SIM_PROFILES",
    "EFFORT_SHARE",
    "FAULT_CLASSES",
    "FaultRates",
    "ModelProfile",
    "SimProfile",
    "ThinkingProfile",
    "load_profile",
]

BUNDLED_SIM_PROFILES = ("ideal", "realistic", "chaos", "reasoning")
#: Fault classes drawn from one uniform number, in this order (off_topic is drawn apart).
FAULT_CLASSES = (
    "rate_limited",
    "server_error",
    "timeout",
    "malformed",
    "truncated",
    "empty",
    "schema_violation",
)


class _P(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FaultRates(_P):
    """Probability per request of each fault. The first seven are exclusive (they sum to <= 1)."""

    #: HTTP 429 with Retry-After (`retry_after_s`).
    rate_limited: float = Field(default=0.0, ge=0, le=1)
    #: HTTP 500/502/503 (drawn from `server_error_statuses`).
    server_error: float = Field(default=0.0, ge=0, le=1)
    #: The server holds the request `timeout_hang_s` real seconds, then answers 504.
    timeout: float = Field(default=0.0, ge=0, le=1)
    #: 200 whose content is broken JSON (a Python-style dict: single quotes, True/None).
    malformed: float = Field(default=0.0, ge=0, le=1)
    #: 200 whose JSON is cut off, with finish_reason "length".
    truncated: float = Field(default=0.0, ge=0, le=1)
    #: 200 with empty content (a known gemini-2.5-flash behaviour).
    empty: float = Field(default=0.0, ge=0, le=1)
    #: 200 with valid JSON that breaks the schema (a required key missing).
    schema_violation: float = Field(default=0.0, ge=0, le=1)
    #: Independent of the above: a schema-valid lesson about something else.
    off_topic: float = Field(default=0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _exclusive_sum(self) -> FaultRates:
        total = sum(getattr(self, name) for name in FAULT_CLASSES)
        if total > 1.0 + 1e-9:
            raise ValueError(f"exclusive fault rates sum to {total:.3f} > 1")
        return self


#: Reasoning tokens at each `reasoning.effort`, as a share of the model's medium-effort draw
#: (OpenRouter maps effort to a share of max_tokens for budget-steered models: high 0.8,
#: medium 0.5, low 0.2, minimal 0.1; gpt-oss's low effort thinks roughly a quarter as long).
EFFORT_SHARE = {"xhigh": 3.0, "high": 2.0, "medium": 1.0, "low": 0.25, "minimal": 0.1, "none": 0.0}


class ThinkingProfile(_P):
    """A model that reasons before it answers, as OpenRouter's reasoning models do: the
    reasoning tokens count against `max_tokens` (a long think leaves a cut answer, or none:
    `content: null`, `finish_reason: "length"`), are billed as output (inside
    `usage.completion_tokens`), and are reported in
    `usage.completion_tokens_details.reasoning_tokens` and, unless `reasoning.exclude`, as text
    in `message.reasoning`. The request's `reasoning` object steers it: `effort` scales the
    draw (`EFFORT_SHARE`), `max_tokens` caps it, `enabled: false` or effort `none` turns it off
    where the model allows (`can_disable`; otherwise the lowest effort it has)."""

    #: Reasoning tokens drawn uniformly in [low, high] at medium effort.
    tokens: tuple[int, int] = (400, 1200)
    #: The effort used when the request names none.
    default_effort: Literal["high", "medium", "low", "minimal"] = "medium"
    #: Whether reasoning can be switched off (Gemini 2.5 Flash: yes; gpt-oss: no, low at least).
    can_disable: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> ThinkingProfile:
        if not 0 <= self.tokens[0] <= self.tokens[1]:
            raise ValueError("thinking.tokens must be [low, high] with 0 <= low <= high")
        return self


class ModelProfile(_P):
    #: Time to first token, simulated milliseconds.
    ttft_ms: float = Field(default=300.0, ge=0)
    #: Output tokens per second once generation runs.
    tokens_per_s: float = Field(default=100.0, gt=0)
    #: Each latency is multiplied by a uniform draw in [1 - jitter, 1 + jitter].
    jitter: float = Field(default=0.2, ge=0, lt=1)
    faults: FaultRates = Field(default_factory=FaultRates)
    #: Retry-After sent with random 429s (simulated seconds); None sends no header.
    retry_after_s: float | None = Field(default=1.0, ge=0)
    server_error_statuses: list[int] = Field(default_factory=lambda: [500, 502, 503])
    #: Real seconds a "timeout" request hangs before the server gives up with a 504.
    timeout_hang_s: float = Field(default=30.0, ge=0)
    #: Requests / tokens (prompt + completion) per simulated minute; over it: 429.
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    #: Structured-output modes this model rejects with HTTP 400 (mentioning response_format).
    unsupported_modes: list[Literal["json_schema", "json_object"]] = Field(default_factory=list)
    #: The model's first N requests fail with `fail_first_status` (route-fails-N-times tests).
    fail_first: int = Field(default=0, ge=0)
    fail_first_status: int = Field(default=503, ge=400, le=599)
    #: How those failures come back: `http` (that status, a plain error), or in OpenRouter's
    #: documented shapes (docs/providers.md): `documented` (that status with OpenRouter's
    #: `{"error": {code, message, metadata}}`: 403 with moderation metadata, 503 "no allowed
    #: providers are available", ...), `error_body` (a 200 whose body is that error object),
    #: `finish_error` (a 200 whose choice ends `finish_reason: "error"`).
    fail_first_kind: Literal["http", "documented", "error_body", "finish_error"] = "http"
    #: Provider prompt cache: a request whose leading messages repeat an earlier request's to
    #: this model reports those tokens as `usage.prompt_tokens_details.cached_tokens`, rounded
    #: down to `prompt_cache_block_tokens`, once the repeated prefix is at least
    #: `prompt_cache_min_tokens` (OpenAI's documented 1024 and 128; 0 turns caching off). A
    #: prefix ending at a `cache_control` breakpoint seen for the first time is reported as
    #: `cache_write_tokens`.
    prompt_cache_min_tokens: int = Field(default=1024, ge=0)
    prompt_cache_block_tokens: int = Field(default=128, ge=1)
    #: Batch API (`POST /v1/batches`, `GET /v1/batches/{id}`): simulated seconds from creation
    #: until a batch completes, the share of its requests that fail inside a completed batch,
    #: and the probability that a batch expires instead of completing.
    batch_delay_s: float = Field(default=60.0, ge=0)
    batch_failed_request: float = Field(default=0.0, ge=0, le=1)
    batch_expire: float = Field(default=0.0, ge=0, le=1)
    #: A reasoning model (None: the model answers without thinking).
    thinking: ThinkingProfile | None = None
    #: Where the latency figures come from (free text, shown by `sim serve`).
    source: str = ""


class SimProfile(_P):
    name: str = "custom"
    description: str = ""
    defaults: ModelProfile = Field(default_factory=ModelProfile)
    #: Provider model name (as sent in `model`) -> overrides of `defaults`.
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _models_valid(self) -> SimProfile:
        for name in self.models:
            self.for_model(name)  # raises on a bad override
        return self

    def for_model(self, name: str) -> ModelProfile:
        """The effective profile of one model: the defaults with its overrides applied."""
        overrides = self.models.get(name)
        if not overrides:
            return self.defaults
        base = self.defaults.model_dump()
        faults = {**base["faults"], **overrides.get("faults", {})}
        return ModelProfile.model_validate({**base, **overrides, "faults": faults})


def load_profile(name_or_path: str | Path) -> SimProfile:
    """A bundled profile by name (ideal, realistic, chaos) or a YAML file path."""
    name = str(name_or_path)
    if name in BUNDLED_SIM_PROFILES and not Path(name).exists():
        text = resources.files("courseforge.sim").joinpath(f"profiles/{name}.yaml").read_text("utf-8")
        source = f"bundled:{name}"
    else:
        path = Path(name)
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise ConfigError(
                "simulator profile not found",
                [(name, f"{exc.strerror or exc}; bundled profiles: {', '.join(BUNDLED_SIM_PROFILES)}")],
            ) from exc
        source = str(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"simulator profile {source} is not valid YAML", [("(file)", str(exc))]) from exc
    try:
        return SimProfile.model_validate(data or {})
    except ValidationError as exc:
        problems = [(".".join(str(p) for p in e["loc"]) or "(root)", e["msg"]) for e in exc.errors()]
        raise ConfigError(f"simulator profile {source} is invalid", problems) from exc
