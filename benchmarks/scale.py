"""Scale: many courses at once in one `courseforge serve` process, on PostgreSQL, against the
simulator's realistic profile.

Three processes besides this one, so that each one's CPU and memory are its own:
- `courseforge sim serve --profile realistic --time-scale S` (published latencies of the four
  seed models and rare faults: 429s, 5xx, hangs, malformed and off-topic answers; every
  duration multiplied by S so a run fits in minutes; the hangs, real seconds, cut to 30 s, and
  the service's call timeouts scaled by S with floors of 10-15 s);
- a throw-away PostgreSQL on 127.0.0.1 (`courseforge.testing.postgres`; `--store sqlite` for a file);
- `courseforge serve`: the hosted profile pointed at the simulator, gates on the hashing
  embedder (MiniLM's CPU is measured apart: `benchmarks/gate_cpu.py`), the response cache off
  (every course pays for its own calls), `service.max_concurrent_jobs` = `--concurrency`,
  `service.loop_lag_target_s` = `--lag-target` (`off`: always `--concurrency` at once).

`--courses` copies of the example, each with its own course_id and topic, are POSTed at once;
the service queues what it cannot run yet, up to `--max-queued` (`service.max_queued_jobs`),
and answers the rest 503 with Retry-After: they are sent again (same Idempotency-Key) then. While they run, every `--sample-s` seconds this
script asks `/health` and the dashboard's jobs page (`/ui/`, signed in) and times both, reads
the service's RSS (`/proc/PID/status`) and its `/metrics` (jobs finished, the event-loop lag
histogram the service keeps: a probe task sleeping 0.1 s, observing how late it woke).

Printed: courses per minute (first submit to last finish), peak RSS, event-loop lag p50/p99
(upper bounds of the histogram buckets they fall in), /health and /ui/ latency (max, and how
many took over 1 s or failed), every job's final state (completed: the course's
approved/needs_review; failed: its reason), lost jobs (submitted but not final when the run
ended), budgets held (each report's total_cost_usd <= budget_usd), PostgreSQL rows written
per course (pg_stat_database), and the leak check: RSS when the Nth course finished against
when the N/10th did. That compares a service with few courses in flight against one with many
when the job slots follow the loop's lag (`--lag-target`), so `--idle-check K` also runs the
first K courses alone and compares the RSS with nothing in flight, after a full collection,
after those K and after the last.

    python benchmarks/scale.py [--courses 200] [--concurrency 100] [--time-scale 0.05]
        [--store postgres|sqlite] [--pool-size 10] [--max-queued 200] [--example examples/python-basics.json] [--timeout-s 1500]
        [--stall-s 180] [--lag-target 0.05|off] [--idle-check 200] [--objects-at 200,1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from courseforge.testing.processes import child_process, free_port, wait_http

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "scale-token-not-secret"
CLI = Path(sys.executable).with_name("courseforge")
FINAL = ("completed", "failed", "cancelled")


@contextmanager
def _store(kind: str, tmp: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp}/scale.db"
        return
    from courseforge.testing.postgres import create_database, postgres_server

    with postgres_server() as base:
        yield create_database(base)


def _pg_writes(url: str) -> int | None:
    """Rows inserted, updated and deleted in the store's database so far (None: not PostgreSQL)."""
    if not url.startswith("postgresql"):
        return None
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = %s",
            (name,),
        ).fetchone()
    return int(row[0]) if row else None


#: Real seconds the simulator holds a "timeout" fault (the realistic profile's 300 s would
#: outlast a time-scaled run); the client's timeouts are scaled to stay under it.
HANG_S = 30.0
#: `--objects-at`: the service started through this, which on SIGUSR1 collects garbage and
#: writes how many objects of each type the collector tracks (with the process's RSS, and the
#: size of each embedding cache: a bounded LRU that fills as courses bring new texts) to the
#: next `objects-N.json` in $SCALE_OBJECTS_DIR: what grows between two counts is what leaks.
#: For each type in $SCALE_HOLDERS (default `array.array`) it also follows the newest 20 such
#: objects up three referrers and counts the chains: who holds what grows.
OBJECT_COUNTER = """
import collections, gc, json, os, signal, sys, types
from courseforge.cli import main

def _name(o):
    n = type(o).__name__
    return f"{n}[{len(o)}]" if isinstance(o, (dict, list, tuple, set)) else n

def holders(objects, kind):
    sample = [o for o in objects if repr(type(o))[8:-2] == kind][-20:]
    chains = collections.Counter()
    for o in sample:
        chain, cur = [], o
        for _ in range(3):
            refs = [r for r in gc.get_referrers(cur)
                    if r is not objects and r is not sample and not isinstance(r, types.FrameType)]
            if not refs:
                break
            cur = refs[0]
            chain.append(_name(cur))
        chains[" < ".join(chain) or "(nothing)"] += 1
    return dict(chains)

def count(signum, frame):
    # `courseforge serve` froze what was alive after its first job (gc.freeze): frozen objects
    # are not listed by gc.get_objects, so they are unfrozen for the count and frozen again
    # (with whatever is alive now: at an --idle-check count, nothing of a course).
    gc.unfreeze()
    gc.collect()
    objects = gc.get_objects()
    counts = collections.Counter(repr(type(o))[8:-2] for o in objects)
    caches = [o.stats().size for o in objects if type(o).__name__ == "CachedEmbedder"]
    held = {k: holders(objects, k) for k in os.environ.get("SCALE_HOLDERS", "array.array").split(",")}
    where = os.environ["SCALE_OBJECTS_DIR"]
    status = open("/proc/self/status").read()
    rss = int(status.split("VmRSS:")[1].split()[0])
    name = os.path.join(where, f"objects-{len(os.listdir(where))}.json")
    with open(name, "w") as f:
        json.dump({"rss_kb": rss, "blocks": sys.getallocatedblocks(), "types": counts,
                   "embedding_caches": caches, "holders": held}, f)
    del objects
    gc.freeze()

signal.signal(signal.SIGUSR1, count)
sys.argv[0] = "courseforge"
main()
"""


def service_config(
    concurrency: int,
    provider_concurrency: int,
    time_scale: float,
    pool: int,
    max_queued: int = 200,
    gate_workers: str = "thread",
    lag_target_s: float | None = 0.05,
    embedding_cache_items: int | None = None,
) -> dict[str, Any]:
    """The hosted profile on the hashing embedder, cache off, its timeouts time-scaled as the
    simulator's latencies are (floors of 10 s per call and 15 s without a byte, under HANG_S)."""
    from courseforge.config import load_config

    settings = load_config("hosted", env={"OPENROUTER_API_KEY": "x"}).settings
    data: dict[str, Any] = settings.model_dump(mode="json", exclude_defaults=False)
    data["profile"] = "scale"
    data["gates"]["embedding_model"] = "hashing"
    data["cache"]["mode"] = "off"
    data["service"]["max_concurrent_jobs"] = concurrency
    data["service"]["max_queued_jobs"] = max_queued
    data["service"]["loop_lag_target_s"] = lag_target_s
    if embedding_cache_items is not None:
        data["gates"]["embedding_cache_items"] = embedding_cache_items
    data["storage"]["pool_size"] = pool
    data["gates"]["workers_kind"] = gate_workers
    for provider in data["providers"].values():
        provider["max_concurrency"] = provider_concurrency
        provider["read_timeout_s"] = max(15.0, (provider["read_timeout_s"] or 300.0) * time_scale)
    for priority in data["routing"]["priorities"].values():
        if priority["timeout_s"] is not None:
            priority["timeout_s"] = max(10.0, priority["timeout_s"] * time_scale)
    return data


def sim_profile(path: Path) -> None:
    """The bundled realistic profile with its hangs cut to HANG_S real seconds."""
    from importlib import resources

    text = resources.files("courseforge.sim").joinpath("profiles/realistic.yaml").read_text("utf-8")
    profile = yaml.safe_load(text)
    profile["defaults"]["timeout_hang_s"] = HANG_S
    path.write_text(yaml.safe_dump(profile), "utf-8")


def _rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of `pid` in kB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of `pid` so far (every thread)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _metric(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples if s.name == name
    ]


def _bucket_quantile(buckets: list[tuple[dict[str, str], float]], q: float) -> str:
    """The upper bound of the histogram bucket holding quantile `q` ("<= 0.01 s")."""
    cumulative = sorted((float(labels["le"]), value) for labels, value in buckets)
    total = cumulative[-1][1] if cumulative else 0.0
    for bound, count in cumulative:
        if total and count >= q * total:
            return f"<= {bound:g} s" if bound != float("inf") else "> 2.5 s"
    return "n/a"


def _over(buckets: list[tuple[dict[str, str], float]], bound: float) -> tuple[int, int]:
    """(observations over `bound`, all observations) of a histogram with a bucket at `bound`."""
    cumulative = dict((float(labels["le"]), value) for labels, value in buckets)
    total = cumulative.get(float("inf"), 0.0)
    return int(total - cumulative.get(bound, total)), int(total)


@dataclass
class Watch:
    samples: int = 0
    health_ms: list[float] = field(default_factory=list)
    ui_ms: list[float] = field(default_factory=list)
    failures: int = 0
    #: Submissions sent again after their connection dropped (same Idempotency-Key).
    resubmitted: int = 0
    #: Submissions answered 503 (and sent again).
    refused_503: int = 0
    #: finished jobs -> RSS kB, the first sample at or past each count
    rss_at: dict[int, int] = field(default_factory=dict)
    peak_rss_kb: int = 0
    finished: int = 0
    metrics_text: str = ""
    #: `courseforge_jobs_limit` at each /metrics sample: jobs the service let run at once.
    limits: list[float] = field(default_factory=list)
    #: (finished courses, RSS kB) with nothing in flight, after a full collection (`--idle-check`).
    idle_rss_kb: list[tuple[int, int]] = field(default_factory=list)
    #: Finished counts at which the service counts its objects (`--objects-at`).
    count_objects_at: tuple[int, ...] = ()


async def _timed(
    client: httpx.AsyncClient, path: str, into: list[float], watch: Watch
) -> httpx.Response | None:
    t0 = time.perf_counter()
    try:
        response = await client.get(path, timeout=10)
    except httpx.HTTPError:
        watch.failures += 1
        return None
    into.append((time.perf_counter() - t0) * 1000)
    if response.status_code != 200:
        watch.failures += 1
    return response


async def _sign_in(client: httpx.AsyncClient) -> None:
    form = await client.get("/ui/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    if csrf is None:
        raise SystemExit("no sign-in form at /ui/login")
    r = await client.post("/ui/login", data={"token": TOKEN, "csrf": csrf.group(1)})
    if r.status_code != 303:
        raise SystemExit(f"dashboard sign-in failed: {r.status_code}")


async def _every(period_s: float, stop: asyncio.Event, probe: Callable[[], Awaitable[None]]) -> None:
    while not stop.is_set():
        await probe()
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), period_s)


async def _watch(base: str, pid: int, watch: Watch, stop: asyncio.Event, sample_s: float) -> None:
    """Three probes, each on its own loop so that a slow answer delays only its own samples."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        httpx.AsyncClient(base_url=base) as ui,
        httpx.AsyncClient(base_url=base, headers=headers) as api,
    ):
        await _sign_in(ui)

        async def health() -> None:
            await _timed(api, "/health", watch.health_ms, watch)

        async def jobs_page() -> None:
            page = await _timed(ui, "/ui/", watch.ui_ms, watch)
            if page is not None and "/ui/login" in str(page.url):
                watch.failures += 1  # signed out: the page asked for the token again

        async def metrics() -> None:
            rss, hwm = _rss_kb(pid)  # read before /metrics answers: RSS at this many finished
            try:
                text = (await api.get("/metrics", timeout=30)).text
            except httpx.HTTPError:
                watch.failures += 1
                return
            watch.metrics_text = text
            watch.limits += [v for _, v in _metric(text, "courseforge_jobs_limit")]
            watch.peak_rss_kb = max(watch.peak_rss_kb, hwm)
            watch.rss_at.setdefault(watch.finished, rss)
            finished = int(sum(v for _, v in _metric(text, "courseforge_jobs_finished_total")))
            if finished // 100 > watch.finished // 100:  # a line per 100 finished: a long run's log
                print(
                    f"  {time.strftime('%H:%M:%S')} {finished} finished, RSS {rss / 1024:.0f} MB", flush=True
                )
            for at in watch.count_objects_at:
                if watch.finished < at <= finished:
                    os.kill(pid, signal.SIGUSR1)
            watch.finished = finished
            watch.samples += 1

        await asyncio.gather(*(_every(sample_s, stop, p) for p in (health, jobs_page, metrics)))


async def _idle_rss_kb(pid: int, settle_s: float = 3.0) -> int:
    """The service's RSS with no course in flight: after `settle_s`, and after a full garbage
    collection (`--idle-check` starts it through the object counter, which collects on
    SIGUSR1 and writes the RSS it then has)."""
    await asyncio.sleep(settle_s)
    where = Path(os.environ["SCALE_OBJECTS_DIR"])
    before = len(list(where.glob("objects-*.json")))
    os.kill(pid, signal.SIGUSR1)
    for _ in range(600):
        files = sorted(where.glob("objects-*.json"), key=lambda p: p.stat().st_mtime)
        if len(files) > before:
            with suppress(ValueError):  # being written
                return int(json.loads(files[-1].read_text("utf-8"))["rss_kb"])
        await asyncio.sleep(0.1)
    raise SystemExit("the service did not count its objects within 60 s")


async def _drive(base: str, pid: int, args: argparse.Namespace, example: dict[str, Any]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    limits = httpx.Limits(max_connections=32)
    watch, stop = Watch(), asyncio.Event()
    watch.count_objects_at = tuple(int(n) for n in args.objects_at.split(",") if n.strip())
    # No limit on waiting for one of the 32 connections: 2,000 submissions queue here for
    # minutes while the service answers a few a second (a 60 s pool wait aborted such a run).
    timeout = httpx.Timeout(60, pool=None)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=timeout, limits=limits) as client:
        watcher = asyncio.create_task(_watch(base, pid, watch, stop, args.sample_s))
        t0 = time.time()

        async def submit(i: int) -> str:
            body = {**example, "course_id": f"scale-{i:05d}", "topic": f"{example['topic']} (cohort {i})"}
            # With an Idempotency-Key a submission whose connection dropped is sent again safely
            # (a busy server closes idle keep-alive connections: a POST raced one and got a
            # ReadError that ended a 1,000-course run).
            headers = {"Idempotency-Key": f"scale-{i:05d}"}
            # A 503 (a full job queue: backpressure; or the store did not answer in time) is
            # counted and sent again after its Retry-After, until --timeout-s.
            drops = 0
            while True:
                try:
                    r = await client.post("/v1/jobs", json=body, headers=headers)
                except httpx.TransportError:
                    drops += 1
                    if drops == 20:
                        raise
                    watch.resubmitted += 1
                    continue
                if r.status_code != 503 or time.time() - t0 > args.timeout_s:
                    break
                watch.refused_503 += 1
                await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
            r.raise_for_status()
            return str(r.json()["id"])

        async def finish(count: int) -> None:
            last, moved = -1, time.time()
            while watch.finished < count and time.time() - t0 < args.timeout_s:
                if watch.finished != last:
                    last, moved = watch.finished, time.time()
                elif time.time() - moved > args.stall_s:
                    break  # nothing finished for --stall-s: what is left is reported as stuck
                await asyncio.sleep(1)

        first = min(args.idle_check, args.courses) if args.idle_check else args.courses
        ids = await asyncio.gather(*(submit(i) for i in range(first)))
        if first < args.courses:
            await finish(first)
            watch.idle_rss_kb.append((watch.finished, await _idle_rss_kb(pid)))
            ids += await asyncio.gather(*(submit(i) for i in range(first, args.courses)))
        submit_s = time.time() - t0
        await finish(args.courses)
        if args.idle_check:
            watch.idle_rss_kb.append((watch.finished, await _idle_rss_kb(pid)))
        stop.set()
        await watcher
        jobs: dict[str, dict[str, Any]] = {}
        for offset in range(0, args.courses + 500, 500):
            page = (await client.get("/v1/jobs", params={"limit": 500, "offset": offset})).json()["jobs"]
            jobs.update((j["id"], j) for j in page if j["id"] in set(ids))
        reports = await asyncio.gather(*(client.get(f"/v1/jobs/{i}/report") for i in ids))
    final = [j for j in jobs.values() if j["status"] in FINAL]
    stuck = [
        f"{j['id']} {j['status']}: {j['progress'].get('message', '')} (last update "
        f"{time.time() - j['updated_at']:.0f} s ago)"
        for j in jobs.values()
        if j["status"] not in FINAL
    ]
    span = max((j["updated_at"] for j in final), default=t0) - t0
    outcomes: dict[str, int] = {}
    for j in final:
        key = j["status"] + (f": {j['course_status']}" if j["course_status"] else "")
        if j["status"] == "failed":
            key += f" ({j['error'][:80]})"
        outcomes[key] = outcomes.get(key, 0) + 1
    over_budget, costs, calls = 0, [], []
    for r in reports:
        if r.status_code != 200:
            continue
        report = r.json()
        costs.append(Decimal(str(report["total_cost_usd"])))
        calls.append(len(report.get("calls", [])))
        over_budget += Decimal(str(report["total_cost_usd"])) > Decimal(str(report["budget_usd"]))
    return {
        "watch": watch,
        "submit_s": submit_s,
        "span_s": span,
        "final": len(final),
        "lost": args.courses - len(final),
        "stuck": stuck,
        "outcomes": outcomes,
        "reports": len(costs),
        "over_budget": over_budget,
        "calls": sum(calls),
        "cost": sum(costs, Decimal(0)),
    }


def _print(args: argparse.Namespace, r: dict[str, Any], writes: int | None) -> None:
    w: Watch = r["watch"]
    n = args.courses
    lag = _metric(w.metrics_text, "courseforge_event_loop_lag_seconds_bucket")
    print(
        f"{n} courses submitted at once ({r['submit_s']:.1f} s to submit), at most {args.concurrency} generating at "
        f"once, simulator 'realistic' at time scale {args.time_scale:g}, store {args.store} (pool "
        f"{args.pool_size}), gates on hashing, rule gates in "
        f"{dict(thread='threads', process='processes')[args.gate_workers]}"
    )
    print(
        f"  courses per minute        {n / r['span_s'] * 60 if r['span_s'] else 0:.1f}  ({r['span_s']:.1f} s)"
    )
    print(f"  final / not final         {r['final']} / {r['lost']}")
    for line in r["stuck"][:10]:
        print(f"    not final: {line}")
    for key, count in sorted(r["outcomes"].items(), key=lambda kv: -kv[1]):
        print(f"    {count:5d}  {key}")
    print(f"  reports / over budget     {r['reports']} / {r['over_budget']}  (total ${r['cost']:.4f})")
    print(f"  model calls per course    {r['calls'] / max(1, r['reports']):.1f}")
    print(
        f"  service CPU               {r['cpu_s']:.1f} s: {r['cpu_s'] / n:.2f} s per course, "
        f"{r['cpu_s'] / max(1, r['calls']) * 1000:.1f} ms per call (every thread; probes included)"
    )
    print(f"  peak RSS                  {w.peak_rss_kb / 1024:.0f} MB  (goal < 2048 MB)")
    late, probes = _over(lag, 0.1)
    print(
        f"  event-loop lag            p50 {_bucket_quantile(lag, 0.5)}, p99 {_bucket_quantile(lag, 0.99)}"
        f"  (goal p99 < 0.1 s; {late} of {probes} probes over 0.1 s)"
    )
    if w.limits:
        ordered = sorted(w.limits)
        print(
            f"  jobs at once (limit)      min {ordered[0]:.0f}, median {ordered[len(ordered) // 2]:.0f}, "
            f"max {ordered[-1]:.0f}  (service.loop_lag_target_s {args.lag_target}; "
            f"max_concurrent_jobs {args.concurrency})"
        )
    for name, ms in (("/health", w.health_ms), ("/ui/ jobs page", w.ui_ms)):
        slow = sum(1 for x in ms if x > 1000)
        print(
            f"  {name:25s} max {max(ms, default=0):.0f} ms, median {sorted(ms)[len(ms) // 2] if ms else 0:.0f} ms, "
            f"{slow} of {len(ms)} over 1 s"
        )
    print(
        f"  failed probes             {w.failures}  (submissions re-sent: {w.resubmitted} dropped, {w.refused_503} answered 503)"
    )
    if writes is not None:
        print(f"  store rows written        {writes / n:.0f} per course (pg_stat_database)")

    def per_pool(name: str) -> dict[str, float]:
        return {labels["pool"]: value for labels, value in _metric(w.metrics_text, name)}

    queued, waited = (
        per_pool("courseforge_store_pool_queued_total"),
        per_pool("courseforge_store_pool_wait_seconds_total"),
    )
    pools = {
        p: (v, queued.get(p, 0.0), waited.get(p, 0.0))
        for p, v in per_pool("courseforge_store_pool_requests_total").items()
    }
    for pool, (served, queued, waited) in sorted(pools.items()):
        print(
            f"  store pool '{pool}'{'':{max(0, 13 - len(pool))}s}{served:.0f} connections lent, {queued:.0f} "
            f"queued for one, {1000 * waited / max(served, 1):.1f} ms waited per connection on average"
        )
    tenth = min((k for k in w.rss_at if k >= n // 10), default=None)
    last = max(w.rss_at, default=None)
    if tenth is not None and last is not None and last > tenth:
        a, b = w.rss_at[tenth], w.rss_at[last]
        print(
            f"  leak check                RSS {a / 1024:.0f} MB after course {tenth}, {b / 1024:.0f} MB after "
            f"course {last}: {b / a - 1:+.1%} (goal within 10 %)"
        )
    if len(w.idle_rss_kb) == 2:
        (n1, a), (n2, b) = w.idle_rss_kb
        print(
            f"  leak check, idle          RSS {a / 1024:.0f} MB after course {n1}, {b / 1024:.0f} MB after "
            f"course {n2}, nothing in flight, after a full collection: {b / a - 1:+.1%} (goal within 10 %)"
        )


def _print_growth(where: Path) -> None:
    """The types whose count grew most from the first `--objects-at` count to the last."""
    dumps = [
        json.loads(p.read_text())
        for p in sorted(where.glob("objects-*.json"), key=lambda p: p.stat().st_mtime)
    ]
    if len(dumps) < 2:
        print(f"  object counts             {len(dumps)} taken (need 2)")
        return
    first, last = dumps[0], dumps[-1]
    print(
        f"  object counts             RSS {first['rss_kb'] / 1024:.0f} -> {last['rss_kb'] / 1024:.0f} MB, "
        f"allocated blocks {first['blocks']} -> {last['blocks']}, gc-tracked objects "
        f"{sum(first['types'].values())} -> {sum(last['types'].values())}"
    )
    print(f"  embedding cache entries   {first.get('embedding_caches')} -> {last.get('embedding_caches')}")
    growth = {t: n - first["types"].get(t, 0) for t, n in last["types"].items()}
    for name, grew in sorted(growth.items(), key=lambda kv: -kv[1])[:15]:
        print(f"    {grew:+8d}  {name} ({first['types'].get(name, 0)} -> {last['types'][name]})")
    for kind, chains in last.get("holders", {}).items():
        print(f"  who holds the newest {kind} at the last count (referrer chains of 20):")
        for chain, n in sorted(chains.items(), key=lambda kv: -kv[1]):
            print(f"    {n:3d}  {chain}")


def _end_on_first_term(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(143)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--courses", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=100, help="service.max_concurrent_jobs (100)")
    parser.add_argument("--provider-concurrency", type=int, default=512, help="calls in flight per provider")
    parser.add_argument("--time-scale", type=float, default=0.05, help="simulated latency multiplier (0.05)")
    parser.add_argument(
        "--max-queued", type=int, default=200, help="service.max_queued_jobs (200, the default)"
    )
    parser.add_argument("--pool-size", type=int, default=10, help="storage.pool_size (10, the default)")
    parser.add_argument("--store", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument(
        "--gate-workers",
        choices=("thread", "process"),
        default="thread",
        help="gates.workers_kind: where the rule gates run beside the loop (thread, the default)",
    )
    parser.add_argument(
        "--lag-target",
        default="0.05",
        help="service.loop_lag_target_s: seconds, or off for --concurrency jobs at once (0.05, the default)",
    )
    parser.add_argument("--example", type=Path, default=ROOT / "examples" / "python-basics.json")
    parser.add_argument("--sample-s", type=float, default=1.0, help="seconds between probes (1)")
    parser.add_argument("--timeout-s", type=float, default=1500.0)
    parser.add_argument(
        "--objects-at",
        default="",
        help="finished-course counts at which to count the service's objects by type, e.g. 200,600",
    )
    parser.add_argument(
        "--embedding-cache",
        type=int,
        default=None,
        help="gates.embedding_cache_items (50,000, the default): a small one fills early, so "
        "that the leak check sees what grows besides it",
    )
    parser.add_argument(
        "--idle-check",
        type=int,
        default=0,
        help="submit this many courses first and let them all finish, then the rest: the leak "
        "check compares the service's RSS with nothing in flight after a full collection, "
        "after those and after the last (0: off)",
    )
    parser.add_argument(
        "--stall-s", type=float, default=180.0, help="stop when nothing finished for this long"
    )
    args = parser.parse_args()
    # A `kill` ends the run through its `with` blocks, which stop the simulator, the service and
    # the throw-away PostgreSQL; by default SIGTERM ended this process alone and left a service
    # spinning on a core. Only the first: a second must not cut the clean-up short.
    signal.signal(signal.SIGTERM, _end_on_first_term)
    tmp = Path(tempfile.mkdtemp(prefix="courseforge-scale-"))
    sim_port, port = free_port(), free_port()
    env = {**os.environ, "OPENROUTER_API_KEY": "sim-key", "COURSEFORGE_API_TOKENS": TOKEN}
    env["OPENROUTER_BASE_URL"] = f"http://127.0.0.1:{sim_port}/v1"
    sim_profile(tmp / "realistic.yaml")
    sim = [str(CLI), "sim", "serve", "--port", str(sim_port), "--profile", str(tmp / "realistic.yaml")]
    sim += ["--time-scale", str(args.time_scale), "--seed", "0"]
    cfg = tmp / "scale.yaml"
    cfg.write_text(
        yaml.safe_dump(
            service_config(
                args.concurrency,
                args.provider_concurrency,
                args.time_scale,
                args.pool_size,
                args.max_queued,
                args.gate_workers,
                None if args.lag_target == "off" else float(args.lag_target),
                args.embedding_cache,
            )
        ),
        "utf-8",
    )
    example = json.loads(args.example.read_text("utf-8"))
    with _store(args.store, tmp) as url, child_process(sim, env=env, log=tmp / "sim.log") as sim_proc:
        wait_http(f"http://127.0.0.1:{sim_port}/v1/models", sim_proc, "simulator", log=tmp / "sim.log")
        env["COURSEFORGE_STORAGE_URL"] = url
        serve = [str(CLI), "serve", "--port", str(port), "--config", str(cfg), "--log-level", "warning"]
        if args.objects_at or args.idle_check:
            (tmp / "objects").mkdir()
            env["SCALE_OBJECTS_DIR"] = os.environ["SCALE_OBJECTS_DIR"] = str(tmp / "objects")
            serve[:1] = [sys.executable, "-c", OBJECT_COUNTER]
        with child_process(serve, env=env, log=tmp / "serve.log") as server:
            base = f"http://127.0.0.1:{port}"
            # 300 s: the service takes minutes to start on a loaded machine.
            wait_http(f"{base}/health", server, "courseforge serve", timeout_s=300, log=tmp / "serve.log")
            before, cpu0 = _pg_writes(url), cpu_s(server.pid)
            result = asyncio.run(_drive(base, server.pid, args, example))
            after, result["cpu_s"] = _pg_writes(url), cpu_s(server.pid) - cpu0
    writes = after - before if after is not None and before is not None else None
    _print(args, result, writes)
    if args.objects_at or args.idle_check:
        _print_growth(tmp / "objects")
    print(f"  logs in {tmp}")
    raise SystemExit(0 if result["lost"] == 0 and result["over_budget"] == 0 else 1)


if __name__ == "__main__":
    main()
