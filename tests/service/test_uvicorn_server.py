"""`courseforge serve`'s uvicorn: a token sent in a query string never reaches the access log."""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from live_server import free_port
from service_helpers import TOKEN

from courseforge.config import Settings
from courseforge.service import create_app
from courseforge.service.uvicorn_server import build_server, redact_query
from courseforge.storage import open_store
from engine_helpers import make_engine, scripted_models


def test_redact_query_keeps_only_harmless_values() -> None:
    assert redact_query("/v1/jobs") == "/v1/jobs"
    assert (
        redact_query("/v1/jobs?token=s3cret&limit=5&status=queued")
        == "/v1/jobs?token=***&limit=5&status=queued"
    )
    assert redact_query("/v1/jobs?access_token=a%20b") == "/v1/jobs?access_token=***"
    assert redact_query("/v1/jobs?s3cret-9f2") == "/v1/jobs?***"  # the name may be the secret
    assert redact_query("/v1/jobs?%%%") == "/v1/jobs?***"


def test_a_configured_token_is_redacted_whatever_its_parameter_or_place() -> None:
    tok = "tenant-Token-51ab"
    secrets = {tok, "other-Token-77"}
    assert redact_query(f"/v1/jobs?status={tok}&limit=5", secrets) == "/v1/jobs?status=***&limit=5"
    assert redact_query(f"/v1/jobs?limit={tok}", secrets) == "/v1/jobs?limit=***"
    assert redact_query(f"/v1/jobs?offset=Bearer%20{tok}", secrets) == "/v1/jobs?offset=***"
    assert (
        redact_query(f"/v1/jobs/{tok}/report?status=queued", secrets) == "/v1/jobs/***/report?status=queued"
    )
    assert redact_query("/v1/jobs?status=queued", secrets) == "/v1/jobs?status=queued"


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_a_token_in_the_query_string_is_refused_and_not_logged(settings: Settings, tmp_path: Path) -> None:
    secret = "qs-Secret-Token-9d1e"
    app = create_app(
        settings,
        store=open_store(f"sqlite:///{tmp_path}/s.db"),
        engine=make_engine(settings, scripted_models(settings)),
        tokens=[TOKEN, secret],
    )
    port = free_port()
    server = build_server(app, host="127.0.0.1", port=port, log_level="info", secrets=[TOKEN, secret])
    captured = _Lines()
    access = logging.getLogger("uvicorn.access")
    access.addHandler(captured)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        statuses = []
        for query in (f"token={secret}&limit=5", f"status={secret}", f"limit={secret}"):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/jobs?{query}", timeout=10)
                statuses.append(200)
            except urllib.error.HTTPError as exc:
                statuses.append(exc.code)
        assert statuses == [401, 401, 401]  # only the Authorization header counts
        deadline = time.monotonic() + 30
        while sum("/v1/jobs" in line for line in captured.lines) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        server.should_exit = True
        thread.join(30)
        access.removeHandler(captured)
    logged = [line for line in captured.lines if "/v1/jobs" in line]
    assert logged and all(secret not in line for line in captured.lines)
    assert "/v1/jobs?token=***&limit=5" in logged[0]
    assert "/v1/jobs?status=***" in logged[1] and "/v1/jobs?limit=***" in logged[2]
