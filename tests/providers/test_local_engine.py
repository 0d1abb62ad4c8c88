"""The llama.cpp engine: how a streamed answer is read (fast, from recorded event shapes) and,
with the real offline model, that free text ends at the end of its turn or at a stop string."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from courseforge.config.loader import load_config
from courseforge.providers.local_engine import (
    EngineConfig,
    EngineError,
    EngineJob,
    LlamaServerEngine,
    _StreamReader,
)
from courseforge.providers.model_files import assemble_model


def delta(text: str | None, finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}


# Shapes as llama.cpp's server streams them (recorded from xllamacpp 2026.10.11549).
LAST_WITH_USAGE = {
    "choices": [],
    "usage": {"completion_tokens": 3, "prompt_tokens": 44, "total_tokens": 47},
    "timings": {"cache_n": 40, "prompt_n": 4, "predicted_n": 3},
}
TOO_LONG = {
    "error": {
        "code": 400,
        "message": "request (2030 tokens) exceeds the available context size (1024 tokens), try increasing it",
        "type": "exceed_context_size_error",
        "n_prompt_tokens": 2030,
        "n_ctx": 1024,
    }
}
BAD_GRAMMAR = {
    "error": {
        "code": 400,
        "message": "Failed to initialize samplers: failed to parse grammar",
        "type": "invalid_request_error",
    }
}


def read(
    events: list[dict[str, Any]], cancel: threading.Event | None = None
) -> tuple[list[bool], _StreamReader]:
    reader = _StreamReader(cancel or threading.Event())
    return [reader.on_chunk(e) for e in events], reader


def test_a_streamed_answer_is_joined_with_its_usage() -> None:
    events = [delta(None), delta("Loops "), delta("repeat."), delta(None, "stop"), LAST_WITH_USAGE]
    stops, reader = read(events)
    result = reader.result()
    assert not any(stops)
    assert result.text == "Loops repeat." and result.finish_reason == "stop"
    assert (result.prompt_tokens, result.cached_tokens, result.completion_tokens) == (44, 40, 3)


def test_usage_falls_back_to_the_timings() -> None:
    timings_only = {"choices": [], "timings": {"cache_n": 10, "prompt_n": 5, "predicted_n": 2}}
    _, reader = read([delta("ok"), delta(None, "length"), timings_only])
    result = reader.result()
    assert result.finish_reason == "length"
    assert (result.prompt_tokens, result.cached_tokens, result.completion_tokens) == (15, 10, 2)


def test_a_cancelled_job_tells_the_server_to_stop() -> None:
    cancel = threading.Event()
    reader = _StreamReader(cancel)
    assert reader.on_chunk(delta("1")) is False
    cancel.set()
    assert reader.on_chunk(delta("2")) is True
    assert reader.result().finish_reason == "cancelled"


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        (TOO_LONG, "context"),
        (BAD_GRAMMAR, "request"),
        ({"code": 500, "message": "decode failed", "type": "server_error"}, "internal"),
    ],
)
def test_server_errors_become_engine_errors(event: dict[str, Any], kind: str) -> None:
    stops, reader = read([event])
    assert stops == [True]
    with pytest.raises(EngineError) as info:
        reader.result()
    assert info.value.kind == kind


def test_a_stream_without_a_finish_reason_is_an_error() -> None:
    _, reader = read([delta("half")])
    with pytest.raises(EngineError) as info:
        reader.result()
    assert info.value.kind == "internal"


@pytest.fixture(scope="module")
def engine() -> LlamaServerEngine:
    pytest.importorskip("xllamacpp")
    settings = load_config("offline", env={}).settings
    local = settings.models["qwen2.5-coder-1.5b"].local
    assert local is not None
    path = assemble_model(local, Path(settings.cache_dir).expanduser())
    return LlamaServerEngine(EngineConfig(path, n_ctx=2048, n_threads=2, n_parallel=2, prefix_cache=True))


def job(text: str, **kwargs: Any) -> EngineJob:
    return EngineJob(messages=[{"role": "user", "content": text}], temperature=0.0, **kwargs)


@pytest.mark.local_model
def test_free_text_ends_at_the_end_of_its_turn(engine: LlamaServerEngine) -> None:
    result = engine.run(job("Say hello to a new Python learner in one short sentence.", max_tokens=200))
    assert result.finish_reason == "stop" and result.completion_tokens < 200
    assert result.text.rstrip()[-1] in ".!?"


@pytest.mark.local_model
def test_free_text_stops_at_a_stop_string(engine: LlamaServerEngine) -> None:
    result = engine.run(job("Count from 1 to 20, one number per line.", max_tokens=120, stop=("\n7",)))
    assert result.finish_reason == "stop"
    assert result.text.rstrip().endswith("6") and "7" not in result.text


@pytest.mark.local_model
def test_a_second_request_reuses_the_shared_prefix(engine: LlamaServerEngine) -> None:
    shared = "You teach Python to beginners. " * 40
    first = engine.run(job(shared + "Define a list in one sentence.", max_tokens=24))
    second = engine.run(job(shared + "Define a dict in one sentence.", max_tokens=24))
    assert first.prompt_tokens > 200
    assert second.cached_tokens >= 200  # the common prefix came from the cache
