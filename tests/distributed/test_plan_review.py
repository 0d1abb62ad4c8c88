"""The plan checkpoint and the question bank on Temporal, against a real dev server on
127.0.0.1 (the `temporal_address` fixture) and a real OpenAI-compatible LoopbackServer: the
workflow waits after phase 2 for its author (the `plan` query), an edit the gates refuse is not
sent, a kept edit and the approval are signals, and the same workflow finishes the course from
the edited plan without sending a phase-2 request again. The service's Temporal runner does the
same through the store's plan (`PUT`/`approve` of the API), with a job's question bank; a job
cancelled while it waits for its plan has its workflow cancelled."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus

from courseforge.config import Settings, load_config
from courseforge.distributed import generate_on_temporal
from courseforge.distributed.client import approve_workflow_plan, edit_workflow_plan, workflow_plan
from courseforge.distributed.worker import connect
from courseforge.domain import CoursePlan
from courseforge.engine import Engine
from courseforge.errors import UserError
from courseforge.exports.bank_import import read_bank
from courseforge.jobs import PlanRefused, approve_plan, edit_plan
from courseforge.providers.embeddings import HashingEmbedder
from courseforge.testing import LoopbackServer
from engine_helpers import (
    EXAMPLES,
    author_reply,
    example_analysis,
    loopback_config,
    loopback_in_thread,
    write_config,
)
from temporal_helpers import warm_worker

pytestmark = pytest.mark.server_binary


def _settings(tmp_path: Path, base_url: str, task_queue: str, **service: Any) -> Settings:
    config = loopback_config(base_url)
    config["routing"]["max_parallel_tasks"] = 3
    config["service"] = {"temporal_task_queue": task_queue, **service}
    return load_config(str(write_config(tmp_path / "loop.yaml", config))).settings


def _identities(requests: list[Any]) -> list[str]:
    return [json.dumps([r.json["model"], r.json["messages"]], sort_keys=True) for r in requests]


async def test_a_workflow_waits_for_its_plan_and_finishes_from_the_edited_one(
    temporal_address: str, tmp_path: Path
) -> None:
    queue = f"cf-plan-{uuid.uuid4().hex[:8]}"
    job = f"plan-{queue}"
    analysis = example_analysis()
    embed = HashingEmbedder().embed
    async with LoopbackServer(author_reply()) as server:
        settings = _settings(tmp_path, server.base_url, queue)
        client = await connect(temporal_address)
        # The job, started or attached to as `courseforge generate --temporal --job` does.
        attach = partial(
            generate_on_temporal, settings, analysis, address=temporal_address, job_id=job, client=client,
            say=lambda _: None,
        )  # fmt: skip
        async with warm_worker(client, settings, task_queue=queue):
            course, report = await attach(review_plan=True)
            assert course is None and report.status == "plan_review"
            assert report.summary["workflow_id"] == job and report.total_cost_usd > 0
            phase_2 = _identities(server.requests)
            record, _analysis, _course_id = await workflow_plan(client, job)
            plan = CoursePlan.model_validate(record["plan"])
            assert record["state"] == "review" and len(plan.outcomes) >= 3
            assert sum(len(s.lessons) for s in plan.sections) == 10

            bad = plan.model_copy(deep=True)
            bad.outcomes[0].text = "Eat a sandwich while watching television at home"
            with pytest.raises(PlanRefused) as refused:
                await edit_workflow_plan(client, settings, job, bad, embed)
            assert "no measurable verb" in refused.value.problems[0][1]
            assert (await workflow_plan(client, job))[0]["plan"] == record["plan"]  # not sent

            good = plan.model_copy(deep=True)
            good.outcomes[0].text += " in small programs"
            good.sections[0].lessons[0].title = "Your very first Python program"
            await edit_workflow_plan(client, settings, job, good, embed)
            shown = (await workflow_plan(client, job))[0]
            assert shown["edited"] and shown["plan"]["outcomes"][0]["text"].endswith("in small programs")
            # Attaching while the plan waits stops at the same plan, paying nothing.
            again, waiting = await attach()
            assert again is None and waiting.status == "plan_review"
            assert len(server.requests) == len(phase_2)

            await approve_workflow_plan(client, job)
            with pytest.raises(UserError, match="not in review"):
                await approve_workflow_plan(client, job)  # the signal was seen: approved
            course, report = await attach()
    assert course is not None and report.status != "plan_review"
    assert course.metadata.learning_outcomes[0].text.endswith("in small programs")
    assert course.sections[0].lessons[0].title == "Your very first Python program"
    after = _identities(server.requests)[len(phase_2) :]
    assert after and not set(after) & set(phase_2)  # no phase-2 request sent again
    assert {c.phase for c in report.calls if c.phase == "metadata"} == {"metadata"}
    print(
        f"\ntemporal plan review: {len(phase_2)} phase-2 requests before the wait, {len(after)} after the "
        f"approval, none repeated; course {course.status}"
    )


BANK = read_bank(EXAMPLES / "python-basics.bank.gift").questions


async def test_the_service_on_temporal_reviews_the_plan_and_reuses_the_bank(
    temporal_address: str, tmp_path: Path
) -> None:
    from courseforge.service.manager import JobManager
    from courseforge.service.metrics import ServiceMetrics
    from courseforge.storage import open_store

    queue = f"cf-svc-{uuid.uuid4().hex[:8]}"
    async with LoopbackServer(author_reply()) as server:
        settings = _settings(tmp_path, server.base_url, queue, temporal_address=temporal_address)
        store = open_store(f"sqlite:///{tmp_path}/service.db")
        await store.init()
        service_engine = Engine(settings, env={})
        manager = JobManager(settings, store, service_engine, ServiceMetrics(), max_concurrent=2)
        client = await connect(temporal_address)

        async def until(job_id: str, *states: str) -> Any:
            deadline = time.monotonic() + 300  # a loaded machine (120 s was passed)
            while (current := await store.get_job(job_id)) is not None and current.status not in states:
                assert time.monotonic() < deadline, f"job is {current.status}, not {states}"
                await asyncio.sleep(0.2)
            return current

        try:
            async with warm_worker(client, settings, task_queue=queue):
                job, _ = await manager.submit(
                    example_analysis(), f"svc-{queue}", None, review_plan=True, bank=BANK
                )
                stopped = await until(job.id, "plan_review", "failed", "completed")
                assert stopped.status == "plan_review", stopped.error
                plan = CoursePlan.model_validate(stopped.progress["plan"]["plan"])
                plan.outcomes[0].text += " in small programs"
                await edit_plan(store, settings, job.id, plan, service_engine.embedder().embed)
                await approve_plan(store, job.id)
                await manager.resume(job.id)
                done = await until(job.id, "completed", "failed")
                # A job cancelled while it waits for its plan: its workflow is cancelled too.
                other, _ = await manager.submit(example_analysis(), f"svc2-{queue}", None, review_plan=True)
                assert (await until(other.id, "plan_review", "failed")).status == "plan_review"
                cancelled = await manager.cancel(other.id)
                assert cancelled is not None and cancelled.status == "cancelled"
                described = await client.get_workflow_handle(other.id).describe()
                deadline = time.monotonic() + 120
                while described.status != WorkflowExecutionStatus.CANCELED and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                    described = await client.get_workflow_handle(other.id).describe()
                assert described.status == WorkflowExecutionStatus.CANCELED
        finally:
            await manager.stop()
            await service_engine.aclose()
        course, report = await store.get_course(job.id), await store.get_report(job.id)
        await store.close()
    assert done.status == "completed", done.error
    assert course is not None and report is not None and report["summary"]["engine"] == "temporal"
    assert course["metadata"]["learning_outcomes"][0]["text"].endswith("in small programs")
    reused = [e["id"] for s in course["sections"] for lesson in s["lessons"] for e in lesson["exercises"]]
    bank_ids = {q.id for q in BANK}
    from_bank = [e for e in reused if e in bank_ids]
    assert len(from_bank) >= 10 and report["summary"]["bank_reused"] == len(from_bank)


CLI = Path(sys.executable).with_name("courseforge")


def exited(done: subprocess.CompletedProcess[str]) -> str:
    """A command's exit code and stderr, for an assertion's message (an abort at exit, -6,
    shows its "Fatal Python error" there)."""
    return f"{' '.join(map(str, done.args[1:3]))} exited {done.returncode}; stderr:\n{done.stderr}"


def test_the_plan_commands_on_temporal(temporal_address: str, tmp_path: Path) -> None:
    """`generate --temporal --review-plan`, `plan show|edit|approve --temporal`, `generate --job
    --temporal` as a terminal runs them, against a `courseforge worker` process."""
    queue = f"cf-cli-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if k != "OPENROUTER_API_KEY"}
    env["COURSEFORGE_STORAGE_URL"] = f"sqlite:///{tmp_path}/cli.db"
    with loopback_in_thread(author_reply()) as server:
        config = loopback_config(server.base_url)
        config["service"] = {"temporal_task_queue": queue}
        path = str(write_config(tmp_path / "loop.yaml", config))
        log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - open for the worker's lifetime
        worker = subprocess.Popen(
            [str(CLI), "worker", "--temporal", temporal_address, "--task-queue", queue, "--config", path],
            env=env, stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip

        def cf(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [str(CLI), *args, "--config", path, "--temporal", temporal_address],
                env={**env, "COLUMNS": "200"}, capture_output=True, text=True, timeout=600,
            )  # fmt: skip

        try:
            course = str(tmp_path / "course.json")
            stopped = cf(
                "generate", str(EXAMPLES / "python-basics.json"), "-o", course, "--job", "pb", "--review-plan"
            )
            assert stopped.returncode == 0, exited(stopped) + (tmp_path / "worker.log").read_text()
            assert "plan ready for review" in stopped.stderr and not Path(course).exists()
            shown = cf("plan", "show", "pb", "--json")
            assert shown.returncode == 0, exited(shown)
            first, text = (json.loads(shown.stdout)["outcomes"][0][k] for k in ("id", "text"))
            refused = cf("plan", "edit", "pb", "--outcome", f"{first}=Eat a sandwich at home tonight")
            assert refused.returncode == 2 and "no measurable verb" in refused.stderr, exited(refused)
            kept = cf("plan", "edit", "pb", "--outcome", f"{first}={text} in small programs")
            assert kept.returncode == 0 and "--temporal" in kept.stderr, exited(kept)
            approved = cf("plan", "approve", "pb")
            assert approved.returncode == 0, exited(approved)
            assert json.loads(approved.stdout)["plan"] == "approved"
            done = cf("generate", str(EXAMPLES / "python-basics.json"), "-o", course, "--job", "pb")
            assert done.returncode == 0, exited(done) + (tmp_path / "worker.log").read_text()
        finally:
            worker.terminate()
            worker_exit = worker.wait(30)
            log.close()
    # SIGTERM stops a worker gracefully: exit 0, not an abort at the interpreter's exit.
    assert worker_exit == 0, (tmp_path / "worker.log").read_text()
    written = json.loads(Path(course).read_text())
    report = json.loads((tmp_path / "course.report.json").read_text())
    assert written["metadata"]["learning_outcomes"][0]["text"] == f"{text} in small programs"
    assert sorted(c["task"] for c in report["calls"] if c["phase"] == "metadata") == [
        "metadata_core",
        "metadata_extras",
    ]
