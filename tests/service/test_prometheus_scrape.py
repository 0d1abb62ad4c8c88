"""A real Prometheus server (Debian's `prometheus`, found on PATH) scrapes a running service and is
asked, through its HTTP API, for a per-call metric of the job the service ran."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from live_server import free_port, live_app
from service_helpers import AUTH, TOKEN, body

from courseforge.config import Settings
from courseforge.service import create_app
from courseforge.storage import open_store
from engine_helpers import make_engine, scripted_models

PROMETHEUS = shutil.which("prometheus")
RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "courseforge-rules.yml"

pytestmark = [
    pytest.mark.server_binary,
    pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (Debian package prometheus)"),
]


def query(base: str, promql: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(url, timeout=10) as r:
        data = json.load(r)
    assert data["status"] == "success", data
    return data["data"]["result"]  # type: ignore[no-any-return]


def ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def wait_until(what: str, check: Any, timeout_s: float = 180) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def test_prometheus_scrapes_per_call_metrics_of_a_running_service(settings: Settings, tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/service.db")
    app = create_app(
        settings, store=store, engine=make_engine(settings, scripted_models(settings)), tokens=(TOKEN,)
    )
    with live_app(app) as service_url:
        job = httpx.post(f"{service_url}/v1/jobs", json=body(), headers=AUTH, timeout=10).json()
        done = wait_until(
            "the job",
            lambda: (
                (j := httpx.get(f"{service_url}/v1/jobs/{job['id']}", headers=AUTH).json())["status"]
                in ("completed", "failed")
                and j
            ),
        )
        assert done["status"] == "completed"
        report = httpx.get(f"{service_url}/v1/jobs/{job['id']}/report", headers=AUTH).json()

        port = free_port()
        target = service_url.removeprefix("http://")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {
                    "job_name": "courseforge",
                    "metrics_path": "/metrics",
                    "static_configs": [{"targets": [target]}],
                }
            ],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), "utf-8")
        log = (tmp_path / "prometheus.log").open("w")
        server = subprocess.Popen(
            [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until("Prometheus to be ready", lambda: server.poll() is None and ready(base))
            result = wait_until(
                "a scrape of courseforge_calls_total", lambda: query(base, "sum(courseforge_calls_total)")
            )
            assert float(result[0]["value"][1]) == len(report["calls"])
            by_tier = query(base, "sum by (tier) (courseforge_call_latency_seconds_count)")
            tiers = {r["metric"]["tier"]: float(r["value"][1]) for r in by_tier}
            answered = [c for c in report["calls"] if c["outcome"] in ("ok", "rejected")]
            assert sum(tiers.values()) == len(answered) and set(tiers) == {c["tier"] for c in answered}
            (up,) = query(base, 'up{job="courseforge"}')
            assert up["value"][1] == "1"
            with urllib.request.urlopen(f"{base}/api/v1/rules", timeout=10) as r:
                groups = json.load(r)["data"]["groups"]
            alerts = {rule["name"] for g in groups for rule in g["rules"] if rule["type"] == "alerting"}
            assert "CourseforgeBreakerOpen" in alerts and len(alerts) == 11
        finally:
            server.terminate()
            server.wait(30)
            log.close()
