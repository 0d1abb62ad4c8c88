"""Every /v1 endpoint refuses a missing or wrong token; keys and tokens never leak."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from service_helpers import AUTH, TOKEN, body, service, wait_for

from courseforge.config import parse_config
from courseforge.engine import Engine
from courseforge.providers.embeddings import CachedEmbedder, HashingEmbedder
from courseforge.service import create_app
from courseforge.storage import open_store
from engine_helpers import author_reply, loopback_config, loopback_in_thread

PROVIDER_KEY = "test-provider-key-Provider-Secret-5b2e11d0"


def _routes(app: object) -> list[tuple[str, str]]:
    out = []
    for route in app.routes:  # type: ignore[attr-defined]
        if isinstance(route, APIRoute):
            path = re.sub(r"\{[^}]+\}", "x1", route.path)
            out += [(m, path) for m in sorted(route.methods)]
    return out


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Bearer {TOKEN}x"},
    ],
    ids=["missing", "wrong", "not-bearer", "empty", "longer"],
)
def test_every_v1_endpoint_refuses_bad_tokens(settings, tmp_path: Path, headers: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    with service(settings, tmp_path) as client:
        routes = _routes(client.app)
        v1 = [(m, p) for m, p in routes if p.startswith("/v1/")]
        assert len(v1) >= 9
        for method, path in v1:
            r = client.request(method, path, headers=headers, json={"action": "approve"})
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.headers["www-authenticate"] == "Bearer"
            assert r.json()["error"]["problems"][0]["path"] == "header.Authorization"
        for path in ("/health", "/metrics", "/openapi.json"):
            assert client.get(path).status_code == 200


def test_no_configured_tokens_refuses_everything(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with service(settings, tmp_path, tokens=()) as client:
        assert client.get("/v1/jobs", headers={"Authorization": "Bearer "}).status_code == 401
        assert client.get("/v1/jobs", headers=AUTH).status_code == 401


def test_keys_and_tokens_never_leak(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with loopback_in_thread(author_reply()) as server:
        config = loopback_config(server.base_url)
        config["providers"]["loop"]["api_key_env"] = "LOOP_API_KEY"
        import yaml

        settings = parse_config(yaml.safe_dump(config), "test", {})
        engine = Engine(
            settings, env={"LOOP_API_KEY": PROVIDER_KEY}, embedder=CachedEmbedder(HashingEmbedder())
        )
        store = open_store(f"sqlite:///{tmp_path}/leak.db")
        with service(settings, tmp_path, engine=engine, store=store) as client:
            job = client.post("/v1/jobs", json=body(), headers={**AUTH, "Idempotency-Key": "k-1"}).json()
            done = wait_for(client, job["id"])
            assert done["status"] == "completed"
            # The key did reach the provider (so the test means something)...
            assert any(r.header("Authorization") == f"Bearer {PROVIDER_KEY}" for r in server.requests)
            client.get("/v1/jobs/nope", headers={"Authorization": "Bearer " + TOKEN + "-bad"})
            texts = {
                "metrics": client.get("/metrics").text,
                "report": client.get(f"/v1/jobs/{job['id']}/report", headers=AUTH).text,
                "course": client.get(f"/v1/jobs/{job['id']}/course", headers=AUTH).text,
                "job": client.get(f"/v1/jobs/{job['id']}", headers=AUTH).text,
                "reviews": client.get("/v1/reviews", headers=AUTH).text,
                "openapi": client.get("/openapi.json").text,
            }
    files = {p.name: p.read_bytes() for p in tmp_path.glob("leak.db*")}
    assert files  # the database (and its WAL) exist
    for secret in (PROVIDER_KEY, TOKEN):
        assert secret not in caplog.text
        for name, text in texts.items():
            assert secret not in text, name
        for name, raw in files.items():
            assert secret.encode() not in raw, name


def test_openapi_is_complete(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with service(settings, tmp_path) as client:
        doc = client.get("/openapi.json").json()
    paths = set(doc["paths"])
    assert {
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/events",
        "/v1/jobs/{job_id}/course",
        "/v1/jobs/{job_id}/report",
        "/v1/jobs/{job_id}/cancel",
        "/v1/reviews",
        "/v1/reviews/{review_id}",
        "/metrics",
        "/health",
    } <= paths
    body_ref = doc["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"][
        "$ref"
    ]
    assert body_ref == "#/components/schemas/AnalysisResult"
    assert "AnalysisResult" in doc["components"]["schemas"]


def test_create_app_needs_no_network(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app = create_app(settings, store=open_store(f"sqlite:///{tmp_path}/x.db"), engine=None, tokens=[TOKEN])  # type: ignore[arg-type]
    assert app.title == "courseforge"
