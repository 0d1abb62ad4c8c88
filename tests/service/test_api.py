"""The HTTP API end to end on scripted models: jobs, idempotency, errors, SSE, reviews, resume."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from service_helpers import AUTH, body, lessons_hang, service, wait_for

from courseforge.config import Settings
from courseforge.jobs import new_job
from courseforge.pipeline import validate_analysis
from courseforge.providers import ChatRequest
from courseforge.storage import Checkpoint, open_store
from courseforge.testing import CourseAuthor, ScriptedModel
from engine_helpers import scripted_models


def test_submit_run_and_fetch_course_and_report(settings: Settings, tmp_path: Path) -> None:
    with service(settings, tmp_path) as client:
        r = client.post("/v1/jobs", json=body(), headers=AUTH)
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["status"] == "queued" and job["links"]["course"].endswith("/course")
        done = wait_for(client, job["id"])
        assert done["status"] == "completed" and done["course_status"] in ("approved", "needs_review")
        assert done["progress"]["phases"]["lessons"]["state"] == "done"
        course = client.get(f"/v1/jobs/{job['id']}/course", headers=AUTH).json()
        assert course["sections"] and course["course_id"] == done["course_id"]
        report = client.get(f"/v1/jobs/{job['id']}/report", headers=AUTH).json()
        assert report["calls"] and report["summary"]["replayed_calls"] == 0
        listed = client.get("/v1/jobs", params={"status": "completed"}, headers=AUTH).json()["jobs"]
        assert [j["id"] for j in listed] == [job["id"]]
        metrics = client.get("/metrics").text
        assert 'courseforge_jobs_finished_total{status="completed"} 1.0' in metrics
        assert (
            "courseforge_cost_usd_total" in metrics and "courseforge_call_latency_seconds_bucket" in metrics
        )
        assert client.get("/health").json()["status"] == "ok"


def test_idempotency_key(settings: Settings, tmp_path: Path) -> None:
    with service(settings, tmp_path) as client:
        headers = {**AUTH, "Idempotency-Key": "order-42"}
        first = client.post("/v1/jobs", json=body(), headers=headers)
        again = client.post("/v1/jobs", json=body(), headers=headers)
        assert first.status_code == 202 and again.status_code == 200
        assert again.json()["id"] == first.json()["id"]
        other = client.post("/v1/jobs", json=body(topic="Another topic"), headers=headers)
        assert other.status_code == 409
        assert other.json()["error"]["problems"][0]["path"] == "header.Idempotency-Key"
        assert len(client.get("/v1/jobs", headers=AUTH).json()["jobs"]) == 1


@pytest.mark.parametrize(
    ("payload", "status", "path"),
    [
        (b'{"topic": 1}', 422, "body.topic"),
        (b"not json", 422, "body"),
        (b"[]", 422, "body"),
        (json.dumps({**body(), "surprise": 1}).encode(), 422, "body.surprise"),
        (b"\xff\xfe", 422, "body"),
        # Found by schemathesis: a budget too large to price used to fail serialisation.
        (json.dumps({**body(), "budget_usd": 3.4e274}).encode(), 422, "body.budget_usd"),
    ],
)
def test_bad_bodies_name_the_field(
    settings: Settings, tmp_path: Path, payload: bytes, status: int, path: str
) -> None:
    with service(settings, tmp_path) as client:
        r = client.post("/v1/jobs", content=payload, headers={**AUTH, "Content-Type": "application/json"})
        assert r.status_code == status, r.text
        paths = [p["path"] for p in r.json()["error"]["problems"]]
        assert path in paths, paths


def test_request_size_limit(settings: Settings, tmp_path: Path) -> None:
    service_settings = settings.service.model_copy(update={"max_body_bytes": 4096})
    small = settings.model_copy(update={"service": service_settings})
    with service(small, tmp_path) as client:
        r = client.post("/v1/jobs", content=b"x" * 5000, headers={**AUTH, "Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["error"]["problems"][0]["path"] == "body"


def test_bad_query_and_unknown_ids(settings: Settings, tmp_path: Path) -> None:
    with service(settings, tmp_path) as client:
        r = client.get("/v1/jobs", params={"limit": 0}, headers=AUTH)
        assert r.status_code == 422 and r.json()["error"]["problems"][0]["path"] == "query.limit"
        r = client.get("/v1/jobs", params={"status": "weird"}, headers=AUTH)
        assert r.status_code == 422 and r.json()["error"]["problems"][0]["path"] == "query.status"
        for url in ("/v1/jobs/nope", "/v1/jobs/nope/course", "/v1/jobs/nope/report", "/v1/jobs/nope/events"):
            assert client.get(url, headers=AUTH).status_code == 404
        assert client.post("/v1/jobs/nope/cancel", headers=AUTH).status_code == 404
        r = client.post("/v1/reviews/nope", json={"action": "approve"}, headers=AUTH)
        assert r.status_code == 404
        r = client.post("/v1/reviews/nope", json={"action": "dance"}, headers=AUTH)
        assert r.status_code == 422 and r.json()["error"]["problems"][0]["path"] == "body.action"


def test_cancel_and_sse(settings: Settings, tmp_path: Path) -> None:
    with service(settings, tmp_path, models=lessons_hang(settings)) as client:
        job = client.post("/v1/jobs", json=body(), headers=AUTH).json()
        wait_for(client, job["id"], ("running",))
        with client.stream("GET", f"/v1/jobs/{job['id']}/events", headers=AUTH) as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            lines = events.iter_lines()
            assert next(lines) == "event: snapshot"
            r = client.post(f"/v1/jobs/{job['id']}/cancel", headers=AUTH)
            assert r.status_code == 200 and r.json()["status"] == "cancelled"
            rest = list(lines)
        assert "event: status" in rest and any('"cancelled"' in line for line in rest)
        assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=AUTH).status_code == 409
        assert client.get(f"/v1/jobs/{job['id']}/course", headers=AUTH).status_code == 404


def test_a_full_job_queue_answers_503_with_retry_after_and_stores_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    """One slot, two places in the queue: the fourth submission is refused (503, Retry-After)
    before a job is stored; the same submission sent again once a place is free is accepted,
    and a resend of an accepted one still gets its job back while the queue is full."""
    service_settings = settings.service.model_copy(update={"max_concurrent_jobs": 1, "max_queued_jobs": 2})
    settings = settings.model_copy(update={"service": service_settings})
    store = open_store(f"sqlite:///{tmp_path}/service.db")
    lookups: list[str] = []
    find = store.find_job_by_key

    async def counted(key: str, **kw: Any) -> Any:
        lookups.append(key)
        return await find(key, **kw)

    store.find_job_by_key = counted  # type: ignore[method-assign]
    with service(settings, tmp_path, models=lessons_hang(settings), store=store) as client:
        first = client.post("/v1/jobs", json=body(), headers=AUTH).json()
        wait_for(client, first["id"], ("running",))
        queued = [
            client.post("/v1/jobs", json=body(), headers={**AUTH, "Idempotency-Key": f"k{i}"}) for i in (1, 2)
        ]
        assert [r.status_code for r in queued] == [202, 202]
        refused = client.post("/v1/jobs", json=body(), headers={**AUTH, "Idempotency-Key": "k3"})
        assert refused.status_code == 503
        # Sent again while the queue is still full: refused without asking the store again.
        asked = lookups.count("k3")
        again_refused = client.post("/v1/jobs", json=body(), headers={**AUTH, "Idempotency-Key": "k3"})
        assert again_refused.status_code == 503 and lookups.count("k3") == asked == 1
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        problem = refused.json()["error"]["problems"][0]
        assert problem["path"] == "queue" and "max_queued_jobs" in problem["reason"]
        jobs = client.get("/v1/jobs", headers=AUTH).json()["jobs"]
        assert len(jobs) == 3  # nothing half-created
        again = client.post("/v1/jobs", json=body(), headers={**AUTH, "Idempotency-Key": "k1"})
        assert again.status_code == 200 and again.json()["id"] == queued[0].json()["id"]
        # A full queue refuses a new submission before reading its body: no 422 for a bad one...
        early = client.post(
            "/v1/jobs", content=b"{not json", headers={**AUTH, "Content-Type": "application/json"}
        )
        assert early.status_code == 503 and early.json()["error"]["problems"][0]["path"] == "queue"
        # ...but a repeat of an accepted key is still checked against its job.
        other = client.post(
            "/v1/jobs", json=body(course_id="another-course"), headers={**AUTH, "Idempotency-Key": "k1"}
        )
        assert other.status_code == 409
        assert client.post(f"/v1/jobs/{queued[1].json()['id']}/cancel", headers=AUTH).status_code == 200
        resent = client.post("/v1/jobs", json=body(), headers={**AUTH, "Idempotency-Key": "k3"})
        assert resent.status_code == 202
        metrics = client.get("/metrics").text
        assert "courseforge_jobs_refused_total 3.0" in metrics
        for job in (first, queued[0].json(), resent.json()):
            client.post(f"/v1/jobs/{job['id']}/cancel", headers=AUTH)


def _first_parts_off_topic(settings: Settings) -> dict[str, ScriptedModel]:
    """Models whose first lesson of every section drifts off topic (flagged for review)."""

    def off_topic(brief: dict[str, object]) -> bool:
        return str(brief.get("lesson_title", "")).endswith("part 1)")

    return scripted_models(settings, lambda _m: CourseAuthor(off_topic=off_topic))


def test_review_queue_ranked_and_answered(settings: Settings, tmp_path: Path) -> None:
    with service(settings, tmp_path, models=_first_parts_off_topic(settings)) as client:
        job = client.post("/v1/jobs", json=body(), headers=AUTH).json()
        done = wait_for(client, job["id"])
        assert done["course_status"] == "needs_review"
        reviews = client.get("/v1/reviews", headers=AUTH).json()["reviews"]
        assert reviews and all(r["job_id"] == job["id"] for r in reviews)
        scores = [r["uncertainty"] for r in reviews]
        assert scores == sorted(scores, reverse=True)
        lessons = [r for r in reviews if r["target"].startswith("S")]
        first, rest = lessons[0], [r for r in reviews if r is not lessons[0]]
        r = client.post(f"/v1/reviews/{first['id']}", json={"action": "edit"}, headers=AUTH)
        assert r.status_code == 422 and r.json()["error"]["problems"][0]["path"] == "body.content"
        # An edit goes through the lesson's gates: this one is far too short and assesses nothing new.
        edit = {"action": "edit", "content": "# Fixed\nBetter text."}
        r = client.post(f"/v1/reviews/{first['id']}", json=edit, headers=AUTH)
        assert r.status_code == 422  # the item stays open: 409 is kept for another action winning
        assert "gates.length" in [p["path"] for p in r.json()["error"]["problems"]]
        r = client.post(f"/v1/reviews/{first['id']}", json={**edit, "approve_anyway": True}, headers=AUTH)
        assert r.status_code == 422 and r.json()["error"]["problems"][0]["path"] == "body.note"
        anyway = {**edit, "approve_anyway": True, "note": "a stub on purpose; the full text follows"}
        r = client.post(f"/v1/reviews/{first['id']}", json=anyway, headers=AUTH)
        assert r.status_code == 200 and r.json()["status"] == "edited"
        recorded = r.json()["resolution"]
        assert recorded["approved_anyway"]["reason"] == anyway["note"]
        assert "length" in recorded["approved_anyway"]["failed_gates"]
        assert any(g["gate"] == "length" and not g["passed"] for g in recorded["gates"])
        course = client.get(f"/v1/jobs/{job['id']}/course", headers=AUTH).json()
        lesson = next(x for s in course["sections"] for x in s["lessons"] if x["id"] == first["target"])
        assert lesson["content"] == "# Fixed\nBetter text."
        assert (
            client.post(f"/v1/reviews/{first['id']}", json={"action": "approve"}, headers=AUTH).status_code
            == 409
        )
        for item in rest:
            assert (
                client.post(f"/v1/reviews/{item['id']}", json={"action": "approve"}, headers=AUTH).status_code
                == 200
            )
        assert client.get("/v1/reviews", headers=AUTH).json()["reviews"] == []
        assert client.get(f"/v1/jobs/{job['id']}/course", headers=AUTH).json()["status"] == "approved"
        assert client.get(f"/v1/jobs/{job['id']}", headers=AUTH).json()["course_status"] == "approved"


def test_an_edit_that_passes_its_gates_needs_no_override(settings: Settings, tmp_path: Path) -> None:
    with service(settings, tmp_path, models=_first_parts_off_topic(settings)) as client:
        job = client.post("/v1/jobs", json=body(), headers=AUTH).json()
        wait_for(client, job["id"])
        reviews = client.get("/v1/reviews", headers=AUTH).json()["reviews"]
        item = next(r for r in reviews if r["target"].startswith("S"))
        course = client.get(f"/v1/jobs/{job['id']}/course", headers=AUTH).json()
        lesson = next(x for sec in course["sections"] for x in sec["lessons"] if x["id"] == item["target"])
        outcomes = {o["id"]: o["text"] for o in course["metadata"]["learning_outcomes"]}
        focus = " ".join(outcomes[o] for o in lesson["outcome_ids"])
        sentence = f"{lesson['title']}: for example, we {focus[0].lower()}{focus[1:]}, step by step. "
        content = sentence * max(1, 200 // len(sentence.split()) + 1)
        r = client.post(
            f"/v1/reviews/{item['id']}", json={"action": "edit", "content": content}, headers=AUTH
        )
        assert r.status_code == 200, r.json()
        resolution = r.json()["resolution"]
        assert resolution["gates"] and all(g["passed"] for g in resolution["gates"])
        assert "approved_anyway" not in resolution


def test_service_resumes_unfinished_jobs_on_start(settings: Settings, tmp_path: Path) -> None:
    """A job left 'running' by a dead process, with its metadata calls checkpointed, is resumed
    at start-up and those calls are replayed, not sent."""
    url = f"sqlite:///{tmp_path}/service.db"
    analysis = validate_analysis(body())
    first_models = scripted_models(settings)

    async def seed() -> None:
        from engine_helpers import make_engine

        store = open_store(url)
        await store.init()
        job, _ = await store.create_job(new_job("left-running", analysis))
        # A full run elsewhere gives us real checkpoints; keep only metadata's, as if killed in phase 3.
        from courseforge.jobs import InProcessRunner

        await InProcessRunner(make_engine(settings, first_models), store).run(job, analysis=analysis)
        cps = await store.load_checkpoints(job.id)
        fresh = open_store(f"sqlite:///{tmp_path}/fresh.db")
        await fresh.init()
        await fresh.create_job(new_job("left-running", analysis))
        await fresh.update_job("left-running", status="running")
        for cp in cps.values():
            if cp.step_key.startswith("metadata/"):
                await fresh.put_checkpoint(
                    Checkpoint(**{f: getattr(cp, f) for f in Checkpoint.__dataclass_fields__})
                )
        await store.close()
        await fresh.close()

    asyncio.run(seed())
    models = scripted_models(settings)
    with service(
        settings, tmp_path, models=models, store=open_store(f"sqlite:///{tmp_path}/fresh.db")
    ) as client:
        done = wait_for(client, "left-running")
        assert done["status"] == "completed" and done["runs"] == 1
        report = client.get("/v1/jobs/left-running/report", headers=AUTH).json()
        replayed = [c for c in report["calls"] if c["replayed"]]
        assert replayed and all(c["phase"] == "metadata" for c in replayed)
        assert not any(r.tags.get("phase") == "metadata" for m in models.values() for r in m.requests)


NOTE = "Teach it with a shopping-list example."


def _reviewer_sensitive_models(settings: Settings) -> tuple[dict[str, ScriptedModel], list[str]]:
    """Lessons titled "... part 1)" drift off-topic, except when a reviewer's note is in the
    prompt; the prompts of those regenerations are collected."""
    drifting = CourseAuthor(off_topic=lambda brief: str(brief.get("lesson_title", "")).endswith("part 1)"))
    careful = CourseAuthor()
    regenerations: list[str] = []

    def script(request: ChatRequest) -> str:
        text = request.messages[-1].content
        if "A reviewer asked for a new version" in text:
            regenerations.append(text)
            return careful(request)
        return drifting(request)

    return {m: ScriptedModel(script, model_id=m) for m in settings.models}, regenerations


def _wait_review(
    client: object,
    review_id: str,
    status: str,
    timeout_s: float = 180,  # a lesson's regeneration and gates, on a loaded machine (as `wait_for`)
) -> dict[str, object]:
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        items = client.get("/v1/reviews", params={"status": status}, headers=AUTH).json()["reviews"]  # type: ignore[attr-defined]
        found = [i for i in items if i["id"] == review_id]
        if found:
            return dict(found[0])
        if time.monotonic() > deadline:
            raise AssertionError(f"review {review_id} never reached {status}")
        time.sleep(0.05)


def test_regenerate_writes_a_new_lesson_with_the_reviewers_note(settings: Settings, tmp_path: Path) -> None:
    models, regenerations = _reviewer_sensitive_models(settings)
    with service(settings, tmp_path, models=models) as client:
        job = client.post("/v1/jobs", json=body(), headers=AUTH).json()
        assert wait_for(client, job["id"])["course_status"] == "needs_review"
        before_course = client.get(f"/v1/jobs/{job['id']}/course", headers=AUTH).json()
        before_report = client.get(f"/v1/jobs/{job['id']}/report", headers=AUTH).json()
        reviews = client.get("/v1/reviews", headers=AUTH).json()["reviews"]
        item = next(r for r in reviews if r["target"].startswith("S"))
        old = next(x for s in before_course["sections"] for x in s["lessons"] if x["id"] == item["target"])

        r = client.post(
            f"/v1/reviews/{item['id']}", json={"action": "regenerate", "note": NOTE}, headers=AUTH
        )
        assert r.status_code == 200 and r.json()["status"] == "regenerating"
        done = _wait_review(client, item["id"], "regenerated")
        history = done["resolution"]["history"]  # type: ignore[index]
        assert [h["status"] for h in history] == ["accepted"] and history[0]["calls"] >= 1

        # The model was asked again, with the reviewer's note, for this lesson only.
        assert regenerations and all(NOTE in p and old["title"] in p for p in regenerations)
        course = client.get(f"/v1/jobs/{job['id']}/course", headers=AUTH).json()
        new = next(x for s in course["sections"] for x in s["lessons"] if x["id"] == item["target"])
        assert new["content"] != old["content"] and new["title"] == old["title"]
        assert f"lesson:{item['target']}" not in [f["target"] for f in course["review"]]
        others = [x for s in course["sections"] for x in s["lessons"] if x["id"] != item["target"]]
        assert others == [
            x for s in before_course["sections"] for x in s["lessons"] if x["id"] != item["target"]
        ]
        # The report: the new calls appended under phase "review", totals recomputed over all.
        report = client.get(f"/v1/jobs/{job['id']}/report", headers=AUTH).json()
        added = report["calls"][len(before_report["calls"]) :]
        assert added and all(
            c["phase"] == "review" and c["task"].startswith(f"lesson:{item['target']}/review-") for c in added
        )
        assert report["calls"][: len(before_report["calls"])] == before_report["calls"]
        total = sum(float(c["cost_usd"]) for c in report["calls"])
        assert abs(float(report["total_cost_usd"]) - total) < 1e-9
        assert float(report["total_cost_usd"]) > float(before_report["total_cost_usd"])
        assert report["by_phase"]["review"]["calls"] == len(added)
        assert report["summary"]["revisions"] == 1
        # Answered: a second request on the same item is refused.
        again = client.post(f"/v1/reviews/{item['id']}", json={"action": "regenerate"}, headers=AUTH)
        assert again.status_code == 409
        assert 'courseforge_revisions_total{status="regenerated"} 1.0' in client.get("/metrics").text


def test_health_reports_a_store_that_does_not_answer_in_time_instead_of_waiting(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from courseforge.service import api_ops

    store = open_store(f"sqlite:///{tmp_path}/service.db")
    with service(settings, tmp_path, store=store) as client:
        assert client.get("/health").json()["store"] == "ok"
        monkeypatch.setattr(api_ops, "HEALTH_STORE_TIMEOUT_S", 0.01)

        async def stuck() -> None:
            await asyncio.Event().wait()  # never answers

        monkeypatch.setattr(store, "ping", stuck)
        health = client.get("/health").json()
        assert (health["status"], health["store"]) == ("degraded", "unavailable")


def test_metrics_answer_when_the_store_does_not_and_keep_the_last_review_count(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's reads wait out a busy pool for minutes; a scrape does not wait with them, and
    reports the open reviews it last counted (not 0)."""
    from courseforge.service import api_ops

    store = open_store(f"sqlite:///{tmp_path}/service.db")
    with service(settings, tmp_path, store=store, models=_first_parts_off_topic(settings)) as client:
        job = client.post("/v1/jobs", json=body(), headers=AUTH).json()
        wait_for(client, job["id"], timeout_s=300)
        open_now = len(client.get("/v1/reviews", headers=AUTH).json()["reviews"])
        assert open_now > 0
        line = f"courseforge_review_queue_open {float(open_now)}"
        assert line in client.get("/metrics").text
        monkeypatch.setattr(api_ops, "HEALTH_STORE_TIMEOUT_S", 0.01)

        async def stuck(**_: object) -> list[object]:
            await asyncio.Event().wait()  # never answers
            return []

        monkeypatch.setattr(store, "list_reviews", stuck)
        assert line in client.get("/metrics").text


def test_a_serving_process_freezes_what_it_keeps_once_its_first_job_ends(
    settings: Settings, tmp_path: Path
) -> None:
    """`courseforge serve` (freeze_gc) takes what is alive after its first job out of the
    collector's sight: later full collections walk only what courses make."""
    import gc

    gc.unfreeze()
    try:
        with service(settings, tmp_path, freeze_gc=True) as client:
            assert gc.get_freeze_count() == 0
            job = client.post("/v1/jobs", json=body(), headers=AUTH).json()
            assert wait_for(client, job["id"])["status"] == "completed"
            deadline = time.monotonic() + 30
            while gc.get_freeze_count() == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()  # the test process keeps collecting as before
