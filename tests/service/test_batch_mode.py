"""Service jobs submitted with `?mode=batch` run through the simulator's batch API."""

from __future__ import annotations

from pathlib import Path

from service_helpers import AUTH, body, service, wait_for

from courseforge.config import Settings
from courseforge.engine import Engine, without_cache
from courseforge.providers.embeddings import CachedEmbedder, HashingEmbedder
from courseforge.sim import ModelProfile, SimProfile, SimServer
from engine_helpers import in_thread, loopback_config


def test_a_batch_job_and_a_normal_job(tmp_path: Path) -> None:
    sim_profile = SimProfile(defaults=ModelProfile(ttft_ms=0, tokens_per_s=1e6, jitter=0, batch_delay_s=0))
    with in_thread(SimServer(sim_profile)) as sim:
        config = loopback_config(
            sim.base_url, batch={"collect_s": 0.05, "max_collect_s": 1.0, "poll_s": 0.05}
        )
        settings = without_cache(Settings.model_validate(config))
        engine = Engine(settings, env={}, embedder=CachedEmbedder(HashingEmbedder()))
        with service(settings, tmp_path, engine=engine) as client:
            bad = client.post("/v1/jobs", params={"mode": "cheap"}, json=body(), headers=AUTH)
            assert bad.status_code == 422 and "mode" in bad.text
            r = client.post("/v1/jobs", params={"mode": "batch"}, json=body(), headers=AUTH)
            assert r.status_code == 202, r.text
            assert r.json()["progress"]["mode"] == "batch"
            done = wait_for(client, r.json()["id"])
            assert done["status"] == "completed", done
            report = client.get(f"/v1/jobs/{done['id']}/report", headers=AUTH).json()
            assert report["summary"]["batch_calls"] > 0 and report["summary"]["batches"] > 0
            batches = sum(n for (_, o), n in sim.stats.items() if o == "batch_created")
            assert batches == report["summary"]["batches"]

            normal = client.post("/v1/jobs", json=body(course_id="normal-one"), headers=AUTH).json()
            finished = wait_for(client, normal["id"])
            report2 = client.get(f"/v1/jobs/{finished['id']}/report", headers=AUTH).json()
            assert report2["summary"]["batch_calls"] == 0
            assert "mode" not in finished["progress"]
