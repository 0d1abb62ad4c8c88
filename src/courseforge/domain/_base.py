"""Shared pydantic base classes and field types for the domain models."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, StrictInt, StringConstraints

__all__ = ["Money", "NonEmptyStr", "Open", "Strict", "WholeNumber"]

#: Money is Decimal in memory and a JSON number (8 decimal places) on the wire.
Money = Annotated[
    Decimal,
    PlainSerializer(lambda d: float(round(d, 8)), return_type=float, when_used="json"),
]
NonEmptyStr = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


def _integral(value: object) -> object:
    return int(value) if isinstance(value, float) and value.is_integer() else value


#: An integer, as JSON Schema's `integer` means it: `10` and `10.0` (JSON has one number type),
#: never `"10"`, `true` or `10.5`.
WholeNumber = Annotated[StrictInt, BeforeValidator(_integral)]


class Strict(BaseModel):
    """Input models: unknown keys are an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Open(BaseModel):
    """Output models: we write them, so they are plain mutable records."""

    model_config = ConfigDict(extra="forbid")
