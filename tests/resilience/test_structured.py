"""Structured-output downgrade json_schema -> json_object -> prompt: a 400 moves the model, an
ignored schema moves one job, and only many jobs' evidence moves the model; downgrades expire."""

from __future__ import annotations

import contextlib
import json

from courseforge.errors import BadResponse, ProviderHTTPError
from courseforge.providers import ChatRequest, Message
from courseforge.providers.openai_compat import OpenAICompatModel
from courseforge.resilience import (
    FakeClock,
    OutputModeChanged,
    RecordingHooks,
    ScopedHooks,
    StructuredOutputModel,
)
from courseforge.sim import ModelProfile, SimProfile, SimServer
from courseforge.testing import LoopbackReply, LoopbackServer, ScriptedModel

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


async def test_answers_ignoring_the_schema_three_times_in_a_row_downgrade_that_job() -> None:
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
    assert model.job_mode() == "json_object"  # the success in between reset the streak
    assert model.mode == "json_schema"  # one job is not evidence for the model


def _bad_for(job_names: set[str]) -> ScriptedModel:
    """Answers that ignore the schema for requests tagged with a job in `job_names`."""

    def answer(req: ChatRequest) -> str:
        return '{"x": 1}' if req.tags.get("job") in job_names else '{"answer": "ok"}'

    return ScriptedModel(answer, model_id="m")


async def _run_job(model: StructuredOutputModel, hooks: ScopedHooks, job: str, calls: int) -> list[str]:
    """`calls` requests inside one job's scope; the mode each was sent in."""
    modes = []
    with hooks.scope():
        for _ in range(calls):
            modes.append(model.job_mode())
            with contextlib.suppress(BadResponse):
                await model.complete(
                    ChatRequest([Message("user", "q")], json_schema=SCHEMA, tags={"job": job})
                )
    return modes


async def test_one_job_missing_the_schema_never_degrades_another_job() -> None:
    hooks = ScopedHooks()
    model = StructuredOutputModel(_bad_for({"bad"}))
    # The bad job misses 3 times and moves itself; it keeps its own weaker mode.
    assert await _run_job(model, hooks, "bad", 4) == ["json_schema"] * 3 + ["json_object"]
    # Every later job of every user still gets the strong mode and succeeds.
    assert await _run_job(model, hooks, "good", 3) == ["json_schema"] * 3
    assert model.mode == "json_schema"


async def test_the_model_moves_only_on_evidence_from_many_jobs_and_re_probes_after_expiry() -> None:
    hooks, recorded, clock = ScopedHooks(), RecordingHooks(), FakeClock()
    model = StructuredOutputModel(
        _bad_for({"a", "b", "c"}), hooks=recorded, jobs_to_downgrade=3, reprobe_after_s=600, clock=clock
    )
    await _run_job(model, hooks, "a", 3)
    await _run_job(model, hooks, "b", 3)
    assert model.mode == "json_schema"  # two jobs are not enough
    await _run_job(model, hooks, "c", 3)
    assert model.mode == "json_object"  # the third is
    assert await _run_job(model, hooks, "d", 1) == ["json_object"]
    clock.advance(601)
    # Expired: the next job re-probes the configured mode, and it works for a good job.
    assert await _run_job(model, hooks, "d", 1) == ["json_schema"]
    assert [(e.old, e.new) for e in recorded.of_type(OutputModeChanged)] == [
        ("json_schema", "json_object"),
        ("json_object", "json_schema"),
    ]


async def test_an_answer_repairable_by_the_schema_is_no_miss() -> None:
    limited = {
        "type": "object",
        "required": ["answer", "citations"],
        "additionalProperties": False,
        "properties": {"answer": {"type": "string"}, "citations": {"type": "array", "maxItems": 0}},
    }
    model = StructuredOutputModel(
        ScriptedModel(lambda r: '{"answer": "ok", "citations": ["s1"], "extra": 1}', model_id="m")
    )
    for _ in range(5):
        response = await model.complete(ChatRequest([Message("user", "q")], json_schema=limited))
        assert json.loads(response.text) == {"answer": "ok", "citations": []}
        assert response.repairs == (
            "$.citations: dropped 1 item(s) past maxItems 0",
            "$: dropped unknown key 'extra'",
        )
    assert model.job_mode() == "json_schema"


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


#: What llama.cpp's own server (the xllamacpp wheel's) answered to a schema its grammar converter
#: cannot take: a 400 that never says `response_format`.
LLAMA_SCHEMA_400 = {
    "error": {
        "code": 400,
        "message": "Unable to generate parser for this template. Automatic parser generation failed: "
        "JSON schema error at #: cannot resolve $ref #/$defs/nope, $defs not found",
        "type": "invalid_request_error",
    }
}


async def test_llama_servers_schema_400_downgrades_over_the_wire_to_the_prompt() -> None:
    """Both response_format modes go through the same grammar converter there, so the model
    ends in prompt mode (the schema in the prompt, no response_format) and is answered."""
    seen: list[str] = []

    def handler(payload: dict[str, object]) -> LoopbackReply:
        fmt = payload.get("response_format")
        seen.append(str(fmt["type"]) if isinstance(fmt, dict) else "prompt")
        if fmt is not None:
            return LoopbackReply(status=400, json_body=LLAMA_SCHEMA_400)
        return LoopbackReply.completion('{"answer": "ok"}')

    async with LoopbackServer(handler) as server:
        provider = OpenAICompatModel(model_id="m", model_name="m", base_url=server.base_url)
        model = StructuredOutputModel(provider)
        try:
            assert (await model.complete(request())).text == '{"answer": "ok"}'
        finally:
            await provider.aclose()
    assert seen == ["json_schema", "json_object", "prompt"]
    assert model.mode == "prompt"
