"""A worker's model-call activity counts each call for its metrics port, and the port serves
them. A process's Temporal runtime is shut down before the interpreter finalizes."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from courseforge.config import Settings
from courseforge.distributed.codec import encode_request
from courseforge.distributed.worker import WorkerActivities, start_metrics_server
from courseforge.errors import ProviderHTTPError, UserError
from courseforge.providers import ChatRequest, Message
from courseforge.telemetry.metrics import CallMetrics
from courseforge.testing import ScriptedModel
from engine_helpers import make_engine


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name
    }


def request(task: str) -> ChatRequest:
    return ChatRequest([Message("user", "hi")], max_tokens=20, tags={"phase": "lessons", "task": task})


async def test_model_calls_of_a_worker_are_counted_and_served(settings: Settings) -> None:
    # A flaky breaker's first cooldown (1 s) may end during the stack's retries on a loaded
    # machine, and a probe then fails again: a long one keeps the counts below exact.
    breakers = settings.breakers.model_copy(update={"flaky_cooldown_s": 60.0})
    settings = settings.model_copy(update={"breakers": breakers})
    cheap, mid = settings.routing.tiers["cheap"], settings.routing.tiers["mid"]

    def script(model_id: str) -> ScriptedModel:
        failing = model_id == mid
        return ScriptedModel(
            lambda r: ProviderHTTPError(500, "boom") if failing else '{"a": 1}', model_id=model_id
        )

    models = {m: script(m) for m in settings.models}
    engine = make_engine(settings, models)
    metrics = CallMetrics()
    engine.add_hook(metrics)
    activities = WorkerActivities(engine, metrics)
    env = ActivityEnvironment()
    try:
        answer = await env.run(activities.model_call, encode_request(cheap, request("lesson:S1-L1")))
        assert answer["response"]["text"] == '{"a": 1}'
        with pytest.raises(ApplicationError):  # the encoded provider error, after the stack's retries
            await env.run(activities.model_call, encode_request(mid, request("lesson:S1-L2")))
    finally:
        await engine.aclose()
    port, stop = start_metrics_server(metrics, "127.0.0.1", 0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    finally:
        stop()
    calls = samples(text, "courseforge_calls_total")
    assert calls[(("model", cheap), ("outcome", "ok"), ("phase", "lessons"), ("tier", "cheap"))] == 1
    # 500s until its breaker opened: the call ended skipped by the open breaker
    assert calls[(("model", mid), ("outcome", "skipped"), ("phase", "lessons"), ("tier", "mid"))] == 1
    assert samples(text, "courseforge_breaker_open") == {(("model", mid),): 1.0}
    assert samples(text, "courseforge_breaker_transitions_total") == {
        (("from_state", "closed"), ("model", mid), ("to_state", "open")): 1.0
    }
    latency = samples(text, "courseforge_call_latency_seconds_count")
    assert latency[(("model", cheap), ("phase", "lessons"), ("tier", "cheap"))] == 1
    faults = samples(text, "courseforge_provider_faults_total")
    retries = samples(text, "courseforge_retries_total")
    assert (
        faults[(("kind", "http_500"), ("model", mid))] == retries[(("kind", "http_500"), ("model", mid))] > 0
    )


def test_a_taken_metrics_port_is_a_clear_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(UserError, match=f"--metrics-port {port}: cannot listen"):
            start_metrics_server(CallMetrics(), "127.0.0.1", port)


#: Run in a child process: its last atexit function (registered first) names the threads left
#: once the runtime's shutdown has run. `client` queries the server and exits 0; `cli` is
#: `courseforge plan show` for a job that does not exist (exit 2, its exception's frames held
#: the client).
_EXIT_PROBE = """
import asyncio, atexit, os, sys

def left():
    names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
    print("runtime threads left:", sorted(n for n in names if n.startswith("tokio")), file=sys.stderr, flush=True)

atexit.register(left)
how, address = sys.argv[1:3]
if how == "client":
    from courseforge.distributed.worker import connect

    async def main():
        client = await connect(address)
        print("workflows:", await client.count_workflows())

    asyncio.run(main())
else:
    from courseforge.cli import main

    sys.argv = ["courseforge", "plan", "show", "no-such-job", "--temporal", address]
    main()
"""


@pytest.mark.server_binary
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
@pytest.mark.parametrize(("how", "code"), [("client", 0), ("cli", 2)])
def test_the_runtime_threads_end_before_the_interpreter_finalizes(
    temporal_address: str, how: str, code: int
) -> None:
    """Left to the interpreter's teardown, a runtime thread that still wanted the GIL aborted
    the process after its work was done ("Fatal Python error: PyGILState_Release", exit -6)
    in about 1 command in 20; every run had the runtime's threads alive at that point."""
    env = {k: v for k, v in os.environ.items() if k != "OPENROUTER_API_KEY"}
    done = subprocess.run(
        [sys.executable, "-c", _EXIT_PROBE, how, temporal_address],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == code, done.stderr
    assert "runtime threads left: []" in done.stderr, done.stderr
    if how == "cli":
        assert "no-such-job" in done.stderr
