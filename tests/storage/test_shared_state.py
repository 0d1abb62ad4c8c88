"""What service processes on one store share: job claims with leases, dashboard sessions and
tenants' submission counts — on SQLite and PostgreSQL, and on PostgreSQL from two stores
(two processes' pools) at once."""

from __future__ import annotations

import asyncio

import pytest

from courseforge.storage import Job, ReviewItem, Store, open_store
from courseforge.testing.postgres import create_database


def _job(job_id: str, created_at: float = 1.0) -> Job:
    return Job(id=job_id, course_id="c", analysis={}, input_digest="d", created_at=created_at)


async def test_a_live_claim_keeps_other_processes_off_a_job_until_its_lease_runs_out(store: Store) -> None:
    await store.create_job(_job("j1"))
    assert await store.claimable_jobs(now=100) == ["j1"]
    assert await store.claim_job("j1", "A", until=130, now=100)
    assert await store.job_claim("j1") == ("A", 130)
    assert not await store.claim_job("j1", "B", until=140, now=110)  # A is alive
    assert await store.claimable_jobs(now=110) == []
    assert await store.claim_job("j1", "A", until=140, now=110)  # its own claim again
    assert await store.renew_claims("A", until=200) == []
    assert not await store.claim_job("j1", "B", until=220, now=150)  # renewed: still A's
    assert await store.claimable_jobs(now=201) == ["j1"]  # A stopped renewing: it died
    assert await store.claim_job("j1", "B", until=230, now=201)
    assert await store.job_claim("j1") == ("B", 230)


async def test_a_released_or_finished_job_and_a_cancel_request(store: Store) -> None:
    await store.create_job(_job("j1", 1.0))
    await store.create_job(_job("j2", 2.0))
    assert await store.claim_job("j1", "A", until=130, now=100)
    assert await store.claim_job("j2", "A", until=130, now=100)
    await store.update_job("j2", cancel_requested=True)
    assert await store.renew_claims("A", until=160) == ["j2"]  # asked, by any process, to cancel
    await store.release_job("j1", "B")  # not B's to release
    assert await store.job_claim("j1") == ("A", 160)
    await store.release_job("j1", "A")
    assert await store.claimable_jobs(now=100) == ["j1"]
    assert await store.release_all("A") == 1  # j2
    await store.update_job("j1", status="completed")
    assert not await store.claim_job("j1", "B", until=200, now=100)  # finished: nobody runs it
    assert await store.claimable_jobs(now=100) == ["j2"]


async def _regenerating(store: Store, job_id: str = "j1") -> str:
    """A finished job with one review item a reviewer asked to regenerate; the item's id."""
    await store.create_job(_job(job_id))
    item = ReviewItem(id=f"{job_id}:S1-L1", job_id=job_id, target="S1-L1", reason="drifted", uncertainty=0.5)
    await store.save_result(
        job_id, run=1, status="completed", course={}, report={}, calls=[], reviews=[item],
        course_status="needs_review",
    )  # fmt: skip
    await store.update_review(item.id, status="regenerating", resolution={"note": "n"})
    return item.id


async def test_a_regeneration_is_claimed_like_a_job(store: Store) -> None:
    await _regenerating(store)
    assert await store.review_claim("j1:S1-L1") == ("", 0)
    assert await store.claim_review("j1:S1-L1", "A", until=130, now=100)
    assert not await store.claim_review("j1:S1-L1", "B", until=140, now=110)  # A is alive
    assert await store.renew_claims("A", until=200) == []
    assert await store.review_claim("j1:S1-L1") == ("A", 200)
    assert not await store.claim_review("j1:S1-L1", "B", until=220, now=150)  # renewed: still A's
    assert await store.claim_review("j1:S1-L1", "B", until=230, now=201)  # A died
    await store.release_review("j1:S1-L1", "A")  # not A's any more
    assert await store.review_claim("j1:S1-L1") == ("B", 230)
    assert await store.release_all("B") == 1
    assert await store.review_claim("j1:S1-L1") == ("", 0)
    await store.update_review("j1:S1-L1", status="open", resolution={})
    assert not await store.claim_review("j1:S1-L1", "A", until=300, now=250)  # nothing to regenerate
    assert await store.review_claim("nope") is None


async def test_sessions_expire_and_close(store: Store) -> None:
    await store.put_session("d1", "csrf-1", expires_at=100, now=0)
    assert await store.get_session("d1", now=50) == ("csrf-1", 100)
    assert await store.get_session("d1", now=100) is None
    assert await store.get_session("nope", now=0) is None
    await store.put_session("d2", "csrf-2", expires_at=300, now=150)  # drops d1, expired
    await store.delete_session("d2")
    assert await store.get_session("d2", now=160) is None


async def test_submissions_are_counted_in_a_sliding_window(store: Store) -> None:
    assert await store.count_submission("acme", now=0, window_s=60, limit=2) is None
    assert await store.count_submission("acme", now=10, window_s=60, limit=2) is None
    assert await store.count_submission("acme", now=20, window_s=60, limit=2) == pytest.approx(40)
    assert await store.count_submission("globex", now=20, window_s=60, limit=2) is None  # its own
    assert await store.count_submission("acme", now=60, window_s=60, limit=2) is None  # 0 left it
    assert await store.count_submission("acme", now=61, window_s=60, limit=2) == pytest.approx(9)


@pytest.mark.parametrize("processes", [2])
async def test_two_stores_on_one_database_count_a_limit_once(pg_base_url: str, processes: int) -> None:
    url = create_database(pg_base_url)
    stores = [open_store(url, pool_size=10) for _ in range(processes)]
    for s in stores:
        await s.init()
    try:
        answers = await asyncio.gather(
            *(stores[i % processes].count_submission("acme", now=5, window_s=60, limit=7) for i in range(30))
        )
        await stores[0].create_job(_job("j1"))
        claims = await asyncio.gather(
            *(stores[i % processes].claim_job("j1", f"p{i}", until=50, now=5) for i in range(10))
        )
        review_id = await _regenerating(stores[0], "j2")
        review_claims = await asyncio.gather(
            *(stores[i % processes].claim_review(review_id, f"p{i}", until=50, now=5) for i in range(10))
        )
    finally:
        for s in stores:
            await s.close()
    assert sum(a is None for a in answers) == 7
    assert sum(claims) == 1
    assert sum(review_claims) == 1
