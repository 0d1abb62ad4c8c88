"""Structured-output downgrade: json_schema -> json_object -> prompt + JSON repair, per model.

A model proves it cannot do a mode in one of two ways: the provider answers HTTP 400 naming
`response_format` (some gateways do this to json_schema, or to both; llama.cpp's own server
accepts both but answers 400 "... JSON schema error ..." to a schema its grammar converter cannot
take, which `InvalidRequest.field` names `response_format`), or the
model keeps answering JSON that ignores the schema (reported for gpt-oss-120b behind gateways).
A 400 is a fact about the provider, not about one job: the model moves to the weaker mode at
once and the request is re-sent in it (it cost nothing). An ignored schema is weaker evidence,
and one job's odd prompts must never degrade every other job of a shared engine, so:

- `SCHEMA_MISSES_TO_DOWNGRADE` schema-ignoring answers in a row *within one job* (one hooks
  scope, i.e. one course; calls outside any scope count as one job) move that job alone to the
  weaker mode;
- the model moves for everyone only when `jobs_to_downgrade` distinct jobs have each hit that
  streak in the current mode;
- a model-wide downgrade expires after `reprobe_after_s`: the model goes back to its configured
  mode (a re-probe) and must earn the downgrade again;
- an answer that `content.check_content` could repair by the schema is a success, never a miss.

The wrapper is shared by every course of an engine; the state of one job lives in a weak map
keyed by that job's scope recorder, so it goes when the job does.

This wrapper is also where every answer's content is checked (`content.check_content`), so a
model stack raises `BadResponse` for empty, unparseable or schema-invalid answers.
"""

from __future__ import annotations

import dataclasses
import weakref

from ..errors import BadResponse, ProviderHTTPError
from ..providers.base import ChatModel, ChatRequest, ChatResponse, OutputMode
from ._wrapper import WrapperModel
from .clock import Clock, SystemClock
from .content import check_content
from .hooks import (
    FaultObserved,
    Hooks,
    OutputModeChanged,
    RecordingHooks,
    current_scope,
    fault_kind,
    no_hooks,
)

__all__ = [
    "JOBS_TO_DOWNGRADE",
    "REPROBE_AFTER_S",
    "SCHEMA_MISSES_TO_DOWNGRADE",
    "StructuredOutputModel",
    "weaker_mode",
]

#: Schema-ignoring answers in a row, in one mode and one job, that move that job to the weaker mode.
SCHEMA_MISSES_TO_DOWNGRADE = 3
#: Distinct jobs that must each hit that streak before the model moves for every job.
JOBS_TO_DOWNGRADE = 3
#: Seconds a model-wide downgrade lasts before the configured mode is tried again.
REPROBE_AFTER_S = 900.0
_ORDER: tuple[OutputMode, ...] = ("json_schema", "json_object", "prompt")
_FORMAT_WORDS = ("response_format", "json_schema", "structured output")


def weaker_mode(mode: OutputMode) -> OutputMode | None:
    i = _ORDER.index(mode)
    return _ORDER[i + 1] if i + 1 < len(_ORDER) else None


def _weakest(a: OutputMode, b: OutputMode) -> OutputMode:
    return a if _ORDER.index(a) >= _ORDER.index(b) else b


def _rejects_format(error: ProviderHTTPError) -> bool:
    if error.status != 400:
        return False
    if getattr(error, "field", "") == "response_format":  # InvalidRequest: the field it names
        return True
    body = error.body.lower()
    return any(word in body for word in _FORMAT_WORDS)


@dataclasses.dataclass(slots=True)
class _Job:
    """What one job has learnt about the model: its own mode and its current miss streak."""

    mode: OutputMode | None = None
    misses: int = 0


class StructuredOutputModel(WrapperModel):
    """Sends JSON requests in the current job's mode (via `tags["output_mode"]`, which
    `OpenAICompatModel` honours) and checks every answer's content."""

    def __init__(
        self,
        inner: ChatModel,
        *,
        mode: OutputMode = "json_schema",
        hooks: Hooks = no_hooks,
        schema_misses_to_downgrade: int = SCHEMA_MISSES_TO_DOWNGRADE,
        jobs_to_downgrade: int = JOBS_TO_DOWNGRADE,
        reprobe_after_s: float = REPROBE_AFTER_S,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(inner)
        #: The model-wide mode, what a job that learnt nothing itself is sent.
        self.mode: OutputMode = mode
        self._configured: OutputMode = mode
        self._hooks = hooks
        self._threshold = schema_misses_to_downgrade
        self._jobs_needed = jobs_to_downgrade
        self._reprobe_after_s = reprobe_after_s
        self._clock: Clock = clock or SystemClock()
        self._downgraded_at: float | None = None
        #: Jobs (scope serials; 0 for calls outside any scope) that hit the miss streak in the
        #: current model-wide mode; it never holds more than `jobs_to_downgrade`.
        self._evidence: set[int] = set()
        self._jobs: weakref.WeakKeyDictionary[RecordingHooks, _Job] = weakref.WeakKeyDictionary()
        self._unscoped = _Job()

    def _job(self) -> tuple[int, _Job]:
        scope = current_scope()
        if scope is None:
            return 0, self._unscoped
        return scope.serial, self._jobs.setdefault(scope, _Job())

    def job_mode(self) -> OutputMode:
        """The mode a call from the current job is sent in."""
        self._maybe_reprobe()
        job = self._job()[1]
        return self.mode if job.mode is None else _weakest(self.mode, job.mode)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        while True:
            mode = self.job_mode()
            sent = request
            if request.json_schema is not None:
                sent = dataclasses.replace(request, tags={**request.tags, "output_mode": mode})
            try:
                response = await self.inner.complete(sent)
            except ProviderHTTPError as error:
                if request.json_schema is not None and _rejects_format(error) and weaker_mode(mode):
                    self._downgrade_model(mode, f"HTTP 400: {error.body[:160]}")
                    continue
                raise
            try:
                response = check_content(sent, response, model_id=self.model_id)
            except BadResponse as bad:
                self._hooks(FaultObserved(self.model_id, fault_kind(bad)))
                if bad.kind == "schema" and request.json_schema is not None and weaker_mode(mode):
                    self._miss(mode)
                raise
            if request.json_schema is not None:
                self._job()[1].misses = 0
            return response

    def _miss(self, mode: OutputMode) -> None:
        scope, job = self._job()
        if mode != self.job_mode():
            return  # a concurrent call already moved this job
        job.misses += 1
        if job.misses < self._threshold:
            return
        new = weaker_mode(mode)
        assert new is not None
        job.mode, job.misses = new, 0
        if mode != self.mode:
            return  # the job was already below the model-wide mode
        self._evidence.add(scope)
        jobs = len(self._evidence)
        if jobs >= self._jobs_needed:
            self._downgrade_model(
                mode, f"{jobs} jobs each had {self._threshold} answers in a row ignore the schema"
            )

    def _downgrade_model(self, mode: OutputMode, reason: str) -> None:
        new = weaker_mode(mode)
        if new is None or _ORDER.index(self.mode) > _ORDER.index(mode):
            return  # a concurrent call already moved it further
        old, self.mode = self.mode, new
        self._downgraded_at = self._clock.monotonic()
        self._evidence = set()
        self._hooks(OutputModeChanged(self.model_id, old, new, reason))

    def _maybe_reprobe(self) -> None:
        if self._downgraded_at is None or self.mode == self._configured:
            return
        if self._clock.monotonic() - self._downgraded_at < self._reprobe_after_s:
            return
        old, self.mode, self._downgraded_at = self.mode, self._configured, None
        self._evidence = set()
        self._hooks(
            OutputModeChanged(
                self.model_id, old, self.mode, f"re-probing after {self._reprobe_after_s:.0f} s"
            )
        )
