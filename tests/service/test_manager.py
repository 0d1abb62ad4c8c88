"""`JobManager` on a store shared by several service processes: reviewer-requested
regenerations are claimed like jobs, so processes starting together resume each one once, and
a process starting while another regenerates leaves it alone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from courseforge.config import Settings
from courseforge.engine import Engine
from courseforge.service import manager as manager_module
from courseforge.service.manager import JobManager
from courseforge.service.metrics import ServiceMetrics
from courseforge.storage import Job, ReviewItem, Store, open_store
from engine_helpers import loopback_config


async def _regenerating(store: Store) -> str:
    """A finished job with one review item a reviewer asked to regenerate (its process died)."""
    await store.create_job(Job(id="j1", course_id="c", analysis={}, input_digest="d", created_at=1.0))
    item = ReviewItem(id="j1:S1-L1", job_id="j1", target="S1-L1", reason="drifted", uncertainty=0.5)
    await store.save_result(
        "j1", run=1, status="completed", course={}, report={}, calls=[], reviews=[item],
        course_status="needs_review",
    )  # fmt: skip
    await store.update_review(item.id, status="regenerating", resolution={"note": "n"})
    return item.id


async def _until(done: Callable[[], bool], timeout: float = 10.0) -> None:
    """Yield to the loop until `done()` holds: the store's calls run on threads, so how many
    loop turns they take depends on the machine's load."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not done():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


async def test_processes_starting_together_resume_a_regeneration_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    stores = [open_store(url) for _ in range(3)]  # one store (a pool) per process
    for store in stores:
        await store.init()
    review_id = await _regenerating(stores[0])
    ran: list[str] = []
    release = asyncio.Event()

    async def revise(engine: Engine, store: Store, item_id: str) -> Any:
        ran.append(item_id)
        await release.wait()  # still regenerating while the third process starts
        await store.update_review(item_id, status="open", resolution={"note": "n"})
        return await store.get_review(item_id)

    monkeypatch.setattr(manager_module, "revise_review", revise)
    settings = Settings.model_validate(loopback_config("http://127.0.0.1:9"))  # no call is sent
    engine = Engine(settings, env={})
    managers = [JobManager(settings, s, engine, ServiceMetrics(), max_concurrent=2) for s in stores]
    try:
        resumed = await asyncio.gather(managers[0].start(), managers[1].start())
        assert sorted(resumed) == [0, 1]
        await _until(lambda: bool(ran))  # the claimed regeneration starts (its claim is a store call)
        assert ran == [review_id]
        owner = next(m.owner for m, n in zip(managers, resumed, strict=False) if n == 1)
        assert (await stores[2].review_claim(review_id) or ("", 0))[0] == owner
        assert await managers[2].start() == 0  # a process starting later leaves it alone
        release.set()
        running = [t for m in managers for t in list(m._tasks.values())]
        await asyncio.wait_for(asyncio.gather(*running), 10)
        assert ran == [review_id]  # regenerated once
        assert await stores[0].review_claim(review_id) == ("", 0)  # released when it ended
    finally:
        release.set()
        for m in managers:
            await m.stop()
        await engine.aclose()
        for store in stores:
            await store.close()


async def test_a_job_submitted_while_the_keeper_adopts_it_runs_once(tmp_path: Path) -> None:
    """The keeper lists a job `submit` has stored but not yet scheduled; while it reads the job,
    `submit` schedules it. The keeper must not schedule it a second time (both tasks, of one
    owner, would win the claim: the job ran twice in the two-process test)."""
    store = open_store(f"sqlite:///{tmp_path}/one.db")
    await store.init()
    settings = Settings.model_validate(loopback_config("http://127.0.0.1:9"))  # no call is sent
    engine = Engine(settings, env={})
    manager = JobManager(settings, store, engine, ServiceMetrics(), max_concurrent=2)
    job, _ = await store.create_job(
        Job(id="j2", course_id="c", analysis={}, input_digest="d", created_at=1.0)
    )
    runs: list[str] = []
    run = manager._run

    def counting_run(job: Job, tracker: Any) -> Any:
        runs.append(job.id)
        return run(job, tracker)

    manager._run = counting_run  # type: ignore[method-assign]
    get_job = store.get_job

    async def get_job_while_submit_schedules(job_id: str) -> Any:
        manager.schedule(job)  # `submit` resumes after storing the job, while the keeper reads it
        return await get_job(job_id)

    store.get_job = get_job_while_submit_schedules  # type: ignore[method-assign]
    try:
        assert await manager._adopt() == 0  # scheduled by `submit`, not adopted
        assert runs == ["j2"]
    finally:
        store.get_job = get_job  # type: ignore[method-assign]
        await asyncio.gather(*manager._tasks.values(), return_exceptions=True)
        await manager.stop()
        await engine.aclose()
        await store.close()
