"""The payloads that cross the Temporal boundary (no server needed)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from courseforge import errors as E
from courseforge.distributed.codec import (
    decode_error,
    decode_request,
    decode_response,
    decode_vectors,
    encode_error,
    encode_request,
    encode_response,
    encode_vectors,
    error_fields,
    pinned_settings,
)
from courseforge.distributed.workflow import ActivityOptions
from courseforge.providers import ChatRequest, ChatResponse, Message, Usage
from engine_helpers import hosted_settings


def test_request_and_response_round_trip() -> None:
    request = ChatRequest(
        [Message("system", "be brief"), Message("user", "hi")],
        json_schema={"type": "object", "properties": {"title": {"type": "string"}}},
        schema_name="lesson",
        max_tokens=321,
        temperature=0.2,
        timeout_s=12.5,
        tags={"phase": "lessons", "task": "lesson:S1-L1"},
    )
    model_id, back = decode_request(encode_request("gpt-oss-120b", request))
    assert model_id == "gpt-oss-120b"
    assert back == ChatRequest(list(request.messages), **{k: getattr(request, k) for k in (
        "json_schema", "schema_name", "max_tokens", "temperature", "timeout_s", "tags")})  # fmt: skip
    response = ChatResponse("{}", Usage(10, 20, 3, Decimal("0.0012")), 41.5, "m", "stop")
    assert decode_response(encode_response(response)) == response


def test_vectors_are_lossless() -> None:
    vectors = [[0.1, -0.2, 1 / 3], [0.0, 1e-300, -7.25]]
    assert decode_vectors(encode_vectors(vectors)) == vectors


@pytest.mark.parametrize(
    "error",
    [
        E.RateLimited("slow down", retry_after_s=2.5, model="m"),
        E.ProviderHTTPError(503, "busy", model="m"),
        E.InvalidRequest("bad temperature", field="temperature", model="m"),
        E.AuthFailed("No auth credentials found", env_var="OPENROUTER_API_KEY", model="m"),
        E.OutOfCredits("Insufficient credits", model="m"),
        E.ModerationRefused("flagged", reasons=["violence"], flagged_input="x", provider_name="P", model="m"),
        E.NoProviderAvailable("none", requirements=["provider.zdr=true"], model="m"),
        E.BadResponse("not JSON", model="m", kind="unparseable", text="{oops", usage=Usage(5, 7)),
        E.CircuitOpen(model="m", reopens_in_s=12.0),
        E.ProviderTimeout("no answer in 10s", model="m"),
        E.ProviderConnectionError("refused", model="m"),
        E.ConfigError("bad", [("routing.tiers", "unknown model")]),
    ],
)
def test_errors_come_back_as_the_same_class_with_their_fields(error: E.CourseforgeError) -> None:
    error.add_note("fallback chain a -> b: every model failed")
    app = encode_error(error, retries=2, faults={"http_503": 2})
    assert app.non_retryable  # the model stack retried already; Temporal must not
    fields = error_fields(app)
    assert fields is not None and fields["retries"] == 2
    back = decode_error(fields)
    assert type(back) is type(error)
    assert str(back) == str(error)
    assert getattr(back, "__notes__", []) == error.__notes__
    for attr in (
        "status",
        "body",
        "retry_after_s",
        "kind",
        "text",
        "usage",
        "reopens_in_s",
        "retryable",
        "problems",
        "field",
        "env_var",
        "reasons",
        "flagged_input",
        "provider_name",
        "requirements",
        "stops_job",
    ):
        assert getattr(back, attr, None) == getattr(error, attr, None), attr


def test_unknown_errors_stay_retryable_for_temporal() -> None:
    app = encode_error(KeyError("boom"))
    assert not app.non_retryable
    assert isinstance(decode_error(error_fields(app) or {}), E.ProviderError)


def test_pinned_settings_drop_secrets_and_validate() -> None:
    settings = hosted_settings()
    provider = next(iter(settings.providers))
    providers = {
        name: p.model_copy(
            update={"headers": {"Authorization": "Bearer sk-secret"}, "redis_url": "redis://:pw@h/0"}
        )
        for name, p in settings.providers.items()
    }
    settings = settings.model_copy(update={"providers": providers})
    data = pinned_settings(settings)
    assert "sk-secret" not in str(data) and "pw@" not in str(data)
    assert "storage" not in data and "service" not in data
    again = type(settings).model_validate(data)
    assert again.routing == settings.routing and again.gates == settings.gates
    assert again.providers[provider].headers == {}


def test_activity_options_data_round_trip() -> None:
    options = ActivityOptions(heartbeat_timeout_s=2.0, max_attempts=5)
    assert ActivityOptions.from_data(options.as_data()) == options
    assert ActivityOptions.from_data({"unknown": 1}) == ActivityOptions()
