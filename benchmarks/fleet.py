"""The Temporal worker fleet: courses per minute with 1, 2 and 4 worker processes, Temporal
history events per course, and the Redis limiter's hold on one RPM across every worker.

Processes besides this one: a Temporal dev server on 127.0.0.1 (`tests/temporal_helpers.py`),
the simulator's realistic profile time-scaled as in `benchmarks/scale.py`, `courseforge worker`
processes (each with `--max-activities`, the bound on model calls it runs at once) and, for
`--rpm`, a `redis-server` on a free port. The courses are submitted from this process
(`distributed.start_course`, the client `generate --temporal` and the service use), with the
same config the workers load: the hosted profile pointed at the simulator, hashing gates,
response cache off.

Throughput: for each worker count, `--courses` copies of the example (own ids and topics) at
once on a fresh task queue; wall from the first start to the last result, the workers' CPU
seconds (/proc), and each workflow's history length (`fetch_history`).

`--rpm R`: every worker's provider shares one Redis-paced limit of R requests a minute
(`providers.NAME.rpm`, `redis_url`); `--rpm-workers` workers and many courses keep demand far
above it for `--rpm-seconds`, starting from a quiet spell (a fresh key); the simulator's own
request counter (`/sim/stats`), sampled every 0.5 s, gives the rate it saw from the first
request on (requests per minute against R) and the most requests in any 60 s between two
samples (the goal: within 5 % of R; a limiter that banks a quiet minute shows up to 2R here).

`--large PATH`: one more course (e.g. examples/scale/forty-sections.json) on 2 workers, for
its history length against Temporal's limits (50,000 events, 50 MB).

    python benchmarks/fleet.py [--workers 1,2,4] [--courses 8] [--max-activities 4]
        [--time-scale 0.05] [--rpm 240 --rpm-workers 4 --rpm-seconds 90] [--large examples/scale/forty-sections.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from scale import CLI, cpu_s, service_config, sim_profile  # noqa: E402

from courseforge.testing.processes import child_process, free_port, redis_server, wait_http  # noqa: E402
from temporal_helpers import temporal_server  # noqa: E402


def _config(args: argparse.Namespace, redis_url: str | None = None) -> dict[str, Any]:
    data = service_config(64, 512, args.time_scale, 10)
    data["profile"] = "fleet"
    if redis_url:
        for provider in data["providers"].values():
            provider["rpm"] = args.rpm
            provider["redis_url"] = redis_url
    return data


@contextlib.contextmanager
def _workers(
    n: int, address: str, queue: str, cfg: Path, env: dict[str, str], tmp: Path, activities: int
) -> Iterator[list[int]]:
    with contextlib.ExitStack() as stack:
        pids = []
        for i in range(n):
            cmd = [str(CLI), "worker", "--temporal", address, "--task-queue", queue, "--config", str(cfg)]
            cmd += ["--max-activities", str(activities)]
            proc = stack.enter_context(child_process(cmd, env=env, log=tmp / f"worker-{queue}-{i}.log"))
            pids.append(proc.pid)
        deadline = time.time() + 300  # a worker warms its models first: slow on a loaded machine
        for i in range(n):  # each says "worker: ... task queue" once it polls
            log = tmp / f"worker-{queue}-{i}.log"
            while "task queue" not in log.read_text("utf-8", "replace"):
                if time.time() > deadline:
                    raise SystemExit(f"worker {i} did not start: {log.read_text()[-2000:]}")
                time.sleep(0.2)
        yield pids


async def _run_courses(
    address: str, cfg: Path, queue: str, example: dict[str, Any], n: int, tag: str
) -> dict[str, Any]:
    from courseforge.config import load_config
    from courseforge.distributed import start_course, wait_for_course
    from courseforge.distributed.worker import connect
    from courseforge.pipeline import validate_analysis

    settings = load_config(str(cfg)).settings
    client = await connect(address)
    started = time.perf_counter()

    async def one(i: int) -> tuple[str, int, float]:
        analysis = validate_analysis(
            {**example, "course_id": f"{tag}-{i}", "topic": f"{example['topic']} ({tag} {i})"}
        )
        handle = await start_course(
            client, settings, analysis, workflow_id=f"{tag}-{i}-{uuid.uuid4().hex[:6]}", task_queue=queue
        )
        _, report = await wait_for_course(handle)
        history = await handle.fetch_history()
        size = sum(len(e.SerializeToString()) for e in history.events)
        return report.status, len(history.events), size / 1e6

    results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    wall = time.perf_counter() - started
    ok = [r for r in results if not isinstance(r, BaseException)]
    return {
        "wall_s": wall,
        "statuses": sorted(r[0] for r in ok),
        "errors": [repr(r)[:200] for r in results if isinstance(r, BaseException)],
        "events": [r[1] for r in ok],
        "mb": [r[2] for r in ok],
    }


def _sim_total(base: str) -> int:
    totals = httpx.get(f"{base}/sim/stats", timeout=5).json()["totals"]
    return int(sum(totals.values()))


async def _rpm_run(
    address: str, cfg: Path, queue: str, example: dict[str, Any], sim: str, seconds: float
) -> dict[str, Any]:
    samples: list[tuple[float, int]] = []
    runner = asyncio.create_task(_run_courses(address, cfg, queue, example, 400, "rpm"))
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        samples.append((time.perf_counter() - t0, await asyncio.to_thread(_sim_total, sim)))
        await asyncio.sleep(0.5)
    runner.cancel()
    with contextlib.suppress(BaseException):
        await runner
    return {"samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", default="1,2,4", help="worker counts to measure (1,2,4; '' for none)")
    parser.add_argument("--courses", type=int, default=8, help="courses at once per worker count (8)")
    parser.add_argument("--max-activities", type=int, default=4, help="model calls at once per worker (4)")
    parser.add_argument("--time-scale", type=float, default=0.05)
    parser.add_argument("--example", type=Path, default=ROOT / "examples" / "python-basics.json")
    parser.add_argument("--rpm", type=int, default=0, help="shared RPM to hold through Redis (0: skip)")
    parser.add_argument("--rpm-workers", type=int, default=4)
    parser.add_argument("--rpm-seconds", type=float, default=90.0)
    parser.add_argument("--large", type=Path, default=None, help="one large course, for its history length")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="courseforge-fleet-"))
    sim_port = free_port()
    env = {**os.environ, "OPENROUTER_API_KEY": "sim-key", "PYTHONHASHSEED": "0"}
    env["OPENROUTER_BASE_URL"] = f"http://127.0.0.1:{sim_port}/v1"
    os.environ.update(OPENROUTER_API_KEY="sim-key", OPENROUTER_BASE_URL=env["OPENROUTER_BASE_URL"])
    sim_profile(tmp / "realistic.yaml")
    sim_cmd = [str(CLI), "sim", "serve", "--port", str(sim_port), "--profile", str(tmp / "realistic.yaml")]
    sim_cmd += ["--time-scale", str(args.time_scale), "--seed", "0"]
    example = json.loads(args.example.read_text("utf-8"))
    cfg = tmp / "fleet.yaml"
    cfg.write_text(yaml.safe_dump(_config(args)), "utf-8")
    sim = f"http://127.0.0.1:{sim_port}"
    print(f"fleet: {args.courses} x {args.example.name} per worker count, --max-activities {args.max_activities}, "
          f"simulator realistic x{args.time_scale}, hashing gates, cache off; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    with temporal_server(tmp) as address, child_process(sim_cmd, env=env, log=tmp / "sim.log") as sim_proc:
        wait_http(f"{sim}/v1/models", sim_proc, "simulator")
        print(
            "| workers | courses | wall s | courses/min | per worker | worker CPU s per course | sim requests | statuses | history events per course (min-max) | history MB (max) |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        base_rate = None
        for n in [int(w) for w in args.workers.split(",") if w]:
            queue = f"fleet-{n}-{uuid.uuid4().hex[:6]}"
            with _workers(n, address, queue, cfg, env, tmp, args.max_activities) as pids:
                cpu0, req0 = sum(cpu_s(p) for p in pids), _sim_total(sim)
                r = asyncio.run(_run_courses(address, cfg, queue, example, args.courses, f"w{n}"))
                cpu, req = sum(cpu_s(p) for p in pids) - cpu0, _sim_total(sim) - req0
            rate = args.courses / r["wall_s"] * 60
            base_rate = base_rate or rate
            statuses = {s: r["statuses"].count(s) for s in sorted(set(r["statuses"]))}
            ev = r["events"] or [0]
            print(f"| {n} | {args.courses} | {r['wall_s']:.1f} | {rate:.1f} ({rate / base_rate:.2f}x) | {rate / n:.1f} | "
                  f"{cpu / args.courses:.2f} | {req} | {statuses}{' errors: ' + str(r['errors']) if r['errors'] else ''} | "
                  f"{min(ev)}-{max(ev)} | {max(r['mb'] or [0]):.2f} |")  # fmt: skip
        if args.large is not None:
            large = json.loads(args.large.read_text("utf-8"))
            queue = f"fleet-large-{uuid.uuid4().hex[:6]}"
            with _workers(2, address, queue, cfg, env, tmp, args.max_activities):
                r = asyncio.run(_run_courses(address, cfg, queue, large, 1, "large"))
            print(f"\nlarge course {args.large.name} on 2 workers: {r['statuses']} {r['errors']}, wall {r['wall_s']:.1f} s, "
                  f"history {r['events']} events, {max(r['mb'] or [0]):.2f} MB (Temporal's limits: 50,000 events, 50 MB)")  # fmt: skip
        if args.rpm:
            _rpm(args, address, env, tmp, example, sim)
    print(f"  logs in {tmp}")


def _rpm(
    args: argparse.Namespace, address: str, env: dict[str, str], tmp: Path, example: dict[str, Any], sim: str
) -> None:
    with redis_server(tmp) as redis_url:
        cfg = tmp / "fleet-rpm.yaml"
        cfg.write_text(yaml.safe_dump(_config(args, redis_url)), "utf-8")
        queue = f"fleet-rpm-{uuid.uuid4().hex[:6]}"
        with _workers(args.rpm_workers, address, queue, cfg, env, tmp, args.max_activities):
            r = asyncio.run(_rpm_run(address, cfg, queue, example, sim, args.rpm_seconds))
    samples = r["samples"]
    # From the first sample that saw a request: there is no burst to wait out (GCRA, a burst of one).
    start = next((i for i, (_, c) in enumerate(samples) if c > samples[0][1]), None)
    if start is None or len(samples) - start < 20:
        print(f"\nRPM {args.rpm}: too few samples after the first request; run longer")
        return
    start = max(start - 1, 0)  # the sample just before the first request
    (t_a, c_a), (t_b, c_b) = samples[start], samples[-1]
    rate = (c_b - c_a) / (t_b - t_a) * 60
    window = max(
        (c_j - c_i for t_i, c_i in samples for t_j, c_j in samples if 0 <= t_j - t_i <= 60), default=0
    )
    print(f"\nRPM {args.rpm} shared through Redis by {args.rpm_workers} workers: {c_b - c_a} requests in "
          f"{t_b - t_a:.1f} s from the first = {rate:.1f} per minute ({rate / args.rpm:.3f} of the limit); "
          f"most in any 60 s: {window} ({window / args.rpm:.3f} of the limit)")  # fmt: skip


if __name__ == "__main__":
    main()
