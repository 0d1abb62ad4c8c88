"""Helpers for the engine tests: hosted settings with the hashing embedder, the example
analysis, scripted models per model id, and an engine wired to them."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import yaml

from courseforge.config import Settings, load_config
from courseforge.domain import AnalysisResult
from courseforge.engine import CourseCalls, Engine, Runtime
from courseforge.ledger import Ledger
from courseforge.pipeline import validate_analysis
from courseforge.providers import ChatModel, ChatRequest, Embedder, Message
from courseforge.providers.embeddings import CachedEmbedder, HashingEmbedder
from courseforge.testing import CourseAuthor, LoopbackReply, LoopbackServer, Script, ScriptedModel
from courseforge.testing._openai_wire import LocalOpenAIServer
from courseforge.testing.loopback import LoopbackHandler

S = TypeVar("S", bound=LocalOpenAIServer)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def hosted_settings(**updates: Any) -> Settings:
    """The bundled hosted profile, gated with the hashing embedder (fast, no torch)."""
    settings = load_config("hosted", env={"OPENROUTER_API_KEY": "test-key"}).settings
    gates = settings.gates.model_copy(update={"embedding_model": "hashing"})
    return settings.model_copy(update={"gates": gates, **updates})


def example_data(name: str = "python-basics") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text("utf-8"))
    return data


def example_analysis(name: str = "python-basics", **overrides: Any) -> AnalysisResult:
    return validate_analysis({**example_data(name), **overrides})


def scripted_models(
    settings: Settings, script_for: Callable[[str], Script] | None = None, *, latency_s: float = 0.0
) -> dict[str, ScriptedModel]:
    """One ScriptedModel per configured model id; `script_for(model_id)` gives its script
    (default: a fresh CourseAuthor)."""
    make = script_for or (lambda _model_id: CourseAuthor())
    return {m: ScriptedModel(make(m), model_id=m, latency_s=latency_s) for m in settings.models}


def course_calls(
    settings: Settings,
    models: Mapping[str, ChatModel],
    ledger: Ledger,
    *,
    chains: Mapping[str, Sequence[ChatModel]] | None = None,
    embedder: Embedder | None = None,
) -> CourseCalls:
    """A course's metered calls straight on `models` (no resilience stack): each model id is
    its own one-model chain unless `chains` says otherwise."""
    runtime = Runtime(
        chains=chains or {m: [model] for m, model in models.items()},
        embedder=embedder or CachedEmbedder(HashingEmbedder()),
    )
    return CourseCalls(settings, runtime, ledger)


def make_engine(settings: Settings, models: Mapping[str, ChatModel]) -> Engine:
    return Engine(settings, env={}, models=models, embedder=CachedEmbedder(HashingEmbedder()))


def request_from_payload(payload: Mapping[str, Any]) -> ChatRequest:
    """An OpenAI chat payload back into a ChatRequest (for CourseAuthor behind a server)."""
    return ChatRequest([Message(m["role"], m["content"]) for m in payload["messages"]])


def author_reply(author: CourseAuthor | None = None) -> Callable[[dict[str, Any]], LoopbackReply]:
    """A LoopbackServer handler answering like an OpenAI-compatible provider with CourseAuthor text."""
    writer = author or CourseAuthor()

    def handler(payload: dict[str, Any]) -> LoopbackReply:
        text = writer(request_from_payload(payload))
        prompt = sum(len(m["content"].split()) for m in payload["messages"])
        return LoopbackReply.completion(
            text,
            model=payload["model"],
            usage={"prompt_tokens": prompt, "completion_tokens": len(text.split())},
        )

    return handler


def request_identity(model: str, messages: Sequence[Sequence[str]]) -> str:
    """A request's identity on the provider side: its model name and (role, content) messages."""
    raw = json.dumps([model, [list(m) for m in messages]], sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


class CountingProvider:
    """A loopback provider (a LoopbackServer handler) answering with CourseAuthor text after
    `delay(payload)` seconds (`delay_s` unless a subclass says otherwise) and counting each
    request by `request_identity`: `sent` (how often), `answered` (its reply was returned),
    `after_kill` (sent once a test set `killed`), `lesson_answers`. The server answers on its
    own thread, so the counts change under `lock`."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.reply = author_reply()
        self.lock = threading.Lock()
        self.sent: Counter[str] = Counter()
        self.answered: set[str] = set()
        self.lesson_answers = 0
        self.killed = False
        self.after_kill: Counter[str] = Counter()
        #: While set, answers are held back (not returned, not counted answered): what is in
        #: flight stays in flight until a test has looked (and killed its client).
        self.holding = False
        self.held: set[str] = set()

    def delay(self, payload: dict[str, Any]) -> float:
        return self.delay_s

    async def __call__(self, payload: dict[str, Any]) -> LoopbackReply:
        key = request_identity(payload["model"], [(m["role"], m["content"]) for m in payload["messages"]])
        with self.lock:
            self.sent[key] += 1
            if self.killed:
                self.after_kill[key] += 1
        reply = self.reply(payload)
        await asyncio.sleep(self.delay(payload))
        if self.holding:
            with self.lock:
                self.held.add(key)
            while self.holding:
                await asyncio.sleep(0.01)
        with self.lock:
            self.answered.add(key)
            if '"task": "lesson"' in payload["messages"][-1]["content"]:
                self.lesson_answers += 1
        return reply


@contextmanager
def loopback_in_thread(handler: LoopbackHandler) -> Iterator[LoopbackServer]:
    """A LoopbackServer on its own event loop in a thread, for synchronous callers (the CLI)."""
    with in_thread(LoopbackServer(handler)) as server:
        yield server


S = TypeVar("S", bound="_StartStop")


class _StartStop(Protocol):
    async def start(self) -> Any: ...

    async def stop(self) -> Any: ...


@contextmanager
def in_thread(server: S) -> Iterator[S]:
    """Any server with async `start`/`stop` (LoopbackServer, SimServer) on its own event loop
    in a thread, while the block runs."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def loopback_config(base_url: str, **extra: Any) -> dict[str, Any]:
    """A three-tier config on one OpenAI-compatible provider at `base_url`, hashing gates."""
    config: dict[str, Any] = {
        "profile": "loopback-test",
        "providers": {
            "loop": {
                "kind": "openai",
                "base_url": base_url,
                "api_key_env": None,
                "headers": {
                    "HTTP-Referer": "https://example.test/courseforge",
                    "X-Title": "courseforge-tests",
                },
                "max_concurrency": 8,
            }
        },
        "models": {
            "small": {
                "provider": "loop",
                "name": "test/small",
                "price_in_per_m": "0.03",
                "price_out_per_m": "0.13",
                "batch_price_multiplier": "0.5",
            },
            "medium": {
                "provider": "loop",
                "name": "test/medium",
                "price_in_per_m": "0.03",
                "price_out_per_m": "0.17",
                "batch_price_multiplier": "0.5",
            },
            "large": {
                "provider": "loop",
                "name": "test/large",
                "price_in_per_m": "0.78",
                "price_out_per_m": "3.90",
                "batch_price_multiplier": "0.5",
            },
        },
        "routing": {
            "tiers": {"cheap": "small", "mid": "medium", "premium": "large"},
            "ladder": ["cheap", "mid", "premium"],
            "long_context_tier": None,
            "metadata_tier": "premium",
            "metadata_extras_tier": "mid",
            "section_types": {"warmup": {"start_tier": "cheap", "priority": "supplementary"}},
            # 60 s a call: these tests run on loaded 2-core machines (CI too), where a 10 s timeout
            # was passed (tests/engine/test_batching.py: a breaker opened and a tier changed).
            "priorities": {
                "critical": {"max_attempts": 4, "retries": 0, "timeout_s": 60},
                "standard": {"max_attempts": 3, "retries": 0, "timeout_s": 60},
                "supplementary": {"max_attempts": 2, "retries": 0, "timeout_s": 60, "escalate": False},
            },
        },
        "gates": {
            "embedding_model": "hashing",
            "similarity": {"hashing": {"pass_at": 0.12, "severe_below": 0.04}},
            "lesson_min_words": 120,
            "lesson_max_words": 900,
        },
        "budget": {"per_course_usd": "0.45", "step_down_at": 0.8, "step_down_tier": "mid"},
    }
    config.update(extra)
    return config


#: The chain `chained_config` gives `large`: itself, its second provider, `medium` once.
LARGE_CHAIN = ["large", "large@second", "medium"]


def chained_config(**extra: Any) -> dict[str, Any]:
    """`loopback_config` (nothing listens) whose `large` has a second provider, `backup`, and
    names `medium` twice as a fallback: every chain builder should give it `LARGE_CHAIN`."""
    config = loopback_config("http://127.0.0.1:1/v1", **extra)
    config["providers"]["backup"] = {
        "kind": "openai",
        "base_url": "http://127.0.0.1:2/v1",
        "api_key_env": None,
    }
    config["models"]["large"]["second_provider"] = {"provider": "backup"}
    config["models"]["large"]["fallbacks"] = ["medium", "medium"]
    return config


def write_config(path: Path, config: Mapping[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False), "utf-8")
    return path


class EmbedOnly:
    """The slice of Effects that rule-based repairs use: embeddings (hashing by default) and a
    budget that is never used."""

    def __init__(self, embedder: Embedder | None = None) -> None:
        self.embedder = embedder or HashingEmbedder()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return await self.embedder.embed(list(texts))

    def budget_fraction(self) -> float:
        return 0.0
