"""Structured-output downgrade json_schema -> json_object -> prompt, remembered per model."""

from __future__ import annotations

import contextlib
import json

from courseforge.errors import BadResponse, ProviderHTTPError
from courseforge.providers import ChatRequest, Message
from courseforge.providers.openai_compat import OpenAICompatModel
from courseforge.resilience import OutputModeChanged, RecordingHooks, StructuredOutputModel
from courseforge.sim import ModelProfile, SimProfile, SimServer
from courseforge.testing import ScriptedModel

SCHEMA = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}}


def request() -> ChatRequest:
    return ChatRequest([Message("user", "q")], json_schema=SCHEMA)


async def test_a_400_naming_response_format_downgrades_and_resends_once_remembered() -> None:
    seen: list[str] = []

    def provider(req: ChatRequest) -> str | Exception:
        mode = req.tags["output_mode"]
        seen.append(mode)
        if mode == "json_schema":
            return ProviderHTTPError(400, '{"error": "response_format json_schema is not supported"}')
        return '{"answer": "ok"}'

    hooks = RecordingHooks()
    model = StructuredOutputModel(ScriptedModel(provider, model_id="m"), hooks=hooks)
    assert (await model.complete(request())).text == '{"answer": "ok"}'
    assert (await model.complete(request())).text == '{"answer": "ok"}'
    assert seen == ["json_schema", "json_object", "json_object"]  # remembered
    assert hooks.of_type(OutputModeChanged)[0].new == "json_object"


async def test_other_400s_are_not_a_reason_to_downgrade() -> None:
    model = StructuredOutputModel(
        ScriptedModel(lambda r: ProviderHTTPError(400, "bad max_tokens"), model_id="m")
    )
    with contextlib.suppress(ProviderHTTPError):
        await model.complete(request())
    assert model.mode == "json_schema"


async def test_answers_ignoring_the_schema_three_times_in_a_row_downgrade() -> None:
    answers = iter(['{"x": 1}', '{"answer": "ok"}', '{"x": 1}', '{"x": 1}', '{"x": 1}'])
    model = StructuredOutputModel(ScriptedModel(lambda r: next(answers), model_id="m"))
    outcomes = []
    for _ in range(5):
        try:
            await model.complete(request())
            outcomes.append("ok")
        except BadResponse as bad:
            outcomes.append(bad.kind)
    assert outcomes == ["schema", "ok", "schema", "schema", "schema"]
    assert model.mode == "json_object"  # the success in between reset the streak


async def test_over_the_wire_a_model_without_structured_modes_ends_in_prompt_mode() -> None:
    profile = SimProfile(
        defaults=ModelProfile(
            ttft_ms=0, tokens_per_s=1e6, jitter=0, unsupported_modes=["json_schema", "json_object"]
        )
    )
    async with SimServer(profile) as server:
        provider = OpenAICompatModel(model_id="m", model_name="m", base_url=server.base_url)
        model = StructuredOutputModel(provider)
        response = await model.complete(request())
        assert isinstance(json.loads(response.text)["answer"], str)
        assert model.mode == "prompt"
        await provider.aclose()
    assert server.fault_counts() == {"ok": 1, "unsupported_mode": 2}
