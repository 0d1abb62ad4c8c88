"""In-process llama.cpp model behind the `ChatModel` interface (the offline profile).

Weights are loaded once per process per file and shared by every `LocalLlamaModel` naming that
file. A loaded model generates one answer at a time: callers queue on an `asyncio.Lock` (per
event loop) and the generation itself runs in a worker thread, so the event loop never blocks;
a `threading.Lock` is the real guard of the llama context, so even a caller that gave up (timeout,
cancellation) cannot start a second generation on it while the first is still running.

Structured output uses a GBNF grammar from `grammar.gbnf_for_schema`, with explicit bounds on
every string and list, instead of llama.cpp's own schema converter (which crashes on long
strings) or unconstrained JSON mode (where small models loop). `llama_cpp` is imported lazily so
`import courseforge` works without it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..config.settings import ModelSettings
from ..errors import BadResponse, ConfigError, ProviderError, ProviderTimeout
from .base import ChatModel, ChatRequest, ChatResponse, Usage
from .grammar import gbnf_for_schema
from .model_files import assemble_model

__all__ = ["LLAMA_INSTALL_HINT", "LocalLlamaModel", "check_gbnf", "release_loaded_models"]

LLAMA_INSTALL_HINT = "pip install llama-cpp-python==0.3.36"

#: Tokens the chat template adds per message (role markers, newlines), and once per prompt
#: (a default system prompt some templates insert, the assistant header); used to refuse
#: requests that cannot fit before llama.cpp is asked.
_TOKENS_PER_MESSAGE = 6
_TOKENS_PER_PROMPT = 48


def _llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise ConfigError(
            f"the local model provider needs llama-cpp-python; install it with `{LLAMA_INSTALL_HINT}` "
            "(it builds from source, ≈ 8 minutes on 2 cores)",
            [("providers.*.kind", "local")],
        ) from exc
    return llama_cpp


@dataclass
class _Loaded:
    """One llama.cpp model in memory, shared by every LocalLlamaModel using its file."""

    llama: Any
    n_ctx: int
    thread_lock: threading.Lock = field(default_factory=threading.Lock)
    _locks_guard: threading.Lock = field(default_factory=threading.Lock)
    loop_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = field(
        default_factory=weakref.WeakKeyDictionary
    )

    def queue_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._locks_guard:
            lock = self.loop_locks.get(loop)
            if lock is None:
                lock = self.loop_locks[loop] = asyncio.Lock()
        return lock


_registry: dict[str, _Loaded] = {}
_registry_lock = threading.Lock()
_grammars: dict[str, Any] = {}
_grammars_lock = threading.Lock()


def _load(path: Path, *, n_ctx: int, n_threads: int) -> _Loaded:
    key = str(path.resolve())
    with _registry_lock:
        loaded = _registry.get(key)
        if loaded is None:
            llama_cpp = _llama_cpp()
            llama = llama_cpp.Llama(
                model_path=key,
                n_ctx=n_ctx,
                n_threads=n_threads,
                n_threads_batch=n_threads,
                verbose=False,
            )
            loaded = _registry[key] = _Loaded(llama=llama, n_ctx=int(llama.n_ctx()))
        return loaded


def release_loaded_models() -> None:
    """Free every loaded model (tests, or a worker shutting down). Later calls reload."""
    with _registry_lock:
        loaded = list(_registry.values())
        _registry.clear()
    for entry in loaded:
        with entry.thread_lock:
            close = getattr(entry.llama, "close", None)
            if callable(close):
                close()


def check_gbnf(gbnf: str) -> None:
    """Raise ValueError if llama.cpp cannot parse `gbnf` (it would crash the sampler later)."""
    llama_cpp = _llama_cpp()
    sampler = llama_cpp.llama_sampler_init_grammar(None, gbnf.encode("utf-8"), b"root")
    if not sampler:
        raise ValueError("llama.cpp rejected the grammar (its parse error is on stderr)")
    llama_cpp.llama_sampler_free(sampler)


def _grammar_for(schema: Mapping[str, Any], model_id: str) -> Any:
    digest = hashlib.sha256(json.dumps(schema, sort_keys=True).encode()).hexdigest()
    with _grammars_lock:
        cached = _grammars.get(digest)
    if cached is not None:
        return cached
    try:
        gbnf = gbnf_for_schema(schema)
        check_gbnf(gbnf)
    except ValueError as exc:
        raise ConfigError(
            f"model {model_id!r} cannot constrain output to this schema; use output_mode: prompt",
            [("json_schema", str(exc))],
        ) from exc
    grammar = _llama_cpp().LlamaGrammar.from_string(gbnf, verbose=False)
    with _grammars_lock:
        _grammars[digest] = grammar
    return grammar


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
    ) -> None:
        _llama_cpp()  # fail at construction, with the install hint, not at the first call
        self.model_id = model_id
        self.path = Path(path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads or os.cpu_count() or 1
        self.max_output_tokens = max_output_tokens
        self._loaded: _Loaded | None = None

    @classmethod
    def from_settings(cls, model_id: str, settings: ModelSettings, cache_dir: Path) -> LocalLlamaModel:
        """Assemble and verify the model file (once per cache), then describe the model."""
        if settings.local is None:
            raise ConfigError(
                "local model needs a `local` section", [(f"models.{model_id}.local", "missing")]
            )
        path = assemble_model(settings.local, cache_dir)
        return cls(
            model_id,
            path,
            n_ctx=min(settings.local.n_ctx, settings.context_window),
            n_threads=settings.local.n_threads,
            max_output_tokens=settings.max_output_tokens,
        )

    async def _model(self) -> _Loaded:
        if self._loaded is None:
            self._loaded = await asyncio.to_thread(
                _load, self.path, n_ctx=self.n_ctx, n_threads=self.n_threads
            )
        return self._loaded

    async def complete(self, request: ChatRequest) -> ChatResponse:
        loaded = await self._model()
        grammar = _grammar_for(request.json_schema, self.model_id) if request.json_schema else None
        max_tokens = max(1, min(request.max_tokens, self.max_output_tokens))
        async with loaded.queue_lock():
            work = asyncio.ensure_future(
                asyncio.to_thread(self._generate, loaded, request, grammar, max_tokens)
            )
            try:
                async with asyncio.timeout(request.timeout_s):
                    result, latency_ms = await asyncio.shield(work)
            except TimeoutError:
                # The thread cannot be interrupted; it finishes under the thread lock.
                raise ProviderTimeout(f"no answer within {request.timeout_s}s", model=self.model_id) from None
        return self._response(result, request, latency_ms)

    def _generate(
        self, loaded: _Loaded, request: ChatRequest, grammar: Any, max_tokens: int
    ) -> tuple[Mapping[str, Any], float]:
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        with loaded.thread_lock:
            prompt_tokens = self._estimate_prompt_tokens(loaded, messages)
            if prompt_tokens >= loaded.n_ctx:
                raise self._context_error(f"prompt needs ≈ {prompt_tokens} tokens", loaded.n_ctx)
            started = time.perf_counter()
            try:
                result = loaded.llama.create_chat_completion(
                    messages=messages,
                    max_tokens=max_tokens,
                    temperature=request.temperature,
                    grammar=grammar,
                )
            except ValueError as exc:
                if "context window" in str(exc):
                    raise self._context_error(str(exc), loaded.n_ctx) from exc
                raise ProviderError(f"llama.cpp failed: {exc}", model=self.model_id) from exc
            latency_ms = (time.perf_counter() - started) * 1000.0
        if not isinstance(result, Mapping):
            raise ProviderError("llama.cpp returned a stream, expected one completion", model=self.model_id)
        return result, latency_ms

    def _estimate_prompt_tokens(self, loaded: _Loaded, messages: list[dict[str, str]]) -> int:
        tokenize = loaded.llama.tokenize
        content = sum(len(tokenize(m["content"].encode("utf-8"), add_bos=False)) for m in messages)
        return content + _TOKENS_PER_MESSAGE * len(messages) + _TOKENS_PER_PROMPT

    def _context_error(self, detail: str, n_ctx: int) -> BadResponse:
        err = BadResponse(
            f"request does not fit the context window of {n_ctx} tokens ({detail})",
            model=self.model_id,
            kind="context",
        )
        err.retryable = False  # the same model will never fit it; a long-context tier might
        return err

    def _response(self, result: Mapping[str, Any], request: ChatRequest, latency_ms: float) -> ChatResponse:
        choices = result.get("choices") or []
        if not choices:
            raise BadResponse("llama.cpp returned no choices", model=self.model_id, kind="empty")
        choice = choices[0]
        text = str((choice.get("message") or {}).get("content") or "")
        finish_reason = str(choice.get("finish_reason") or "")
        if finish_reason == "length" and request.json_schema is not None:
            raise BadResponse(
                "answer cut off at max_tokens", model=self.model_id, kind="truncated", text=text
            )
        if not text.strip():
            raise BadResponse("empty answer", model=self.model_id, kind="empty")
        raw_usage = result.get("usage") or {}
        usage = Usage(
            input_tokens=int(raw_usage.get("prompt_tokens") or 0),
            output_tokens=int(raw_usage.get("completion_tokens") or 0),
            cost_usd=Decimal(0),
        )
        return ChatResponse(
            text=text,
            usage=usage,
            latency_ms=latency_ms,
            model=self.model_id,  # llama.cpp names the model by its file path
            finish_reason=finish_reason,
        )
