"""Every failure courseforge raises, in one tree.

    CourseforgeError
    ├── UserError                      the caller's mistake; fix the input and run again (exit 2)
    │   ├── InputError                 analysis_result invalid: .problems = [(json_path, reason)]
    │   ├── ConfigError                config invalid: .problems = [(path, reason)]
    │   ├── NotFound                   no such job or review item (or another tenant's)
    │   ├── Conflict                   another action won, or the item's state forbids it
    │   ├── StaleVersion               the course changed since the version the caller read
    │   └── ActionRefused              a well-formed request refused on its merits: an edit
    │                                  failing its gates, a missing reason
    └── RunError                       something failed while generating (exit 3)
        ├── ProviderError              a model call failed
        │   ├── ProviderHTTPError      non-2xx answer (or a 2xx whose body is an error): .status,
        │   │   │                      .body (truncated); 408 and 5xx retryable
        │   │   ├── InvalidRequest     400: .field (the request field it names, if any); no retry
        │   │   ├── AuthFailed         401: .env_var; stops the job at once (.stops_job)
        │   │   ├── OutOfCredits       402: stops the job at once, no fallback to a paid model
        │   │   ├── ModerationRefused  403: .reasons, .flagged_input, .provider_name; the same
        │   │   │                      prompt is not sent to that model again; the chain moves on
        │   │   ├── RateLimited        429: .retry_after_s
        │   │   └── NoProviderAvailable  503 "no provider meets your routing requirements":
        │   │                          .requirements (what the request asked); the chain moves on
        │   ├── ProviderTimeout        no answer in time
        │   ├── ProviderConnectionError  could not reach the server
        │   ├── BadResponse            2xx but unusable: empty, unparseable, schema-invalid
        │   └── CircuitOpen            call skipped: the model's breaker is open
        ├── BudgetExceeded             a reservation would push the course past its cap
        ├── GateFailed                 a response was rejected by a quality gate: .reasons
        ├── CascadeExhausted           (ExceptionGroup) every tier failed for one task
        ├── WorkflowTimeout            a Temporal workflow did not answer a query in time:
        │                              .workflow_id, .timeout_s (it exists; try again)
        └── GenerationFailed           the course cannot be completed: .reason
            └── JobStopped             a provider error that stops the whole job (401, 402):
                                       .error; no further call of the course is sent

Provider errors say whether retrying the same model can help (`retryable`); the cascade
uses that to pick between retry, fallback and escalation.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ActionRefused",
    "BadResponse",
    "BudgetExceeded",
    "CascadeExhausted",
    "CircuitOpen",
    "ConfigError",
    "Conflict",
    "CourseforgeError",
    "GateFailed",
    "GenerationFailed",
    "InputError",
    "NotFound",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderTimeout",
    "RateLimited",
    "RunError",
    "StaleVersion",
    "UserError",
    "WorkflowTimeout",
]

Problem = tuple[str, str]


class CourseforgeError(Exception):
    """Base of everything courseforge raises on purpose."""


class UserError(CourseforgeError):
    """The caller's input or config is wrong; nothing was generated."""

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        self.problems: list[Problem] = list(problems)
        #: The message without the problem list (the CLI prints problems one per line).
        self.headline = message
        detail = "; ".join(f"{path}: {reason}" for path, reason in self.problems)
        super().__init__(f"{message}: {detail}" if detail else message)


class InputError(UserError):
    """The analysis_result is invalid. Each problem is (JSON path, reason)."""


class ConfigError(UserError):
    """The config is invalid. Each problem is (config path, reason)."""


class NotFound(UserError):
    """What the request names does not exist, or belongs to another tenant (answered alike).
    Each problem is (field, reason)."""


class Conflict(UserError):
    """The request came second: another action answered the item first, or the state it is in
    forbids this one (a finished job cancelled, an edit of something that is not a lesson)."""


class StaleVersion(UserError):
    """The request was conditional on a version of the course that is no longer current."""


class ActionRefused(UserError):
    """A well-formed request refused on its merits (an edit failing its gates, an approval of a
    failing edit without a reason); nothing was changed."""


class RunError(CourseforgeError):
    """Generation failed at run time."""


class ProviderError(RunError):
    """A model call failed. `retryable` says whether the same call may succeed later."""

    retryable: bool = True
    #: The error ends the whole job (no fallback, no further call): 401, 402.
    stops_job: bool = False

    def __init__(self, message: str, *, model: str = "") -> None:
        self.model = model
        super().__init__(f"{model}: {message}" if model else message)


class ProviderHTTPError(ProviderError):
    """The provider answered with a non-2xx status."""

    def __init__(self, status: int, body: str, *, model: str = "") -> None:
        self.status = status
        self.body = body[:500]
        # 408, 409, 429 and 5xx are worth retrying; other 4xx are our mistake or a refusal.
        self.retryable = status in (408, 409, 429) or status >= 500
        super().__init__(f"HTTP {status}: {self.body}", model=model)


class InvalidRequest(ProviderHTTPError):
    """HTTP 400: the request is invalid (a parameter malformed or missing). Not retried; the
    next model of the chain may accept it. `field` is the request field the provider named."""

    def __init__(
        self, body: str, *, field: str = "", model: str = "", context_overflow: bool = False
    ) -> None:
        self.field = field
        #: The prompt (with `max_tokens`) is longer than the model's context: llama.cpp's server
        #: and OpenAI-style providers answer 400 for it; a model with a longer context may take it.
        self.context_overflow = context_overflow
        super().__init__(400, body, model=model)
        if field:
            self.args = (f"{self.args[0]} [field: {field}]",)


class AuthFailed(ProviderHTTPError):
    """HTTP 401: the API key was refused (invalid, disabled, expired). Every call would fail the
    same way: the job stops at once, naming the environment variable the key came from."""

    stops_job = True

    def __init__(self, body: str, *, env_var: str = "", model: str = "") -> None:
        self.env_var = env_var
        super().__init__(401, body, model=model)
        where = f"${env_var}" if env_var else "the configured API key"
        self.args = (f"{model + ': ' if model else ''}the provider refused {where} (HTTP 401): {self.body}",)


class OutOfCredits(ProviderHTTPError):
    """HTTP 402: the account or key has no credits left. The job stops at once with its report:
    no retry, and no fallback to another paid model."""

    stops_job = True

    def __init__(self, body: str, *, model: str = "") -> None:
        super().__init__(402, body, model=model)
        self.args = (f"{model + ': ' if model else ''}out of credits (HTTP 402): {self.body}",)


class ModerationRefused(ProviderHTTPError):
    """HTTP 403: the model requires moderation and the input was flagged. The same prompt is
    not sent to that model again; another model of the chain may take it."""

    def __init__(
        self,
        body: str,
        *,
        reasons: Sequence[str] = (),
        flagged_input: str = "",
        provider_name: str = "",
        model: str = "",
    ) -> None:
        self.reasons = list(reasons)
        self.flagged_input = flagged_input
        self.provider_name = provider_name
        super().__init__(403, body, model=model)
        why = ", ".join(self.reasons) or "no reason given"
        by = f" by {provider_name}" if provider_name else ""
        flagged = f"; flagged input: {flagged_input!r}" if flagged_input else ""
        self.args = (f"{model + ': ' if model else ''}input flagged by moderation{by} ({why}){flagged}",)


class NoProviderAvailable(ProviderHTTPError):
    """HTTP 503 "no available model provider meets your routing requirements". Not retried
    (the same requirements meet the same providers); the chain moves on. `requirements` says
    what the request required of a provider."""

    def __init__(self, body: str, *, requirements: Sequence[str] = (), model: str = "") -> None:
        self.requirements = list(requirements)
        super().__init__(503, body, model=model)
        self.retryable = False
        asked = "; ".join(self.requirements) or "the model's default routing"
        self.args = (
            f"{model + ': ' if model else ''}no provider met the routing requirements ({asked}): {self.body}",
        )


class RateLimited(ProviderHTTPError):
    """HTTP 429. `retry_after_s` is the server's Retry-After, when it sent a sane one."""

    def __init__(self, body: str, *, retry_after_s: float | None, model: str = "") -> None:
        self.retry_after_s = retry_after_s
        super().__init__(429, body, model=model)


class ProviderTimeout(ProviderError):
    """The call did not finish within its timeout."""


class ProviderConnectionError(ProviderError):
    """The server could not be reached or dropped the connection."""


class BadResponse(ProviderError):
    """A 2xx answer we cannot use: empty, not JSON, or not matching the schema."""

    def __init__(
        self,
        message: str,
        *,
        model: str = "",
        kind: str = "invalid",
        text: str = "",
        usage: object = None,
        finish_reason: str = "",
        native_finish_reason: str = "",
    ) -> None:
        self.kind = kind  # "empty" | "unparseable" | "schema" | "truncated"
        self.text = text[:2000]
        #: The answer's `providers.Usage` when it was billed (the ledger keeps its cost).
        self.usage = usage
        #: The choice's `finish_reason` and the upstream provider's `native_finish_reason`.
        self.finish_reason = finish_reason
        self.native_finish_reason = native_finish_reason
        super().__init__(message, model=model)


class CircuitOpen(ProviderError):
    """The model's circuit breaker is open; the call was not sent."""

    def __init__(self, *, model: str, reopens_in_s: float, down: bool = True, reason: str = "") -> None:
        self.reopens_in_s = reopens_in_s
        #: The breaker judged the model (or its provider) down, not merely flaky.
        self.down = down
        self.reason = reason
        why = f" ({reason})" if reason else ""
        super().__init__(f"circuit open, next probe in {reopens_in_s:.1f}s{why}", model=model)


class BudgetExceeded(RunError):
    """Reserving this call's worst-case cost would exceed the course's cap."""

    def __init__(
        self, *, cap_usd: object, committed_usd: object, needed_usd: object, phase: str = ""
    ) -> None:
        self.cap_usd = cap_usd
        self.committed_usd = committed_usd
        self.needed_usd = needed_usd
        #: Set when the cap is a phase's own (`budget.phase_shares`), not the course's.
        self.phase = phase
        which = f"phase {phase!r} budget cap" if phase else "budget cap"
        super().__init__(
            f"{which} ${cap_usd} would be exceeded: ${committed_usd} spent or reserved, "
            f"next call needs up to ${needed_usd}"
        )


class GateFailed(RunError):
    """A response was rejected by a quality gate."""

    def __init__(self, reasons: Sequence[str], *, score: float | None = None) -> None:
        self.reasons = list(reasons)
        self.score = score
        super().__init__("; ".join(self.reasons) or "quality gate failed")


class CascadeExhausted(ExceptionGroup[Exception], RunError):
    """Every attempt of one task failed; the group holds each attempt's error."""

    def __new__(cls, message: str, errors: Sequence[Exception]) -> CascadeExhausted:
        return super().__new__(cls, message, errors)

    def derive(self, excs: Sequence[Exception]) -> CascadeExhausted:  # type: ignore[override]
        return CascadeExhausted(self.message, excs)


class WorkflowTimeout(RunError):
    """A Temporal workflow did not answer a query within `timeout_s` (no worker free to run it,
    or a worker too busy): the workflow exists, unlike a "no such job"; ask again later."""

    def __init__(self, workflow_id: str, timeout_s: float) -> None:
        self.workflow_id, self.timeout_s = workflow_id, timeout_s
        super().__init__(f"the workflow {workflow_id!r} did not answer in {timeout_s:g} s")


class GenerationFailed(RunError):
    """The course could not be completed; the report says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class JobStopped(GenerationFailed):
    """A provider error that ends the whole job (`ProviderError.stops_job`: 401, 402): the
    course stops with its report; no other call of it is sent."""

    def __init__(self, error: ProviderError) -> None:
        self.error = error
        super().__init__(f"stopped: {error}")
