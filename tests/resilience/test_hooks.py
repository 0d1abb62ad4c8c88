"""What the hooks keep: a recorder keeps every event; a counter keeps counts only, so an
engine that lives for thousands of courses does not grow by every retry and fault."""

from __future__ import annotations

import gc

from courseforge.resilience import CountingHooks, FaultObserved, RecordingHooks, RetryScheduled
from courseforge.resilience.hooks import Hooks


def _live_faults() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is FaultObserved)


def _send(hooks: Hooks, n: int) -> None:
    for i in range(n):
        hooks(FaultObserved("m", "http_502" if i % 2 else "timeout"))
        hooks(RetryScheduled("m", 1, 0.0, "timeout"))


def test_counting_hooks_count_faults_and_retries_like_a_recorder() -> None:
    counting, recording = CountingHooks(), RecordingHooks()
    _send(counting, 7)
    _send(recording, 7)
    assert counting.fault_counts() == recording.fault_counts() == {"http_502": 3, "timeout": 4}
    assert counting.retry_count() == recording.retry_count() == 7
    assert counting.counts == {"FaultObserved": 7, "RetryScheduled": 7}


def test_counting_hooks_keep_no_event_while_a_recorder_keeps_each() -> None:
    before = _live_faults()
    counting = CountingHooks()
    _send(counting, 1000)
    assert _live_faults() - before < 10
    recording = RecordingHooks()
    _send(recording, 1000)
    assert _live_faults() - before >= 1000
    assert counting.fault_counts()["timeout"] == 500


def test_a_scope_keeps_only_its_counts_once_it_ends() -> None:
    """A context copied during a course (a pooled provider connection's reader keeps one) must
    not keep the course's events alive once the course is over."""
    import contextvars

    from courseforge.resilience.hooks import ScopedHooks

    hooks = ScopedHooks()
    with hooks.scope() as recorded:
        kept = contextvars.copy_context()
        hooks(RetryScheduled("m", 1, 0.0, "timeout"))
        hooks(FaultObserved("m", "timeout"))
        hooks(FaultObserved("m", "http_502"))
        assert len(recorded.events) == 3
    assert recorded.events == []
    assert recorded.retry_count() == 1
    assert recorded.fault_counts() == {"http_502": 1, "timeout": 1}
    kept.run(hooks, FaultObserved("m", "timeout"))  # a late event through the kept context
    assert recorded.events == [] and recorded.fault_counts() == {"http_502": 1, "timeout": 1}
