"""Two `courseforge serve` processes on one PostgreSQL store act as one service (issue 29,
item 4): a dashboard session opened on A works on B, a tenant's jobs-per-minute counts across
both, an idempotent retry on B returns A's job, B streams the progress of a job A runs, a
cancel sent to B stops it on A, queued jobs are shared between them and no job runs twice —
also when A is killed mid-course (B adopts its jobs when their lease runs out, replaying what
A paid for).

Real processes on loopback ports, a real PostgreSQL (`courseforge.testing.postgres`) and one loopback
provider in this process that counts every request it is sent."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from courseforge.testing.postgres import create_database, pg_bin_dir, postgres_server
from courseforge.testing.processes import child_process, free_port, wait_http
from engine_helpers import (
    CountingProvider,
    example_data,
    loopback_config,
    loopback_in_thread,
    write_config,
)

pytestmark = pytest.mark.subprocess

CLI = Path(sys.executable).with_name("courseforge")
TOKEN, ACME, ADMIN = "tok-two-default", "tok-two-acme", "tok-two-admin"
DELAY_S = 0.15
CANCELLED_TOPIC = "Cancelled topic"
#: The job whose progress streams from the other process: at 0.15 s a call, on a quiet machine,
#: its lessons were done before a second snapshot was saved (progress saves every 0.5 s).
FOLLOWED_TOPIC = "Idempotent topic"
FOLLOWED_DELAY_S = 1.0
#: The jobs' lease: a process renews its claims every third of it, so it may be starved of CPU
#: for most of a lease before another process takes its jobs. 3 s lapsed on a loaded 2-core
#: machine (a job ran twice, issue 29's third session); 15 s still lets the killed process's
#: jobs be adopted within the test's deadline.
LEASE_S = 15
#: A cancel reaches the owner at its next renewal (every `LEASE_S / 3`): the job to cancel
#: answers this slowly so that it is still running then.
SLOW_DELAY_S = 5.0
#: How long a `courseforge serve` may take to answer /health (90 s was passed under load).
SERVE_START_S = 300


class SlowToCancel(CountingProvider):
    """The job to cancel (its topic is in its requests) answers slowly, so that it is still
    running when the cancel arrives; its requests are counted apart. The job whose progress is
    followed answers at `FOLLOWED_DELAY_S`, so that its lessons span several progress saves."""

    sent_cancelled = 0

    def delay(self, payload: dict[str, Any]) -> float:
        text = " ".join(str(m.get("content", "")) for m in payload["messages"])
        slow = CANCELLED_TOPIC in text
        self.sent_cancelled += slow
        if slow:
            return SLOW_DELAY_S
        return FOLLOWED_DELAY_S if FOLLOWED_TOPIC in text else DELAY_S


@contextmanager
def _serve(cfg: Path, env: dict[str, str], log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    cmd = [str(CLI), "serve", "--port", str(port), "--config", str(cfg), "--log-level", "warning"]
    base = f"http://127.0.0.1:{port}"
    with child_process(cmd, env=env, log=log) as proc:
        wait_http(f"{base}/health", proc, "courseforge serve", timeout_s=SERVE_START_S, log=log, ok_below=300)
        yield base, proc


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _body(topic: str) -> dict[str, Any]:
    return {**example_data(), "topic": topic}


def _until(check: Callable[[], bool], what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _status(base: str, job_id: str, token: str = TOKEN) -> dict[str, Any]:
    job: dict[str, Any] = httpx.get(f"{base}/v1/jobs/{job_id}", headers=_auth(token), timeout=10).json()
    return job


def _count(url: str, sql: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def _owner_pid(url: str, job_id: str) -> int | None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT owner FROM jobs WHERE id = %s", (job_id,)).fetchone()
    owner = str(row[0]) if row else ""
    return int(owner.split(":")[1]) if owner else None


def _sign_in(base: str) -> str:
    form = httpx.get(f"{base}/ui/login", timeout=10)
    nonce = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert nonce is not None
    r = httpx.post(
        f"{base}/ui/login",
        data={"token": ADMIN, "csrf": nonce.group(1)},
        cookies={"cf_login": form.cookies["cf_login"]},
        timeout=10,
    )
    assert r.status_code == 303 and r.headers["location"] == "/ui/"
    return str(r.cookies["cf_session"])


@dataclass
class Two:
    a: str
    b: str
    proc_a: subprocess.Popen[bytes]
    proc_b: subprocess.Popen[bytes]
    url: str
    provider: SlowToCancel

    def pid(self, base: str) -> int:
        return self.proc_a.pid if base == self.a else self.proc_b.pid


@pytest.fixture
def two_services(tmp_path: Path) -> Iterator[Two]:
    if pg_bin_dir() is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not installed: run `make deps-system`")
    provider = SlowToCancel(DELAY_S)
    with ExitStack() as stack:
        url = create_database(stack.enter_context(postgres_server()))
        server = stack.enter_context(loopback_in_thread(provider))
        config = loopback_config(server.base_url)
        config["service"] = {
            "max_concurrent_jobs": 2,
            # Both jobs run at once in one process (the tests check who claimed what): fixed
            # slots, not ones that follow a loaded machine's event-loop lag.
            "loop_lag_target_s": None,
            "job_lease_s": LEASE_S,
            "store_poll_s": 0.2,
            "tenants": {
                "acme": {"tokens_env": "ACME_TOKENS", "jobs_per_minute": 3},
                "ops": {"tokens_env": "OPS_TOKENS", "admin": True},
            },
        }
        cfg = write_config(tmp_path / "two.yaml", config)
        env = {**os.environ, "COURSEFORGE_STORAGE_URL": url, "COURSEFORGE_API_TOKENS": TOKEN}
        env.update(ACME_TOKENS=ACME, OPS_TOKENS=ADMIN)
        a, proc_a = stack.enter_context(_serve(cfg, env, tmp_path / "a.log"))
        b, proc_b = stack.enter_context(_serve(cfg, env, tmp_path / "b.log"))
        yield Two(a, b, proc_a, proc_b, url, provider)


def test_two_service_processes_on_one_store_act_as_one(two_services: Two) -> None:
    a, b, url, provider, _pid = (
        two_services.a,
        two_services.b,
        two_services.url,
        two_services.provider,
        two_services.pid,
    )

    # A dashboard session opened on A works on B; signing out on B ends it on A.
    session = _sign_in(a)
    page = httpx.get(f"{b}/ui/", cookies={"cf_session": session}, timeout=10)
    assert page.status_code == 200 and "Sign out" in page.text
    httpx.post(f"{b}/ui/logout", cookies={"cf_session": session}, timeout=10)
    assert httpx.get(f"{a}/ui/", cookies={"cf_session": session}, timeout=10).status_code == 303

    # A tenant's jobs-per-minute (3) counts submissions to both processes.
    codes = [
        httpx.post(
            f"{base}/v1/jobs", json=_body(f"Acme topic {i}"), headers=_auth(ACME), timeout=30
        ).status_code
        for i, base in enumerate((a, b, a, b))
    ]
    assert codes == [202, 202, 202, 429]

    # An idempotent retry on B returns the job A made; another body with the key is refused.
    key = {**_auth(TOKEN), "Idempotency-Key": "two-k1"}
    first = httpx.post(f"{a}/v1/jobs", json=_body(FOLLOWED_TOPIC), headers=key, timeout=30)
    again = httpx.post(f"{b}/v1/jobs", json=_body(FOLLOWED_TOPIC), headers=key, timeout=30)
    other = httpx.post(f"{b}/v1/jobs", json=_body("Another body"), headers=key, timeout=30)
    assert (first.status_code, again.status_code, other.status_code) == (202, 200, 409)
    assert again.json()["id"] == first.json()["id"]

    # The progress of a job one process runs streams from the other, to its final status.
    job_id = first.json()["id"]
    _until(lambda: _owner_pid(url, job_id) is not None, "nobody claimed the job")
    runner = _owner_pid(url, job_id)
    follower = next(base for base, pid in ((a, _pid(a)), (b, _pid(b))) if pid != runner)
    events: list[tuple[str, dict[str, Any]]] = []
    with httpx.stream("GET", f"{follower}/v1/jobs/{job_id}/events", headers=_auth(TOKEN), timeout=120) as r:
        kind = ""
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((kind, json.loads(line.removeprefix("data: "))))
    assert events[-1] == ("status", {"status": "completed"})
    lessons_done = [e["progress"]["phases"]["lessons"]["done"] for k, e in events if k == "snapshot"]
    assert len(lessons_done) >= 2 and lessons_done == sorted(lessons_done)  # changes seen in the store

    # A cancel sent to the process that does not run a job stops it where it runs.
    slow = httpx.post(f"{a}/v1/jobs", json=_body(CANCELLED_TOPIC), headers=_auth(TOKEN), timeout=30).json()
    _until(lambda: _owner_pid(url, slow["id"]) is not None, "nobody claimed the job to cancel")
    elsewhere = a if _owner_pid(url, slow["id"]) == _pid(b) else b
    assert (
        httpx.post(f"{elsewhere}/v1/jobs/{slow['id']}/cancel", headers=_auth(TOKEN), timeout=30).status_code
        == 200
    )
    _until(
        lambda: _status(a, slow["id"])["status"] in ("cancelled", "completed", "failed"), "never ended", 120
    )
    assert _status(a, slow["id"])["status"] == "cancelled", _status(a, slow["id"])

    # Six jobs sent to A only: B takes its share of the queue; each job runs once.
    ids = [
        httpx.post(f"{a}/v1/jobs", json=_body(f"Shared topic {i}"), headers=_auth(TOKEN), timeout=30).json()[
            "id"
        ]
        for i in range(6)
    ]
    owners: dict[str, set[int]] = {i: set() for i in ids}

    def all_done() -> bool:
        for i in ids:
            pid = _owner_pid(url, i)
            if pid is not None:
                owners[i].add(pid)
        return all(_status(b, i)["status"] == "completed" for i in ids)

    _until(all_done, "the shared jobs did not finish", 300)
    assert {_pid(a), _pid(b)} <= set().union(*owners.values())  # both processes ran some
    assert all(len(o) <= 1 for o in owners.values())  # none changed hands
    every = [*ids, job_id]
    assert all(_status(a, i)["runs"] == 1 for i in every)
    # Every request the provider got is a call some job's report records as sent: none was
    # sent by a second run of a job (the same lesson text under two topics is two jobs' calls).
    jobs = httpx.get(f"{a}/v1/jobs", params={"limit": 100}, headers=_auth(ADMIN), timeout=10).json()["jobs"]
    assert len(jobs) == 3 + 1 + 1 + 6
    finished = sum(_sent(a, j["id"]) for j in jobs if j["id"] != slow["id"])
    assert sum(provider.sent.values()) - provider.sent_cancelled == finished
    # The cancelled job's calls in flight at the cancel are recorded as sent ("cancelled"),
    # whether or not their request had reached the provider yet; a job cancelled before its run
    # wrote a report has none to compare with.
    if _report(a, slow["id"]) is not None:
        assert provider.sent_cancelled <= _sent(a, slow["id"])


def _report(base: str, job_id: str) -> dict[str, Any] | None:
    answer = httpx.get(f"{base}/v1/jobs/{job_id}/report", headers=_auth(ADMIN), timeout=10)
    return dict(answer.json()) if answer.status_code == 200 else None


def _sent(base: str, job_id: str) -> int:
    report = _report(base, job_id)
    assert report is not None, f"no report for {job_id}"
    return sum(
        not c["replayed"] and not c["cache_hit"] and c["outcome"] not in ("budget_blocked", "skipped")
        for c in report["calls"]
    )


def test_a_killed_process_jobs_are_adopted_and_finished_without_repeating_a_paid_call(
    two_services: Two,
) -> None:
    a, b, proc_a, url, provider = (
        two_services.a,
        two_services.b,
        two_services.proc_a,
        two_services.url,
        two_services.provider,
    )
    ids = [
        httpx.post(f"{a}/v1/jobs", json=_body(f"Killed topic {i}"), headers=_auth(TOKEN), timeout=30).json()[
            "id"
        ]
        for i in range(2)
    ]
    _until(lambda: all(_owner_pid(url, i) == proc_a.pid for i in ids), "A did not claim both jobs")
    _until(lambda: len(provider.answered) >= 8, "A never got going")
    os.kill(proc_a.pid, signal.SIGKILL)
    proc_a.wait(10)
    sent_at_kill = Counter(provider.sent)
    checkpoints_at_kill = _count(url, "SELECT COUNT(*) FROM checkpoints")
    _until(lambda: all(_status(b, i)["status"] == "completed" for i in ids), "B did not finish A's jobs", 300)
    assert all(_status(b, i)["runs"] == 2 for i in ids)  # A's run, then B's
    # What A was answered is replayed from its checkpoints, not paid again; what B sent is
    # what B's runs record as sent.
    sent_by_b = sum(provider.sent.values()) - sum(sent_at_kill.values())
    assert sent_by_b == sum(_sent(b, i) for i in ids)
    replayed = sum(
        c["replayed"]
        for i in ids
        for c in httpx.get(f"{b}/v1/jobs/{i}/report", headers=_auth(ADMIN)).json()["calls"]
    )
    assert replayed == checkpoints_at_kill > 0  # every call A paid for and kept, none paid again
