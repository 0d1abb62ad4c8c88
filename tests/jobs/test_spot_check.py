"""Seed 000's "10% human sample review": a seeded random share of approved courses goes to the
review queue as one item each; flagged courses keep their own items and none is added."""

from __future__ import annotations

from courseforge.domain import Course, ReviewFlag
from courseforge.jobs.reviews import SPOT_CHECK, review_items, spot_checked
from engine_helpers import hosted_settings


def _course(status: str, flags: list[ReviewFlag] | None = None) -> Course:
    return Course.model_construct(
        course_id="c", status=status, metadata=None, sections=[], review=flags or []
    )


def test_about_a_tenth_of_approved_courses_are_spot_checked_deterministically() -> None:
    rate = hosted_settings().gates.spot_check_rate
    assert rate == 0.1
    jobs = [f"job-{i}" for i in range(2000)]
    chosen = [j for j in jobs if spot_checked(j, rate)]
    assert 0.08 <= len(chosen) / len(jobs) <= 0.12
    assert chosen == [j for j in jobs if spot_checked(j, rate)]  # the same jobs every time
    assert chosen != [j for j in jobs if spot_checked(j, rate, seed="other")]  # seeded
    assert not any(spot_checked(j, 0.0) for j in jobs)


def test_a_spot_checked_approved_course_gets_one_course_item() -> None:
    job = next(f"job-{i}" for i in range(1000) if spot_checked(f"job-{i}", 0.1))
    items = review_items(job, _course("approved"), spot_check_rate=0.1)
    assert [(i.target, i.gate) for i in items] == [("course", SPOT_CHECK)]
    assert "spot-check" in items[0].reason
    assert review_items(job, _course("approved")) == []  # rate 0: off
    flag = ReviewFlag(target="lesson:S1-L1", reason="similarity", gate="lesson")
    flagged = review_items(job, _course("needs_review", [flag]), spot_check_rate=0.1)
    assert [i.gate for i in flagged] == ["lesson"]
