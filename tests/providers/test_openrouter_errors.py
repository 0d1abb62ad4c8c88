"""OpenRouter's documented errors, each as the simulator produces it (its `fail_first` in the
documented shapes), each mapped to its place in the errors tree by OpenAICompatModel."""

from __future__ import annotations

from typing import Any

import pytest

from courseforge.errors import (
    AuthFailed,
    InvalidRequest,
    ModerationRefused,
    NoProviderAvailable,
    OutOfCredits,
    ProviderHTTPError,
    RateLimited,
)
from courseforge.providers import ChatRequest, Message
from courseforge.providers.openai_compat import OpenAICompatModel
from courseforge.resilience.breaker import counts_as_outage
from courseforge.sim import ModelProfile, SimProfile, SimServer

SCHEMA = {"type": "object", "required": ["title"], "properties": {"title": {"type": "string"}}}


async def first_error(status: int, kind: str = "documented", **model_kw: Any) -> ProviderHTTPError:
    profile = SimProfile(
        defaults=ModelProfile(
            ttft_ms=0,
            tokens_per_s=1e6,
            jitter=0,
            fail_first=1,
            fail_first_status=status,
            fail_first_kind=kind,
        )
    )
    async with SimServer(profile) as sim:
        model = OpenAICompatModel(model_id="cheap", model_name="m", base_url=sim.base_url, **model_kw)
        try:
            with pytest.raises(ProviderHTTPError) as info:
                await model.complete(ChatRequest([Message("user", "q")], json_schema=SCHEMA, max_tokens=50))
            # The second request is answered: the failure was the first one's only.
            assert (await model.complete(ChatRequest([Message("user", "q")], max_tokens=50))).text
        finally:
            await model.aclose()
    return info.value


async def test_400_is_not_retried_and_names_the_field() -> None:
    error = await first_error(400)
    assert type(error) is InvalidRequest and not error.retryable
    assert error.field == "temperature" and "[field: temperature]" in str(error)
    assert not counts_as_outage(error)


async def test_401_stops_the_job_naming_the_variable() -> None:
    error = await first_error(401, api_key="sk-or-test", api_key_env="OPENROUTER_API_KEY")
    assert type(error) is AuthFailed and error.stops_job and not error.retryable
    assert "$OPENROUTER_API_KEY" in str(error) and "No auth credentials found" in str(error)
    assert "sk-or-test" not in str(error)


async def test_402_stops_the_job() -> None:
    error = await first_error(402)
    assert type(error) is OutOfCredits and error.stops_job and not error.retryable
    assert "out of credits" in str(error)


async def test_403_moderation_keeps_its_reasons_and_flagged_input() -> None:
    error = await first_error(403)
    assert type(error) is ModerationRefused and not error.retryable and not error.stops_job
    assert error.reasons == ["violence"] and error.flagged_input == "a lesson on the battle of..."
    assert error.provider_name == "SimModeration"
    assert "violence" in str(error)
    assert not counts_as_outage(error)  # about this prompt, not the model's health


@pytest.mark.parametrize("status", [408, 502])
async def test_408_and_502_are_retryable_provider_failures(status: int) -> None:
    error = await first_error(status)
    assert type(error) is ProviderHTTPError and error.retryable and error.status == status
    assert counts_as_outage(error)


async def test_429_is_rate_limited() -> None:
    assert isinstance(await first_error(429), RateLimited)


async def test_503_says_which_routing_requirement_no_provider_met() -> None:
    routing = {"provider": {"require_parameters": True, "zdr": True, "quantizations": ["fp8"]}}
    error = await first_error(503, extra_body=routing)
    assert type(error) is NoProviderAvailable and not error.retryable
    assert "provider.zdr=true" in str(error) and 'provider.quantizations=["fp8"]' in str(error)
    assert "require_parameters" in str(error)


async def test_a_200_whose_body_is_an_error_is_that_error() -> None:
    assert type(await first_error(402, kind="error_body")) is OutOfCredits
    assert type(await first_error(403, kind="error_body")) is ModerationRefused


async def test_a_200_whose_choice_ends_in_error_is_a_retryable_failure() -> None:
    error = await first_error(502, kind="finish_error")
    assert error.status == 502 and error.retryable
    assert "finish_reason 'error'" in str(error) and "upstream_error" in str(error)
