"""The CLI contract: exit codes 0 / 2 / 3, what is written, what goes to stderr."""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from courseforge.cli import app
from courseforge.cli._common import read_limited
from courseforge.errors import UserError
from courseforge.testing import LoopbackReply
from engine_helpers import (
    EXAMPLES,
    author_reply,
    example_data,
    loopback_config,
    loopback_in_thread,
    write_config,
)

runner = CliRunner()
NO_KEY = {"OPENROUTER_API_KEY": "", "COURSEFORGE_CONFIG": "", "OPENROUTER_BASE_URL": ""}


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, list(args), env={**NO_KEY, **(env or {})}, catch_exceptions=False)


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), "utf-8")
    return path


# -- validate ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["python-basics", "spanish-a1", "photosynthesis-sourced"])
def test_validate_examples_exit_0(name: str) -> None:
    result = invoke("validate", str(EXAMPLES / f"{name}.json"), "--config", "hosted")
    assert result.exit_code == 0, result.stderr
    assert "valid:" in result.stderr


def test_validate_lists_every_problem_on_stderr_and_exits_2(tmp_path: Path) -> None:
    data = example_data()
    data["colour"] = "blue"
    data["sections"][0]["key_concepts"] = []
    data["budget_usd"] = 0
    result = invoke("validate", str(write_json(tmp_path / "bad.json", data)), "--config", "hosted")
    assert result.exit_code == 2
    assert result.stdout == ""
    for path in ("$.colour", "$.sections[0].key_concepts", "$.budget_usd"):
        assert path in result.stderr
    assert "unknown key" in result.stderr and "greater than or equal to 0.01" in result.stderr


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"topic": ', "not valid JSON"),
        (b"\xff\xfe\x00", "not UTF-8"),
        (b"[]", "must be a JSON object"),
    ],
)
def test_validate_unreadable_inputs_exit_2(tmp_path: Path, raw: bytes, expected: str) -> None:
    file = tmp_path / "in.json"
    file.write_bytes(raw)
    result = invoke("validate", str(file), "--config", "hosted")
    assert result.exit_code == 2
    assert expected in result.stderr


def test_validate_missing_file_exits_2(tmp_path: Path) -> None:
    result = invoke("validate", str(tmp_path / "nope.json"), "--config", "hosted")
    assert result.exit_code == 2
    assert "nope.json" in result.stderr


def test_validate_honours_the_configured_size_limit(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", loopback_config("http://127.0.0.1:9/v1", max_input_bytes=1024))
    data = example_data()
    data["style_guidelines"] = "Plain words. " * 200
    file = write_json(tmp_path / "big.json", data)
    result = invoke("validate", str(file), "--config", str(config))
    assert result.exit_code == 2
    assert "exceeds the limit of 1024" in result.stderr


def test_invalid_config_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("routing: [1, 2\n", "utf-8")
    result = invoke("validate", str(EXAMPLES / "python-basics.json"), "--config", str(bad))
    assert result.exit_code == 2
    assert "not valid YAML" in result.stderr
    cfg = loopback_config("http://127.0.0.1:9/v1")
    cfg["routing"]["tiers"]["premium"] = "missing-model"
    result = invoke("validate", str(EXAMPLES / "python-basics.json"), "--config", str(write_config(bad, cfg)))
    assert result.exit_code == 2
    assert "missing-model" in result.stderr


# -- schema, config show -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("which", "fields"),
    [
        ("analysis", {"topic", "target_audience", "sections", "budget_usd", "min_lessons"}),
        ("course", {"course_id", "status", "metadata", "sections", "review"}),
        ("report", {"total_cost_usd", "budget_usd", "by_phase", "by_model", "calls"}),
    ],
)
def test_schema_prints_json_schema(which: str, fields: set[str]) -> None:
    result = invoke("schema", which)
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["type"] == "object"
    assert fields <= set(schema["properties"])


def test_analysis_schema_rejects_unknown_keys_and_requires_fields() -> None:
    schema = json.loads(invoke("schema", "analysis").stdout)
    assert schema["additionalProperties"] is False
    assert {"topic", "target_audience", "sections"} <= set(schema["required"])
    call = json.loads(invoke("schema", "report").stdout)["$defs"]["CallRecord"]
    assert {"phase", "task", "model", "tier", "attempt", "cost_usd", "latency_ms", "outcome"} <= set(
        call["properties"]
    )


def test_schema_unknown_exits_2() -> None:
    result = invoke("schema", "lesson")
    assert result.exit_code == 2
    assert "unknown schema" in result.stderr


def test_config_show_masks_the_api_key() -> None:
    secret = "test-provider-key-0123456789abcdefSECRET"
    result = invoke("config", "show", "--config", "hosted", env={"OPENROUTER_API_KEY": secret})
    assert result.exit_code == 0
    assert secret not in result.output
    assert "SECRET" not in result.output
    assert "0123456789" not in result.output
    import yaml

    shown = yaml.safe_load(result.stdout)
    assert shown["providers"]["openrouter"]["api_key"].startswith("test")
    assert shown["models"]["qwen3-max"]["price_out_per_m"] in ("3.90", "3.9", 3.9)


def test_config_show_reports_an_unset_key() -> None:
    result = invoke("config", "show", "--config", "hosted")
    assert result.exit_code == 0
    assert "(unset: $OPENROUTER_API_KEY)" in result.stdout


def test_config_show_picks_offline_without_a_key_and_says_so() -> None:
    result = invoke("config", "show")
    assert result.exit_code == 0
    assert "offline" in result.stderr
    assert "profile: offline" in result.stdout


# -- generate ------------------------------------------------------------------------------------


def test_generate_invalid_input_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    data = example_data()
    del data["topic"]
    file = write_json(tmp_path / "bad.json", data)
    out, rep = tmp_path / "course.json", tmp_path / "report.json"
    with loopback_in_thread(author_reply()) as server:
        config = write_config(tmp_path / "c.yaml", loopback_config(server.base_url))
        result = invoke("generate", str(file), "-o", str(out), "--report", str(rep), "--config", str(config))
    assert result.exit_code == 2
    assert "$.topic" in result.stderr
    assert not out.exists() and not rep.exists()
    assert server.requests == []  # no model called
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json", "c.yaml"]


def test_generate_success_writes_course_and_report(tmp_path: Path) -> None:
    out, rep = tmp_path / "out" / "course.json", tmp_path / "out" / "report.json"
    with loopback_in_thread(author_reply()) as server:
        config = write_config(tmp_path / "c.yaml", loopback_config(server.base_url))
        result = invoke(
            "generate",
            str(EXAMPLES / "python-basics.json"),
            "-o",
            str(out),
            "--report",
            str(rep),
            "--config",
            str(config),
        )
    assert result.exit_code == 0, result.stderr
    course = json.loads(out.read_text("utf-8"))
    report = json.loads(rep.read_text("utf-8"))
    assert course["status"] in ("approved", "needs_review")
    assert report["status"] == course["status"]
    assert course["course_id"] == "python-basics"
    assert sum(len(s["lessons"]) for s in course["sections"]) >= 10
    assert len(report["calls"]) == len(server.requests) > 0
    assert report["profile"] == "loopback-test"
    assert "course:" in result.stderr and str(out) in result.stderr
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]
    # Piped (no terminal): one line per finished lesson, with its verdict, tier, attempts, time.
    lesson_lines = [line for line in result.stderr.splitlines() if re.search(r"\] lessons \d+/\d+: ", line)]
    assert len(lesson_lines) == len(report["lessons"]) >= 10  # phase 3 finishes every slot once
    assert all(
        re.search(r"S\d+-L\d+ (accepted|flagged|failed) \(\w+, \d+ attempts?, \d+\.\d s\)", x)
        for x in lesson_lines
    )
    assert re.search(r"\] metadata started", result.stderr) and re.search(
        r"\] completeness done", result.stderr
    )


def test_generate_default_report_path_is_next_to_the_course(tmp_path: Path) -> None:
    out = tmp_path / "c1.json"
    with loopback_in_thread(author_reply()) as server:
        config = write_config(tmp_path / "c.yaml", loopback_config(server.base_url))
        result = invoke(
            "generate", str(EXAMPLES / "python-basics.json"), "-o", str(out), "--config", str(config)
        )
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "c1.report.json").exists()


def test_generate_failure_exits_3_writes_report_not_course(tmp_path: Path) -> None:
    out, rep = tmp_path / "course.json", tmp_path / "report.json"
    with loopback_in_thread(
        lambda _p: LoopbackReply(status=500, json_body={"error": {"message": "boom"}})
    ) as server:
        config = write_config(tmp_path / "c.yaml", loopback_config(server.base_url))
        result = invoke(
            "generate",
            str(EXAMPLES / "python-basics.json"),
            "-o",
            str(out),
            "--report",
            str(rep),
            "--config",
            str(config),
        )
    assert result.exit_code == 3, result.stderr
    assert not out.exists()
    report = json.loads(rep.read_text("utf-8"))
    assert report["status"] == "failed"
    assert "metadata" in report["failure_reason"]
    assert report["calls"] and all(c["outcome"] == "error" for c in report["calls"])
    assert report["total_cost_usd"] == 0
    assert "generation failed" in result.stderr
    assert len(server.requests) == len(report["calls"])


def test_config_without_thresholds_for_its_embedder_exits_2_before_any_call(tmp_path: Path) -> None:
    out = tmp_path / "course.json"
    with loopback_in_thread(author_reply()) as server:
        cfg = loopback_config(server.base_url)
        cfg["gates"]["similarity"] = {"all-MiniLM-L6-v2": {"pass_at": 0.5, "severe_below": 0.3}}
        config = write_config(tmp_path / "c.yaml", cfg)
        result = invoke(
            "generate", str(EXAMPLES / "python-basics.json"), "-o", str(out), "--config", str(config)
        )
    assert result.exit_code == 2
    assert "no thresholds for embedding_model 'hashing'" in result.stderr
    assert server.requests == []  # used to be found only at the first lesson gate, after paid calls
    assert not out.exists()


def test_generate_hosted_without_api_key_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "course.json"
    result = invoke("generate", str(EXAMPLES / "python-basics.json"), "-o", str(out), "--config", "hosted")
    assert result.exit_code == 2
    assert "OPENROUTER_API_KEY" in result.stderr
    assert list(tmp_path.iterdir()) == []


# -- hostile and careless inputs and outputs -------------------------------------------------------


def test_validate_refuses_a_device_without_reading_it() -> None:
    result = invoke("validate", "/dev/zero", "--config", "hosted")
    assert result.exit_code == 2
    assert "/dev/zero: not a regular file (a device)" in result.stderr


def test_validate_refuses_a_fifo_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "input.json"
    os.mkfifo(fifo)
    result = invoke("validate", str(fifo), "--config", "hosted")  # no writer: a blocking open would hang
    assert result.exit_code == 2
    assert "not a regular file (a FIFO)" in result.stderr


def test_a_huge_file_is_refused_after_reading_the_limit_plus_one_byte(tmp_path: Path) -> None:
    huge = tmp_path / "huge.json"
    with huge.open("wb") as fh:
        fh.truncate(4 * 1024**3)  # 4 GiB, sparse: costs no disk, and no memory unless read whole
    reads: list[int] = []
    real_fdopen = os.fdopen

    class Counting(io.BufferedReader):
        def read(self, size: int | None = -1) -> bytes:
            data = super().read(size)
            reads.append(len(data))
            return data

    def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        return Counting(real_fdopen(fd, "rb", buffering=0))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("courseforge.cli._common.os.fdopen", fdopen)
        with pytest.raises(UserError) as info:
            read_limited(huge, 1024)
    assert sum(reads) == 1025
    assert info.value.problems == [(str(huge), "more than 1024 bytes exceeds the limit of 1024")]


_OUTPUT_CASES = {
    # case: (arguments after the input, the option named, the reason given)
    "parent-is-a-file": (["-o", "{tmp}/a-file/course.json"], "--output", "a-file is not a directory"),
    "is-a-directory": (["-o", "{tmp}/a-dir"], "--output", "is a directory"),
    "is-the-input": (["-o", "{source}"], "--output", "is the input file"),
    "report-is-the-input": (
        ["-o", "{tmp}/course.json", "--report", "{source}"],
        "--report",
        "is the input file",
    ),
    "html-is-the-input": (["-o", "{tmp}/course.json", "--html", "{source}"], "--html", "is the input file"),
    "html-is-a-directory": (["-o", "{tmp}/course.json", "--html", "{tmp}/a-dir"], "--html", "is a directory"),
    "html-in-proc": (["-o", "{tmp}/course.json", "--html", "/proc/nope/r.html"], "--html", "cannot create"),
    "metrics-in-proc": (
        ["-o", "{tmp}/course.json", "--metrics-file", "/proc/nope/m.prom"],
        "--metrics-file",
        "cannot create",
    ),
    "metrics-is-a-directory": (
        ["-o", "{tmp}/course.json", "--metrics-file", "{tmp}/a-dir"],
        "--metrics-file",
        "is a directory",
    ),
    "output-in-proc": (["-o", "/proc/nope/course.json"], "--output", "cannot create"),
    "report-in-sys": (
        ["-o", "{tmp}/course.json", "--report", "/sys/kernel/x.json"],
        "--report",
        "cannot create",
    ),
    "name-over-255-bytes": (["-o", "{tmp}/" + "c" * 300 + ".json"], "--output", "File name too long"),
    # 250 bytes: the name fits, the temporary file written beside it does not
    "temp-name-over-255-bytes": (["-o", "{tmp}/" + "c" * 245 + ".json"], "--output", "File name too long"),
    "config-is-an-output": (
        ["-o", "{tmp}/course.json", "--html", "{tmp}/c.yaml"],
        "--html",
        "is the input file",
    ),
}


@pytest.mark.parametrize("case", list(_OUTPUT_CASES))
def test_generate_checks_every_output_before_the_first_model_call(tmp_path: Path, case: str) -> None:
    source = write_json(tmp_path / "input.json", example_data())
    before = source.read_bytes()
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-dir").mkdir()
    template, option, reason = _OUTPUT_CASES[case]
    args = [a.format(tmp=tmp_path, source=source) for a in template]
    with loopback_in_thread(author_reply()) as server:
        config = write_config(tmp_path / "c.yaml", loopback_config(server.base_url))
        listing = sorted(p.name for p in tmp_path.iterdir())
        result = invoke("generate", str(source), *args, "--config", str(config))
    assert result.exit_code == 2, result.stderr
    assert "cannot write the output" in result.stderr and reason in result.stderr
    assert f"  {option} " in result.stderr  # the problem is named by its option
    assert server.requests == []  # nothing paid for
    assert source.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == listing  # the proof left nothing behind


def test_a_course_paid_for_is_never_lost_to_a_write_error(tmp_path: Path) -> None:
    out, html, other = tmp_path / "out" / "course.json", tmp_path / "out" / "r.html", tmp_path / "again.json"
    reply = author_reply()

    def reply_then_break_the_output(payload: Any) -> Any:
        out.mkdir(parents=True, exist_ok=True)  # after the check: the course's path is now a folder
        return reply(payload)

    with loopback_in_thread(reply_then_break_the_output) as server:
        config = write_config(tmp_path / "c.yaml", loopback_config(server.base_url))
        args = ("generate", str(EXAMPLES / "python-basics.json"), "--config", str(config))
        result = invoke(*args, "-o", str(out), "--html", str(html))
        paid = len(server.requests)
        assert result.exit_code == 3, result.stderr
        assert "not written: --output" in result.stderr
        assert "kept in the store as job python-basics" in result.stderr
        assert "--job python-basics" in result.stderr
        # the other outputs are still written
        assert html.is_file() and out.with_name("course.report.json").is_file()
        again = invoke(*args, "-o", str(other), "--job", "python-basics")
    assert again.exit_code == 0, again.stderr
    assert json.loads(other.read_text("utf-8"))["course_id"] == "python-basics"
    assert len(server.requests) == paid > 0  # written from the store: not paid again


def test_generate_batch_and_no_cache(tmp_path: Path) -> None:
    from courseforge.sim import ModelProfile, SimProfile, SimServer
    from engine_helpers import in_thread

    sim_profile = SimProfile(defaults=ModelProfile(ttft_ms=0, tokens_per_s=1e6, jitter=0, batch_delay_s=0))
    out = tmp_path / "course.json"
    with in_thread(SimServer(sim_profile)) as sim:
        cfg = loopback_config(sim.base_url, batch={"collect_s": 0.05, "max_collect_s": 1.0, "poll_s": 0.05})
        config = write_config(tmp_path / "c.yaml", cfg)
        args = ("generate", str(EXAMPLES / "python-basics.json"), "-o", str(out), "--config", str(config))
        first = invoke(*args, "--batch")
        assert first.exit_code == 0, first.stderr
        report = json.loads(out.with_name("course.report.json").read_text("utf-8"))
        assert report["summary"]["batch_calls"] > 0
        # the same course again: the response cache answers everything ...
        again = invoke(*args)
        assert again.exit_code == 0 and "answered from the response cache" in again.stderr
        sent = sum(sim.stats.values())
        # ... unless --no-cache
        fresh = invoke(*args, "--no-cache")
        assert fresh.exit_code == 0 and sum(sim.stats.values()) > sent


# -- every command reads a named file through one guard, writes only where it may ------------------

_READERS = {
    # command: arguments, with {bad} where the file that is not one goes
    "export": ["export", "{bad}", "--format", "gift", "-o", "{tmp}/bank.gift", "--config", "hosted"],
    "report": ["report", "{bad}"],
    "check": ["check", "{bad}", "--input", "{example}", "--config", "hosted"],
    "calibrate": ["calibrate", "{bad}", "--config", "hosted"],
    "config": ["validate", "{example}", "--config", "{bad}"],
    "eval-config": ["eval", "{example}", "-o", "{tmp}/ev", "--config", "{bad}"],
    "generate": ["generate", "{bad}", "-o", "{tmp}/course.json", "--config", "hosted"],
    "export-training": [
        "export-training",
        "--from",
        "{tmp}/courses",
        "-o",
        "{tmp}/t.jsonl",
        "--config",
        "hosted",
    ],
}


@pytest.mark.parametrize("kind", ["a FIFO", "a device", "a directory"])
@pytest.mark.parametrize("command", list(_READERS))
def test_every_command_that_reads_a_file_refuses_what_is_not_one(
    tmp_path: Path, command: str, kind: str
) -> None:
    bad = {"a FIFO": tmp_path / "pipe.json", "a device": Path("/dev/zero"), "a directory": tmp_path / "d"}[
        kind
    ]
    if kind == "a FIFO":
        os.mkfifo(bad)  # no writer: a blocking open would hang
    elif kind == "a directory":
        bad.mkdir()
    if command == "export-training":  # a folder of courses, one of which is not a file
        (tmp_path / "courses").mkdir()
        (tmp_path / "courses" / "x.analysis.json").write_text(json.dumps(example_data()))
        target = tmp_path / "courses" / "x.course.json"
        os.mkfifo(
            target
        ) if kind == "a FIFO" else target.mkdir() if kind == "a directory" else target.symlink_to(bad)
    args = [
        a.format(bad=bad, tmp=tmp_path, example=EXAMPLES / "python-basics.json") for a in _READERS[command]
    ]
    result = invoke(*args)
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.exception)
    assert f"not a regular file ({kind})" in result.stderr
