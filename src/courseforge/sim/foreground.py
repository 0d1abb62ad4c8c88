"""`courseforge sim serve`: run the simulator in the foreground until interrupted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .profiles import load_profile
from .server import SimServer

__all__ = ["serve"]


async def serve(
    profile: str,
    *,
    port: int,
    seed: int = 0,
    time_scale: float = 1.0,
    say: Callable[[str], None] = print,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until `stop` is set (or forever); raises ConfigError for a bad profile."""
    loaded = load_profile(profile)
    async with SimServer(loaded, seed=seed, time_scale=time_scale, port=port) as server:
        say(
            f"simulator '{loaded.name}' on {server.base_url} (seed {seed}, time scale {time_scale:g}); "
            f"point a provider's base_url here, e.g. OPENROUTER_BASE_URL={server.base_url}"
        )
        for name in sorted(loaded.models):
            mp = loaded.for_model(name)
            note = f"  [{mp.source}]" if mp.source else ""
            say(f"  {name}: ttft {mp.ttft_ms:g} ms, {mp.tokens_per_s:g} tok/s{note}")
        await (stop or asyncio.Event()).wait()
