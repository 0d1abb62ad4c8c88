"""`export-training` from a store of courses generated on the loopback simulator: accepted
lessons only, messages rebuilt with the generation's own prompt function, duplicates removed,
PII dropped, the validation split by course."""

from __future__ import annotations

import json
from pathlib import Path

from courseforge.config import Settings
from courseforge.engine import Engine
from courseforge.exports.training import export_training, records_from_store, shown_excerpts
from courseforge.jobs import generate_durably
from courseforge.providers.embeddings import make_embedder
from courseforge.storage import open_store
from courseforge.testing import CourseAuthor, LoopbackServer
from engine_helpers import author_reply, example_analysis, loopback_config


async def test_training_file_from_a_batch_of_simulated_courses(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'jobs.db'}")
    await store.init()
    async with LoopbackServer(author_reply(CourseAuthor())) as server:
        settings = Settings.model_validate(loopback_config(server.base_url))
        engine = Engine(settings, env={})
        try:
            for name in ("python-basics", "spanish-a1", "photosynthesis-sourced"):
                await generate_durably(
                    settings,
                    example_analysis(name),
                    job_id=f"job-{name}",
                    engine=engine,
                    store=store,
                    say=lambda _m: None,
                )
        finally:
            await engine.aclose()
    records = await records_from_store(store)
    await store.close()
    assert len(records) == 3
    # one lesson duplicated (a second job of the same course) and one with PII: both dropped
    dup = records[0]
    records.append(type(dup)(source="job:copy", analysis=dup.analysis, course=dup.course, report=dup.report))
    leaky = records[0].course.model_copy(deep=True)
    leaky.sections[0].lessons[0].content += " Write to jane.doe@gmail.com for help."
    records.append(
        type(dup)(source="job:leak", analysis=records[0].analysis, course=leaky, report=records[0].report)
    )
    out = tmp_path / "train.jsonl"
    result = export_training(
        records,
        settings.model_copy(
            update={"exports": settings.exports.model_copy(update={"validation_share": 0.34})}
        ),
        out,
    )
    print(result.to_dict() | {"dropped": len(result.dropped)})  # the evidence in the closing note
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    held = [json.loads(x) for x in result.validation_path.read_text().splitlines()]
    assert result.train == len(lines) > 0 and result.validation == len(held) > 0
    assert result.train_bytes == out.stat().st_size
    total = sum(len(r.course.lessons()) for r in records)
    assert (
        result.train + result.validation + result.duplicates + result.pii_dropped + result.not_accepted
        == total
    )
    dropped = {d["lesson"].rsplit(":", 1)[0] for d in result.dropped if d["reason"] == "duplicate"}
    assert result.duplicates > 0 and dropped <= {"job:copy", "job:leak"}
    assert [d["lesson"] for d in result.dropped if d["reason"].startswith("pii")] == [
        f"job:leak:{leaky.sections[0].lessons[0].id}"
    ]
    # no course in both splits
    assert not {e["metadata"]["course_id"] for e in lines} & {e["metadata"]["course_id"] for e in held}
    for example in lines + held:
        roles = [m["role"] for m in example["messages"]]
        assert roles == ["system", "user", "assistant"]
        assert "BRIEF (JSON):" in example["messages"][1]["content"]
        answer = json.loads(example["messages"][2]["content"])
        assert answer["content"] and answer["exercises"]
        meta = example["metadata"]
        assert (
            meta["lesson_id"]
            and meta["model"]
            and meta["gates"]
            and meta["accepted_by"] in ("course", "gates", "reviewer")
        )
    # the rebuilt request is the one sent: its digest is a first attempt's checkpointed digest
    assert result.verified > 0
    verified = [e for e in lines + held if e["metadata"]["messages_verified"]]
    assert len(verified) == result.verified
    assert all(e["metadata"]["attempts"] >= 1 for e in verified)
    assert "jane.doe@gmail.com" not in out.read_text() + result.validation_path.read_text()
    # A sourced course's lessons were shown the passages retrieved for them: rebuilt with the
    # same retrieval their prompts are the ones sent, rebuilt without it they are not.
    sourced = [r for r in records[:3] if r.analysis.source_material]
    assert sourced
    shown = await shown_excerpts(sourced, settings, make_embedder(settings.gates.embedding_model).embed)
    assert shown and all(shown.values())
    bare = export_training(sourced, settings, tmp_path / "bare.jsonl")
    full = export_training(sourced, settings, tmp_path / "full.jsonl", excerpts=shown)
    assert bare.verified == 0 < full.verified


async def test_cli_from_a_folder_and_bad_sources(tmp_path: Path) -> None:
    from course_helpers import generated_course
    from typer.testing import CliRunner

    from courseforge.cli import app

    course = await generated_course("python-basics")
    folder = tmp_path / "courses"
    folder.mkdir()
    (folder / "py.course.json").write_text(course.model_dump_json(), "utf-8")
    (folder / "py.analysis.json").write_text(example_analysis().model_dump_json(), "utf-8")
    out = tmp_path / "train.jsonl"
    # the courses were generated with the loopback config: rebuild their prompts with it too
    config = tmp_path / "config.yaml"
    import yaml

    config.write_text(yaml.safe_dump(loopback_config("http://127.0.0.1:9/v1")), "utf-8")
    ran = CliRunner().invoke(
        app, ["export-training", "--from", str(folder), "-o", str(out), "-c", str(config)]
    )
    assert ran.exit_code == 0, ran.output
    summary = json.loads(ran.stdout.strip().splitlines()[-1])
    lines = out.read_text().splitlines()
    assert summary["train"] == len(lines) == len(course.lessons())  # approved: every lesson
    assert summary["verified"] == 0  # a folder keeps no request digests
    bad = CliRunner().invoke(app, ["export-training", "--from", str(tmp_path / "nope"), "-o", str(out)])
    assert bad.exit_code == 2 and "--from" in bad.output
    (folder / "py.analysis.json").unlink()
    missing = CliRunner().invoke(
        app, ["export-training", "--from", str(folder), "-o", str(out), "-c", str(config)]
    )
    assert missing.exit_code == 2 and "py.analysis.json" in missing.output
    wrong = CliRunner().invoke(
        app, ["export-training", "--from", str(folder), "--format", "alpaca", "-o", str(out)]
    )
    assert wrong.exit_code == 2 and "--format" in wrong.output
