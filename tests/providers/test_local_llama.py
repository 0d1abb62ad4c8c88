"""The in-process llama.cpp provider.

Fast tests drive `LocalLlamaModel` with a scripted engine (no weights): admission of at most
`n_parallel` sequences, timeouts and cancellation handing the sequence back only when the engine
lets go, usage, truncation and error mapping. Slow tests assemble and run the real offline model
(Qwen2.5-Coder-1.5B-Instruct Q4_K_M from the pinned part packages, into the configured cache)."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from courseforge.config.loader import _bundled_text, load_config, parse_config
from courseforge.domain.drafts import LessonDraft, json_schema_of
from courseforge.errors import BadResponse, ConfigError, ProviderError, ProviderTimeout
from courseforge.pipeline.lessons import lesson_schema
from courseforge.providers.base import ChatRequest, ChatResponse, Message, ProseFirst
from courseforge.providers.local_engine import EngineConfig, EngineError, EngineJob, EngineResult
from courseforge.providers.local_llama import (
    LLAMA_INSTALL_HINT,
    LocalLlamaModel,
    insert_part,
    release_loaded_models,
)

try:
    import xllamacpp  # noqa: F401
except ImportError:  # pragma: no cover - depends on the optional extra
    HAVE_BINDING = False
else:
    HAVE_BINDING = True

needs_binding = pytest.mark.skipif(
    not HAVE_BINDING, reason=f"xllamacpp is not installed ({LLAMA_INSTALL_HINT})"
)

MODEL_ID = "qwen2.5-coder-1.5b"
LESSON_PROMPT = [
    Message("system", "You write short, accurate lessons for beginners. Answer with JSON only."),
    Message(
        "user",
        "Write a lesson on Python for-loops: about 150 words of markdown in `content`, and one "
        "multiple_choice exercise with 4 options that assesses learning outcome 1. No citations.",
    ),
]
SMALL_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string", "maxLength": 40}},
    "required": ["answer"],
    "additionalProperties": False,
}


class ScriptedEngine:
    """A DecodeEngine double: jobs block until `gate` opens (or they are cancelled), then answer."""

    def __init__(
        self, config: EngineConfig, answer: Callable[[EngineJob], EngineResult] | None = None
    ) -> None:
        self.config = config
        self.answer = answer or (lambda job: EngineResult("hello there", "stop", 12, 0, 3))
        self.gate = threading.Event()
        self.honour_cancel = True
        self.jobs: list[EngineJob] = []
        self.active = 0
        self.max_active = 0
        self.closed = False
        self._lock = threading.Lock()

    def run(self, job: EngineJob) -> EngineResult:
        with self._lock:
            self.jobs.append(job)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            while not self.gate.wait(0.005):
                if self.honour_cancel and job.cancel.is_set():
                    return EngineResult("", "cancelled", 12, 0, 0)
            return self.answer(job)
        finally:
            with self._lock:
                self.active -= 1

    def close(self) -> None:
        self.closed = True


@pytest.fixture(autouse=True)
def _release_scripted_models(tmp_path: Path) -> Iterator[None]:
    yield
    release_loaded_models(tmp_path / "m.gguf")


def scripted(
    tmp_path: Path, *, n_parallel: int = 2, answer: Callable[[EngineJob], EngineResult] | None = None
) -> tuple[LocalLlamaModel, list[ScriptedEngine]]:
    engines: list[ScriptedEngine] = []

    def factory(config: EngineConfig) -> ScriptedEngine:
        engines.append(ScriptedEngine(config, answer))
        return engines[-1]

    model = LocalLlamaModel("m", tmp_path / "m.gguf", n_parallel=n_parallel, engine_factory=factory)
    return model, engines


async def wait_for(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not predicate():
            await asyncio.sleep(0.005)


def ask(text: str = "hi", **kwargs: object) -> ChatRequest:
    return ChatRequest([Message("user", text)], **kwargs)  # type: ignore[arg-type]


def test_missing_binding_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # makes `import xllamacpp` fail
    with pytest.raises(ConfigError) as info:
        LocalLlamaModel("m", tmp_path / "model.gguf")
    assert LLAMA_INSTALL_HINT in str(info.value)


def test_courseforge_imports_without_the_binding() -> None:
    code = (
        "import sys; sys.modules['xllamacpp'] = None\n"
        "import courseforge, courseforge.engine, courseforge.providers.local_llama\n"
        "print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


async def test_requests_decode_together_up_to_n_parallel(tmp_path: Path) -> None:
    model, engines = scripted(tmp_path, n_parallel=3)
    calls = [asyncio.create_task(model.complete(ask(f"q{i}"))) for i in range(5)]
    await wait_for(lambda: bool(engines) and engines[0].active == 3)
    await asyncio.sleep(0.05)  # give a fourth job every chance to sneak in
    engine = engines[0]
    assert engine.active == 3 and len(engine.jobs) == 3

    engine.gate.set()
    answers = await asyncio.gather(*calls)
    assert [a.text for a in answers] == ["hello there"] * 5
    assert engine.max_active == 3 and len(engine.jobs) == 5
    assert sorted(job.messages[0]["content"] for job in engine.jobs) == [f"q{i}" for i in range(5)]


async def test_timeout_cancels_the_sequence_and_the_next_request_gets_it(tmp_path: Path) -> None:
    model, engines = scripted(tmp_path, n_parallel=1)
    with pytest.raises(ProviderTimeout):
        await model.complete(ask(timeout_s=0.05))
    engine = engines[0]
    assert engine.jobs[0].cancel.is_set()

    engine.gate.set()
    answer = await model.complete(ask(timeout_s=5))
    assert answer.text == "hello there" and len(engine.jobs) == 2
    assert not engine.jobs[1].cancel.is_set()


async def test_cancellation_cancels_the_sequence(tmp_path: Path) -> None:
    model, engines = scripted(tmp_path, n_parallel=1)
    call = asyncio.create_task(model.complete(ask()))
    await wait_for(lambda: bool(engines) and engines[0].active == 1)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    engine = engines[0]
    assert engine.jobs[0].cancel.is_set()
    await wait_for(lambda: engine.active == 0)

    engine.gate.set()
    assert (await model.complete(ask())).text == "hello there"


async def test_a_sequence_stays_taken_until_the_engine_lets_go(tmp_path: Path) -> None:
    model, engines = scripted(tmp_path, n_parallel=1)
    with pytest.raises(ProviderTimeout):
        await model.complete(ask(timeout_s=0.05))
    engine = engines[0]
    engine.honour_cancel = False  # llama.cpp still finishing the abandoned job's step

    second = asyncio.create_task(model.complete(ask("second")))
    await asyncio.sleep(0.05)
    assert len(engine.jobs) == 1 and engine.active == 1  # never two jobs on one sequence

    engine.gate.set()
    assert (await second).text == "hello there"
    assert engine.max_active == 1


async def test_the_event_loop_keeps_running_while_the_engine_decodes(tmp_path: Path) -> None:
    model, engines = scripted(tmp_path)
    loop = asyncio.get_running_loop()
    call = asyncio.create_task(model.complete(ask()))
    await wait_for(lambda: bool(engines) and engines[0].active == 1)
    ticks = []
    for _ in range(5):
        ticks.append(loop.time())
        await asyncio.sleep(0.01)
    engines[0].gate.set()
    await call
    assert max(b - a for a, b in itertools.pairwise(ticks)) < 0.5


async def test_usage_counts_prompt_cached_and_completion_tokens(tmp_path: Path) -> None:
    model, engines = scripted(
        tmp_path, answer=lambda job: EngineResult("Loops repeat work.", "stop", 120, 96, 7)
    )
    call = asyncio.create_task(model.complete(ask(max_tokens=50_000)))
    await wait_for(lambda: bool(engines))
    engines[0].gate.set()
    answer = await call

    assert answer.usage.input_tokens == 120 and answer.usage.cached_tokens == 96
    assert answer.usage.output_tokens == 7 and answer.usage.cost_usd == 0
    assert answer.finish_reason == "stop" and answer.model == "m" and answer.latency_ms >= 0
    assert engines[0].jobs[0].max_tokens == model.max_output_tokens  # capped


@needs_binding
async def test_length_under_a_schema_is_a_truncation_carrying_usage(tmp_path: Path) -> None:
    model, engines = scripted(
        tmp_path, answer=lambda job: EngineResult('{"answer": "par', "length", 40, 0, 8)
    )
    model_free_text = asyncio.create_task(model.complete(ask()))
    await wait_for(lambda: bool(engines))
    engines[0].gate.set()
    assert (await model_free_text).finish_reason == "length"  # free text may end at the bound

    with pytest.raises(BadResponse) as info:
        await model.complete(ask(json_schema=SMALL_SCHEMA))
    assert info.value.kind == "truncated" and info.value.text == '{"answer": "par'
    assert info.value.usage is not None and info.value.usage.output_tokens == 8
    grammar = engines[0].jobs[1].grammar
    assert grammar is not None and grammar.startswith("root ::=")
    assert engines[0].jobs[0].grammar is None


@needs_binding
async def test_prose_first_decodes_the_text_free_then_the_rest_under_the_grammar(tmp_path: Path) -> None:
    prose = "## Loops\n\nA `for` loop repeats a block for each item."
    rest = '{"exercises": [{"question": "What does it repeat?"}], "citations": []}'

    def answer(job: EngineJob) -> EngineResult:
        if job.grammar is None:
            return EngineResult(prose + "\n", "stop", 100, 0, 20)
        return EngineResult(rest, "stop", 140, 120, 30)

    model, engines = scripted(tmp_path, answer=answer)
    schema = {
        "type": "object",
        "properties": {
            "content": {"type": "string", "maxLength": 4000},
            "exercises": {
                "type": "array",
                "maxItems": 3,
                "items": {
                    "type": "object",
                    "properties": {"question": {"type": "string", "maxLength": 90}},
                    "required": ["question"],
                    "additionalProperties": False,
                },
            },
            "citations": {"type": "array", "maxItems": 0, "items": {"type": "string"}},
        },
        "required": ["content", "exercises", "citations"],
        "additionalProperties": False,
    }
    plan = ProseFirst(follow_up="Now the exercises, as JSON.", stop=("\n## Exercises",), max_prose_tokens=700)
    call = asyncio.create_task(
        model.complete(ask("Teach loops.", json_schema=schema, prose_first=plan, max_tokens=1000))
    )
    await wait_for(lambda: bool(engines))
    engines[0].gate.set()
    response = await call

    first, second = engines[0].jobs
    assert first.grammar is None and tuple(first.stop) == ("\n## Exercises",) and first.max_tokens == 700
    assert [m["role"] for m in second.messages] == ["user", "assistant", "user"]
    assert second.messages[1]["content"] == prose and second.messages[2]["content"] == plan.follow_up
    assert second.grammar is not None and '\\"content\\"' not in second.grammar
    assert '\\"exercises\\"' in second.grammar
    assert second.max_tokens == 1000 - 20 and second.cancel is first.cancel
    assert json.loads(response.text) == {**json.loads(rest), "content": prose}
    assert list(json.loads(response.text)) == ["content", "exercises", "citations"]
    assert (response.usage.input_tokens, response.usage.cached_tokens, response.usage.output_tokens) == (
        240,
        120,
        50,
    )


#: A lesson's content and one short answer: the prose-first tests' schema.
_CONTENT_AND_ANSWER = {
    "type": "object",
    "properties": {"content": {"type": "string"}, "answer": {"type": "string", "maxLength": 9}},
    "required": ["content", "answer"],
    "additionalProperties": False,
}


async def _prose_first_answer(
    tmp_path: Path, answer: Callable[[EngineJob], EngineResult], *, min_words: int, max_tokens: int
) -> tuple[ChatResponse, list[ScriptedEngine]]:
    """One prose-first call (extended under `min_words`) on a scripted engine: its response and
    the engines, whose jobs say which turns were sent."""
    model, engines = scripted(tmp_path, answer=answer)
    plan = ProseFirst(follow_up="Answer.", min_words=min_words, extend="Has {have}; write {need} more.")
    call = asyncio.create_task(
        model.complete(ask(json_schema=_CONTENT_AND_ANSWER, prose_first=plan, max_tokens=max_tokens))
    )
    await wait_for(lambda: bool(engines))
    engines[0].gate.set()
    return await call, engines


@needs_binding
async def test_prose_first_under_its_word_floor_asks_one_more_part_before_the_summary(tmp_path: Path) -> None:
    """Issue 25: a lesson under the floor was written again whole; now a third turn of the same
    sequence asks for one more part, which goes before the summary, and the exercises are asked
    on the whole lesson."""
    prose = "## Loops\n\nA `for` loop repeats a block for each item.\n\n## Summary\n\nLoops repeat work."
    part = "## Another example\n\nHere `for x in [1, 2]: print(x)` prints 1 then 2."
    rest = '{"answer": "ok"}'

    def answer(job: EngineJob) -> EngineResult:
        if job.grammar is not None:
            return EngineResult(rest, "stop", 140, 120, 30)
        if job.messages[-1]["role"] == "user" and job.messages[-1]["content"].startswith("Has"):
            return EngineResult(part, "stop", 60, 50, 25)
        return EngineResult(prose, "stop", 100, 0, 20)

    response, engines = await _prose_first_answer(tmp_path, answer, min_words=100, max_tokens=1000)

    first, extend, last = engines[0].jobs
    assert first.grammar is None and extend.max_tokens == 126 * 2 + 64
    assert extend.grammar is None and extend.messages[-2] == {"role": "assistant", "content": prose}
    assert extend.messages[-1]["content"] == "Has 14; write 126 more."  # 100 - 14 + 40 words
    whole = json.loads(response.text)["content"]
    assert whole.index("## Loops") < whole.index("## Another example") < whole.index("## Summary")
    assert last.messages[-2] == {"role": "assistant", "content": whole}
    assert last.max_tokens == 1000 - 20 - 25
    assert response.usage.output_tokens == 20 + 25 + 30 and response.usage.input_tokens == 300


@needs_binding
async def test_prose_first_at_its_word_floor_is_not_extended(tmp_path: Path) -> None:
    def answer(job: EngineJob) -> EngineResult:
        if job.grammar is None:
            return EngineResult("word " * 50, "stop", 10, 0, 50)
        return EngineResult('{"answer": "ok"}', "stop", 20, 10, 8)

    _, engines = await _prose_first_answer(tmp_path, answer, min_words=50, max_tokens=200)
    assert len(engines[0].jobs) == 2


def test_insert_part_goes_before_the_last_part_or_at_the_end() -> None:
    lesson = "## Intro\n\nText.\n\n## Summary\n\nDone."
    assert (
        insert_part(lesson, "## More\n\nMore.")
        == "## Intro\n\nText.\n\n## More\n\nMore.\n\n## Summary\n\nDone."
    )
    assert insert_part("Just text.", "More.") == "Just text.\n\n## Another example\n\nMore."
    assert insert_part(lesson, "") == lesson
    # a closing part under a level-3 heading is still the one it goes before
    nested = "## Intro\n\nText.\n\n## Words\n\nHola.\n\n### Summary\n\nDone."
    assert insert_part(nested, "## More\n\nMore.").endswith(
        "Hola.\n\n## More\n\nMore.\n\n### Summary\n\nDone."
    )


@needs_binding
async def test_an_extension_cut_at_its_bound_keeps_its_whole_paragraphs(tmp_path: Path) -> None:
    """The extra part goes inside the lesson, where the ending gate's trim cannot reach: one cut
    at its token bound ends at its last whole paragraph."""
    prose = "## Intro\n\nShort text.\n\n## Summary\n\nDone."

    def answer(job: EngineJob) -> EngineResult:
        if job.grammar is not None:
            return EngineResult('{"answer": "ok"}', "stop", 20, 10, 8)
        if job.messages[-1]["content"].startswith("Has"):
            return EngineResult("## More\n\nA whole paragraph.\n\nAnd then a cut sen", "length", 30, 20, 40)
        return EngineResult(prose, "stop", 10, 0, 9)

    response, _ = await _prose_first_answer(tmp_path, answer, min_words=100, max_tokens=1000)
    content = json.loads(response.text)["content"]
    assert content == "## Intro\n\nShort text.\n\n## More\n\nA whole paragraph.\n\n## Summary\n\nDone."


@needs_binding
async def test_prose_first_cut_in_its_json_part_is_a_truncation(tmp_path: Path) -> None:
    def answer(job: EngineJob) -> EngineResult:
        if job.grammar is None:
            return EngineResult("Some prose.", "stop", 10, 0, 5)
        return EngineResult('{"answer": "pa', "length", 20, 10, 8)

    model, engines = scripted(tmp_path, answer=answer)
    schema = {
        "type": "object",
        "properties": {"content": {"type": "string"}, "answer": {"type": "string", "maxLength": 40}},
        "required": ["content", "answer"],
        "additionalProperties": False,
    }
    call = asyncio.create_task(
        model.complete(ask(json_schema=schema, prose_first=ProseFirst(follow_up="Answer."), max_tokens=200))
    )
    await wait_for(lambda: bool(engines))
    engines[0].gate.set()
    with pytest.raises(BadResponse) as info:
        await call
    assert info.value.kind == "truncated" and info.value.usage is not None
    assert info.value.usage.output_tokens == 13


@needs_binding
async def test_prose_first_needs_a_string_first_and_something_after(tmp_path: Path) -> None:
    model, _ = scripted(tmp_path)
    with pytest.raises(ConfigError, match="prose-first"):
        await model.complete(ask(json_schema=SMALL_SCHEMA, prose_first=ProseFirst(follow_up="x")))


@needs_binding
async def test_the_grammar_keeps_the_schema_property_order(tmp_path: Path) -> None:
    model, engines = scripted(tmp_path)
    schema = {
        "type": "object",
        "properties": {
            "question": {"type": "string", "maxLength": 9},
            "answer": {"type": "string", "maxLength": 9},
        },
        "required": ["question", "answer"],
        "additionalProperties": False,
    }
    call = asyncio.create_task(model.complete(ask(json_schema=schema)))
    await wait_for(lambda: bool(engines))
    engines[0].gate.set()
    await call
    grammar = engines[0].jobs[0].grammar
    assert grammar is not None
    assert grammar.index('\\"question\\"') < grammar.index('\\"answer\\"')  # question first, as written


async def test_engine_errors_map_to_the_provider_errors(tmp_path: Path) -> None:
    def refuse(job: EngineJob) -> EngineResult:
        kind = job.messages[0]["content"]
        raise EngineError(f"refused: {kind}", kind=kind)  # type: ignore[arg-type]

    model, engines = scripted(tmp_path, answer=refuse)
    call = asyncio.create_task(model.complete(ask("context")))
    await wait_for(lambda: bool(engines))
    engines[0].gate.set()
    with pytest.raises(BadResponse) as info:
        await call
    assert info.value.kind == "context" and not info.value.retryable

    with pytest.raises(ProviderError) as failed:
        await model.complete(ask("internal"))
    assert not isinstance(failed.value, BadResponse) and failed.value.retryable
    with pytest.raises(ProviderError) as refused:
        await model.complete(ask("request"))
    assert not refused.value.retryable


async def test_an_empty_answer_is_a_bad_response(tmp_path: Path) -> None:
    model, engines = scripted(tmp_path, answer=lambda job: EngineResult("  \n", "stop", 10, 0, 1))
    call = asyncio.create_task(model.complete(ask()))
    await wait_for(lambda: bool(engines))
    engines[0].gate.set()
    with pytest.raises(BadResponse) as info:
        await call
    assert info.value.kind == "empty"


async def test_a_file_is_loaded_once_and_with_one_layout(tmp_path: Path) -> None:
    model, engines = scripted(tmp_path, n_parallel=2)
    twin = LocalLlamaModel("twin", tmp_path / "m.gguf", n_parallel=2, engine_factory=model._factory)
    assert await twin._model() is await model._model()
    assert len(engines) == 1

    other = LocalLlamaModel("other", tmp_path / "m.gguf", n_parallel=3, engine_factory=model._factory)
    with pytest.raises(ConfigError) as info:
        await other._model()
    assert "models.other.local" in str(info.value) and "n_parallel=3" in str(info.value)

    release_loaded_models(tmp_path / "m.gguf")
    assert engines[0].closed


def test_local_settings_are_validated_naming_the_field() -> None:
    settings = load_config("offline", env={}).settings
    local = settings.models[MODEL_ID].local
    assert local is not None and local.n_parallel >= 1 and local.prefix_cache
    assert settings.providers["local"].max_concurrency >= local.n_parallel  # else the batch never fills

    data = yaml.safe_load(_bundled_text("offline"))
    data["models"][MODEL_ID]["local"]["n_parallel"] = 0
    with pytest.raises(ConfigError) as info:
        parse_config(yaml.safe_dump(data), "test", env={})
    assert [path for path, _ in info.value.problems] == [f"models.{MODEL_ID}.local.n_parallel"]


# -- the real model ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> LocalLlamaModel:
    pytest.importorskip("xllamacpp", reason=f"xllamacpp is not installed ({LLAMA_INSTALL_HINT})")
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
        assert exc.usage is not None and exc.usage.output_tokens == 24
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

    # The request the offline profile sends (prose first: the markdown free, then the exercises
    # under the grammar), kept short: a lesson of about 120 words.
    gates = load_config("offline", env={}).settings.gates
    schema = lesson_schema(
        gates.lesson_min_words,
        gates.lesson_max_words,
        gates.max_exercises,
        gates.min_exercises,
        bound_content=False,
    )
    request = ChatRequest(
        [
            Message("system", "You write short, accurate lessons for beginners."),
            Message("user", "Teach Python for-loops in about 120 words of markdown, with one code example."),
        ],
        json_schema=schema,
        max_tokens=model.max_output_tokens,
        temperature=0.2,
        prose_first=ProseFirst(
            follow_up=f"Now write {gates.max_exercises} exercises on it as JSON, each assessing outcome 1.",
            max_prose_tokens=300,
        ),
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
    assert 200 <= len(lesson.content) <= 4000 and not lesson.content.lstrip().startswith("{")
    assert gates.min_exercises <= len(lesson.exercises) <= gates.max_exercises
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.usage.cost_usd == 0 and response.finish_reason == "stop"
    # The loop ticks through the generation: a loop blocked by it would show one gap as long as
    # the call. A share of the call's own wall time, not a fixed second, so that a loaded machine
    # (which slows both) cannot fail it: a 1.0 s bound once met a 1.6 s gap.
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert len(gaps) >= 20, f"the loop ticked {len(gaps)} times in {wall_s:.1f}s"
    assert max(gaps) < wall_s / 4, f"event loop blocked for {max(gaps):.2f}s of {wall_s:.1f}s"
    tok_s = response.usage.output_tokens / (response.latency_ms / 1000)
    print(
        f"\nlesson: wall {wall_s:.1f}s, prompt {response.usage.input_tokens} tok, "
        f"completion {response.usage.output_tokens} tok, {tok_s:.1f} tok/s prose first, "
        f"{len(lesson.content.split())} words, {len(lesson.exercises)} exercise(s)"
    )


@pytest.mark.local_model
async def test_concurrent_requests_each_keep_their_own_grammar(model: LocalLlamaModel) -> None:
    prose = ChatRequest(
        [Message("user", "In two sentences, what is a Python list?")], max_tokens=120, temperature=0.2
    )
    structured = ChatRequest(
        [Message("user", "Answer with JSON: what keyword defines a function in Python?")],
        json_schema=SMALL_SCHEMA,
        max_tokens=60,
        temperature=0.2,
    )
    text, data = await asyncio.gather(model.complete(prose), model.complete(structured))
    assert not text.text.lstrip().startswith("{") and "list" in text.text.lower()
    assert text.finish_reason == "stop" and text.usage.output_tokens < 120  # ended at end of turn
    assert set(__import__("json").loads(data.text)) == {"answer"}


@pytest.mark.local_model
async def test_a_timed_out_request_leaves_the_model_usable(model: LocalLlamaModel) -> None:
    # No answer to this fits in one second of decoding (~15 tokens): a prompt the model could
    # answer briefly (say, with a one-line loop instead of counting) would let it finish in time.
    long_one = ChatRequest(
        [Message("user", "Write a 1000-word essay on the history of the printing press.")],
        max_tokens=1500,
        timeout_s=1,
    )
    with pytest.raises(ProviderTimeout):
        await model.complete(long_one)
    answer = await model.complete(
        ChatRequest([Message("user", "Say OK.")], max_tokens=8, temperature=0.0, timeout_s=120)
    )
    assert answer.text.strip() and answer.usage.output_tokens <= 8


@pytest.mark.local_model
async def test_prompt_longer_than_the_context_is_refused(model: LocalLlamaModel) -> None:
    request = ChatRequest([Message("user", "word " * 6000)], max_tokens=16)
    with pytest.raises(BadResponse) as info:
        await model.complete(request)
    assert info.value.kind == "context" and not info.value.retryable


@pytest.mark.local_model
async def test_models_on_one_file_share_the_weights(model: LocalLlamaModel) -> None:
    twin = LocalLlamaModel(
        "twin",
        model.path,
        n_ctx=model.n_ctx,
        n_threads=model.config.n_threads,
        n_parallel=model.config.n_parallel,
        prefix_cache=model.config.prefix_cache,
    )
    assert await twin._model() is await model._model()
