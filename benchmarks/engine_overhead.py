"""Engine CPU per model call: everything courseforge does around a call, against the bare client.

A 10-lesson course (default `examples/photosynthesis-sourced.json`: it has source material, so
the grounding gate runs too) is generated with zero-latency answers, `--runs` times per variant
(after one unmeasured warm-up course per variant), and the process CPU (`time.process_time()`,
every thread of this process) is divided by the model calls the course made (its ledger
records). Figures are medians over runs. Variants:

- scripted: `ScriptedModel(CourseAuthor)` per model id, in-process. The author's own CPU
  (writing the answer) is measured on its thread and subtracted: what is left is the engine.
- http: the real `OpenAICompatModel` (one shared aiohttp session, warmed up) against a
  `LoopbackServer` in a spawned process that answers with `CourseAuthor` text, so every CPU
  second of this process is client + engine work.

each with: `core` (the optional gates off: judge, safety, grounding, redundancy; the core lesson
gates — length, exercises, exercise/outcome coverage, similarity — and parsing/validation always
run), `gates` (every gate on, hashing embedder), `gates+durable` (and every answered call
checkpointed in a SQLite store through `JobRunner`, the CLI's default path), and for http
`minilm` (every gate on with the real all-MiniLM-L6-v2, torch on one thread so that its
inference CPU can be measured on the encoding thread and reported apart).

Baseline, same run: the bare client — the requests the http `gates` run sent, replayed through a
bare `OpenAICompatModel` at the provider's concurrency, no engine around it.

"All-in" (the DESIGN.md target: at most half of LiteLLM Router's 5.6 ms, i.e. <= 2.8 ms) is the
http `gates+durable` figure: HTTP client, resilience stack, routing and cascade, budget ledger and
call records, prompts, JSON parsing and pydantic validation, every gate (hashing embedder
included), checkpoints in SQLite, progress, report. Not included: embedding-model inference
(MiniLM), which LiteLLM does not do; it is shown on its own line.

    python benchmarks/engine_overhead.py [--runs 5] [--example PATH] [--only NAME,...]
                                         [--no-minilm] [--profile NAME [--profile-out PATH]]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import multiprocessing as mp
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
from courseforge.jobs import InProcessRunner, new_job

from courseforge.config import Settings, load_config
from courseforge.engine import Engine
from courseforge.pipeline import parse_analysis
from courseforge.providers import ChatModel, ChatRequest, ChatResponse, Message, OpenAICompatModel
from courseforge.providers.embeddings import CachedEmbedder, HashingEmbedder, SentenceTransformerEmbedder
from courseforge.storage import SQLiteStore
from courseforge.testing import CourseAuthor, LoopbackReply, LoopbackServer, ScriptedModel

DEFAULT_EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "photosynthesis-sourced.json"
LITELLM_ROUTER_MS = 5.6
TARGET_MS = LITELLM_ROUTER_MS / 2


# -- the server (spawned process) -----------------------------------------------------------------
_AUTHOR = CourseAuthor()


def _author_reply(payload: dict[str, Any]) -> LoopbackReply:
    messages = [Message(m["role"], m["content"]) for m in payload["messages"]]
    text = _AUTHOR(ChatRequest(messages))
    return LoopbackReply.completion(
        text,
        model=str(payload.get("model", "loopback")),
        usage={
            "prompt_tokens": sum(len(m.content.split()) for m in messages),
            "completion_tokens": len(text.split()),
        },
    )


def _serve(conn: Connection) -> None:
    async def main() -> None:
        async with LoopbackServer(_author_reply, record=False) as server:
            conn.send(server.port)
            await asyncio.Event().wait()

    asyncio.run(main())


# -- models -----------------------------------------------------------------------------------------
class TimedAuthor:
    """CourseAuthor that adds up its own CPU time (it runs synchronously on the loop's thread)."""

    def __init__(self) -> None:
        self._author = CourseAuthor()
        self.cpu_s = 0.0

    def __call__(self, request: ChatRequest) -> str:
        t0 = time.thread_time()
        try:
            return self._author(request)
        finally:
            self.cpu_s += time.thread_time() - t0


class RecordingModel(OpenAICompatModel):
    """OpenAICompatModel remembering each request it sends (for the bare-client replay)."""

    sent: list[tuple[str, ChatRequest]] | None = None

    async def complete(self, request: ChatRequest) -> ChatResponse:
        if self.sent is not None:
            self.sent.append((self.model_id, request))
        return await super().complete(request)


def http_models(settings: Settings, session: aiohttp.ClientSession) -> dict[str, RecordingModel]:
    """The models the engine would build for the hosted profile, over one shared session."""
    models = {}
    for model_id, ms in settings.models.items():
        provider = settings.providers[ms.provider]
        models[model_id] = RecordingModel(
            model_id=model_id,
            model_name=ms.name,
            base_url=provider.base_url,
            api_key="sk-bench",
            output_mode=ms.output_mode,
            headers=provider.headers,
            session=session,
            max_output_tokens=ms.max_output_tokens,
        )
    return models


# -- settings -----------------------------------------------------------------------------------------
def bench_settings(base_url: str, *, gates_on: bool, embedding: str = "hashing") -> Settings:
    env = {"OPENROUTER_API_KEY": "sk-bench", "OPENROUTER_BASE_URL": base_url}
    settings = load_config("hosted", env=env).settings
    g = settings.gates
    update: dict[str, Any] = {"embedding_model": embedding}
    if not gates_on:
        update |= {
            "judge": g.judge.model_copy(update={"enabled": False}),
            "safety": g.safety.model_copy(update={"enabled": False}),
            "grounding": g.grounding.model_copy(update={"enabled": False}),
            "redundancy": g.redundancy.model_copy(update={"enabled": False}),
        }
    return settings.model_copy(update={"gates": g.model_copy(update=update)})


# -- one course -----------------------------------------------------------------------------------------
@dataclass(slots=True)
class Sample:
    calls: int
    cpu_s: float
    wall_s: float
    status: str
    #: CPU spent outside the engine that must be taken off (the scripted author's).
    foreign_cpu_s: float = 0.0
    #: Embedding-model inference CPU (MiniLM variant), reported apart.
    embed_cpu_s: float = 0.0
    #: Time in the cyclic garbage collector (part of cpu_s).
    gc_s: float = 0.0

    @property
    def engine_ms(self) -> float:
        return (self.cpu_s - self.foreign_cpu_s - self.embed_cpu_s) / self.calls * 1000

    @property
    def total_ms(self) -> float:
        return (self.cpu_s - self.foreign_cpu_s) / self.calls * 1000

    @property
    def gc_ms(self) -> float:
        return self.gc_s / self.calls * 1000

    @property
    def embed_ms(self) -> float:
        return self.embed_cpu_s / self.calls * 1000


class RecordingST(SentenceTransformerEmbedder):
    """MiniLM embedder adding up the CPU time of its inference. The benchmark sets torch to one
    thread, so the whole encode runs on the calling worker thread and `thread_time` sees it all."""

    def __init__(self) -> None:
        super().__init__()
        self.cpu_s = 0.0

    def _encode(self, texts: list[str]) -> list[list[float]]:
        t0 = time.thread_time()
        try:
            return super()._encode(texts)
        finally:
            self.cpu_s += time.thread_time() - t0  # encodes are serialised by a lock


@dataclass(slots=True)
class Variant:
    name: str
    settings: Settings
    models: Callable[[], tuple[dict[str, ChatModel], Callable[[], float]]]
    durable: bool = False
    minilm: bool = False
    samples: list[Sample] = field(default_factory=list)


class GCTimer:
    """Adds up the time the cyclic garbage collector runs (it is part of the process CPU)."""

    def __init__(self) -> None:
        self.total = 0.0
        self._t0 = 0.0
        gc.callbacks.append(self)

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._t0


gc_timer = GCTimer()


async def run_course(variant: Variant, example: bytes, workdir: Path, tag: str) -> Sample:
    analysis = parse_analysis(example, max_bytes=10**7)
    models, foreign = variant.models()
    inner = RecordingST() if variant.minilm else HashingEmbedder()
    engine = Engine(variant.settings, env={}, models=models, embedder=CachedEmbedder(inner))
    store = SQLiteStore(workdir / f"{tag}.db") if variant.durable else None
    try:
        if store is not None:
            await store.init()
            job, _ = await store.create_job(new_job(tag, analysis))
        if isinstance(inner, RecordingST):
            await inner.warm()  # model load is a one-off per process, not per call
            inner.cpu_s = 0.0
        gc_timer.total = 0.0
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if store is not None:
            result = await InProcessRunner(engine, store).run(job, analysis=analysis)
        else:
            result = await engine.generate(analysis)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        gc_s = gc_timer.total
    finally:
        await engine.aclose()
        if store is not None:
            await store.close()
    return Sample(
        calls=len(result.report.calls),
        cpu_s=cpu,
        wall_s=wall,
        status=result.report.status,
        foreign_cpu_s=foreign(),
        embed_cpu_s=inner.cpu_s if isinstance(inner, RecordingST) else 0.0,
        gc_s=gc_s,
    )


# -- the bare client ---------------------------------------------------------------------------------
async def bare_client(
    requests: Sequence[tuple[str, ChatRequest]], models: dict[str, RecordingModel], concurrency: int
) -> Sample:
    """The same requests through the bare client: `complete()` calls, `concurrency` in flight."""
    todo = list(requests)
    for model in models.values():
        model.sent = None

    async def worker() -> None:
        while todo:
            model_id, request = todo.pop()
            await models[model_id].complete(request)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Sample(len(requests), time.process_time() - cpu0, time.perf_counter() - wall0, "-")


# -- driver ---------------------------------------------------------------------------------------------
def _med(values: Sequence[float]) -> float:
    return float(statistics.median(values))


async def _bench(args: argparse.Namespace, base_url: str) -> None:
    example = args.example.read_bytes()
    core = bench_settings(base_url, gates_on=False)
    gated = bench_settings(base_url, gates_on=True)
    minilm = bench_settings(base_url, gates_on=True, embedding="all-MiniLM-L6-v2")
    concurrency = gated.providers["openrouter"].max_concurrency
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))
    shared = http_models(gated, session)
    last_sent: list[tuple[str, ChatRequest]] = []

    def scripted(settings: Settings) -> Callable[[], tuple[dict[str, ChatModel], Callable[[], float]]]:
        def make() -> tuple[dict[str, ChatModel], Callable[[], float]]:
            authors = {m: TimedAuthor() for m in settings.models}
            models: dict[str, ChatModel] = {m: ScriptedModel(a, model_id=m) for m, a in authors.items()}
            return models, lambda: sum(a.cpu_s for a in authors.values())

        return make

    def http(record: bool = False) -> Callable[[], tuple[dict[str, ChatModel], Callable[[], float]]]:
        def make() -> tuple[dict[str, ChatModel], Callable[[], float]]:
            if record:
                last_sent.clear()
            for model in shared.values():
                model.sent = last_sent if record else None
            return dict(shared), lambda: 0.0

        return make

    variants = [
        Variant("scripted  core (optional gates off)", core, scripted(core)),
        Variant("scripted  gates on (hashing)", gated, scripted(gated)),
        Variant("scripted  gates on + durable store", gated, scripted(gated), durable=True),
        Variant("http      core (optional gates off)", core, http()),
        Variant("http      gates on (hashing)", gated, http(record=True)),
        Variant("http      gates on + durable store", gated, http(), durable=True),
    ]
    if not args.no_minilm:
        variants.append(Variant("http      gates on (MiniLM)", minilm, http(), minilm=True))
    if args.only:
        wanted = [w.strip() for w in args.only.split(",")]
        variants = [v for v in variants if any(w in v.name for w in wanted)]
    if args.profile:
        variants = [v for v in variants if args.profile in v.name][:1]
        if not variants:
            raise SystemExit(f"no variant matches {args.profile!r}")

    bare: list[Sample] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        try:
            # Each variant's warm-up course warms connections, imports and the safety gate's
            # word list and classifier (loaded once per process).
            for i, variant in enumerate(variants):
                if variant.minilm:  # torch loads here, not before: the other variants run without it
                    import torch

                    torch.set_num_threads(1)  # inference on the calling thread, to tell its CPU apart
                warm = await run_course(variant, example, workdir, f"warm{i}")
                print(f"{variant.name}: warm-up {warm.status}, {warm.calls} calls", flush=True)
                if args.profile:
                    profiler = cProfile.Profile()
                    profiler.enable()
                for r in range(args.runs):
                    sample = await run_course(variant, example, workdir, f"v{i}r{r}")
                    variant.samples.append(sample)
                    if args.verbose:
                        print(
                            f"  run {r + 1}: {sample.engine_ms:.3f} ms/call, CPU {sample.cpu_s:.3f} s "
                            f"(foreign {sample.foreign_cpu_s:.3f}, embedding {sample.embed_cpu_s:.3f}, "
                            f"GC {sample.gc_s:.3f}), wall {sample.wall_s:.3f} s",
                            flush=True,
                        )
                    if "hashing" in variant.name and variant.name.startswith("http") and not args.profile:
                        replay = list(last_sent)
                        bare.append(await bare_client(replay, shared, concurrency))
                if args.profile:
                    profiler.disable()
                    _print_profile(profiler, args)
        finally:
            await session.close()
    _report(variants, bare, args)


def _print_profile(profiler: cProfile.Profile, args: argparse.Namespace) -> None:
    if args.profile_out:
        profiler.dump_stats(args.profile_out)
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(key).print_stats(args.profile_lines)
        print(out.getvalue())


def _report(variants: Sequence[Variant], bare: Sequence[Sample], args: argparse.Namespace) -> None:
    print()
    print(f"{args.example.name}: medians over {args.runs} run(s) per variant, CPU per model call")
    bare_ms = _med([b.total_ms for b in bare]) if bare else None
    if bare_ms is not None:
        print(
            f"  {'bare client (same requests replayed)':40} {_med([b.calls for b in bare]):5.0f} calls "
            f"{bare_ms:7.3f} ms"
        )
    for v in variants:
        if not v.samples:
            continue
        ms = _med([s.engine_ms for s in v.samples])
        spread = f"{min(s.engine_ms for s in v.samples):.2f}-{max(s.engine_ms for s in v.samples):.2f}"
        ratio = f"{ms / bare_ms:6.1f}x bare" if bare_ms else ""
        statuses = ",".join(sorted({s.status for s in v.samples}))
        print(
            f"  {v.name:40} {_med([s.calls for s in v.samples]):5.0f} calls {ms:7.3f} ms "
            f"(runs {spread}; GC {_med([s.gc_ms for s in v.samples]):.2f}) {ratio}  "
            f"{ms / LITELLM_ROUTER_MS:5.2f}x LiteLLM Router  [{statuses}]"
        )
        if v.minilm:
            print(
                f"  {'  of which MiniLM inference (apart)':40} {'':11} {_med([s.embed_ms for s in v.samples]):7.3f} ms"
                f"  (total with inference {_med([s.total_ms for s in v.samples]):.3f} ms)"
            )
    allin = next((v for v in variants if v.name.startswith("http") and "durable" in v.name), None)
    if allin and allin.samples:
        ms = _med([s.engine_ms for s in allin.samples])
        verdict = "PASS" if ms <= TARGET_MS else "FAIL"
        print(
            f"all-in (http, every gate, hashing embedder, SQLite checkpoints): {ms:.3f} ms/call vs "
            f"LiteLLM Router {LITELLM_ROUTER_MS} ms (DESIGN.md): {ms / LITELLM_ROUTER_MS:.2f}x; "
            f"target <= {TARGET_MS:.1f} ms  {verdict}"
        )
        print(
            "  all-in = HTTP client + resilience stack + routing/cascade + ledger and call records + prompts "
            "+ parsing/validation + every gate + checkpoints + report; excludes embedding-model inference"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="measured courses per variant (5)")
    parser.add_argument("--example", type=Path, default=DEFAULT_EXAMPLE, help="course input JSON")
    parser.add_argument("--only", help="comma-separated substrings of the variants to run")
    parser.add_argument("--no-minilm", action="store_true", help="skip the MiniLM variant")
    parser.add_argument("--profile", help="cProfile the measured runs of the first variant matching this")
    parser.add_argument("--profile-out", help="write the cProfile stats here")
    parser.add_argument("--profile-lines", type=int, default=35)
    parser.add_argument("--verbose", action="store_true", help="print every run")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be >= 1")

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    try:
        if not parent.poll(30):
            raise SystemExit("loopback server did not start")
        port = parent.recv()
        asyncio.run(_bench(args, f"http://127.0.0.1:{port}/v1"))
    finally:
        server.terminate()
        server.join(5)


if __name__ == "__main__":
    main()
