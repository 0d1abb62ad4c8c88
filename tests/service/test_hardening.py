"""The API's surface: every /v1 operation declares the bearer scheme, /docs needs no CDN."""

from __future__ import annotations

import re
from pathlib import Path

from service_helpers import service

from courseforge.config import Settings


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
