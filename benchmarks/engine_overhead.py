"""Engine CPU per model call, all-in, against LiteLLM Router's, measured side by side in one run.

One loopback server (a spawned process, so its CPU is not counted: an OpenAI-compatible
`LoopbackServer` answering with `CourseAuthor` text, as a provider would) serves both sides:

- the peer: `benchmarks/litellm_router.py` under the benchmark virtualenv's python
  (`.venv-bench`, built by `make bench`; LiteLLM is never a dependency of courseforge): a LiteLLM
  `Router`, primary deployment plus one fallback, `--peer-calls` calls per run with 50 in flight,
  sending in turn the very requests courseforge sent in its warm-up (metadata, lessons, judge:
  messages, json_schema `response_format`, `max_tokens`), so both ask the server for the same mix.
- courseforge all-in: `--courses` courses at once (default 10), `--batches` times in a row on
  one engine and store (default 3: ≈ 840 calls a run, near the peer's 1,000; default example
  `examples/photosynthesis-sourced.json`, which has sources, so the grounding gate runs) through
  `InProcessRunner` with a SQLite store (every answered call checkpointed), every gate on, the
  hashing embedder, the hosted profile's models as the real `OpenAICompatModel` over real
  sockets, the provider's concurrency raised to the peer's 50. Figure: this process's CPU
  (`time.process_time()`, every thread) / model calls made (the reports' call records): HTTP
  client, resilience stack, routing and cascade, ledger and call records, prompts, parsing and
  validation, every gate, checkpoints, progress, report.

The two are interleaved — peer, courseforge, peer, courseforge… — `--runs` times after one
unmeasured warm-up each (the machine is shared and noisy: both see the same load), and the
medians are compared: the target is courseforge <= 0.5 × LiteLLM Router (PASS/FAIL; `--strict`
exits 1 on FAIL). Printed too: the median of the per-run ratios (each pair measured seconds
apart, a check on drift) and the share of courseforge's CPU spent on the event loop's thread (the
rest runs on worker threads: SQLite, gates sent off the loop). Without `.venv-bench` it says to
run `make bench` and prints courseforge's figures alone.

Also each round, cheap: the bare client (the all-in run's requests replayed through bare
`OpenAICompatModel`s at the same concurrency, no engine). With `--breakdown`, one-course
variants: scripted (in-process `ScriptedModel`, the author's own CPU subtracted) and http, each
`core` (optional gates off), `gates` (every gate, hashing) and `gates+durable` (SQLite
checkpoints), and http `minilm` (every gate with all-MiniLM-L6-v2 on one torch thread, its
inference CPU shown apart; skip with `--no-minilm`).

    python benchmarks/engine_overhead.py [--runs 5] [--courses 10] [--batches 3] [--peer-calls 1000]
        [--peer-python .venv-bench/bin/python] [--no-peer] [--breakdown [--no-minilm]]
        [--example PATH] [--profile [NAME] [--profile-out PATH]] [--verbose] [--strict]

`--profile` cProfiles the measured runs of the all-in variant (or of the breakdown variant whose
name contains NAME) instead of comparing; the peer is not started.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import importlib.util
import io
import json
import multiprocessing as mp
import os
import pstats
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp

from courseforge.config import Settings, load_config
from courseforge.engine import Engine, GenerationResult
from courseforge.jobs import InProcessRunner, new_job
from courseforge.pipeline import parse_analysis
from courseforge.providers import ChatModel, ChatRequest, ChatResponse, Message, OpenAICompatModel
from courseforge.providers.embeddings import CachedEmbedder, HashingEmbedder, SentenceTransformerEmbedder
from courseforge.sim.content import message_text
from courseforge.storage import Job, SQLiteStore
from courseforge.testing import CourseAuthor, LoopbackReply, LoopbackServer, ScriptedModel

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EXAMPLE = ROOT / "examples" / "photosynthesis-sourced.json"
PEER_SCRIPT = Path(__file__).resolve().parent / "litellm_router.py"
DEFAULT_PEER_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
#: The target (issue 18): courseforge's all-in CPU per call at most this fraction of the peer's.
TARGET_RATIO = 0.5
CONCURRENCY = 50
#: Keys of a request body the peer sends (the Router sets the model itself).
PEER_KEYS = ("messages", "response_format", "max_tokens", "temperature")


# -- the server (spawned process) -----------------------------------------------------------------
_AUTHOR = CourseAuthor()


def _author_reply(payload: dict[str, Any]) -> LoopbackReply:
    messages = [Message(m["role"], message_text(m["content"])) for m in payload["messages"]]
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


# -- pure helpers (tests/test_benchmarks_helpers.py) -----------------------------------------------
def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def peer_bodies(payloads: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The request bodies courseforge sent, as the peer sends them (no model, no extras)."""
    return [{k: p[k] for k in PEER_KEYS if k in p} for p in payloads]


def verdict(ours_ms: float, peer_ms: float | None, target: float = TARGET_RATIO) -> tuple[float | None, str]:
    """(ours / peer, "PASS" | "FAIL" | "NO PEER")."""
    if peer_ms is None or peer_ms <= 0:
        return None, "NO PEER"
    ratio = ours_ms / peer_ms
    return ratio, "PASS" if ratio <= target else "FAIL"


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


@dataclass(slots=True)
class Traffic:
    """What the http models sent: requests (for the replays) and the peak of calls in flight."""

    sent: list[tuple[str, ChatRequest]] = field(default_factory=list)
    recording: bool = False
    in_flight: int = 0
    peak: int = 0


class RecordingModel(OpenAICompatModel):
    """OpenAICompatModel that notes each request it sends and the calls in flight."""

    traffic: Traffic | None = None

    async def complete(self, request: ChatRequest) -> ChatResponse:
        t = self.traffic
        if t is None:
            return await super().complete(request)
        if t.recording:
            t.sent.append((self.model_id, request))
        t.in_flight += 1
        t.peak = max(t.peak, t.in_flight)
        try:
            return await super().complete(request)
        finally:
            t.in_flight -= 1


def http_models(
    settings: Settings, session: aiohttp.ClientSession, traffic: Traffic
) -> dict[str, RecordingModel]:
    """The models the engine would build for the hosted profile, over one shared session."""
    models = {}
    for model_id, ms in settings.models.items():
        provider = settings.providers[ms.provider]
        model = RecordingModel(
            model_id=model_id,
            model_name=ms.name,
            base_url=provider.base_url,
            api_key="sk-bench",
            output_mode=ms.output_mode,
            headers=provider.headers,
            session=session,
            max_output_tokens=ms.max_output_tokens,
        )
        model.traffic = traffic
        models[model_id] = model
    return models


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


# -- settings -----------------------------------------------------------------------------------------
def bench_settings(base_url: str, *, gates_on: bool, embedding: str = "hashing") -> Settings:
    """The hosted profile pointed at `base_url`, the provider's concurrency at the peer's."""
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
    providers = {
        name: p.model_copy(update={"max_concurrency": CONCURRENCY}) for name, p in settings.providers.items()
    }
    return settings.model_copy(update={"gates": g.model_copy(update=update), "providers": providers})


# -- courseforge samples ---------------------------------------------------------------------------------
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
    #: Most model calls in flight at once (http variants).
    peak_in_flight: int = 0
    #: CPU of the event loop's thread (the rest of cpu_s ran on worker threads: SQLite, gates).
    loop_cpu_s: float = 0.0

    @property
    def engine_ms(self) -> float:
        return (self.cpu_s - self.foreign_cpu_s - self.embed_cpu_s) / self.calls * 1000

    @property
    def total_ms(self) -> float:
        return (self.cpu_s - self.foreign_cpu_s) / self.calls * 1000

    @property
    def loop_ms(self) -> float:
        return (self.loop_cpu_s - self.foreign_cpu_s) / self.calls * 1000

    @property
    def gc_ms(self) -> float:
        return self.gc_s / self.calls * 1000

    @property
    def embed_ms(self) -> float:
        return self.embed_cpu_s / self.calls * 1000


ModelFactory = Callable[[], tuple[dict[str, ChatModel], Callable[[], float]]]


@dataclass(slots=True)
class Variant:
    name: str
    settings: Settings
    models: ModelFactory
    durable: bool = False
    minilm: bool = False
    #: Courses run at once on one engine (one store), `batches` times one after the other.
    courses: int = 1
    batches: int = 1
    samples: list[Sample] = field(default_factory=list)


class GCTimer:
    """Adds up the time the cyclic garbage collector runs (it is part of the process CPU)."""

    def __init__(self) -> None:
        self.total = 0.0
        self._t0 = 0.0

    def install(self) -> None:
        """Called by `main()` (not at import: tests import this module's helpers)."""
        if self not in gc.callbacks:
            gc.callbacks.append(self)

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._t0


gc_timer = GCTimer()


async def run_courses(variant: Variant, example: bytes, workdir: Path, tag: str, traffic: Traffic) -> Sample:
    """`variant.courses` courses at once on one engine, `variant.batches` times in a row (the
    engine and store live on, as in a service); CPU and calls of them all."""
    analysis = parse_analysis(example, max_bytes=10**7)
    models, foreign = variant.models()
    inner = RecordingST() if variant.minilm else HashingEmbedder()
    engine = Engine(variant.settings, env={}, models=models, embedder=CachedEmbedder(inner))
    store = SQLiteStore(workdir / f"{tag}.db") if variant.durable else None
    try:
        jobs: list[list[Job]] = [[] for _ in range(variant.batches)]
        if store is not None:
            await store.init()
            for b, batch in enumerate(jobs):
                for i in range(variant.courses):
                    job, _ = await store.create_job(new_job(f"{tag}-{b}-{i}", analysis))
                    batch.append(job)
        if isinstance(inner, RecordingST):
            await inner.warm()  # model load is a one-off per process, not per call
            inner.cpu_s = 0.0
        traffic.peak = 0
        gc_timer.total = 0.0
        cpu0, wall0, loop0 = time.process_time(), time.perf_counter(), time.thread_time()
        results: list[GenerationResult] = []
        for batch in jobs:
            if store is not None:
                runner = InProcessRunner(engine, store)
                results += await asyncio.gather(*(runner.run(job, analysis=analysis) for job in batch))
            else:
                results += await asyncio.gather(*(engine.generate(analysis) for _ in range(variant.courses)))
        cpu, wall, loop = time.process_time() - cpu0, time.perf_counter() - wall0, time.thread_time() - loop0
        gc_s = gc_timer.total
    finally:
        await engine.aclose()
        if store is not None:
            await store.close()
    return Sample(
        calls=sum(len(r.report.calls) for r in results),
        cpu_s=cpu,
        wall_s=wall,
        status=",".join(sorted({r.report.status for r in results})),
        foreign_cpu_s=foreign(),
        embed_cpu_s=inner.cpu_s if isinstance(inner, RecordingST) else 0.0,
        gc_s=gc_s,
        peak_in_flight=traffic.peak,
        loop_cpu_s=loop,
    )


async def bare_client(
    requests: Sequence[tuple[str, ChatRequest]], models: dict[str, RecordingModel], concurrency: int
) -> Sample:
    """The same requests through the bare client: `complete()` calls, `concurrency` in flight."""
    todo = list(requests)
    traffic = next(iter(models.values())).traffic
    for model in models.values():
        model.traffic = None

    async def worker() -> None:
        while todo:
            model_id, request = todo.pop()
            await models[model_id].complete(request)

    try:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return Sample(len(requests), time.process_time() - cpu0, time.perf_counter() - wall0, "-")
    finally:
        for model in models.values():
            model.traffic = traffic


# -- the peer (a subprocess under .venv-bench) ----------------------------------------------------------------
class Peer:
    """`litellm_router.py --stdin`: warms up once, then one measured run per line we send."""

    def __init__(self, python: Path, base_url: str, requests: Path, calls: int, log: Path) -> None:
        self.argv = [
            str(python),
            str(PEER_SCRIPT),
            "--base-url",
            base_url,
            "--request",
            str(requests),
            "--calls",
            str(calls),
            "--concurrency",
            str(CONCURRENCY),
            "--stdin",
        ]
        self.log = log
        self.info: dict[str, Any] = {}
        self.runs: list[dict[str, Any]] = []
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("wb") as err:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env=_peer_env(),
                cwd=ROOT,
            )
        self.info = await self._read("ready")

    async def run(self) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(b"run\n")
        await self._proc.stdin.drain()
        result = await self._read("run")
        if result["answered"] < result["calls"]:
            raise RuntimeError(f"peer: only {result['answered']}/{result['calls']} calls answered")
        self.runs.append(result)
        return result

    async def _read(self, key: str, timeout_s: float = 900.0) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        while True:
            line = await asyncio.wait_for(self._proc.stdout.readline(), timeout_s)
            if not line:
                tail = self.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"peer exited ({' '.join(self.argv[:2])}):\n{tail}")
            if line.startswith(b"{"):
                data: dict[str, Any] = json.loads(line)
                if key in data:
                    return data

    async def close(self) -> None:
        if self._proc is None:
            return
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            await asyncio.wait_for(self._proc.wait(), 30)
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()


def _peer_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_TELEMETRY="False", NO_PROXY="127.0.0.1,localhost")
    return env


# -- driver ---------------------------------------------------------------------------------------------
async def _bench(args: argparse.Namespace, base_url: str) -> int:
    example = args.example.read_bytes()
    core = bench_settings(base_url, gates_on=False)
    gated = bench_settings(base_url, gates_on=True)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY))
    traffic = Traffic()
    shared = http_models(gated, session, traffic)

    def scripted(settings: Settings) -> ModelFactory:
        def make() -> tuple[dict[str, ChatModel], Callable[[], float]]:
            authors = {m: TimedAuthor() for m in settings.models}
            models: dict[str, ChatModel] = {m: ScriptedModel(a, model_id=m) for m, a in authors.items()}
            return models, lambda: sum(a.cpu_s for a in authors.values())

        return make

    def http(record: bool = False) -> ModelFactory:
        def make() -> tuple[dict[str, ChatModel], Callable[[], float]]:
            if record:
                traffic.sent.clear()
            traffic.recording = record
            return dict(shared), lambda: 0.0

        return make

    allin = Variant(
        f"courseforge all-in ({args.courses} courses at once x {args.batches})",
        gated,
        http(record=True),
        durable=True,
        courses=args.courses,
        batches=args.batches,
    )
    variants = [allin]
    if args.breakdown or (args.profile and args.profile != "all-in"):
        variants += [
            Variant("scripted  core (optional gates off)", core, scripted(core)),
            Variant("scripted  gates on (hashing)", gated, scripted(gated)),
            Variant("scripted  gates on + durable store", gated, scripted(gated), durable=True),
            Variant("http      core (optional gates off)", core, http()),
            Variant("http      gates on (hashing)", gated, http()),
            Variant("http      gates on + durable store", gated, http(), durable=True),
        ]
        if not args.no_minilm and importlib.util.find_spec("torch") is None:
            print("breakdown: no MiniLM variant (torch is not installed: `make setup` installs it)")
        elif not args.no_minilm:
            minilm = bench_settings(base_url, gates_on=True, embedding="all-MiniLM-L6-v2")
            variants.append(Variant("http      gates on (MiniLM)", minilm, http(), minilm=True))
    if args.profile:
        variants = [v for v in variants if args.profile in v.name][:1]
        if not variants:
            raise SystemExit(f"no variant matches {args.profile!r}")

    bare: list[Sample] = []
    peer: Peer | None = None
    sent: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        try:
            # Warm-ups: connections, imports, the safety gate's word list and classifier (loaded
            # once per process); the all-in warm-up also records the requests the peer sends.
            for i, variant in enumerate(variants):
                if variant.minilm:  # torch loads here, not before: the other variants run without it
                    import torch

                    torch.set_num_threads(1)  # inference on the calling thread, to tell its CPU apart
                warm = await run_courses(variant, example, workdir, f"warm{i}", traffic)
                print(f"{variant.name}: warm-up {warm.status}, {warm.calls} calls", flush=True)
                if variant is allin:
                    sent = [shared[m].build_payload(r) for m, r in traffic.sent]
            if args.profile:
                await _profile(variants[0], example, workdir, traffic, args)
                return 0
            peer = await _start_peer(args, base_url, workdir, peer_bodies(sent))
            for r in range(args.runs):
                if peer is not None:
                    p = await peer.run()
                    if args.verbose:
                        print(
                            f"  run {r + 1}: peer {p['cpu_ms_per_call']:.3f} ms/call, wall {p['wall_s']:.2f} s"
                        )
                for i, variant in enumerate(variants):
                    sample = await run_courses(variant, example, workdir, f"v{i}r{r}", traffic)
                    variant.samples.append(sample)
                    if args.verbose:
                        print(
                            f"  run {r + 1}: {variant.name}: {sample.engine_ms:.3f} ms/call, {sample.calls} calls, "
                            f"CPU {sample.cpu_s:.3f} s (foreign {sample.foreign_cpu_s:.3f}, embedding "
                            f"{sample.embed_cpu_s:.3f}, GC {sample.gc_s:.3f}), wall {sample.wall_s:.3f} s, "
                            f"peak in flight {sample.peak_in_flight}",
                            flush=True,
                        )
                    if variant is allin:
                        bare.append(await bare_client(list(traffic.sent), shared, CONCURRENCY))
        finally:
            if peer is not None:
                await peer.close()
            await session.close()
    return _report(args, allin, variants[1:], bare, peer)


async def _start_peer(
    args: argparse.Namespace, base_url: str, workdir: Path, bodies: list[dict[str, Any]]
) -> Peer | None:
    if args.no_peer:
        return None
    python = args.peer_python
    if not python.exists():
        print(
            f"\nLiteLLM Router (the peer) not measured: {python} is missing — run `make bench` "
            "(it builds .venv-bench from requirements/bench.txt). courseforge's figures follow alone.\n",
            flush=True,
        )
        return None
    requests = workdir / "peer-requests.json"
    requests.write_text(json.dumps(bodies))
    peer = Peer(python, base_url, requests, args.peer_calls, workdir / "peer.log")
    await peer.start()
    print(f"{peer.info.get('peer', 'peer')}: ready (import {peer.info.get('import_s', 0):.1f} s)", flush=True)
    return peer


async def _profile(
    variant: Variant, example: bytes, workdir: Path, traffic: Traffic, args: argparse.Namespace
) -> None:
    """cProfile every thread (a third of the CPU runs on worker threads: SQLite, gates), timed
    with each thread's own CPU clock, so waits for the GIL or the loopback server do not count."""
    threads: list[cProfile.Profile] = []

    def boot(*_: object) -> None:  # the first profile event of a new thread starts its profiler
        profiler = cProfile.Profile(time.thread_time)
        threads.append(profiler)
        profiler.enable()

    executor = ThreadPoolExecutor()
    asyncio.get_running_loop().set_default_executor(executor)  # new worker threads, born profiled
    threading.setprofile(boot)
    main = cProfile.Profile(time.thread_time)
    try:
        for r in range(args.runs):
            main.enable()
            variant.samples.append(await run_courses(variant, example, workdir, f"p{r}", traffic))
            main.disable()
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
        # Let the workers end (their last wait returns on their own clock): a profiler stopped
        # from this thread would charge a pending wait with this thread's CPU clock.
        executor.shutdown(wait=True)
    s = variant.samples
    print(
        f"\n{variant.name}: {median([x.calls for x in s]):.0f} calls, "
        f"{median([x.engine_ms for x in s]):.3f} ms/call under cProfile (not comparable); "
        f"{len(threads)} worker threads profiled with the loop's thread"
    )
    stats = pstats.Stats(main)
    for profiler in threads:
        stats.add(profiler)
    if args.profile_out:
        stats.dump_stats(args.profile_out)
    for key in ("cumulative", "tottime"):
        out = io.StringIO()
        stats.stream = out  # type: ignore[attr-defined]
        stats.sort_stats(key).print_stats(args.profile_lines)
        print(out.getvalue())


def _report(
    args: argparse.Namespace,
    allin: Variant,
    breakdown: Sequence[Variant],
    bare: Sequence[Sample],
    peer: Peer | None,
) -> int:
    s = allin.samples
    ours = median([x.engine_ms for x in s])
    bare_ms = median([b.total_ms for b in bare]) if bare else None
    print()
    print(f"{args.example.name}: medians over {args.runs} interleaved run(s), CPU per model call")
    if peer is not None and peer.runs:
        pr = peer.runs
        peer_ms: float | None = median([p["cpu_ms_per_call"] for p in pr])
        print(
            f"  {peer.info.get('peer', 'peer'):44} {pr[0]['calls']:5d} calls {peer_ms:7.3f} ms  "
            f"(runs {min(p['cpu_ms_per_call'] for p in pr):.2f}-{max(p['cpu_ms_per_call'] for p in pr):.2f}; "
            f"{CONCURRENCY} in flight, primary + 1 fallback, json_schema)"
        )
    else:
        peer_ms = None
    print(
        f"  {allin.name:44} {median([x.calls for x in s]):5.0f} calls {ours:7.3f} ms  "
        f"(runs {min(x.engine_ms for x in s):.2f}-{max(x.engine_ms for x in s):.2f}; GC "
        f"{median([x.gc_ms for x in s]):.2f}; peak {max(x.peak_in_flight for x in s)} in flight) "
        f"[{','.join(sorted({x.status for x in s}))}]"
    )
    loop_ms = median([x.loop_ms for x in s])
    print(
        f"  {'  of which on the event loop thread':44} {'':11} {loop_ms:7.3f} ms  (other threads {ours - loop_ms:.3f} ms)"
    )
    if bare_ms is not None:
        print(
            f"  {'bare client (all-in requests replayed)':44} {median([b.calls for b in bare]):5.0f} calls "
            f"{bare_ms:7.3f} ms  ({CONCURRENCY} in flight)"
        )
    for v in breakdown:
        ms = median([x.engine_ms for x in v.samples])
        print(
            f"  {v.name:44} {median([x.calls for x in v.samples]):5.0f} calls {ms:7.3f} ms  "
            f"(runs {min(x.engine_ms for x in v.samples):.2f}-{max(x.engine_ms for x in v.samples):.2f}; "
            f"GC {median([x.gc_ms for x in v.samples]):.2f}) [{','.join(sorted({x.status for x in v.samples}))}]"
        )
        if v.minilm:
            print(
                f"  {'  of which MiniLM inference (apart)':44} {'':11} {median([x.embed_ms for x in v.samples]):7.3f} ms"
                f"  (total with inference {median([x.total_ms for x in v.samples]):.3f} ms)"
            )
    ratio, result = verdict(ours, peer_ms)
    if ratio is None:
        print(f"all-in {ours:.3f} ms/call; no peer measured, so no verdict (target <= {TARGET_RATIO} x peer)")
        return 0
    assert peer is not None
    paired = [x.engine_ms / p["cpu_ms_per_call"] for x, p in zip(s, peer.runs, strict=False)]
    print(f"  per-run ratios: median {median(paired):.2f} ({', '.join(f'{q:.2f}' for q in paired)})")
    print(
        f"all-in courseforge / LiteLLM Router = {ours:.3f} / {peer_ms:.3f} ms = {ratio:.2f} "
        f"(target <= {TARGET_RATIO}): {result}"
    )
    return 1 if args.strict and result == "FAIL" else 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="interleaved measured runs (5)")
    parser.add_argument("--courses", type=int, default=10, help="courses at once in the all-in run (10)")
    parser.add_argument("--batches", type=int, default=3, help="all-in: that many times in a row per run (3)")
    parser.add_argument("--peer-calls", type=int, default=1000, help="peer calls per run (1000)")
    parser.add_argument("--peer-python", type=Path, default=DEFAULT_PEER_PYTHON, help="the peer's python")
    parser.add_argument("--no-peer", action="store_true", help="measure courseforge only")
    parser.add_argument("--example", type=Path, default=DEFAULT_EXAMPLE, help="course input JSON")
    parser.add_argument("--breakdown", action="store_true", help="also the one-course variants")
    parser.add_argument("--no-minilm", action="store_true", help="no MiniLM variant in the breakdown")
    parser.add_argument(
        "--profile", nargs="?", const="all-in", help="cProfile the all-in runs (or the variant matching NAME)"
    )
    parser.add_argument("--profile-out", help="write the cProfile stats here")
    parser.add_argument("--profile-lines", type=int, default=30)
    parser.add_argument("--verbose", action="store_true", help="print every run")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the verdict is FAIL")
    args = parser.parse_args()
    if min(args.runs, args.courses, args.batches, args.peer_calls) < 1:
        parser.error("--runs, --courses, --batches and --peer-calls must be >= 1")

    gc_timer.install()
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    try:
        if not parent.poll(30):
            raise SystemExit("loopback server did not start")
        port = parent.recv()
        code = asyncio.run(_bench(args, f"http://127.0.0.1:{port}/v1"))
    finally:
        server.terminate()
        server.join(5)
    sys.exit(code)


if __name__ == "__main__":
    main()
