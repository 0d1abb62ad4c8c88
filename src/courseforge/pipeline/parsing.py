"""Model text -> a validated draft, tolerant of code fences and raw newlines in strings."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel

from ..providers.jsontext import extract_json

__all__ = ["parser_for"]

M = TypeVar("M", bound=BaseModel)


def parser_for(model: type[M]) -> Callable[[str], M]:
    def parse(text: str) -> M:
        return model.model_validate(extract_json(text))

    return parse
