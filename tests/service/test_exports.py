"""GET /v1/jobs/{id}/export: a completed job's course as a SCORM package or a GIFT bank, the
export's issues in a header, bad formats and unknown jobs named."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from service_helpers import AUTH, body, service, wait_for

from courseforge.config import Settings


def test_export_route(settings: Settings, tmp_path: Path) -> None:
    with service(settings, tmp_path) as client:
        job = client.post("/v1/jobs", json=body(), headers=AUTH).json()
        assert wait_for(client, job["id"])["status"] == "completed"
        r = client.get(f"/v1/jobs/{job['id']}/export", params={"format": "scorm12"}, headers=AUTH)
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
        names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
        summary = json.loads(r.headers["x-courseforge-export"])
        assert "imsmanifest.xml" in names and summary["lessons"] == sum(n.endswith(".html") for n in names)
        gift = client.get(f"/v1/jobs/{job['id']}/export", params={"format": "gift"}, headers=AUTH)
        assert gift.status_code == 200 and "$CATEGORY:" in gift.text
        bad = client.get(f"/v1/jobs/{job['id']}/export", params={"format": "pdf"}, headers=AUTH)
        assert bad.status_code == 400 and bad.json()["error"]["problems"][0]["path"] == "query.format"
        missing = client.get("/v1/jobs/nope/export", params={"format": "gift"}, headers=AUTH)
        assert missing.status_code == 404
        assert client.get(f"/v1/jobs/{job['id']}/export", params={"format": "gift"}).status_code == 401
