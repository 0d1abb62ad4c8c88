"""Shadow runs in the service: a share of jobs chosen by id, re-run after the real one under
another config; the job's stored result untouched, the shadow held to the job's budget cap,
the pairs accumulating in the eval format."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from pathlib import Path

import pytest

from courseforge.config import ShadowSettings
from courseforge.engine import Engine
from courseforge.evals import load_eval_config
from courseforge.evals.shadow import ShadowRunner, capped, chosen
from courseforge.pipeline import parse_analysis
from courseforge.sim import SimServer, load_profile
from courseforge.storage import open_store

pytest.importorskip("prometheus_client")

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "evals" / "configs"


def test_the_chosen_share_is_stable_and_close_to_the_rate() -> None:
    ids = [f"job-{i}" for i in range(4000)]
    picked = [i for i in ids if chosen(i, 0.1)]
    assert 0.08 < len(picked) / len(ids) < 0.12
    assert picked == [i for i in ids if chosen(i, 0.1)]  # the same choice every time
    assert not any(chosen(i, 0.0) for i in ids) and all(chosen(i, 1.0) for i in ids)


def test_the_shadow_cap_is_never_above_the_live_one() -> None:
    live = load_eval_config(str(CONFIGS / "hosted.yaml"), env={}).settings
    premium = load_eval_config(str(CONFIGS / "always-premium.yaml"), env={}).settings
    small = live.model_copy(
        update={"budget": live.budget.model_copy(update={"per_course_usd": Decimal("0.01")})}
    )
    assert capped(premium, small).budget.per_course_usd == Decimal("0.01")
    assert capped(premium, live).budget.per_course_usd == premium.budget.per_course_usd


@pytest.mark.parametrize("cap", ["0.45", "0.02"])
async def test_service_shadows_jobs_without_touching_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cap: str
) -> None:
    from courseforge.service.manager import JobManager
    from courseforge.service.metrics import ServiceMetrics

    async with SimServer(load_profile("ideal"), time_scale=0.0) as sim:
        monkeypatch.setenv("OPENROUTER_BASE_URL", sim.base_url)
        monkeypatch.setenv("OPENROUTER_API_KEY", "simulator")
        live = load_eval_config(str(CONFIGS / "hosted.yaml")).settings
        shadow = ShadowSettings(
            config=str(CONFIGS / "always-premium.yaml"), rate=1.0, dir=str(tmp_path / "shadow")
        )
        settings = live.model_copy(
            update={
                "service": live.service.model_copy(update={"shadow": shadow}),
                "budget": live.budget.model_copy(update={"per_course_usd": Decimal(cap)}),
            }
        )
        store = open_store(f"sqlite:///{tmp_path}/service.db")
        await store.init()
        engine = Engine(settings)
        manager = JobManager(settings, store, engine, ServiceMetrics(), max_concurrent=2)
        assert isinstance(manager.shadow, ShadowRunner)
        analysis = parse_analysis(
            (REPO / "evals" / "set" / "python-basics.json").read_bytes(), max_bytes=2_000_000
        )
        try:
            job, _ = await manager.submit(analysis, "job-shadowed", None)
            deadline = time.monotonic() + 300  # a deadline, not a count of turns: CI's machine is loaded
            while (current := await store.get_job(job.id)) is None or not current.finished:
                assert time.monotonic() < deadline, f"the job did not finish: {current}"
                await asyncio.sleep(0.05)
            course_before = await store.get_course(job.id)
            report_before = await store.get_report(job.id)
            await manager.shadow.wait()
            assert manager.shadow.written == 1
            # The job is as its own run left it; the shadow made no job of its own.
            assert await store.get_course(job.id) == course_before
            assert await store.get_report(job.id) == report_before
            assert [j.id for j in await store.list_jobs(limit=10)] == ["job-shadowed"]
            assert await store.load_checkpoints("shadow:job-shadowed")  # its calls are durable
        finally:
            await manager.stop()
            await engine.aclose()
            await store.close()
    doc = json.loads((tmp_path / "shadow" / "eval.json").read_text())
    assert doc["schema"] == "courseforge.eval/1" and set(doc["configs"]) == {"live", "shadow"}
    by = {r["config"]: r for r in doc["runs"]}
    assert by["live"]["input"] == by["shadow"]["input"] == "job-shadowed"
    assert by["shadow"]["cost_per_course"] <= float(cap)  # never past the job's own cap
    if cap == "0.45":
        assert (
            by["shadow"]["cost_per_course"] > by["live"]["cost_per_course"]
        )  # premium everywhere costs more
        assert by["shadow"]["status"] != "failed"
    assert (tmp_path / "shadow" / "index.html").exists()
    assert len((tmp_path / "shadow" / "runs.jsonl").read_text().splitlines()) == 2
