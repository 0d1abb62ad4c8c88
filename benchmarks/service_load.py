"""Service load: N jobs submitted at once through the HTTP API against a loopback provider.

A `LoopbackServer` (in a spawned process) answers every chat completion after `--delay` seconds
with `CourseAuthor` text; `courseforge serve` (a subprocess, SQLite store in a temp dir) runs
the jobs in-process with checkpointing, `--concurrency` at a time. This script POSTs `--jobs`
copies of the example (each with its own course_id) concurrently, waits until every job is
final, and prints jobs/min (first submit to last finish) and p50/p95 job latency (a job's
created_at to its last update, from the API).

    python benchmarks/service_load.py [--jobs 100] [--delay 0.2] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import yaml

from courseforge.sim.content import message_text
from courseforge.testing.processes import child_process, free_port, wait_http

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token-not-secret"


def _provider(delay_s: float, conn: Connection) -> None:
    from courseforge.providers import ChatRequest, Message
    from courseforge.testing import CourseAuthor, LoopbackReply

    author = CourseAuthor()

    def handler(payload: dict[str, Any]) -> LoopbackReply:
        request = ChatRequest([Message(m["role"], message_text(m["content"])) for m in payload["messages"]])
        text = author(request)
        prompt = sum(len(m["content"].split()) for m in payload["messages"])
        usage = {"prompt_tokens": prompt, "completion_tokens": len(text.split())}
        return LoopbackReply.completion(text, model=payload["model"], usage=usage, delay_s=delay_s)

    serve_loopback(handler, conn)


def serve_loopback(handler: Callable[[dict[str, Any]], Any], conn: Connection) -> None:
    """Serve `handler` on a `LoopbackServer` on 127.0.0.1 in this (spawned) process: its base
    URL goes to `conn`, and it stops when the parent sends anything on `conn`."""
    from courseforge.testing import LoopbackServer

    async def main() -> None:
        server = LoopbackServer(handler, record=False)
        await server.start()
        conn.send(server.base_url)
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await server.stop()

    asyncio.run(main())


def _config(base_url: str, concurrency: int) -> dict[str, Any]:
    price = {"price_in_per_m": "0.03", "price_out_per_m": "0.13"}
    return {
        "profile": "service-load",
        "providers": {"loop": {"kind": "openai", "base_url": base_url, "max_concurrency": 256}},
        "models": {
            "small": {"provider": "loop", "name": "bench/small", **price},
            "medium": {"provider": "loop", "name": "bench/medium", **price},
            "large": {
                "provider": "loop",
                "name": "bench/large",
                "price_in_per_m": "0.78",
                "price_out_per_m": "3.90",
            },
        },
        "routing": {
            "tiers": {"cheap": "small", "mid": "medium", "premium": "large"},
            "ladder": ["cheap", "mid", "premium"],
            "long_context_tier": None,
        },
        "gates": {
            "embedding_model": "hashing",
            "similarity": {"hashing": {"pass_at": 0.12, "severe_below": 0.04}},
            "lesson_min_words": 120,
        },
        "service": {"max_concurrent_jobs": concurrency},
    }


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _drive(base: str, jobs: int, example: dict[str, Any]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    limits = httpx.Limits(max_connections=jobs, max_keepalive_connections=jobs)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60, limits=limits) as client:
        t0 = time.time()

        async def submit(i: int) -> str:
            r = await client.post("/v1/jobs", json={**example, "course_id": f"load-{i:04d}"})
            r.raise_for_status()
            return str(r.json()["id"])

        ids = await asyncio.gather(*(submit(i) for i in range(jobs)))
        submitted = time.time() - t0
        final: dict[str, dict[str, Any]] = {}
        while len(final) < jobs:
            await asyncio.sleep(0.5)
            r = await client.get("/v1/jobs", params={"limit": 500})
            for job in r.json()["jobs"]:
                if job["id"] in ids and job["status"] in ("completed", "failed", "cancelled"):
                    final[job["id"]] = job
            if time.time() - t0 > 1800:
                raise SystemExit(f"timed out with {len(final)}/{jobs} jobs final")
        metrics = (await client.get("/metrics")).text
    latencies = [j["updated_at"] - j["created_at"] for j in final.values()]
    span = max(j["updated_at"] for j in final.values()) - t0
    return {
        "jobs": jobs,
        "completed": sum(1 for j in final.values() if j["status"] == "completed"),
        "statuses": {
            s: sum(1 for j in final.values() if j["status"] == s)
            for s in {j["status"] for j in final.values()}
        },
        "submit_s": round(submitted, 2),
        "span_s": round(span, 2),
        "jobs_per_min": round(jobs / span * 60, 1),
        "p50_s": round(_pct(latencies, 0.5), 2),
        "p95_s": round(_pct(latencies, 0.95), 2),
        "mean_s": round(statistics.fmean(latencies), 2),
        "paid_calls": sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("courseforge_calls_total{") and 'outcome="replayed"' not in line
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--delay", type=float, default=0.2, help="provider seconds per call")
    parser.add_argument("--concurrency", type=int, default=16, help="jobs generating at once")
    parser.add_argument("--example", type=Path, default=ROOT / "examples" / "python-basics.json")
    args = parser.parse_args(argv)

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    provider = ctx.Process(target=_provider, args=(args.delay, child), daemon=True)
    provider.start()
    base_url = parent.recv()
    tmp = Path(tempfile.mkdtemp(prefix="courseforge-load-"))
    cfg = tmp / "load.yaml"
    cfg.write_text(yaml.safe_dump(_config(base_url, args.concurrency)), "utf-8")
    port = free_port()
    env = {
        **os.environ,
        "COURSEFORGE_API_TOKENS": TOKEN,
        "COURSEFORGE_STORAGE_URL": f"sqlite:///{tmp}/load.db",
    }
    cli = Path(sys.executable).with_name("courseforge")
    serve = [str(cli), "serve", "--port", str(port), "--config", str(cfg), "--log-level", "warning"]
    base = f"http://127.0.0.1:{port}"
    try:
        with child_process(serve, env=env, log=tmp / "serve.log") as server:
            wait_http(f"{base}/health", server, "courseforge serve", timeout_s=30, ok_below=300)
            example = json.loads(args.example.read_text("utf-8"))
            result = asyncio.run(_drive(base, args.jobs, example))
    finally:
        parent.send("stop")
        provider.join(10)
    print(
        f"{result['jobs']} jobs submitted at once ({result['submit_s']} s to submit), "
        f"{result['completed']} completed {result['statuses']}, provider delay {args.delay}s/call, "
        f"{args.concurrency} jobs at a time"
    )
    print(
        f"throughput {result['jobs_per_min']} jobs/min over {result['span_s']} s; job latency "
        f"p50 {result['p50_s']} s, p95 {result['p95_s']} s (mean {result['mean_s']} s); "
        f"{result['paid_calls']:.0f} paid calls"
    )
    return 0 if result["completed"] == result["jobs"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
