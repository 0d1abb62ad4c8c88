"""domain.report: a call's token counts, one set of names from a usage, a checkpoint or a cached
response onto its CallRecord."""

from __future__ import annotations

from decimal import Decimal

from courseforge.domain import CallRecord
from courseforge.domain.report import tokens_of
from courseforge.providers import Usage
from courseforge.storage import Checkpoint


def test_tokens_of_a_usage_fill_a_call_record() -> None:
    usage = Usage(120, 40, cached_tokens=100, cache_write_tokens=20, reasoning_tokens=7)
    record = CallRecord(
        phase="lessons",
        task="lesson:S1-L1",
        model="m",
        tier="cheap",
        attempt=1,
        outcome="ok",
        **tokens_of(usage),
    )
    assert (record.input_tokens, record.output_tokens, record.cached_tokens) == (120, 40, 100)
    assert (record.reasoning_tokens, record.cache_write_tokens) == (7, 20)


def test_a_rejected_answers_counts_leave_cache_writes_out() -> None:
    usage = Usage(120, 40, cached_tokens=100, cache_write_tokens=20, reasoning_tokens=7)
    assert tokens_of(usage, cache_writes=False) == {
        "input_tokens": 120,
        "output_tokens": 40,
        "cached_tokens": 100,
        "reasoning_tokens": 7,
    }


def test_a_checkpoint_round_trips_the_counts() -> None:
    usage = Usage(9, 3, cached_tokens=2, cache_write_tokens=1, reasoning_tokens=1)
    cp = Checkpoint(
        job_id="j", step_key="k", request_digest="d", model="m", text="t", cost_usd=Decimal(0),
        cost_source="none", latency_ms=1.0, **tokens_of(usage),
    )  # fmt: skip
    assert tokens_of(cp) == tokens_of(usage)
