"""/v1/jobs?review_plan=true and /v1/jobs/{id}/plan: stop, show, edit (gated), approve, resume."""

from __future__ import annotations

import copy
from pathlib import Path

from service_helpers import AUTH, body, service, wait_for

from courseforge.config import Settings
from engine_helpers import scripted_models


def test_a_job_stops_for_its_plan_which_is_edited_approved_and_finished(
    settings: Settings, tmp_path: Path
) -> None:
    models = scripted_models(settings)
    with service(settings, tmp_path, models=models) as client:
        job = client.post("/v1/jobs?review_plan=true", json=body(), headers=AUTH).json()
        stopped = wait_for(client, job["id"], ("plan_review", "completed", "failed"))
        assert stopped["status"] == "plan_review" and stopped["links"]["plan"] == f"/v1/jobs/{job['id']}/plan"
        assert client.get(f"/v1/jobs/{job['id']}/course", headers=AUTH).status_code == 404
        metadata_calls = sum(m.calls for m in models.values())

        plan = client.get(f"/v1/jobs/{job['id']}/plan", headers=AUTH).json()
        assert plan["state"] == "review" and plan["projected_lessons_usd"] > 0
        assert all(lp["start_tier"] for s in plan["sections"] for lp in s["lessons"])

        edit = copy.deepcopy({k: v for k, v in plan.items() if k != "state"})
        edit["outcomes"][0]["text"] = "Eat a sandwich while watching television"
        refused = client.put(f"/v1/jobs/{job['id']}/plan", json=edit, headers=AUTH)
        assert refused.status_code == 422, refused.text
        assert "no measurable verb" in refused.json()["error"]["problems"][0]["reason"]
        assert client.get(f"/v1/jobs/{job['id']}/plan", headers=AUTH).json() == plan  # not kept

        edit["outcomes"][0]["text"] = plan["outcomes"][0]["text"] + " in short scripts"
        edit["sections"][0]["lessons"][0]["title"] = "Your first program, line by line"
        kept = client.put(f"/v1/jobs/{job['id']}/plan", json=edit, headers=AUTH)
        assert kept.status_code == 200, kept.text
        approved = client.post(f"/v1/jobs/{job['id']}/plan/approve", headers=AUTH)
        assert approved.status_code == 200, approved.text
        done = wait_for(client, job["id"])
        assert done["status"] == "completed" and done["runs"] == 2
        course = client.get(f"/v1/jobs/{job['id']}/course", headers=AUTH).json()
        assert course["sections"][0]["lessons"][0]["title"] == "Your first program, line by line"
        assert course["metadata"]["learning_outcomes"][0]["text"].endswith("in short scripts")
        report = client.get(f"/v1/jobs/{job['id']}/report", headers=AUTH).json()
        assert all(c["replayed"] for c in report["calls"] if c["phase"] == "metadata")
        assert sum(m.calls for m in models.values()) > metadata_calls
        again = client.post(f"/v1/jobs/{job['id']}/plan/approve", headers=AUTH)
        assert again.status_code == 409  # completed: nothing to approve


def test_a_job_without_review_has_no_plan(settings: Settings, tmp_path: Path) -> None:
    with service(settings, tmp_path) as client:
        job = client.post("/v1/jobs", json=body(), headers=AUTH).json()
        wait_for(client, job["id"])
        assert client.get(f"/v1/jobs/{job['id']}/plan", headers=AUTH).status_code == 409
        assert client.get("/v1/jobs/job-nope/plan", headers=AUTH).status_code == 404
