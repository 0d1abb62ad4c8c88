"""The gate interface: `check(artifact, context) -> GateResult`.

A gate is a pure verdict on one artifact (a lesson, the metadata, a whole course) given the
context it is judged in. Gates never call models themselves; anything they need (embeddings,
a judge's verdict) is computed before and handed in through `GateContext`, so the same gate
runs in the pipeline, in `courseforge check` and in tests without a network.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["Gate", "GateContext", "GateResult"]

A = TypeVar("A")


@dataclass(frozen=True, slots=True)
class GateResult:
    gate: str
    passed: bool
    #: Gate-specific score (similarity, ratio, count); None when the gate is binary.
    score: float | None = None
    reasons: Sequence[str] = ()
    #: "pass" | "borderline" | "fail" | "severe": severe failures escalate at once.
    verdict: str = ""

    def feedback(self) -> str:
        """Short text the next attempt's prompt carries."""
        return "; ".join(self.reasons)


@dataclass(frozen=True, slots=True)
class GateContext:
    """What a gate may look at besides the artifact."""

    #: Outcome id -> outcome text, for the outcomes this artifact must serve.
    outcomes: Mapping[str, str] = field(default_factory=dict)
    #: Precomputed values keyed by name (e.g. "similarity": 0.61).
    values: Mapping[str, Any] = field(default_factory=dict)


class Gate(abc.ABC, Generic[A]):
    name: str = ""

    @abc.abstractmethod
    def check(self, artifact: A, context: GateContext) -> GateResult:
        """Judge one artifact."""
