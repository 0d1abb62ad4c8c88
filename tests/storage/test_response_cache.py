"""The response cache's table in both stores (SQLite and PostgreSQL)."""

from __future__ import annotations

from decimal import Decimal

from courseforge.storage import CachedResponse, Store


def entry(key: str, created: float, *, namespace: str = "ns", expires: float | None = None) -> CachedResponse:
    return CachedResponse(
        namespace=namespace,
        key=key,
        model="gpt-oss-20b",
        text=f"answer {key} é",
        input_tokens=10,
        output_tokens=5,
        cached_tokens=2,
        cost_usd=Decimal("0.000123"),
        latency_ms=40.5,
        response_model="openai/gpt-oss-20b",
        finish_reason="stop",
        created_at=created,
        expires_at=expires,
        reasoning_tokens=4,
        cache_write_tokens=1,
        native_finish_reason="end_turn",
    )


async def test_put_get_expire_and_bound(store: Store) -> None:
    await store.put_cached_response(entry("a", 1.0, expires=100.0), max_entries=2)
    got = await store.get_cached_response("ns", "a", now=50.0)
    assert got == entry("a", 1.0, expires=100.0)
    assert await store.get_cached_response("ns", "a", now=100.0) is None  # expired
    assert await store.get_cached_response("other", "a", now=50.0) is None
    await store.put_cached_response(entry("b", 2.0), max_entries=2)
    await store.put_cached_response(entry("c", 3.0), max_entries=2)
    assert await store.get_cached_response("ns", "a", now=50.0) is None  # the oldest went
    assert (await store.get_cached_response("ns", "c", now=50.0)) is not None
    # overwriting keeps one row per key
    await store.put_cached_response(entry("c", 4.0), max_entries=2)
    got_c = await store.get_cached_response("ns", "c", now=50.0)
    assert got_c is not None and got_c.created_at == 4.0
    await store.put_cached_response(entry("z", 5.0, namespace="other"), max_entries=1)
    assert await store.clear_cached_responses("ns") == 2
    assert await store.get_cached_response("other", "z", now=50.0) is not None
