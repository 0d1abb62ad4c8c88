"""Chaos run: many courses through the real engine against the simulator's chaos profile.

The simulator (`courseforge.sim`, chaos profile: 10 % 429, 10 % 5xx, 5 % hangs, 5 % malformed
JSON, 2 % empty 200s on every model) runs in a spawned process, so the two processes get a
core each; latency is compressed by `--time-scale` (0.01: a 4.5 s time to first token takes
45 ms). The bundled hosted profile is pointed at it (`OPENROUTER_BASE_URL`), with the hashing
embedder, 2 s call timeouts, a 2 s socket-read guard for critical calls (which set no timeout)
and the breaker cooldown compressed like the latency. One engine runs every course, `--parallel`
at a time, each under a `--course-timeout` watchdog.

Printed: courses by outcome (approved / needs_review / failed with a report; lost = raised
instead of reporting, hung = hit the watchdog: both must be 0), budget (every course's spend
and peak commitment against its cap), faults by class as the reports counted them and as the
simulator injected them, breaker opens, and wall time. Exit 1 if a course was lost or hung or a
cap was exceeded.

    python benchmarks/chaos.py [--courses 200] [--parallel 8] [--seed 5] [--time-scale 0.01]
                               [--profile chaos] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import sys
import time
import urllib.request
from collections import Counter
from decimal import Decimal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from courseforge.config import Settings, load_config
from courseforge.engine import Engine
from courseforge.pipeline import validate_analysis
from courseforge.providers.embeddings import CachedEmbedder, HashingEmbedder
from courseforge.resilience import BREAKER_COOLDOWN_S

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: Seconds a call may take before the client gives up (the simulator's hangs last 30 s).
CALL_TIMEOUT_S = 2.0


def serve_simulator(conn: Connection, profile: str, seed: int, time_scale: float) -> None:
    """Child process: run the simulator, send its port, stop when the parent says so."""
    from courseforge.sim import SimServer, load_profile

    async def main() -> None:
        async with SimServer(load_profile(profile), seed=seed, time_scale=time_scale) as server:
            conn.send(server.port)
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)

    asyncio.run(main())


def chaos_settings(base_url: str, env: dict[str, str]) -> Settings:
    settings = load_config("hosted", env=env).settings
    priorities = {
        name: p.model_copy(update={"timeout_s": None if p.timeout_s is None else CALL_TIMEOUT_S})
        for name, p in settings.routing.priorities.items()
    }
    providers = {
        name: p.model_copy(update={"read_timeout_s": CALL_TIMEOUT_S})
        for name, p in settings.providers.items()
    }
    return settings.model_copy(
        update={
            "providers": providers,
            "routing": settings.routing.model_copy(update={"priorities": priorities}),
            "gates": settings.gates.model_copy(update={"embedding_model": "hashing"}),
        }
    )


def analyses(n: int) -> list[Any]:
    names = ["python-basics", "spanish-a1", "photosynthesis-sourced"]
    data = [json.loads((EXAMPLES / f"{name}.json").read_text("utf-8")) for name in names]
    return [validate_analysis({**data[i % len(data)], "course_id": f"chaos-{i:03d}"}) for i in range(n)]


async def run_courses(
    base_url: str,
    n: int,
    parallel: int,
    time_scale: float,
    course_timeout_s: float,
    *,
    settings: Settings | None = None,
    inputs: list[Any] | None = None,
) -> dict[str, Any]:
    """`settings` replaces `chaos_settings` (the hosted profile as it is, for a real-time run);
    `inputs` replaces `analyses(n)`."""
    env = {"OPENROUTER_API_KEY": "simulated", "OPENROUTER_BASE_URL": base_url}
    settings = settings or chaos_settings(base_url, env)
    engine = Engine(
        settings,
        env=env,
        embedder=CachedEmbedder(HashingEmbedder()),
        breaker_cooldown_s=BREAKER_COOLDOWN_S * time_scale,
    )
    sem = asyncio.Semaphore(parallel)
    rows: list[dict[str, Any]] = []
    faults: Counter[str] = Counter()

    async def one(analysis: Any) -> None:
        async with sem:
            started = time.perf_counter()
            row: dict[str, Any] = {"course_id": analysis.course_id}
            try:
                result = await asyncio.wait_for(engine.generate(analysis), course_timeout_s)
            except TimeoutError:
                row["outcome"] = "hung"
            except Exception as exc:  # a course that raised instead of reporting is "lost"
                row["outcome"], row["error"] = "lost", f"{type(exc).__name__}: {exc}"[:300]
            else:
                report = result.report
                row.update(
                    outcome=report.status if result.course else "failed_with_report",
                    reason=report.failure_reason[:200],
                    cost=report.total_cost_usd,
                    cap=report.budget_usd,
                    peak=Decimal(str(report.summary.get("peak_committed_usd", 0))),
                    calls=len(report.calls),
                    faults=report.faults,
                    report_wall_s=report.wall_time_s,
                    critical_s=report.critical_path_s,
                    skipped=sum(1 for c in report.calls if c.outcome == "skipped"),
                )
                faults.update(report.faults)
            row["wall_s"] = round(time.perf_counter() - started, 2)
            rows.append(row)
            if len(rows) % 20 == 0:
                print(f"  {len(rows)}/{n} courses done", file=sys.stderr, flush=True)

    started = time.perf_counter()
    try:
        await asyncio.gather(*(one(a) for a in (analyses(n) if inputs is None else inputs)))
    finally:
        breakers = engine.breaker_report()
        await engine.aclose()
    return {
        "rows": rows,
        "faults": dict(sorted(faults.items())),
        "breakers": {k: v.model_dump() for k, v in breakers.items()},
        "wall_s": time.perf_counter() - started,
    }


def summarise(result: dict[str, Any], injected: dict[str, Any]) -> tuple[list[str], bool]:
    rows = result["rows"]
    outcomes = Counter(r["outcome"] for r in rows)
    reported = [r for r in rows if "cost" in r]
    over = [r for r in reported if r["cost"] > r["cap"] or r["peak"] > r["cap"]]
    max_cost = max((r["cost"] for r in reported), default=Decimal(0))
    max_peak = max((r["peak"] for r in reported), default=Decimal(0))
    cap = max((r["cap"] for r in reported), default=Decimal(0))
    ok = outcomes["lost"] == 0 and outcomes["hung"] == 0 and not over and len(rows) > 0
    lines = [
        f"courses: {len(rows)}  " + "  ".join(f"{k} {v}" for k, v in sorted(outcomes.items())),
        f"lost {outcomes['lost']}  hung {outcomes['hung']}",
        f"budget: max spent ${max_cost:.6f}, max peak committed ${max_peak:.6f}, cap ${cap}; "
        f"courses over cap: {len(over)}",
        f"calls: {sum(r.get('calls', 0) for r in rows)}  "
        f"course wall median {sorted(r['wall_s'] for r in rows)[len(rows) // 2]:.1f}s",
        "faults met (reports): " + ", ".join(f"{k} {v}" for k, v in result["faults"].items()),
        "injected (simulator): " + ", ".join(f"{k} {v}" for k, v in injected.get("totals", {}).items()),
        "breakers: "
        + ", ".join(f"{m} {b['state']} (opened {b['opens']}x)" for m, b in result["breakers"].items()),
        f"wall time: {result['wall_s']:.1f}s",
    ]
    failed = [r for r in rows if r["outcome"] in ("failed_with_report", "lost", "hung")]
    for r in failed[:5]:
        lines.append(f"  {r['course_id']}: {r['outcome']}: {r.get('reason') or r.get('error', '')}")
    return lines, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--courses", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--time-scale", type=float, default=0.01)
    parser.add_argument("--profile", default="chaos")
    parser.add_argument("--course-timeout", type=float, default=300.0, help="watchdog per course (s)")
    parser.add_argument("--json", type=Path, help="write the per-course rows here")
    args = parser.parse_args(argv)

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(
        target=serve_simulator, args=(child, args.profile, args.seed, args.time_scale), daemon=True
    )
    proc.start()
    try:
        port = parent.recv()
        base_url = f"http://127.0.0.1:{port}/v1"
        print(f"simulator: {args.profile} on {base_url}, seed {args.seed}, time scale {args.time_scale}")
        result = asyncio.run(
            run_courses(base_url, args.courses, args.parallel, args.time_scale, args.course_timeout)
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/sim/stats", timeout=10) as resp:
            injected = json.loads(resp.read())
    finally:
        parent.send("stop")
        proc.join(10)
        if proc.is_alive():
            proc.terminate()
    lines, ok = summarise(result, injected)
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(result, default=str, indent=1), "utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
