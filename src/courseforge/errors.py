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
        │   ├── ProviderHTTPError      non-2xx answer: .status, .body (truncated)
        │   │   └── RateLimited        429: .retry_after_s
        │   ├── ProviderTimeout        no answer in time
        │   ├── ProviderConnectionError  could not reach the server
        │   ├── BadResponse            2xx but unusable: empty, unparseable, schema-invalid
        │   └── CircuitOpen            call skipped: the model's breaker is open
        ├── BudgetExceeded             a reservation would push the course past its cap
        ├── GateFailed                 a response was rejected by a quality gate: .reasons
        ├── CascadeExhausted           (ExceptionGroup) every tier failed for one task
        └── GenerationFailed           the course cannot be completed: .reason

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

    def __init__(self, *, cap_usd: object, committed_usd: object, needed_usd: object) -> None:
        self.cap_usd = cap_usd
        self.committed_usd = committed_usd
        self.needed_usd = needed_usd
        super().__init__(
            f"budget cap ${cap_usd} would be exceeded: ${committed_usd} spent or reserved, "
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


class GenerationFailed(RunError):
    """The course could not be completed; the report says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
