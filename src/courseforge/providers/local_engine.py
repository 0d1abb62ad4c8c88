"""The llama.cpp decode engine behind `LocalLlamaModel`: one model, one context, N sequences.

`LlamaServerEngine` runs llama.cpp's own server loop inside this process through the `xllamacpp`
wheel (a prebuilt CPU build: nothing to compile at install time). One llama.cpp context holds
`n_parallel` sequences ("slots") and decodes them together, one batch per step (continuous
batching): a request arriving while others decode joins at the next step, a finished or cancelled
one frees its slot at once, and each slot has its own sampler chain and its own GBNF grammar, or
none. With `prefix_cache` a slot reuses the KV cells of the prompt prefix it shares with its
previous request, and a RAM cache of finished prompts lets another slot start from them.

Why llama.cpp's server loop and not a loop of ours over the C API: it is the reference
implementation of exactly this scheduler, it runs in C++ with the GIL released, and its grammar
sampler checks the sampled token first and constrains the whole vocabulary only when that token
is rejected (measured 1.4x faster under our lesson grammar than llama-cpp-python's, which
constrains every token). The one Python binding with prebuilt CPU wheels that loads on our
machines exposes that loop, not a stable low-level API; `benchmarks/local_decode.py` measures it
against llama-cpp-python. Its CPU build stops at AVX2, so a single free-text sequence is ~20%
slower than a native AVX-512 build; four sequences at once more than make up for it.

`DecodeEngine` is the seam: `LocalLlamaModel` only calls `run(job)` from worker threads, so tests
inject a scripted engine instead of loading weights.
"""

from __future__ import annotations

import ctypes
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from ..errors import ConfigError

__all__ = [
    "INSTALL_HINT",
    "DecodeEngine",
    "EngineConfig",
    "EngineError",
    "EngineFactory",
    "EngineJob",
    "EngineResult",
    "LlamaServerEngine",
    "binding",
    "check_gbnf",
]

#: The pinned binding (prebuilt manylinux CPU wheel, llama.cpp built in).
INSTALL_HINT = "pip install xllamacpp==2026.10.11549"

#: Host RAM for prompt states a slot may restore from another slot's finished request.
_PROMPT_CACHE_RAM_MIB = 512


def binding() -> Any:
    """The `xllamacpp` module, imported on first use so `import courseforge` never needs it."""
    try:
        import xllamacpp
    except ImportError as exc:
        raise ConfigError(
            f"the local model provider needs xllamacpp; install it with `{INSTALL_HINT}` "
            "(a prebuilt wheel, no compiler needed)",
            [("providers.*.kind", "local")],
        ) from exc
    return xllamacpp


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """What one loaded model is: the file and how its single context is laid out."""

    path: Path
    #: Tokens one sequence may hold, prompt and answer together (each slot gets all of them).
    n_ctx: int
    n_threads: int
    #: Sequences decoded at once in the one context.
    n_parallel: int
    #: Reuse KV cells for a prompt prefix already decoded (same slot, or the RAM prompt cache).
    prefix_cache: bool


@dataclass(frozen=True, slots=True)
class EngineJob:
    """One chat completion for the engine. `cancel` may be set from any thread."""

    messages: Sequence[Mapping[str, str]]
    max_tokens: int
    temperature: float
    #: GBNF text (root rule `root`) the answer must match, or None for free text.
    grammar: str | None = None
    #: Strings that end the answer (not included in it); the end-of-turn token always does.
    stop: Sequence[str] = ()
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True, slots=True)
class EngineResult:
    text: str
    #: "stop" (end of turn, a stop string, or the grammar complete), "length" (max_tokens or the
    #: sequence's context ran out) or "cancelled".
    finish_reason: str
    #: Every prompt token, including those served from the prefix cache.
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int


class EngineError(Exception):
    """The engine refused or failed a job. `kind` says which, so callers can map it."""

    def __init__(self, message: str, *, kind: Literal["context", "request", "internal"]) -> None:
        self.kind = kind
        super().__init__(message)


class DecodeEngine(Protocol):
    config: EngineConfig

    def run(self, job: EngineJob) -> EngineResult:
        """Decode `job` to the end (blocking; called from worker threads, several at once).

        Must return soon after `job.cancel` is set, with the slot free for the next job."""
        ...

    def close(self) -> None:
        """Free the weights and the context. No job may be running."""
        ...


EngineFactory = Callable[[EngineConfig], DecodeEngine]


class LlamaServerEngine:
    """llama.cpp's server loop in-process (xllamacpp): the production `DecodeEngine`."""

    def __init__(self, config: EngineConfig) -> None:
        xllamacpp = binding()
        self.config = config
        params = xllamacpp.CommonParams()
        params.model.path = str(config.path)
        params.n_parallel = config.n_parallel
        # Without a unified KV cache llama.cpp splits n_ctx evenly between the sequences.
        params.n_ctx = config.n_ctx * config.n_parallel
        params.kv_unified = False
        params.cont_batching = True
        params.cpuparams.n_threads = config.n_threads
        params.cpuparams_batch.n_threads = config.n_threads
        params.cache_prompt = config.prefix_cache
        params.cache_ram_mib = _PROMPT_CACHE_RAM_MIB if config.prefix_cache else 0
        params.fit_params = False  # never shrink the context we asked for behind our back
        params.verbosity = 0
        # The server also listens on a random loopback port; nobody here uses it, so it gets a
        # key nobody knows, and no web UI. Our calls go straight to its handlers.
        params.api_keys = [secrets.token_urlsafe(32)]
        params.ui = False
        params.endpoint_slots = False
        params.endpoint_metrics = False
        params.n_threads_http = 1
        try:
            self._server: Any = xllamacpp.Server(params)
        except RuntimeError as exc:
            raise ConfigError(
                f"llama.cpp could not load the local model: {exc}", [("local.path", str(config.path))]
            ) from exc

    def run(self, job: EngineJob) -> EngineResult:
        request: dict[str, Any] = {
            "messages": [{"role": m["role"], "content": m["content"]} for m in job.messages],
            "max_tokens": job.max_tokens,
            "temperature": job.temperature,
            "stream": True,  # a callback per token is what lets a cancelled job stop early
            "stream_options": {"include_usage": True},
            "cache_prompt": self.config.prefix_cache,
        }
        if job.grammar is not None:
            request["grammar"] = job.grammar
        if job.stop:
            request["stop"] = list(job.stop)
        reader = _StreamReader(job.cancel)
        self._server.handle_chat_completions(request, reader.on_chunk)
        return reader.result()

    def close(self) -> None:
        self._server = None  # the binding joins its loop thread and frees the context


class _StreamReader:
    """Collects one streamed answer; tells the server to stop when the job is cancelled."""

    def __init__(self, cancel: threading.Event) -> None:
        self._cancel = cancel
        self._parts: list[str] = []
        self._finish = ""
        self._usage: Mapping[str, Any] = {}
        self._timings: Mapping[str, Any] = {}
        self._error: Mapping[str, Any] | None = None

    def on_chunk(self, chunk: Mapping[str, Any]) -> bool:
        """Called by the server thread per event; returning True ends (and frees) the slot."""
        error = _error_of(chunk)
        if error is not None:
            self._error = error
            return True
        choices = chunk.get("choices") or ()
        if choices:
            choice = choices[0]
            piece = (choice.get("delta") or {}).get("content")
            if piece:
                self._parts.append(piece)
            if choice.get("finish_reason"):
                self._finish = str(choice["finish_reason"])
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        if chunk.get("timings"):
            self._timings = chunk["timings"]
        return self._cancel.is_set()

    def result(self) -> EngineResult:
        if self._error is not None:
            message = str(self._error.get("message") or self._error)
            if self._error.get("type") == "exceed_context_size_error":
                raise EngineError(message, kind="context")
            code = self._error.get("code")
            raise EngineError(message, kind="request" if code == 400 else "internal")
        finish = self._finish or ("cancelled" if self._cancel.is_set() else "")
        if not finish:
            raise EngineError("the answer stream ended without a finish reason", kind="internal")
        cached = int(self._timings.get("cache_n") or 0)
        prompt = int(self._usage.get("prompt_tokens") or 0) or cached + int(
            self._timings.get("prompt_n") or 0
        )
        completion = int(self._usage.get("completion_tokens") or self._timings.get("predicted_n") or 0)
        return EngineResult(
            text="".join(self._parts),
            finish_reason=finish,
            prompt_tokens=prompt,
            cached_tokens=cached,
            completion_tokens=completion,
        )


def _error_of(chunk: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The server's error object, from a refused request or a failed stream (two shapes)."""
    error = chunk.get("error")
    if isinstance(error, Mapping):
        return error
    if "message" in chunk and ("code" in chunk or "type" in chunk) and "choices" not in chunk:
        return chunk
    return None


def check_gbnf(gbnf: str) -> None:
    """Raise ValueError if llama.cpp cannot parse `gbnf` (it would fail every request later).

    Parsed by the same llama.cpp the engine runs, through the C function the binding's extension
    module exports (`llama_sampler_init_grammar`); no model needs to be loaded."""
    lib = _grammar_lib()
    sampler = lib.llama_sampler_init_grammar(None, gbnf.encode("utf-8"), b"root")
    if not sampler:
        raise ValueError("llama.cpp rejected the grammar (its parse error is on stderr)")
    lib.llama_sampler_free(sampler)


_lib_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


def _grammar_lib() -> ctypes.CDLL:
    global _lib
    with _lib_lock:
        if _lib is None:
            module = binding().xllamacpp
            lib = ctypes.CDLL(str(module.__file__))
            try:
                init, free = lib.llama_sampler_init_grammar, lib.llama_sampler_free
            except AttributeError as exc:  # a build that hides llama.cpp's C symbols
                raise ConfigError(
                    "this xllamacpp build does not export llama.cpp's grammar API",
                    [("xllamacpp", f"reinstall it with `{INSTALL_HINT}`")],
                ) from exc
            init.restype = ctypes.c_void_p
            init.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
            free.restype = None
            free.argtypes = [ctypes.c_void_p]
            _lib = lib
        return _lib
