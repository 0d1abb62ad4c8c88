"""The isolation probe, re-run: each case of the "one user cannot break another" issue sent to a
real `courseforge serve` on 127.0.0.1, and what each now returns, printed one line per case.

An independent OpenAI-compatible server (a `LoopbackServer` in a spawned process, `CourseAuthor`
text) plays the provider. Like the provider of the original probe it answers JSON only when
asked with `response_format: json_schema` (a weaker mode gets prose), so a wrongly downgraded
mode shows as failing jobs. Inputs steer it: a topic containing POISON gets schema-ignoring
JSON, CITE gets lessons citing a source the course does not have (a gateway that does not
enforce `maxItems`), SLOW gets every answer after 3 s. The service runs with two tenants
(`acme`, `globex`), SQLite in a temp dir, 2 jobs at a time; the CLI cases run the real CLI.

    python benchmarks/probe_isolation.py
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import yaml

from courseforge.sim.content import message_text
from courseforge.testing.processes import child_process, free_port, wait_http

sys.path.insert(0, str(Path(__file__).resolve().parent))
from service_load import serve_loopback  # one provider process for both

ROOT = Path(__file__).resolve().parent.parent
ACME, GLOBEX = "probe-acme-token", "probe-globex-Secret-4e1f"
SLOW_S = 3.0


def _provider(conn: Connection) -> None:
    from courseforge.providers import ChatRequest, Message
    from courseforge.testing import CourseAuthor, LoopbackReply

    author = CourseAuthor()
    flagger = CourseAuthor(off_topic=lambda _brief: True)

    def handler(payload: dict[str, Any]) -> LoopbackReply:
        text_in = " ".join(m["content"] for m in payload["messages"])
        mode = (payload.get("response_format") or {}).get("type", "")
        delay = SLOW_S if "SLOW" in text_in else 0.0
        if mode != "json_schema":
            text = "Here is what you asked for, in words rather than JSON."
        elif "POISON" in text_in:
            text = '{"unrelated": true}'
        else:
            writer = flagger if "FLAG" in text_in else author
            text = writer(
                ChatRequest([Message(m["role"], message_text(m["content"])) for m in payload["messages"]])
            )
            if "CITE" in text_in and '"citations"' in text:
                data = json.loads(text)
                data["citations"] = ["made-up-source"]
                text = json.dumps(data)
        usage = {"prompt_tokens": len(text_in.split()), "completion_tokens": len(text.split())}
        return LoopbackReply.completion(text, model=payload["model"], usage=usage, delay_s=delay)

    serve_loopback(handler, conn)


def _config(base_url: str) -> dict[str, Any]:
    price = {"price_in_per_m": "0.03", "price_out_per_m": "0.13"}
    return {
        "profile": "probe",
        "providers": {"loop": {"kind": "openai", "base_url": base_url, "max_concurrency": 64}},
        "models": {
            m: {"provider": "loop", "name": f"probe/{m}", **price} for m in ("small", "medium", "large")
        },
        "routing": {
            "tiers": {"cheap": "small", "mid": "medium", "premium": "large"},
            "ladder": ["cheap", "mid", "premium"],
            "long_context_tier": None,
            "priorities": {
                "critical": {"max_attempts": 4, "retries": 0, "timeout_s": 30},
                "standard": {"max_attempts": 3, "retries": 0, "timeout_s": 30},
                "supplementary": {"max_attempts": 2, "retries": 0, "timeout_s": 30, "escalate": False},
            },
        },
        "gates": {
            "embedding_model": "hashing",
            "similarity": {"hashing": {"pass_at": 0.12, "severe_below": 0.04}},
            "lesson_min_words": 120,
        },
        "service": {
            "max_concurrent_jobs": 2,
            "api_tokens_env": "PROBE_DEFAULT_TOKENS",
            "tenants": {"acme": {"tokens_env": "PROBE_ACME"}, "globex": {"tokens_env": "PROBE_GLOBEX"}},
        },
    }


def _wait(
    client: httpx.Client, job_id: str, statuses: tuple[str, ...], timeout_s: float = 300
) -> dict[str, Any]:
    deadline = time.time() + timeout_s
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in statuses or time.time() > deadline:
            return job
        time.sleep(0.2)


def _problems(r: httpx.Response) -> str:
    try:
        err = r.json().get("error", {})
    except ValueError:
        return r.text[:120]
    parts = [f"{p['path']}: {p['reason'][:90]}" for p in err.get("problems", [])[:2]]
    return f"{err.get('message', '')} [{'; '.join(parts)}]"


def _service_cases(base: str, example: dict[str, Any], log: Path) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    acme = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ACME}"}, timeout=120)
    globex = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {GLOBEX}"}, timeout=120)

    def submit(client: httpx.Client, **overrides: Any) -> dict[str, Any]:
        r = client.post("/v1/jobs", json={**example, **overrides})
        r.raise_for_status()
        return dict(r.json())

    # 1. one job whose answers miss the schema, then later jobs of another tenant
    poisoned = _wait(acme, submit(acme, topic="POISON " + example["topic"])["id"], ("completed", "failed"))
    later = [submit(globex, course_id=f"after-poison-{i}") for i in range(3)]
    later_final = [_wait(globex, j["id"], ("completed", "failed")) for j in later]
    downgrades = [line.strip() for line in log.read_text("utf-8").splitlines() if "output mode" in line]
    out.append(
        (
            "1 schema-missing job, then 3 jobs",
            f"poisoned job {poisoned['status']} ({poisoned['error'][:60]}); later jobs "
            f"{[j['status'] for j in later_final]}; model-wide downgrades logged: {len(downgrades)}",
        )
    )

    # 2. lessons citing a source the course has not got
    cited = _wait(acme, submit(acme, topic="CITE " + example["topic"])["id"], ("completed", "failed"))
    report = acme.get(f"/v1/jobs/{cited['id']}/report").json()
    repairs = [d for d in report.get("decisions", []) if d["action"] == "repair"]
    out.append(
        (
            "2 lessons with citations past maxItems 0",
            f"job {cited['status']}, {report['summary'].get('lessons')} usable lessons, "
            f"{len(repairs)} repair decisions (e.g. {repairs[0]['inputs']['repairs'][0] if repairs else '-'})",
        )
    )

    # 3. concurrent review actions, on a course whose every lesson is flagged
    flagged = _wait(acme, submit(acme, topic="FLAG " + example["topic"])["id"], ("completed", "failed"))
    items = [
        r
        for r in acme.get("/v1/reviews", params={"limit": 500}).json()["reviews"]
        if r["job_id"] == flagged["id"]
    ]
    lessons = [r for r in items if r["target"].startswith("S")]
    if len(lessons) >= 7:
        six, one = lessons[:6], lessons[6]

        def edit(item_and_content: tuple[dict[str, Any], str]) -> int:
            item, content = item_and_content
            body = {
                "action": "edit",
                "content": content,
                "approve_anyway": True,
                "note": "probe: concurrency, not content",
            }
            return acme.post(f"/v1/reviews/{item['id']}", json=body).status_code

        with ThreadPoolExecutor(10) as pool:
            edits = list(pool.map(edit, [(r, f"# Edit {r['target']}\nText.") for r in six]))
            ten = list(pool.map(edit, [(one, f"# Version {n}\nText.") for n in range(10)]))
        course = acme.get(f"/v1/jobs/{flagged['id']}/course").json()
        contents = {x["id"]: x["content"] for s in course["sections"] for x in s["lessons"]}
        landed = sum(1 for r in six if contents[r["target"]] == f"# Edit {r['target']}\nText.")
        out.append(
            ("3a six concurrent edits of six lessons", f"statuses {sorted(edits)}; {landed}/6 in the course")
        )
        won = contents[one["target"]]
        out.append(
            (
                "3b ten concurrent actions on one item",
                f"statuses {sorted(ten)}; the course holds {won.splitlines()[0]!r} (the one 200's edit)",
            )
        )
    else:
        out.append(("3 concurrent review actions", f"skipped: only {len(lessons)} flagged lessons to act on"))

    # 4. tenants
    other = globex.get(f"/v1/jobs/{cited['id']}")
    cancel_other = globex.post(f"/v1/jobs/{cited['id']}/cancel").status_code
    listed = [j["id"] for j in globex.get("/v1/jobs").json()["jobs"]]
    k1 = acme.post("/v1/jobs", json={**example, "course_id": "idem"}, headers={"Idempotency-Key": "same-key"})
    k2 = globex.post(
        "/v1/jobs", json={**example, "course_id": "idem"}, headers={"Idempotency-Key": "same-key"}
    )
    out.append(
        (
            "4 tenant globex reads/cancels acme's job",
            f"GET {other.status_code}, cancel {cancel_other}, "
            f"acme's job in globex's list: {cited['id'] in listed}; same Idempotency-Key: two jobs "
            f"{k1.json()['id'] != k2.json()['id']} ({k1.status_code}, {k2.status_code})",
        )
    )
    cancelled = [(acme, k1.json()["id"]), (globex, k2.json()["id"])]
    for client, job_id in cancelled:
        client.post(f"/v1/jobs/{job_id}/cancel")

    # 5. cancel a queued job; cancel a running one and read its spend
    slow = [submit(acme, topic=f"SLOW {i} " + example["topic"], course_id=f"slow-{i}") for i in range(2)]
    queued = submit(acme, topic="SLOW queued " + example["topic"], course_id="slow-queued")
    state = acme.get(f"/v1/jobs/{queued['id']}").json()["status"]
    ended: list[str] = []

    def follow() -> None:
        with acme.stream("GET", f"/v1/jobs/{queued['id']}/events") as events:
            for line in events.iter_lines():
                if line.startswith("data:") and '"status"' in line and "cancelled" in line:
                    ended.append(line)

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    time.sleep(0.5)
    t0 = time.time()
    r = acme.post(f"/v1/jobs/{queued['id']}/cancel")
    follower.join(10)
    out.append(
        (
            "5a cancel a queued job",
            f"was {state}; answered {r.status_code} {r.json()['status']} in {time.time() - t0:.2f} s; "
            f"SSE stream ended with the status: {bool(ended) and not follower.is_alive()}",
        )
    )
    time.sleep(SLOW_S * 2.5)  # metadata answered and paid, lessons in flight
    for job in slow:
        acme.post(f"/v1/jobs/{job['id']}/cancel")
    cancelled += [(acme, job["id"]) for job in slow]
    reports = [client.get(f"/v1/jobs/{job_id}/report").json() for client, job_id in cancelled]
    outcomes = [c["outcome"] for report in reports for c in report.get("calls", [])]
    spent_usd = sum(float(report.get("total_cost_usd", 0)) for report in reports)
    metrics = httpx.get(f"{base}/metrics").text
    cancelled_calls = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("courseforge_calls_total{") and 'outcome="cancelled"' in line
    )
    out.append(
        (
            "5b spend of the 4 jobs cancelled running",
            f"reports {[r.get('status', 'none (never ran)') for r in reports]}: {len(outcomes)} requests ({outcomes.count('ok')} "
            f"answered, {outcomes.count('cancelled')} in flight), {spent_usd:.8f} USD; "
            f"/metrics calls{{outcome=cancelled}} = {cancelled_calls:.0f}",
        )
    )
    health = httpx.get(f"{base}/health").json()
    out.append(
        ("5c /health after the cancels", f"running {health['jobs_running']}, queued {health['jobs_queued']}")
    )

    # 6. deeply nested JSON
    deep = b"[" * 100_000 + b"]" * 100_000
    r = acme.post("/v1/jobs", content=deep, headers={"Content-Type": "application/json"})
    out.append(("6 body nested 100,000 deep", f"{r.status_code} {_problems(r)}"))

    # 8. hardening
    r = httpx.get(f"{base}/v1/jobs?token={GLOBEX}")
    time.sleep(0.3)
    leaked = GLOBEX in log.read_text("utf-8")
    out.append(("8a token in a query string", f"{r.status_code}; token in the server log: {leaked}"))
    doc = httpx.get(f"{base}/openapi.json").json()
    ops = [op for path, o in doc["paths"].items() if path.startswith("/v1/") for op in o.values()]
    secured = sum(1 for op in ops if op.get("security"))
    out.append(("8b OpenAPI security on /v1 operations", f"{secured}/{len(ops)}"))
    page = httpx.get(f"{base}/docs").text
    out.append(("8c /docs", f"external URLs in the page: {page.count('https://') + page.count('http://')}"))
    r = acme.post("/v1/jobs", json={**example, "topic": "t" * 1_900_000})
    out.append(("8d a 1.9 MB topic", f"{r.status_code} {_problems(r)}"))
    r = acme.post("/v1/jobs", json={**example, "budget_usd": 1e-12})
    out.append(("8e budget_usd 1e-12", f"{r.status_code} {_problems(r)}"))
    raw = json.dumps(example)[:-1] + ', "topic": "again"}'
    r = acme.post("/v1/jobs", content=raw.encode(), headers={"Content-Type": "application/json"})
    out.append(("8f a repeated key", f"{r.status_code} {_problems(r)}"))
    return out


def _cli_cases(tmp: Path, cfg: Path, example: Path) -> list[tuple[str, str]]:
    cli = [str(Path(sys.executable).with_name("courseforge"))]
    env = {**os.environ, "COURSEFORGE_STORAGE_URL": f"sqlite:///{tmp}/cli.db"}
    fifo = tmp / "fifo.json"
    os.mkfifo(fifo)
    (tmp / "a-file").write_text("x")
    (tmp / "a-dir").mkdir()
    copy = tmp / "input.json"
    copy.write_bytes(example.read_bytes())
    cases = {
        "7a validate /dev/zero": ["validate", "/dev/zero"],
        "7b validate a FIFO": ["validate", str(fifo)],
        "7c generate -o under a file": ["generate", str(copy), "-o", str(tmp / "a-file" / "c.json")],
        "7d generate -o a directory": ["generate", str(copy), "-o", str(tmp / "a-dir")],
        "7e generate -o the input": ["generate", str(copy), "-o", str(copy)],
    }
    out = []
    for name, args in cases.items():
        t0 = time.time()
        done = subprocess.run(
            [*cli, *args, "--config", str(cfg)], env=env, capture_output=True, text=True, timeout=60
        )
        lines = [x.strip() for x in done.stderr.splitlines() if x.strip() and not x.startswith("config:")]
        out.append(
            (name, f"exit {done.returncode} in {time.time() - t0:.1f} s: {' / '.join(lines[:2])[:150]}")
        )
    out.append(("7f the input after 7e", f"unchanged: {copy.read_bytes() == example.read_bytes()}"))
    return out


def main() -> int:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    provider = ctx.Process(target=_provider, args=(child,), daemon=True)
    provider.start()
    base_url = parent.recv()
    tmp = Path(tempfile.mkdtemp(prefix="courseforge-probe-"))
    cfg = tmp / "probe.yaml"
    cfg.write_text(yaml.safe_dump(_config(base_url)), "utf-8")
    port = free_port()
    env = {
        **os.environ,
        "PROBE_DEFAULT_TOKENS": "probe-default-token",
        "PROBE_ACME": ACME,
        "PROBE_GLOBEX": GLOBEX,
        "COURSEFORGE_STORAGE_URL": f"sqlite:///{tmp}/probe.db",
    }
    log = tmp / "serve.log"
    cli = [str(Path(sys.executable).with_name("courseforge"))]
    serve = [*cli, "serve", "--port", str(port), "--config", str(cfg), "--log-level", "info"]
    base = f"http://127.0.0.1:{port}"
    example_path = ROOT / "examples" / "python-basics.json"
    example = json.loads(example_path.read_text("utf-8"))
    try:
        with child_process(serve, env=env, log=log) as server:
            wait_http(f"{base}/health", server, "courseforge serve", log=log, ok_below=300)
            results = _service_cases(base, example, log)
    finally:
        parent.send("stop")
        provider.join(10)
    results += _cli_cases(tmp, cfg, example_path)
    width = max(len(name) for name, _ in results)
    for name, outcome in results:
        print(f"{name:<{width}}  {outcome.replace(str(tmp), '<tmp>')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
