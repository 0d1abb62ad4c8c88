"""In-process llama.cpp model behind the `ChatModel` interface (the offline profile).

Weights are loaded once per process per file, into one llama.cpp context that decodes up to
`n_parallel` requests at once (`local_engine.py`). Callers wait for a free sequence on an
`asyncio.Semaphore` (per event loop); the decode runs in a worker thread, so the event loop never
blocks. A sequence is handed back only when the engine has really let go of it: a caller that
gave up (timeout, cancellation) sets the job's cancel flag, and llama.cpp stops that sequence at
its next token while the others go on.

Structured output uses a GBNF grammar from `grammar.gbnf_for_schema`, with explicit bounds on
every string and list, instead of llama.cpp's own schema converter (which crashes on long
strings) or unconstrained JSON mode (where small models loop). The binding is imported lazily so
`import courseforge` works without it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..config.settings import DEFAULT_N_PARALLEL, ModelSettings
from ..errors import BadResponse, ConfigError, ProviderError, ProviderTimeout
from .base import ChatModel, ChatRequest, ChatResponse, ProseFirst, Usage
from .grammar import gbnf_for_schema
from .local_engine import (
    INSTALL_HINT,
    DecodeEngine,
    EngineConfig,
    EngineError,
    EngineFactory,
    EngineJob,
    EngineResult,
    LlamaServerEngine,
    binding,
    check_gbnf,
)
from .model_files import assemble_model

__all__ = ["LLAMA_INSTALL_HINT", "LocalLlamaModel", "check_gbnf", "release_loaded_models"]

LLAMA_INSTALL_HINT = INSTALL_HINT


@dataclass
class _Loaded:
    """One model in memory, shared by every LocalLlamaModel naming its file."""

    engine: DecodeEngine
    executor: ThreadPoolExecutor
    _guard: threading.Lock = field(default_factory=threading.Lock)
    _slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = field(
        default_factory=weakref.WeakKeyDictionary
    )

    def slots(self) -> asyncio.Semaphore:
        """This event loop's count of free sequences."""
        loop = asyncio.get_running_loop()
        with self._guard:
            sem = self._slots.get(loop)
            if sem is None:
                sem = self._slots[loop] = asyncio.Semaphore(self.engine.config.n_parallel)
        return sem


_registry: dict[str, _Loaded] = {}
_registry_lock = threading.Lock()


def _load(config: EngineConfig, factory: EngineFactory, model_id: str) -> _Loaded:
    key = str(config.path.resolve())  # one model per file, however many LocalLlamaModels name it
    with _registry_lock:
        loaded = _registry.get(key)
        if loaded is None:
            engine = factory(config)
            executor = ThreadPoolExecutor(
                max_workers=config.n_parallel + 2, thread_name_prefix="courseforge-llama"
            )
            loaded = _registry[key] = _Loaded(engine=engine, executor=executor)
        elif _layout(loaded.engine.config) != _layout(config):
            raise ConfigError(
                "two local models share one file with different settings; the file is loaded once",
                [
                    (
                        f"models.{model_id}.local",
                        f"loaded with {_layout(loaded.engine.config)}, asked for {_layout(config)}",
                    )
                ],
            )
        return loaded


def _layout(config: EngineConfig) -> str:
    return (
        f"n_ctx={config.n_ctx}, n_threads={config.n_threads}, n_parallel={config.n_parallel}, "
        f"prefix_cache={config.prefix_cache}"
    )


def release_loaded_models(path: Path | None = None) -> None:
    """Free the model loaded from `path`, or every one (tests, or a worker shutting down).

    Running jobs finish first; later calls load the file again."""
    with _registry_lock:
        keys = list(_registry) if path is None else [str(Path(path).resolve())]
        loaded = [entry for key in keys if (entry := _registry.pop(key, None)) is not None]
    for entry in loaded:
        entry.executor.shutdown(wait=True)  # running jobs finish first
        entry.engine.close()


@functools.lru_cache(maxsize=256)
def _checked_gbnf(schema_json: str) -> str:
    gbnf = gbnf_for_schema(json.loads(schema_json))
    check_gbnf(gbnf)
    return gbnf


def _grammar_for(schema: Mapping[str, Any], model_id: str) -> str:
    try:
        # Keyed by the schema as written: property order is the order the model must write them
        # in (content before exercises, question before answer), so it is part of the grammar.
        return _checked_gbnf(json.dumps(schema))
    except ValueError as exc:
        raise ConfigError(
            f"model {model_id!r} cannot constrain output to this schema; use output_mode: prompt",
            [("json_schema", str(exc))],
        ) from exc


class LocalLlamaModel(ChatModel):
    """A GGUF model run by llama.cpp in this process. Costs nothing; reports real token counts."""

    def __init__(
        self,
        model_id: str,
        path: Path,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        max_output_tokens: int = 4096,
        n_parallel: int = DEFAULT_N_PARALLEL,
        prefix_cache: bool = True,
        engine_factory: EngineFactory | None = None,
    ) -> None:
        if engine_factory is None:
            binding()  # fail at construction, with the install hint, not at the first call
        self.model_id = model_id
        self.path = Path(path)
        self.n_ctx = n_ctx
        self.max_output_tokens = max_output_tokens
        self.config = EngineConfig(
            path=self.path,
            n_ctx=n_ctx,
            n_threads=n_threads or os.cpu_count() or 1,
            n_parallel=n_parallel,
            prefix_cache=prefix_cache,
        )
        self._factory: EngineFactory = engine_factory or LlamaServerEngine
        self._key = str(self.path.resolve())

    @classmethod
    def from_settings(cls, model_id: str, settings: ModelSettings, cache_dir: Path) -> LocalLlamaModel:
        """Assemble and verify the model file (once per cache), then describe the model."""
        local = settings.local
        if local is None:
            raise ConfigError(
                "local model needs a `local` section", [(f"models.{model_id}.local", "missing")]
            )
        path = assemble_model(local, cache_dir)
        return cls(
            model_id,
            path,
            n_ctx=min(local.n_ctx, settings.context_window),
            n_threads=local.n_threads,
            max_output_tokens=settings.max_output_tokens,
            n_parallel=local.n_parallel,
            prefix_cache=local.prefix_cache,
        )

    async def _model(self) -> _Loaded:
        loaded = _registry.get(self._key)
        if loaded is None or loaded.engine.config != self.config:
            loaded = await asyncio.to_thread(_load, self.config, self._factory, self.model_id)
        return loaded

    async def complete(self, request: ChatRequest) -> ChatResponse:
        loaded = await self._model()
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        max_tokens = max(1, min(request.max_tokens, self.max_output_tokens))
        cancel = threading.Event()
        run: Callable[[DecodeEngine], EngineResult]
        if request.prose_first is not None and request.json_schema:
            field_name, rest = _split_schema(request.json_schema, self.model_id)
            run = functools.partial(
                _prose_first,
                messages=messages,
                plan=request.prose_first,
                field_name=field_name,
                grammar=_grammar_for(rest, self.model_id),
                max_tokens=max_tokens,
                temperature=request.temperature,
                cancel=cancel,
            )
        else:
            grammar = _grammar_for(request.json_schema, self.model_id) if request.json_schema else None
            job = EngineJob(
                messages=messages,
                max_tokens=max_tokens,
                temperature=request.temperature,
                grammar=grammar,
                cancel=cancel,
            )
            run = functools.partial(_run_job, job=job)
        slots = loaded.slots()
        await slots.acquire()
        try:
            work = asyncio.get_running_loop().run_in_executor(loaded.executor, _timed_run, loaded.engine, run)
        except BaseException:
            slots.release()
            raise
        # The sequence is free again only when the engine returns, even if we stop waiting.
        work.add_done_callback(functools.partial(_release, slots))
        try:
            async with asyncio.timeout(request.timeout_s):
                result, latency_ms = await asyncio.shield(work)
        except TimeoutError:
            cancel.set()
            raise ProviderTimeout(f"no answer within {request.timeout_s}s", model=self.model_id) from None
        except asyncio.CancelledError:
            cancel.set()
            raise
        except EngineError as exc:
            raise self._engine_error(exc) from exc
        return self._response(result, request, latency_ms)

    def _engine_error(self, exc: EngineError) -> ProviderError:
        if exc.kind == "context":
            err = BadResponse(
                f"request does not fit the context window of {self.n_ctx} tokens ({exc})",
                model=self.model_id,
                kind="context",
            )
            err.retryable = False  # the same model will never fit it; a long-context tier might
            return err
        err2 = ProviderError(f"llama.cpp failed: {exc}", model=self.model_id)
        err2.retryable = exc.kind == "internal"
        return err2

    def _response(self, result: EngineResult, request: ChatRequest, latency_ms: float) -> ChatResponse:
        usage = Usage(
            input_tokens=result.prompt_tokens,
            output_tokens=result.completion_tokens,
            cached_tokens=result.cached_tokens,
            cost_usd=Decimal(0),
        )
        if result.finish_reason == "length" and request.json_schema is not None:
            raise BadResponse(
                "answer cut off at max_tokens",
                model=self.model_id,
                kind="truncated",
                text=result.text,
                usage=usage,
            )
        if not result.text.strip():
            raise BadResponse("empty answer", model=self.model_id, kind="empty", usage=usage)
        return ChatResponse(
            text=result.text,
            usage=usage,
            latency_ms=latency_ms,
            model=self.model_id,  # llama.cpp names the model by its file path
            finish_reason=result.finish_reason,
        )


def _release(slots: asyncio.Semaphore, work: asyncio.Future[Any]) -> None:
    slots.release()
    if not work.cancelled():
        work.exception()  # retrieved: a job nobody waits for any more must not log its error


def _timed_run(
    engine: DecodeEngine, run: Callable[[DecodeEngine], EngineResult]
) -> tuple[EngineResult, float]:
    started = time.perf_counter()
    result = run(engine)
    return result, (time.perf_counter() - started) * 1000.0


def _run_job(engine: DecodeEngine, *, job: EngineJob) -> EngineResult:
    return engine.run(job)


def _split_schema(schema: Mapping[str, Any], model_id: str) -> tuple[str, dict[str, Any]]:
    """The name of `schema`'s first property (a string: the free-text part) and the schema of
    the other properties (the JSON part)."""
    props: Mapping[str, Any] = schema.get("properties") or {}
    names = list(props)
    if schema.get("type") != "object" or len(names) < 2 or props[names[0]].get("type") != "string":
        raise ConfigError(
            f"model {model_id!r} cannot answer this schema prose-first",
            [("prose_first", "needs an object schema whose first property is a string, and others")],
        )
    rest = {
        **schema,
        "properties": {k: v for k, v in props.items() if k != names[0]},
        "required": [k for k in schema.get("required", names) if k != names[0]],
    }
    return names[0], rest


def _prose_first(
    engine: DecodeEngine,
    *,
    messages: list[dict[str, str]],
    plan: ProseFirst,
    field_name: str,
    grammar: str,
    max_tokens: int,
    temperature: float,
    cancel: threading.Event,
) -> EngineResult:
    """Two turns in one slot: the free-text part without a grammar (twice as fast here as the
    same text under one), then the rest as JSON under `grammar`, asked by `plan.follow_up` with
    the first answer in the context (its KV cells reused from the first turn). A free-text
    part under `plan.min_words` gets one more part first (`_extend`, a turn between the two).
    One JSON answer.
    """
    prose = engine.run(
        EngineJob(
            messages=messages,
            max_tokens=max(1, min(plan.max_prose_tokens, max_tokens - 64)),
            temperature=temperature,
            stop=plan.stop,
            cancel=cancel,
        )
    )
    if prose.finish_reason == "cancelled":
        return prose
    text = prose.text.strip()
    extra = _extend(engine, messages, plan, text, temperature, cancel)
    if extra is not None:
        if extra.finish_reason == "cancelled":
            return extra
        part = extra.text.strip()
        if extra.finish_reason == "length":  # cut at its bound: it ends at its last whole paragraph
            part = part[: part.rfind("\n\n")].rstrip() if "\n\n" in part else ""
        text = insert_part(text, part)
    rest = engine.run(
        EngineJob(
            messages=[
                *messages,
                {"role": "assistant", "content": text},
                {"role": "user", "content": plan.follow_up},
            ],
            max_tokens=max(
                64, max_tokens - prose.completion_tokens - (extra.completion_tokens if extra else 0)
            ),
            temperature=temperature,
            grammar=grammar,
            cancel=cancel,
        )
    )
    joined = rest.text
    if rest.finish_reason == "stop":
        try:
            tail = json.loads(rest.text, strict=False)
        except ValueError:
            tail = None
        if isinstance(tail, dict):
            joined = json.dumps({field_name: text, **tail}, ensure_ascii=False)
    turns = [prose, rest] if extra is None else [prose, extra, rest]
    return EngineResult(
        text=joined,
        finish_reason=rest.finish_reason,
        prompt_tokens=sum(t.prompt_tokens for t in turns),
        cached_tokens=sum(t.cached_tokens for t in turns),
        completion_tokens=sum(t.completion_tokens for t in turns),
    )


#: Words as the length gate counts them (`quality.gates.word_count`, which this layer may not import).
_WORDS = re.compile(r"\w+(?:['’-]\w+)*")
#: A level-2 heading line: where a part of a markdown lesson starts.
_PART = re.compile(r"^## ", re.MULTILINE)
#: A heading (level 2 or 3) that opens a lesson's closing part.
_CLOSING = re.compile(r"^#{2,3} .*\b(summary|conclusion|recap|wrap)", re.MULTILINE | re.IGNORECASE)
#: Tokens per word asked for in an extension (markdown and code included), and its least size.
_EXTEND_TOKENS_PER_WORD, _EXTEND_MIN_WORDS = 2, 80


def _extend(
    engine: DecodeEngine,
    messages: list[dict[str, str]],
    plan: ProseFirst,
    text: str,
    temperature: float,
    cancel: threading.Event,
) -> EngineResult | None:
    """One more part for a free-text answer under `plan.min_words` (None when it is not short):
    a third turn of the same sequence, the answer so far in its context."""
    have = len(_WORDS.findall(text))
    if not plan.min_words or not plan.extend or have >= plan.min_words:
        return None
    need = max(_EXTEND_MIN_WORDS, plan.min_words - have + _EXTEND_MIN_WORDS // 2)
    ask = plan.extend.replace("{have}", str(have)).replace("{need}", str(need))
    return engine.run(
        EngineJob(
            messages=[*messages, {"role": "assistant", "content": text}, {"role": "user", "content": ask}],
            max_tokens=need * _EXTEND_TOKENS_PER_WORD + 64,
            temperature=temperature,
            stop=plan.stop,
            cancel=cancel,
        )
    )


def insert_part(text: str, part: str) -> str:
    """`part` (a markdown part; given a `## ` heading when it has none) placed before the
    heading of `text`'s closing part (the last "Summary", "Conclusion", ... heading), else
    before its last `## ` heading, or after it when `text` has fewer than two. An empty part
    leaves `text` as it is."""
    if not part:
        return text
    if not part.startswith("#"):
        part = "## Another example\n\n" + part
    closing = [m.start() for m in _CLOSING.finditer(text)]
    starts = [m.start() for m in _PART.finditer(text)]
    if not closing and len(starts) < 2:
        return f"{text}\n\n{part}"
    cut = closing[-1] if closing else starts[-1]
    return f"{text[:cut].rstrip()}\n\n{part}\n\n{text[cut:]}"
