"""POST /v1/jobs with a question bank (multipart/form-data: `analysis` and `question_bank`): the
job keeps the bank and its lessons reuse the vetted questions, as `generate --question-bank`."""

from __future__ import annotations

import json
from pathlib import Path

from service_helpers import AUTH, body, service, wait_for

from courseforge.config import Settings
from courseforge.exports.bank_import import read_bank
from engine_helpers import EXAMPLES

BANK = EXAMPLES / "python-basics.bank.gift"


def test_a_job_submitted_with_a_bank_reuses_its_questions(settings: Settings, tmp_path: Path) -> None:
    ids = {q.id for q in read_bank(BANK).questions}
    with service(settings, tmp_path) as client:
        files = {
            "analysis": ("analysis.json", json.dumps(body()).encode(), "application/json"),
            "question_bank": ("bank.gift", BANK.read_bytes(), "text/plain"),
        }
        sent = client.post("/v1/jobs", files=files, headers=AUTH)
        assert sent.status_code == 202, sent.text
        assert sent.json()["progress"]["bank_questions"] == 30 and "bank" not in sent.json()["progress"]
        done = wait_for(client, sent.json()["id"])
        assert done["status"] == "completed", done
        course = client.get(f"/v1/jobs/{done['id']}/course", headers=AUTH).json()
        report = client.get(f"/v1/jobs/{done['id']}/report", headers=AUTH).json()
    reused = [
        e["id"]
        for s in course["sections"]
        for lesson in s["lessons"]
        for e in lesson["exercises"]
        if e["id"] in ids
    ]
    assert len(reused) >= 10 and len(set(reused)) == len(reused)
    assert report["summary"]["bank_reused"] == len(reused)


def test_a_bad_bank_or_part_is_refused_naming_it(settings: Settings, tmp_path: Path) -> None:
    analysis = ("analysis.json", json.dumps(body()).encode(), "application/json")
    with service(settings, tmp_path) as client:
        empty = client.post(
            "/v1/jobs",
            files={"analysis": analysis, "question_bank": ("b.gift", b"// nothing\n", "text/plain")},
            headers=AUTH,
        )
        assert empty.status_code == 422
        assert empty.json()["error"]["problems"][0]["path"] == "form.question_bank"
        doctype = b'<?xml version="1.0"?><!DOCTYPE quiz [<!ENTITY x "y">]><quiz/>'
        xml = client.post(
            "/v1/jobs",
            files={"analysis": analysis, "question_bank": ("b.xml", doctype, "text/xml")},
            headers=AUTH,
        )
        assert xml.status_code == 422 and "DOCTYPE" in xml.text
        missing = client.post(
            "/v1/jobs", files={"question_bank": ("b.gift", BANK.read_bytes(), "text/plain")}, headers=AUTH
        )
        assert missing.status_code == 422
        assert missing.json()["error"]["problems"][0]["path"] == "form.analysis"
        extra = client.post(
            "/v1/jobs", files={"analysis": analysis, "notes": ("n.txt", b"x", "text/plain")}, headers=AUTH
        )
        assert extra.status_code == 422 and "form.notes" in extra.text
        crowded = client.post(  # more parts than the two a submission may carry (the parser's limit)
            "/v1/jobs",
            files={"analysis": analysis},
            data={"a": "1", "b": "2", "c": "3"},
            headers=AUTH,
        )
        assert crowded.status_code == 422, crowded.text
        assert crowded.json()["error"]["problems"][0]["path"] == "form"
        assert client.get("/v1/jobs", headers=AUTH).json()["jobs"] == []  # nothing stored


def test_an_idempotent_retry_must_carry_the_same_bank(settings: Settings, tmp_path: Path) -> None:
    analysis = ("analysis.json", json.dumps(body()).encode(), "application/json")
    with_bank = {"analysis": analysis, "question_bank": ("bank.gift", BANK.read_bytes(), "text/plain")}
    with service(settings, tmp_path) as client:
        key = {**AUTH, "Idempotency-Key": "bank-k1"}
        first = client.post("/v1/jobs", files=with_bank, headers=key)
        again = client.post("/v1/jobs", files=with_bank, headers=key)
        without = client.post("/v1/jobs", files={"analysis": analysis}, headers=key)
        as_json = client.post("/v1/jobs", json=body(), headers=key)
        plain = {**AUTH, "Idempotency-Key": "bank-k2"}
        no_bank = client.post("/v1/jobs", json=body(), headers=plain)
        bank_later = client.post("/v1/jobs", files=with_bank, headers=plain)
    assert (first.status_code, again.status_code) == (202, 200) and again.json()["id"] == first.json()["id"]
    # The same key and analysis with another bank (here none) is another request: 409, not the first job.
    assert without.status_code == as_json.status_code == bank_later.status_code == 409
    assert no_bank.status_code == 202
    assert without.json()["error"]["problems"][0]["path"] == "header.Idempotency-Key"
