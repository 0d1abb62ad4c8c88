"""The simulator over real sockets: OpenAI-shaped answers, faults by profile and seed."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import aiohttp
import pytest

from courseforge.domain.drafts import LessonDraft, MetadataExtrasDraft, json_schema_of
from courseforge.errors import BadResponse, ProviderHTTPError, RateLimited
from courseforge.providers import ChatRequest, Message
from courseforge.providers.jsontext import extract_json
from courseforge.providers.openai_compat import OpenAICompatModel
from courseforge.providers.schemacheck import schema_errors
from courseforge.sim import FaultRates, ModelProfile, SimProfile, SimServer, load_profile
from courseforge.sim.content import instance_of

FAST = ModelProfile(ttft_ms=0, tokens_per_s=1e6, jitter=0)


def profile(**faults: float) -> SimProfile:
    return SimProfile(defaults=FAST.model_copy(update={"faults": FaultRates(**faults)}))


def model(server: SimServer, mode: str = "json_schema", name: str = "m") -> OpenAICompatModel:
    return OpenAICompatModel(model_id=name, model_name=name, base_url=server.base_url, output_mode=mode)  # type: ignore[arg-type]


def schema_request(schema: dict[str, Any] | None = None) -> ChatRequest:
    schema = schema or {
        "type": "object",
        "required": ["title", "tags", "n"],
        "properties": {
            "title": {"type": "string", "minLength": 5, "maxLength": 40},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 3},
            "n": {"type": "integer", "minimum": 3, "maximum": 9},
        },
    }
    return ChatRequest([Message("user", "Describe a thing.")], json_schema=schema, max_tokens=200)


async def test_models_and_a_schema_valid_answer_with_usage() -> None:
    async with SimServer(load_profile("ideal")) as server:
        async with aiohttp.ClientSession() as session, session.get(f"{server.base_url}/models") as resp:
            assert (await resp.json())["object"] == "list"
        m = model(server)
        request = schema_request()
        response = await m.complete(request)
        assert schema_errors(json.loads(response.text), request.json_schema or {}) == []
        assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
        await m.aclose()


@pytest.mark.parametrize("mode", ["json_schema", "json_object", "prompt"])
async def test_every_structured_mode_gets_the_schema(mode: str) -> None:
    schema = json_schema_of(MetadataExtrasDraft)
    async with SimServer(profile()) as server:
        m = model(server, mode)
        response = await m.complete(schema_request(schema))
        MetadataExtrasDraft.model_validate(extract_json(response.text))
        await m.aclose()


def test_generic_instances_respect_bounds() -> None:
    schema = json_schema_of(LessonDraft)
    assert schema_errors(instance_of(schema), schema) == []


async def test_courseforge_prompts_get_on_topic_and_off_topic_lessons() -> None:
    from courseforge.domain import LearningOutcome, SectionSpec
    from courseforge.pipeline.prompts import lesson_messages
    from engine_helpers import example_analysis

    analysis = example_analysis()
    section: SectionSpec = analysis.sections[0]
    outcome = LearningOutcome(
        id="LO1", text="Explain variables with a worked example", bloom_level="understand"
    )
    messages = lesson_messages(
        analysis=analysis,
        course_title="Python",
        section=section,
        section_summary="Basics.",
        lesson_title="Variables",
        outcomes=[(1, outcome)],
        sibling_titles=[],
        words=(120, 300),
        style="",
    )
    request = ChatRequest(messages, json_schema=json_schema_of(LessonDraft), max_tokens=1800)
    async with SimServer(profile(off_topic=1.0)) as off, SimServer(profile()) as on:
        on_text = (await model(on).complete(request)).text
        off_text = (await model(off).complete(request)).text
    assert "variables" in LessonDraft.model_validate_json(on_text).content.lower()
    assert "castles" in LessonDraft.model_validate_json(off_text).content.lower()


@pytest.mark.parametrize(
    ("fault", "error", "kind"),
    [
        ("malformed", None, "unparseable"),
        ("truncated", BadResponse, "truncated"),
        ("empty", BadResponse, "empty"),
        ("schema_violation", None, "schema"),
    ],
)
async def test_content_faults(fault: str, error: type[Exception] | None, kind: str) -> None:
    async with SimServer(profile(**{fault: 1.0})) as server:
        m = model(server)
        request = schema_request()
        if error is not None:
            with pytest.raises(error) as caught:
                await m.complete(request)
            assert getattr(caught.value, "kind", None) == kind
            assert caught.value.usage is not None  # billed all the same
        else:
            text = (await m.complete(request)).text
            if kind == "unparseable":
                with pytest.raises(BadResponse):
                    extract_json(text)
            else:
                assert schema_errors(json.loads(text), request.json_schema or {})
        await m.aclose()
    assert server.fault_counts() == {fault: 1}


async def test_rate_limit_and_server_errors() -> None:
    async with SimServer(profile(rate_limited=1.0), time_scale=0.5) as server:
        m = model(server)
        with pytest.raises(RateLimited) as caught:
            await m.complete(schema_request())
        assert caught.value.retry_after_s == pytest.approx(0.5)  # 1 s simulated at time scale 0.5
        await m.aclose()
    async with SimServer(profile(server_error=1.0)) as server:
        m = model(server)
        with pytest.raises(ProviderHTTPError) as http:
            await m.complete(schema_request())
        assert http.value.status in (500, 502, 503)
        await m.aclose()


async def test_rpm_limit_answers_429_with_the_wait() -> None:
    limited = SimProfile(defaults=FAST.model_copy(update={"rpm": 2}))
    async with SimServer(limited, time_scale=0.01) as server:
        m = model(server)
        await m.complete(schema_request())
        await m.complete(schema_request())
        with pytest.raises(RateLimited) as caught:
            await m.complete(schema_request())
        assert caught.value.retry_after_s is not None and 0 < caught.value.retry_after_s <= 0.6
        await m.aclose()
    assert server.fault_counts() == {"ok": 2, "rpm_limit": 1}


async def test_unsupported_mode_is_a_400_naming_response_format() -> None:
    p = SimProfile(defaults=FAST.model_copy(update={"unsupported_modes": ["json_schema"]}))
    async with SimServer(p) as server:
        m = model(server)
        with pytest.raises(ProviderHTTPError) as caught:
            await m.complete(schema_request())
        assert caught.value.status == 400 and "response_format" in caught.value.body
        await model(server, "json_object").complete(schema_request())


async def test_same_seed_same_fates_different_seed_different() -> None:
    async def fates(seed: int) -> list[str]:
        async with SimServer(load_profile("chaos"), seed=seed, time_scale=0.0) as server:
            # Hangs are 30 s by default: make them instant for this test.
            server.profile = server.profile.model_copy(
                update={"defaults": server.profile.defaults.model_copy(update={"timeout_hang_s": 0.0})}
            )
            m = model(server, name="openai/gpt-oss-20b")
            out = []
            for _ in range(40):
                try:
                    await m.complete(schema_request())
                    out.append("ok")
                except Exception as exc:  # the fault class is what we compare
                    out.append(type(exc).__name__ + str(getattr(exc, "status", "")))
            await m.aclose()
            return out

    first, again, other = await fates(1), await fates(1), await fates(2)
    assert first == again
    assert first != other
    assert Counter(first)["ok"] < 40


async def test_streaming_sends_chunks_and_usage() -> None:
    async with SimServer(load_profile("ideal"), time_scale=0.0) as server:
        payload = {
            "model": "m",
            "messages": [{"role": "user", "content": "hello"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        url = f"{server.base_url}/chat/completions"
        async with aiohttp.ClientSession() as session, session.post(url, json=payload) as resp:
            body = (await resp.read()).decode()
    events = [line[6:] for line in body.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text and chunks[-1]["usage"]["completion_tokens"] > 0
