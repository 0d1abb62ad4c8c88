"""The response cache's key leaves out nothing that changes an answer."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from courseforge.cache import canonical_request, config_namespace, request_key
from courseforge.config import ModelSettings
from courseforge.providers import ChatRequest, Message
from engine_helpers import hosted_settings

MODEL = ModelSettings(provider="openrouter", name="openai/gpt-oss-20b", price_in_per_m=Decimal("0.03"))
REQUEST = ChatRequest(
    [Message("system", "You write courses."), Message("user", "Write lesson 1.")],
    json_schema={"type": "object", "properties": {"content": {"type": "string"}}},
    schema_name="lesson",
    max_tokens=900,
    temperature=0.7,
)


def key(model: ModelSettings = MODEL, request: ChatRequest = REQUEST, **kw: Any) -> str:
    return request_key(model, request, templates=kw.pop("templates", "t1"), **kw)


@pytest.mark.parametrize(
    ("what", "other"),
    [
        ("provider", lambda: key(model=MODEL.model_copy(update={"provider": "other"}))),
        ("provider model name", lambda: key(model=MODEL.model_copy(update={"name": "openai/gpt-oss-120b"}))),
        ("output mode", lambda: key(model=MODEL.model_copy(update={"output_mode": "prompt"}))),
        (
            "a message",
            lambda: key(
                request=replace(REQUEST, messages=[REQUEST.messages[0], Message("user", "Write lesson 2.")])
            ),
        ),
        (
            "a role",
            lambda: key(
                request=replace(
                    REQUEST, messages=[Message("user", "You write courses."), REQUEST.messages[1]]
                )
            ),
        ),
        ("the schema", lambda: key(request=replace(REQUEST, json_schema={"type": "object"}))),
        ("the schema name", lambda: key(request=replace(REQUEST, schema_name="judge"))),
        ("no schema", lambda: key(request=replace(REQUEST, json_schema=None))),
        ("temperature", lambda: key(request=replace(REQUEST, temperature=0.0))),
        ("max tokens", lambda: key(request=replace(REQUEST, max_tokens=901))),
        ("templates version", lambda: key(templates="t2")),
        ("attempt", lambda: key(attempt=2)),
        ("sample", lambda: key(sample=2)),
    ],
)
def test_every_part_of_the_request_is_in_the_key(what: str, other: Any) -> None:
    assert other() != key(), what


def test_what_does_not_change_the_answer_is_left_out() -> None:
    same = replace(REQUEST, timeout_s=5.0, tags={"phase": "lessons"})
    assert key(request=same) == key()
    # the price is not part of the request
    assert key(model=MODEL.model_copy(update={"price_in_per_m": Decimal(1)})) == key()


def test_canonical_request_is_plain_data() -> None:
    data = canonical_request(MODEL, REQUEST, templates="t1")
    assert data["model"] == "openai/gpt-oss-20b" and data["draw"] == [1, 0]
    assert data["messages"][1] == ["user", "Write lesson 1."]


def test_namespace_follows_models_and_providers_only() -> None:
    a = hosted_settings()
    b = a.model_copy(update={"budget": a.budget.model_copy(update={"per_course_usd": Decimal(1)})})
    assert config_namespace(a) == config_namespace(b)
    model = a.models["gpt-oss-20b"].model_copy(update={"name": "openai/other"})
    c = a.model_copy(update={"models": {**a.models, "gpt-oss-20b": model}})
    assert config_namespace(c) != config_namespace(a)
