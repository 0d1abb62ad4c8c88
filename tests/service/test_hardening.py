"""The API's surface: every /v1 operation declares the bearer scheme, /docs needs no CDN."""

from __future__ import annotations

import http.client
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from live_server import live_app
from service_helpers import AUTH, TOKEN, service

from courseforge.config import Settings
from courseforge.service import create_app
from courseforge.storage import open_store
from engine_helpers import make_engine, scripted_models


def test_every_v1_operation_declares_the_bearer_security_scheme(settings: Settings, tmp_path: Path) -> None:
    with service(settings, tmp_path) as client:
        doc = client.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    operations = [(path, op) for path, ops in doc["paths"].items() for op in ops.values()]
    v1 = [(path, op) for path, op in operations if path.startswith("/v1/")]
    assert len(v1) >= 9
    assert all(op.get("security") == [{"bearer": []}] for _, op in v1)
    assert all("security" not in op for path, op in operations if path in ("/health", "/metrics"))


def test_docs_load_swagger_ui_from_this_service_not_a_cdn(settings: Settings, tmp_path: Path) -> None:
    with service(settings, tmp_path) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
        assert urls and all(u.startswith("/docs/assets/") for u in urls), urls
        assert "http://" not in page.text and "https://" not in page.text
        for url in urls:
            asset = client.get(url)
            assert asset.status_code == 200 and asset.content, url
        assert client.get("/redoc").status_code == 404  # ReDoc loads from a CDN: off


def _live_service(settings: Settings, tmp_path: Path) -> Any:
    return create_app(
        settings,
        store=open_store(f"sqlite:///{tmp_path}/h.db"),
        engine=make_engine(settings, scripted_models(settings)),
        tokens=[TOKEN],
    )


def _post(conn: http.client.HTTPConnection, path: str, body: bytes) -> tuple[int, Any, bool]:
    conn.request("POST", path, body=body, headers={**AUTH, "Content-Type": "application/json"})
    response = conn.getresponse()
    data = json.loads(response.read())
    return response.status, data, response.will_close


@pytest.mark.parametrize(
    ("raw", "path", "reason"),
    [
        (b'{"\\udfff": 1, "\\udfff": 2}', "body.\\udfff", "lone surrogate"),
        (b'{"topic": "x\\ud800y"}', "body.topic", "lone surrogate"),
        (b'{"min_lessons": ' + b"9" * 4301 + b"}", "body.min_lessons", "4301 digits"),
    ],
)
def test_a_body_python_cannot_hold_is_a_422_naming_the_field_and_the_connection_stays(
    settings: Settings, tmp_path: Path, raw: bytes, path: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    with live_app(_live_service(settings, tmp_path)) as base:
        conn = http.client.HTTPConnection(base.removeprefix("http://"), timeout=30)
        status, data, will_close = _post(conn, "/v1/jobs", raw)
        sock = conn.sock
        again, _, _ = _post(conn, "/v1/jobs", raw)  # the same keep-alive connection
        assert conn.sock is sock and sock is not None
        conn.close()
    assert (status, again, will_close) == (422, 422, False), data
    [problem] = data["error"]["problems"]
    assert problem["path"] == path and reason in problem["reason"]
    assert not [r for r in caplog.records if r.name.startswith("courseforge") and r.levelno >= logging.ERROR]


def test_anything_unexpected_is_a_503_logged_by_its_type_alone_and_the_connection_stays(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = _live_service(settings, tmp_path)

    @app.get("/boom")
    async def boom() -> None:
        raise LookupError("secret-request-data")

    with caplog.at_level(logging.INFO), live_app(app) as base:
        conn = http.client.HTTPConnection(base.removeprefix("http://"), timeout=30)
        conn.request("GET", "/boom")
        first = conn.getresponse()
        body, will_close, sock = json.loads(first.read()), first.will_close, conn.sock
        conn.request("GET", "/health")
        health = conn.getresponse()
        health.read()
        assert conn.sock is sock and sock is not None  # no reconnect: the connection was kept
        conn.close()
    assert (first.status, will_close, health.status) == (503, False, 200)
    assert body["error"]["message"] == "temporarily unavailable"
    logged = [r for r in caplog.records if "LookupError" in r.getMessage()]
    assert [r.getMessage() for r in logged] == ["unexpected LookupError on GET /boom"]
    assert not any("secret-request-data" in r.getMessage() or r.exc_info for r in caplog.records)


def _schema_says(doc: dict[str, Any], component: str, value: Any) -> bool:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")  # Schemathesis's own validator (dev extra)
    root = {"$ref": f"#/components/schemas/{component}", "components": doc["components"]}
    return bool(jsonschema_rs.Draft202012Validator(root).is_valid(value))


@pytest.mark.parametrize(
    ("overrides", "schema_valid"),
    [
        ({"budget_usd": ""}, False),  # was schema-valid and refused
        ({"budget_usd": "3O.x"}, False),
        ({"budget_usd": "0100"}, False),  # the text form is a plain decimal, as the schema says
        ({"budget_usd": "5"}, True),
        ({"budget_usd": 5}, True),
        ({"min_lessons": 12.0}, True),  # JSON Schema's integer: was refused
        ({"min_lessons": True}, False),
        ({"min_lessons": 386, "sections": [{"title": "A", "key_concepts": ["x"]}]}, False),  # 10 a section
    ],
)
def test_the_job_schema_and_the_server_agree(
    settings: Settings, tmp_path: Path, overrides: dict[str, Any], schema_valid: bool
) -> None:
    from service_helpers import body

    data = body(**overrides)
    with service(settings, tmp_path) as client:
        doc = client.get("/openapi.json").json()
        answer = client.post("/v1/jobs", json=data, headers=AUTH)
    assert _schema_says(doc, "AnalysisResult", data) is schema_valid
    assert (answer.status_code == 202) is schema_valid, answer.text


@pytest.mark.parametrize(
    ("action", "schema_valid", "status"),
    [
        ({"action": "approve", "approve_anyway": 0}, False, 422),  # was accepted
        ({"action": "approve", "approve_anyway": "yes"}, False, 422),
        ({"action": "regenerate", "best_quality": 1}, False, 422),
        # an edit needs content: the schema says so (it was schema-valid); the service refuses it
        # with 422 once it has found the item (here there is none)
        ({"action": "edit"}, False, 404),
        ({"action": "edit", "content": "# New\n\ntext"}, True, 404),
        ({"action": "approve", "approve_anyway": False}, True, 404),
    ],
)
def test_the_review_action_schema_says_what_is_refused(
    settings: Settings, tmp_path: Path, action: dict[str, Any], schema_valid: bool, status: int
) -> None:
    with service(settings, tmp_path) as client:
        doc = client.get("/openapi.json").json()
        answer = client.post("/v1/reviews/no-such-item", json=action, headers=AUTH)
    assert _schema_says(doc, "ReviewAction", action) is schema_valid
    assert answer.status_code == status, answer.text  # 404: past validation, no such item


def test_export_and_options_say_what_they_do(settings: Settings, tmp_path: Path) -> None:
    with service(settings, tmp_path) as client:
        doc = client.get("/openapi.json").json()
        export = doc["paths"]["/v1/jobs/{job_id}/export"]["get"]
        [fmt] = [p for p in export["parameters"] if p["name"] == "format"]
        options = client.options("/v1/jobs", headers=AUTH)
    assert "" not in fmt["schema"]["enum"] and "scorm12" in fmt["schema"]["enum"]
    assert {"200", "400", "401", "404", "422"} <= set(export["responses"])
    assert "200" in doc["paths"]["/v1/jobs"]["post"]["responses"]  # an idempotent replay
    assert options.status_code == 405
    assert {m.strip() for m in options.headers["allow"].split(",")} >= {"GET", "POST"}
