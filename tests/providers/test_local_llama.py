"""The in-process llama.cpp provider. Slow tests assemble and run the real offline model
(Qwen2.5-Coder-1.5B-Instruct Q4_K_M from the pinned part packages, into the configured cache)."""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from pathlib import Path

import pytest

from courseforge.config.loader import load_config
from courseforge.domain.drafts import LessonDraft, json_schema_of
from courseforge.errors import BadResponse, ConfigError
from courseforge.providers.base import ChatRequest, Message
from courseforge.providers.local_llama import LLAMA_INSTALL_HINT, LocalLlamaModel

MODEL_ID = "qwen2.5-coder-1.5b"
LESSON_PROMPT = [
    Message("system", "You write short, accurate lessons for beginners. Answer with JSON only."),
    Message(
        "user",
        "Write a lesson on Python for-loops: about 150 words of markdown in `content`, and one "
        "multiple_choice exercise with 4 options that assesses learning outcome 1. No citations.",
    ),
]


def test_missing_llama_cpp_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    with pytest.raises(ConfigError) as info:
        LocalLlamaModel("m", tmp_path / "model.gguf")
    assert LLAMA_INSTALL_HINT in str(info.value)


@pytest.fixture(scope="module")
def model() -> LocalLlamaModel:
    pytest.importorskip("llama_cpp", reason=f"llama-cpp-python is not installed ({LLAMA_INSTALL_HINT})")
    settings = load_config("offline", env={}).settings
    return LocalLlamaModel.from_settings(MODEL_ID, settings.models[MODEL_ID], settings.cache_dir)


@pytest.mark.local_model
async def test_tiny_max_tokens_gives_a_clean_truncation(model: LocalLlamaModel) -> None:
    request = ChatRequest(
        LESSON_PROMPT, json_schema=json_schema_of(LessonDraft), max_tokens=24, temperature=0.2
    )
    try:
        response = await model.complete(request)
    except BadResponse as exc:
        assert exc.kind == "truncated"
        text = exc.text
    else:  # the grammar could only end this early with a complete, bounded answer
        text = response.text
        LessonDraft.model_validate_json(text)
    assert text.startswith("{") and '"content"' in text
    assert len(text) < 24 * 16  # 24 tokens, never a runaway


@pytest.mark.local_model
async def test_generates_a_valid_lesson_without_blocking_the_loop(model: LocalLlamaModel) -> None:
    loop = asyncio.get_running_loop()
    ticks: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            ticks.append(loop.time())
            await asyncio.sleep(0.05)

    request = ChatRequest(
        LESSON_PROMPT, json_schema=json_schema_of(LessonDraft), max_tokens=1200, temperature=0.2
    )
    tick_task = asyncio.create_task(ticker())
    started = time.perf_counter()
    try:
        response = await model.complete(request)
    finally:
        done.set()
        await tick_task
    wall_s = time.perf_counter() - started

    lesson = LessonDraft.model_validate_json(response.text)
    assert 200 <= len(lesson.content) <= 4000 and 1 <= len(lesson.exercises) <= 4
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.usage.cost_usd == 0 and response.finish_reason == "stop"
    assert max(b - a for a, b in itertools.pairwise(ticks)) < 1.0
    tok_s = response.usage.output_tokens / (response.latency_ms / 1000)
    print(
        f"\nlesson: wall {wall_s:.1f}s, prompt {response.usage.input_tokens} tok, "
        f"completion {response.usage.output_tokens} tok, {tok_s:.1f} tok/s under the grammar, "
        f"{len(lesson.content.split())} words, {len(lesson.exercises)} exercise(s)"
    )


@pytest.mark.local_model
async def test_prompt_longer_than_the_context_is_refused(model: LocalLlamaModel) -> None:
    request = ChatRequest([Message("user", "word " * 6000)], max_tokens=16)
    with pytest.raises(BadResponse) as info:
        await model.complete(request)
    assert info.value.kind == "context" and not info.value.retryable


@pytest.mark.local_model
async def test_models_on_one_file_share_the_weights(model: LocalLlamaModel) -> None:
    twin = LocalLlamaModel("twin", model.path, n_ctx=model.n_ctx)
    assert await twin._model() is await model._model()
