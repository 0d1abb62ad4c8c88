"""`generate --review-plan`, `plan show|edit|approve`, `generate --job`: the terminal session
of the plan checkpoint, against the loopback provider."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from courseforge.cli import app
from engine_helpers import EXAMPLES, author_reply, loopback_config, loopback_in_thread, write_config

runner = CliRunner()


def _schema(request: Any) -> str:
    return str(request.json.get("response_format", {}).get("json_schema", {}).get("name", ""))


def test_review_edit_approve_resume_pays_phase_2_once(tmp_path: Path) -> None:
    env = {
        "OPENROUTER_API_KEY": "",
        "COURSEFORGE_CONFIG": "",
        "COURSEFORGE_STORAGE_URL": f"sqlite:///{tmp_path}/jobs.db",
    }

    def invoke(*args: str) -> Any:
        return runner.invoke(app, list(args), env=env, catch_exceptions=False)

    example, out = str(EXAMPLES / "python-basics.json"), tmp_path / "course.json"
    with loopback_in_thread(author_reply()) as server:
        config = str(write_config(tmp_path / "c.yaml", loopback_config(server.base_url)))
        first = invoke("generate", example, "-o", str(out), "--config", config, "--review-plan")
        assert first.exit_code == 0, first.stderr
        assert "plan ready for review: courseforge plan show python-basics" in first.stderr
        assert not out.exists()  # no course yet
        assert {_schema(p) for p in server.requests} == {"course_metadata", "course_extras"}
        paid = len(server.requests)

        shown = invoke("plan", "show", "python-basics", "--config", config)
        assert shown.exit_code == 0 and "S1-L1" in shown.stderr and "start tier" in shown.stderr
        plan = json.loads(invoke("plan", "show", "python-basics", "--json", "--config", config).stdout)
        outcome = plan["outcomes"][0]["text"] + " and reading its errors"

        refused = invoke(
            "plan",
            "edit",
            "python-basics",
            "--outcome",
            "LO1=Eat a sandwich at home tonight",
            "--config",
            config,
        )
        assert refused.exit_code == 2 and "no measurable verb" in refused.stderr
        edited = invoke("plan", "edit", "python-basics", "--outcome", f"LO1={outcome}", "--config", config)
        assert edited.exit_code == 0, edited.stderr
        plan_file = tmp_path / "plan.json"
        plan = json.loads(invoke("plan", "show", "python-basics", "--json", "--config", config).stdout)
        plan["sections"][0]["lessons"].reverse()
        plan_file.write_text(json.dumps(plan), "utf-8")
        assert (
            invoke("plan", "edit", "python-basics", "--file", str(plan_file), "--config", config).exit_code
            == 0
        )
        assert invoke("plan", "approve", "python-basics", "--config", config).exit_code == 0

        done = invoke("generate", example, "-o", str(out), "--config", config, "--job", "python-basics")
        assert done.exit_code == 0, done.stderr
        # Phase 2 was replayed, not sent again: only lesson and later calls reached the provider.
        later = server.requests[paid:]
        assert later and not [p for p in later if _schema(p) in ("course_metadata", "course_extras")]
    assert "2 call(s) replayed from the store" in done.stderr
    course = json.loads(out.read_text("utf-8"))
    assert course["metadata"]["learning_outcomes"][0]["text"] == outcome
    assert [x["title"] for x in course["sections"][0]["lessons"]] == [
        x["title"] for x in plan["sections"][0]["lessons"]
    ]
