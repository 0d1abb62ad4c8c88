"""Where a service should run each lesson attempt's rule gates: on the event loop, in threads or
in processes (`gates.workers`, `gates.workers_kind`; `engine.offload.GateExecutor`).

Gates `--lessons` lesson attempts (the hand-written lessons of tests/quality/data, cycled) with
`--concurrency` attempts in flight on one event loop, exactly as phase 3 does
(`quality.lesson_gates.run_lesson_gates`, hashing embedder), while a probe task sleeps 10 ms
and records how late it wakes: the event loop's lag, what `/health` and every provider socket
of a service wait behind. The three modes alternate, `--rounds` times each, in one process, so
they share the machine's conditions; each pool is warmed (its workers started, the safety
classifier loaded) before it is timed. Printed per mode: attempts per second, lag p50 / p99 /
max, and CPU seconds per attempt (this process and the pool's worker processes).

    python benchmarks/gate_offload.py [--lessons 300] [--concurrency 32] [--workers 2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from courseforge.config import Settings, load_config
from courseforge.domain.drafts import ExerciseDraft, LessonDraft
from courseforge.engine.offload import GateExecutor
from courseforge.providers.embeddings import make_embedder
from courseforge.quality.lesson_gates import LessonUnderTest, run_lesson_gates

LESSONS = Path(__file__).resolve().parent.parent / "tests" / "quality" / "data" / "human_lessons.jsonl"


def _settings() -> Settings:
    settings = load_config("hosted", env={"OPENROUTER_API_KEY": "x"}).settings
    gates = settings.gates.model_copy(update={"embedding_model": "hashing"})
    return settings.model_copy(update={"gates": gates})


def _lessons() -> list[LessonUnderTest]:
    out = []
    for line in LESSONS.read_text("utf-8").splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        outcomes = {f"LO{i + 1}": text for i, text in enumerate(item["outcomes"])}
        draft = LessonDraft(
            content=item["content"], exercises=[ExerciseDraft(**e) for e in item["exercises"]], citations=[]
        )
        out.append(LessonUnderTest(item["id"], draft, list(range(1, len(outcomes) + 1)), outcomes))
    return out


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pool_pids(pool: GateExecutor) -> list[int]:
    executor: Any = pool._executor
    return list(getattr(executor, "_processes", None) or {})


async def _round(
    pool: GateExecutor, lessons: list[LessonUnderTest], n: int, concurrency: int
) -> dict[str, float]:
    settings, embedder = _settings(), make_embedder("hashing")
    for lesson in lessons[: max(1, pool.workers) * 2]:  # warm: workers up, classifier loaded
        await run_lesson_gates(lesson, settings=settings, embedder=embedder, blocking=pool)
    pids = [os.getpid(), *_pool_pids(pool)]
    cpu0 = sum(_cpu_s(p) for p in pids)
    lags: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - t - 0.01)

    slots = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with slots:
            lesson = lessons[i % len(lessons)]
            await run_lesson_gates(lesson, settings=settings, embedder=embedder, blocking=pool)

    prober = asyncio.create_task(probe())
    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    wall = time.perf_counter() - t0
    done.set()
    await prober
    cpu = sum(_cpu_s(p) for p in pids) - cpu0
    lags.sort()
    return {
        "per_s": n / wall,
        "p50": statistics.median(lags) if lags else 0.0,
        "p99": lags[int(len(lags) * 0.99)] if lags else 0.0,
        "max": lags[-1] if lags else 0.0,
        "cpu": cpu / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lessons", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    lessons = _lessons()
    modes = {
        "inline (workers 0)": (0, "thread"),
        f"threads ({args.workers})": (args.workers, "thread"),
        f"processes ({args.workers})": (args.workers, "process"),
    }
    results: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    for _ in range(args.rounds):
        for mode, (workers, kind) in modes.items():
            pool = GateExecutor(workers, kind)
            try:
                results[mode].append(asyncio.run(_round(pool, lessons, args.lessons, args.concurrency)))
            finally:
                pool.close()
    print(
        f"{args.lessons} lesson attempts gated, {args.concurrency} in flight, hashing embedder, "
        f"{args.rounds} round(s) per mode alternating (medians of the rounds); load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    print(
        f"  {'mode':22s} {'attempts/s':>10s} {'lag p50':>9s} {'lag p99':>9s} {'lag max':>9s} {'CPU s/attempt':>14s}"
    )
    for mode, rounds in results.items():
        med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
        print(
            f"  {mode:22s} {med['per_s']:10.1f} {med['p50'] * 1000:7.1f}ms {med['p99'] * 1000:7.1f}ms "
            f"{med['max'] * 1000:7.1f}ms {med['cpu'] * 1000:11.1f} ms"
        )


if __name__ == "__main__":
    main()
