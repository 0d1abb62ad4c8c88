"""Every configured model as a provider behind its resilience stack, built once per engine.

A model's stack, outermost first:

    StructuredOutputModel     its structured-output mode; every answer's content checked
      RetryingModel           transient failures sent again (Retry-After, backoff with jitter)
        BreakingModel         its circuit breaker (shared by every course of the engine)
          LimitedModel        its provider's rate limit (in-process, or Redis when
                              `redis_url` is set), calls in flight, and the per-call timeout
            provider          OpenAICompatModel over one aiohttp session per provider, or the
                              in-process llama.cpp model, or a model injected by the caller

A tier's chain is its model's stack (then its `second_provider`'s) followed by its `fallbacks:`'
stacks (each followed by its own second provider's); `engine.calls` walks it. Every model's
breaker reports to its provider's breaker too (one per provider entry and routing).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path

import aiohttp

from ..config import ModelSettings, Settings, api_key_for, second_model_id
from ..errors import ConfigError
from ..providers import ChatModel
from ..providers.openai_compat import OpenAICompatModel
from ..resilience import (
    BreakerRegistry,
    Hooks,
    LimitedModel,
    Limiter,
    RateLimiter,
    RedisRateLimiter,
    RetryingModel,
    StructuredOutputModel,
)

__all__ = ["ModelStacks", "chain_ids", "model_chains"]


def _upstream(ms: ModelSettings) -> str:
    """The provider a model's calls reach, for its provider breaker: the entry, and the
    OpenRouter routing when one is set (two routings of one gateway fail apart)."""
    routing = ms.provider_routing or {}
    where = routing.get("order") or routing.get("only") or []
    return f"{ms.provider}[{','.join(map(str, where))}]" if where else ms.provider


def chain_ids(settings: Settings) -> dict[str, list[str]]:
    """Tier model id -> the model ids its calls try, in order: the model, its
    `second_provider`, then each of its `fallbacks:` followed by its own second provider; a
    model named twice is tried once (where it first comes)."""
    models = settings.models

    def with_second(m: str) -> list[str]:
        second = models[m].second_provider
        return [m] if second is None else [m, second_model_id(m, second)]

    return {
        m: list(dict.fromkeys([*with_second(m), *(x for fb in models[m].fallbacks for x in with_second(fb))]))
        for m in sorted(set(settings.routing.tiers.values()))
    }


def model_chains(settings: Settings, model: Callable[[str], ChatModel]) -> dict[str, list[ChatModel]]:
    """Every tier's chain with each model id made a `ChatModel` by `model` (in-process: its
    resilience stack; in a Temporal workflow: an activity): the one chain builder of both
    runners."""
    return {m: [model(x) for x in ids] for m, ids in chain_ids(settings).items()}


class ModelStacks:
    """Providers and their stacks for `settings`; `models` injects providers by model id."""

    def __init__(
        self,
        settings: Settings,
        *,
        env: Mapping[str, str],
        breakers: BreakerRegistry,
        hooks: Hooks,
        models: Mapping[str, ChatModel] | None = None,
    ) -> None:
        self.settings = settings
        self._env = env
        self._breakers = breakers
        self._hooks = hooks
        self._providers: dict[str, ChatModel] = dict(models or {})
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._limiters: dict[str, Limiter] = {}
        self._redis: list[RedisRateLimiter] = []
        self._stacks: dict[str, ChatModel] = {}

    def chains(self) -> dict[str, list[ChatModel]]:
        """Tier model id -> its chain of stacks (`model_chains`)."""
        return model_chains(self.settings, self.stack)

    def stack(self, model_id: str) -> ChatModel:
        """`model_id`'s provider inside its resilience stack (built on first use)."""
        if model_id not in self._stacks:
            ms = self.settings.models[model_id]
            name = ms.provider
            provider = self.settings.providers[name]
            retries = max(p.retries for p in self.settings.routing.priorities.values())
            limited = LimitedModel(
                self._provider(model_id),
                semaphore=self._semaphores.setdefault(name, asyncio.Semaphore(provider.max_concurrency)),
                limiter=self._limiter(name) if provider.rpm or provider.tpm else None,
                hooks=self._hooks,
            )
            breaking = self._breakers.wrap(limited, provider=_upstream(ms))
            retrying = RetryingModel(breaking, max_retries=retries, hooks=self._hooks)
            self._stacks[model_id] = StructuredOutputModel(retrying, mode=ms.output_mode, hooks=self._hooks)
        return self._stacks[model_id]

    def _limiter(self, name: str) -> Limiter:
        if name not in self._limiters:
            provider = self.settings.providers[name]
            if provider.redis_url:
                shared = RedisRateLimiter(
                    provider.redis_url,
                    key=f"courseforge:ratelimit:{name}",
                    rpm=provider.rpm,
                    tpm=provider.tpm,
                )
                self._redis.append(shared)
                self._limiters[name] = shared
            else:
                self._limiters[name] = RateLimiter(rpm=provider.rpm, tpm=provider.tpm)
        return self._limiters[name]

    def provider(self, model_id: str) -> ChatModel:
        """The model's innermost provider, without its resilience stack (batch mode's client)."""
        return self._provider(model_id)

    def _provider(self, model_id: str) -> ChatModel:
        if model_id in self._providers:
            return self._providers[model_id]
        ms = self.settings.models[model_id]
        provider = self.settings.providers[ms.provider]
        model: ChatModel
        if provider.kind == "openai":
            key = api_key_for(self.settings, ms.provider, self._env)
            if provider.api_key_env and not key:
                raise ConfigError(
                    "missing API key",
                    [(f"providers.{ms.provider}.api_key_env", f"${provider.api_key_env} is not set")],
                )
            if ms.provider not in self._sessions:
                self._sessions[ms.provider] = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=provider.max_concurrency),
                    # sock_read guards calls whose priority sets no timeout against hung sockets.
                    timeout=aiohttp.ClientTimeout(
                        total=None, sock_connect=30, sock_read=provider.read_timeout_s
                    ),
                )
            model = OpenAICompatModel(
                model_id=model_id,
                model_name=ms.name,
                base_url=provider.base_url,
                api_key=key,
                output_mode=ms.output_mode,
                headers=provider.headers,
                session=self._sessions[ms.provider],
                max_output_tokens=ms.max_output_tokens,
                prompt_cache=ms.prompt_cache,
                extra_body={"provider": ms.provider_routing} if ms.provider_routing else None,
                api_key_env=provider.api_key_env,
                openrouter=provider.openrouter,
            )
        elif provider.kind == "local":
            from ..providers.local_llama import LocalLlamaModel

            model = LocalLlamaModel.from_settings(model_id, ms, Path(self.settings.cache_dir).expanduser())
        else:
            raise ConfigError(
                "provider has no implementation here",
                [(f"providers.{ms.provider}.kind", f"{provider.kind!r} needs models= injected")],
            )
        self._providers[model_id] = model
        return model

    async def aclose(self) -> None:
        for model in self._providers.values():
            await model.aclose()
        for session in self._sessions.values():
            await session.close()
        for limiter in self._redis:
            await limiter.aclose()
