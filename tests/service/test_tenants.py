"""Tenants: each token sees only its tenant's jobs, reviews and idempotency keys; an admin sees
all; per-tenant rate limits and budgets refuse submissions with the reason."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from service_helpers import body, lessons_hang, wait_for

from courseforge.config import Settings
from courseforge.config.settings import TenantSettings
from courseforge.errors import ConfigError
from courseforge.service import create_app
from courseforge.service.tenants import tenant_tokens
from courseforge.storage import open_store
from courseforge.testing import CourseAuthor
from engine_helpers import make_engine, scripted_models

ACME, GLOBEX, ADMIN, DEFAULT = "tok-acme-1", "tok-globex-1", "tok-admin-1", "tok-default-1"
ENV = {
    "COURSEFORGE_API_TOKENS": DEFAULT,
    "ACME_TOKENS": ACME,
    "GLOBEX_TOKENS": f"{GLOBEX}, tok-globex-2",
    "OPS_TOKENS": ADMIN,
}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def tenant_settings(settings: Settings, **acme: Any) -> Settings:
    tenants = {
        "acme": TenantSettings(tokens_env="ACME_TOKENS", **acme),
        "globex": TenantSettings(tokens_env="GLOBEX_TOKENS"),
        "ops": TenantSettings(tokens_env="OPS_TOKENS", admin=True),
    }
    return settings.model_copy(update={"service": settings.service.model_copy(update={"tenants": tenants})})


@contextmanager
def tenant_service(settings: Settings, tmp_path: Path, models: Any = None) -> Iterator[TestClient]:
    store = open_store(f"sqlite:///{tmp_path}/tenants.db")
    engine = make_engine(
        settings, models or scripted_models(settings, lambda _m: CourseAuthor(off_topic=lambda _b: True))
    )
    app = create_app(settings, store=store, engine=engine, tokens=tenant_tokens(settings, ENV))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_tokens_map_to_their_tenants_and_a_shared_token_is_refused(settings: Settings) -> None:
    two = tenant_settings(settings)
    assert tenant_tokens(two, ENV) == {
        DEFAULT: "",
        ACME: "acme",
        GLOBEX: "globex",
        "tok-globex-2": "globex",
        ADMIN: "ops",
    }
    with pytest.raises(ConfigError) as info:
        tenant_tokens(two, {**ENV, "GLOBEX_TOKENS": ACME})
    assert info.value.problems[0][0] == "$GLOBEX_TOKENS"


def test_two_tenants_never_see_or_touch_each_others_jobs(settings: Settings, tmp_path: Path) -> None:
    with tenant_service(tenant_settings(settings), tmp_path) as client:
        a = client.post("/v1/jobs", json=body(), headers={**auth(ACME), "Idempotency-Key": "k1"})
        b = client.post("/v1/jobs", json=body(), headers={**auth(GLOBEX), "Idempotency-Key": "k1"})
        assert a.status_code == b.status_code == 202  # the same key, two tenants: two jobs
        job_a, job_b = a.json(), b.json()
        assert job_a["id"] != job_b["id"] and (job_a["tenant"], job_b["tenant"]) == ("acme", "globex")
        again = client.post("/v1/jobs", json=body(), headers={**auth(ACME), "Idempotency-Key": "k1"})
        assert again.status_code == 200 and again.json()["id"] == job_a["id"]
        wait_for(client, job_a["id"], headers=auth(ACME))
        wait_for(client, job_b["id"], headers=auth(GLOBEX))

        # globex cannot see, read, follow or cancel acme's job: 404, as if it did not exist
        base = f"/v1/jobs/{job_a['id']}"
        for path in (base, f"{base}/course", f"{base}/report", f"{base}/events"):
            assert client.get(path, headers=auth(GLOBEX)).status_code == 404, path
        assert client.post(f"{base}/cancel", headers=auth(GLOBEX)).status_code == 404
        assert [j["id"] for j in client.get("/v1/jobs", headers=auth(GLOBEX)).json()["jobs"]] == [job_b["id"]]
        assert (
            client.get("/v1/jobs", headers=auth(DEFAULT)).json()["jobs"] == []
        )  # default tenant: its own only

        # reviews: listed per tenant; another tenant's item cannot be answered
        reviews_a = client.get("/v1/reviews", headers=auth(ACME)).json()["reviews"]
        reviews_b = client.get("/v1/reviews", headers=auth(GLOBEX)).json()["reviews"]
        assert reviews_a and {r["job_id"] for r in reviews_a} == {job_a["id"]}
        assert reviews_b and {r["job_id"] for r in reviews_b} == {job_b["id"]}
        r = client.post(f"/v1/reviews/{reviews_a[0]['id']}", json={"action": "approve"}, headers=auth(GLOBEX))
        assert r.status_code == 404
        assert client.get("/v1/reviews", headers=auth(ACME)).json()["reviews"] == reviews_a  # untouched

        # the admin sees both tenants' jobs and reviews
        seen = {j["id"] for j in client.get("/v1/jobs", headers=auth(ADMIN)).json()["jobs"]}
        assert seen == {job_a["id"], job_b["id"]}
        assert client.get(f"{base}/course", headers=auth(ADMIN)).status_code == 200
        admin_reviews = client.get("/v1/reviews", params={"limit": 500}, headers=auth(ADMIN)).json()[
            "reviews"
        ]
        assert {r["job_id"] for r in admin_reviews} == {job_a["id"], job_b["id"]}


def test_a_tenants_rate_limit_refuses_the_next_submission_with_429(
    settings: Settings, tmp_path: Path
) -> None:
    with tenant_service(tenant_settings(settings, jobs_per_minute=1), tmp_path) as client:
        assert client.post("/v1/jobs", json=body(), headers=auth(ACME)).status_code == 202
        r = client.post("/v1/jobs", json=body(), headers=auth(ACME))
        assert r.status_code == 429
        assert r.json()["error"]["problems"][0]["path"] == "tenant"
        assert (
            client.post("/v1/jobs", json=body(), headers=auth(GLOBEX)).status_code == 202
        )  # others unaffected


def test_a_tenants_budget_counts_its_unfinished_jobs_caps_and_refuses_with_402(
    settings: Settings, tmp_path: Path
) -> None:
    limited = tenant_settings(settings, budget_usd_per_day="1.00")
    with tenant_service(limited, tmp_path, models=lessons_hang(limited)) as client:
        first = client.post("/v1/jobs", json=body(budget_usd=0.6), headers=auth(ACME))
        assert first.status_code == 202
        r = client.post("/v1/jobs", json=body(budget_usd=0.6, topic="Another"), headers=auth(ACME))
        assert r.status_code == 402
        assert "this job may spend up to 0.6 USD" in r.json()["error"]["problems"][0]["reason"]
        small = client.post("/v1/jobs", json=body(budget_usd=0.3, topic="A third"), headers=auth(ACME))
        assert small.status_code == 202  # fits what is left
        assert client.post("/v1/jobs", json=body(budget_usd=0.6), headers=auth(GLOBEX)).status_code == 202


def test_another_tenants_export_is_404_and_each_tenant_has_its_own_cache_namespace(
    settings: Settings, tmp_path: Path
) -> None:
    from courseforge.jobs import InProcessRunner

    with tenant_service(tenant_settings(settings), tmp_path) as client:
        job = client.post("/v1/jobs", json=body(), headers=auth(ACME)).json()
        wait_for(client, job["id"], headers=auth(ACME))
        mine = client.get(f"/v1/jobs/{job['id']}/export", params={"format": "markdown"}, headers=auth(ACME))
        theirs = client.get(
            f"/v1/jobs/{job['id']}/export", params={"format": "markdown"}, headers=auth(GLOBEX)
        )
        assert mine.status_code == 200 and theirs.status_code == 404
    runner = InProcessRunner(
        make_engine(settings, scripted_models(settings)), open_store(f"sqlite:///{tmp_path}/c.db")
    )
    shared, acme, globex = runner.cache_for(""), runner.cache_for("acme"), runner.cache_for("globex")
    assert shared is not None and acme is not None and globex is not None
    assert len({shared.namespace, acme.namespace, globex.namespace}) == 3
    assert acme.namespace == f"{shared.namespace}/tenant:acme"


def test_with_tenants_only_admin_tokens_sign_in_to_the_dashboard_which_shows_every_job(
    settings: Settings, tmp_path: Path
) -> None:
    import re

    def sign_in(client: TestClient, token: str) -> int:
        form = client.get("/ui/login").text
        nonce = re.search(r'name="csrf" value="([^"]+)"', form)
        assert nonce is not None
        r = client.post("/ui/login", data={"token": token, "csrf": nonce.group(1)}, follow_redirects=False)
        return r.status_code

    with tenant_service(tenant_settings(settings), tmp_path) as client:
        job = client.post("/v1/jobs", json=body(), headers=auth(ACME)).json()
        assert sign_in(client, ACME) == 401  # a tenant's token: the dashboard would show others' jobs
        assert sign_in(client, ADMIN) == 303
        assert job["id"] in client.get("/ui/").text
        assert client.get(f"/ui/jobs/{job['id']}").status_code == 200
