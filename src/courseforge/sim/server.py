"""The provider simulator: an OpenAI-compatible HTTP server on 127.0.0.1.

    async with SimServer(load_profile("chaos"), seed=7, time_scale=0.01) as sim:
        model = OpenAICompatModel(..., base_url=sim.base_url)

Routes: `GET /v1/models`, `POST /v1/chat/completions` (JSON or, with `"stream": true`,
server-sent events), the batch API (`POST /v1/batches`, `GET /v1/batches/{id}`: see
`sim/batches.py`), and `GET /sim/stats` (what was injected, per model and class).

Determinism: the n-th request to a model draws its fate from `Random(f"{seed}:{model}:{n}")`,
so under one seed the same sequence of requests to a model meets the same faults and latencies,
however requests to different models interleave. Real RPM/TPM windows depend on arrival times,
so a run that hits them is deterministic only up to timing.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..testing._openai_wire import LocalOpenAIServer, completion_body, error_response, models_body
from .batches import BatchDesk
from .content import (
    count_tokens,
    malformed,
    message_text,
    request_schema,
    schema_violating,
    truncated,
    valid_answer,
)
from .profiles import EFFORT_SHARE, FAULT_CLASSES, ModelProfile, SimProfile
from .prompt_cache import PromptCache

__all__ = ["SimServer", "openrouter_error"]

#: Simulated seconds of the RPM/TPM window.
_WINDOW_S = 60.0
#: Framing tokens counted per message, as OpenAI-style APIs do.
_TOKENS_PER_MESSAGE = 4
#: Share of the time-to-first-token an error answer takes (errors come back fast).
_ERROR_LATENCY_SHARE = 0.25
#: Characters per streamed chunk.
_STREAM_CHUNK_CHARS = 64


@dataclass(slots=True)
class _Window:
    """Requests and tokens seen in the last window (per model)."""

    events: collections.deque[tuple[float, int]]

    def usage(self, now: float, window_s: float) -> tuple[int, int]:
        while self.events and self.events[0][0] <= now - window_s:
            self.events.popleft()
        return len(self.events), sum(t for _, t in self.events)


class SimServer(LocalOpenAIServer):
    """Serves `profile` on 127.0.0.1 (port 0: the OS picks one). Use as an async context."""

    def __init__(
        self,
        profile: SimProfile,
        *,
        seed: int = 0,
        time_scale: float = 1.0,
        port: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        if time_scale < 0:
            raise ValueError("time_scale must be >= 0")
        super().__init__(host=host, port=port)
        self.profile = profile
        self.seed = seed
        self.time_scale = time_scale
        #: (model, outcome) -> count; outcome is "ok", a fault class, "rpm_limit", ...
        self.stats: collections.Counter[tuple[str, str]] = collections.Counter()
        self._counters: collections.Counter[str] = collections.Counter()
        #: (model, "completion" | "reasoning") -> output tokens answered (reasoning is inside
        #: completion, as billed).
        self.tokens: collections.Counter[tuple[str, str]] = collections.Counter()
        self._windows: dict[str, _Window] = {}
        self.prompt_cache = PromptCache(_message_tokens)
        self.batches = BatchDesk(self)

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/sim/stats", self._stats)
        app.router.add_post("/v1/batches", self.batches.create)
        app.router.add_get("/v1/batches/{id}", self.batches.get)
        return app

    def fault_counts(self) -> dict[str, int]:
        """Injected outcomes summed over models, e.g. {"ok": 180, "rate_limited": 20}."""
        out: collections.Counter[str] = collections.Counter()
        for (_, outcome), n in self.stats.items():
            out[outcome] += n
        return dict(sorted(out.items()))

    # -- routes --------------------------------------------------------------------------------
    async def _models(self, request: web.Request) -> web.StreamResponse:
        names = sorted(self.profile.models) or ["sim-model"]
        return web.json_response(models_body(names, owned_by="courseforge-sim"))

    async def _stats(self, request: web.Request) -> web.StreamResponse:
        per_model: dict[str, dict[str, int]] = collections.defaultdict(dict)
        for (model, outcome), n in sorted(self.stats.items()):
            per_model[model][outcome] = n
        return web.json_response({"totals": self.fault_counts(), "models": per_model})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            payload = json.loads(await request.read())
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or not isinstance(payload.get("messages"), list):
            return _error(400, "body must be a JSON object with messages", "invalid_request_error")
        model = str(payload.get("model") or "sim-model")
        mp = self.profile.for_model(model)
        n = self._counters[model]
        self._counters[model] += 1
        rng = random.Random(f"{self.seed}:{model}:{n}")
        messages = [m for m in payload["messages"] if isinstance(m, dict)]
        prompt_tokens = sum(_message_tokens(m) for m in messages)
        max_tokens = int(payload.get("max_tokens") or payload.get("max_completion_tokens") or 4096)
        jitter = 1.0 + mp.jitter * (2 * rng.random() - 1)

        if n < mp.fail_first:
            return await self._fail_first(model, n, mp, jitter)
        limited = self._over_limit(model, mp, prompt_tokens + max_tokens)
        if limited is not None:
            self.stats[model, limited[0]] += 1
            return _error(429, f"{limited[0]} exceeded for {model}", "rate_limit", retry_after_s=limited[1])
        mode = _mode(payload)
        if mode in mp.unsupported_modes:
            self.stats[model, "unsupported_mode"] += 1
            return _error(
                400, f"response_format type {mode!r} is not supported by {model}", "invalid_request_error"
            )

        fault = _draw(rng.random(), mp)
        if fault == "rate_limited":
            after = mp.retry_after_s * self.time_scale if mp.retry_after_s is not None else None
            await self._sleep(mp.ttft_ms / 1000 * _ERROR_LATENCY_SHARE * jitter)
            self.stats[model, fault] += 1
            return _error(429, "rate limited (simulated)", "rate_limit", retry_after_s=after)
        if fault == "server_error":
            status = rng.choice(mp.server_error_statuses)
            return await self._fail(model, f"http_{status}", status, mp, jitter)
        if fault == "timeout":
            self.stats[model, "timeout"] += 1
            await asyncio.sleep(mp.timeout_hang_s)  # real seconds: outlast the client's timeout
            return _error(504, "upstream timed out (simulated)", "timeout")

        off_topic = rng.random() < mp.faults.off_topic
        value, text = valid_answer(payload, off_topic=off_topic)
        finish = "stop"
        if fault == "malformed":
            text = malformed(value, text)
        elif fault == "truncated":
            text, finish = truncated(text, rng), "length"
        elif fault == "empty":
            text = ""
        elif fault == "schema_violation":
            text = schema_violating(value, request_schema(payload))
        completion_tokens = min(count_tokens(text), max_tokens)
        if finish == "length":
            completion_tokens = max_tokens
        thought = _think(payload, mp, self.seed, n, text, finish, max_tokens)
        outcome = fault or ("off_topic" if off_topic else "ok")
        content: str | None = text
        if thought is not None:
            content, finish, completion_tokens = thought.content, thought.finish, thought.completion_tokens
            if thought.cut and fault is None:
                outcome = "reasoning_cut"
        self.stats[model, outcome] += 1
        self._count_tokens(model, completion_tokens, thought)
        self._record_usage(model, prompt_tokens + completion_tokens)
        ttft_s = mp.ttft_ms / 1000 * jitter
        gen_s = completion_tokens / mp.tokens_per_s * jitter
        usage = self._usage(model, messages, mp, prompt_tokens, completion_tokens, thought)
        if payload.get("stream"):
            include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
            return await self._stream(
                request, model, content or "", finish, usage if include_usage else None, ttft_s, gen_s
            )
        await self._sleep(ttft_s + gen_s)
        return web.json_response(_completion(model, n, content, finish, usage, thought))

    def answer_body(self, payload: Mapping[str, Any], n: int, rng: random.Random) -> dict[str, Any]:
        """A good completion body for `payload`, as `_chat` builds one, with no latency and no
        transport faults (a batch result)."""
        model = str(payload.get("model") or "sim-model")
        mp = self.profile.for_model(model)
        messages = [m for m in payload.get("messages", []) if isinstance(m, dict)]
        prompt_tokens = sum(_message_tokens(m) for m in messages)
        _, text = valid_answer(payload, off_topic=rng.random() < mp.faults.off_topic)
        max_tokens = int(payload.get("max_tokens") or 4096)
        completion_tokens = min(count_tokens(text), max_tokens)
        finish = "stop"
        content: str | None = text
        thought = _think(payload, mp, self.seed, n, text, finish, max_tokens)
        if thought is not None:
            content, finish, completion_tokens = thought.content, thought.finish, thought.completion_tokens
        self._count_tokens(model, completion_tokens, thought)
        usage = self._usage(model, messages, mp, prompt_tokens, completion_tokens, thought)
        return _completion(model, n, content, finish, usage, thought)

    def _usage(
        self,
        model: str,
        messages: list[dict[str, Any]],
        mp: ModelProfile,
        prompt: int,
        completion: int,
        thought: _Thought | None = None,
    ) -> dict[str, Any]:
        """The answer's `usage`, with what the prompt cache served or took in, and the
        reasoning tokens inside `completion_tokens` (billed as output, as OpenRouter bills them)."""
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        if thought is not None:
            usage["completion_tokens_details"] = {"reasoning_tokens": thought.reasoning_tokens}
        cached, written = self.prompt_cache.usage(model, messages, mp)
        if cached or written:
            usage["prompt_tokens_details"] = {"cached_tokens": cached, "cache_write_tokens": written}
        return usage

    # -- helpers -------------------------------------------------------------------------------
    def _count_tokens(self, model: str, completion: int, thought: _Thought | None) -> None:
        self.tokens[model, "completion"] += completion
        if thought is not None:
            self.tokens[model, "reasoning"] += thought.reasoning_tokens

    async def _sleep(self, simulated_s: float) -> None:
        if simulated_s > 0 and self.time_scale > 0:
            await asyncio.sleep(simulated_s * self.time_scale)

    async def _fail(
        self, model: str, outcome: str, status: int, mp: ModelProfile, jitter: float
    ) -> web.Response:
        self.stats[model, outcome] += 1
        await self._sleep(mp.ttft_ms / 1000 * _ERROR_LATENCY_SHARE * jitter)
        return _error(status, f"simulated HTTP {status}", "server_error")

    async def _fail_first(self, model: str, n: int, mp: ModelProfile, jitter: float) -> web.Response:
        """One of a model's first `fail_first` requests, failed as its profile says."""
        if mp.fail_first_kind == "http":
            return await self._fail(model, "fail_first", mp.fail_first_status, mp, jitter)
        self.stats[model, "fail_first"] += 1
        await self._sleep(mp.ttft_ms / 1000 * _ERROR_LATENCY_SHARE * jitter)
        error = openrouter_error(mp.fail_first_status, model)
        if mp.fail_first_kind == "error_body":
            return web.json_response({"error": error})
        if mp.fail_first_kind == "finish_error":
            body = _completion(model, n, "", "error", {"prompt_tokens": 0, "completion_tokens": 0})
            body["choices"][0]["native_finish_reason"] = "upstream_error"
            return web.json_response(body)
        return web.json_response({"error": error}, status=mp.fail_first_status)

    def _over_limit(self, model: str, mp: ModelProfile, tokens: int) -> tuple[str, float] | None:
        """("rpm_limit" | "tpm_limit", seconds until room) when this request does not fit."""
        if mp.rpm is None and mp.tpm is None:
            return None
        window_s = _WINDOW_S * self.time_scale
        now = time.monotonic()
        win = self._windows.setdefault(model, _Window(collections.deque()))
        requests, used = win.usage(now, window_s)
        over = None
        if mp.rpm is not None and requests + 1 > mp.rpm:
            over = "rpm_limit"
        elif mp.tpm is not None and used + tokens > mp.tpm and requests > 0:
            over = "tpm_limit"
        if over is None:
            win.events.append((now, tokens))  # reserve; settled to real usage in _record_usage
            return None
        oldest = win.events[0][0] if win.events else now
        return over, max(0.0, oldest + window_s - now)

    def _record_usage(self, model: str, tokens: int) -> None:
        win = self._windows.get(model)
        if win and win.events:
            when, _ = win.events.pop()
            win.events.append((when, tokens))

    async def _stream(
        self,
        request: web.Request,
        model: str,
        text: str,
        finish: str,
        usage: dict[str, Any] | None,
        ttft_s: float,
        gen_s: float,
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        base = {
            "id": "chatcmpl-sim",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        await self._sleep(ttft_s)
        chunks = [text[i : i + _STREAM_CHUNK_CHARS] for i in range(0, len(text), _STREAM_CHUNK_CHARS)] or [""]
        pause = gen_s / len(chunks)
        for i, piece in enumerate(chunks):
            delta: dict[str, Any] = {"content": piece}
            if i == 0:
                delta["role"] = "assistant"
            await _send(resp, {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            await self._sleep(pause)
        await _send(resp, {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if usage is not None:
            await _send(resp, {**base, "choices": [], "usage": usage})
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


def _message_tokens(message: Mapping[str, Any]) -> int:
    return count_tokens(message_text(message.get("content"))) + _TOKENS_PER_MESSAGE


def _mode(payload: Mapping[str, Any]) -> str:
    fmt = payload.get("response_format")
    return str(fmt.get("type", "")) if isinstance(fmt, Mapping) else "prompt"


def _draw(u: float, mp: ModelProfile) -> str | None:
    edge = 0.0
    for name in FAULT_CLASSES:
        edge += getattr(mp.faults, name)
        if u < edge:
            return name
    return None


def _error(status: int, message: str, kind: str, *, retry_after_s: float | None = None) -> web.Response:
    return error_response(status, message, kind=kind, retry_after_s=retry_after_s)


#: OpenRouter's documented message per error code (a 400's names the field it refuses).
_OPENROUTER_MESSAGES = {
    400: "temperature: must be a number between 0 and 2",
    401: "No auth credentials found",
    402: "Insufficient credits. This account never purchased credits.",
    403: "Input flagged by moderation",
    408: "Request timed out",
    429: "Rate limit exceeded",
    502: "Provider returned error",
    503: "No allowed providers are available for the selected model.",
}


def openrouter_error(status: int, model: str) -> dict[str, Any]:
    """The `error` object OpenRouter documents for `status`: `code`, `message` and, for a 403,
    the moderation metadata (`reasons`, `flagged_input`, `provider_name`, `model_slug`), for a
    502 the provider's (`provider_name`, `raw`)."""
    error: dict[str, Any] = {
        "code": status,
        "message": _OPENROUTER_MESSAGES.get(status, f"simulated HTTP {status}"),
    }
    if status == 403:
        error["metadata"] = {
            "reasons": ["violence"],
            "flagged_input": "a lesson on the battle of...",
            "provider_name": "SimModeration",
            "model_slug": model,
        }
    elif status == 502:
        error["metadata"] = {"provider_name": "SimUpstream", "raw": "upstream closed the connection"}
    return error


def _completion(
    model: str, n: int, text: str | None, finish: str, usage: dict[str, Any], thought: _Thought | None = None
) -> dict[str, Any]:
    body = completion_body(
        completion_id=f"chatcmpl-sim-{n}",
        model=model,
        content=text,
        finish_reason=finish,
        usage=usage,
        created=int(time.time()),
    )
    choice = body["choices"][0]
    choice["native_finish_reason"] = finish
    if thought is not None and thought.reasoning_text is not None:
        choice["message"]["reasoning"] = thought.reasoning_text
    return body


@dataclass(frozen=True, slots=True)
class _Thought:
    """What a reasoning model's thinking did to one answer."""

    content: str | None
    finish: str
    completion_tokens: int
    reasoning_tokens: int
    #: The reasoning text (None when the request excluded it).
    reasoning_text: str | None
    #: The thinking left too little of max_tokens for the whole answer.
    cut: bool


def _think(
    payload: Mapping[str, Any], mp: ModelProfile, seed: int, n: int, text: str, finish: str, max_tokens: int
) -> _Thought | None:
    """A reasoning model's think before `text` (None for a model that does not think). Drawn
    from its own random stream, so a profile's other draws are the same with thinking on."""
    thinking = mp.thinking
    if thinking is None:
        return None
    raw = payload.get("reasoning")
    steer: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    effort = str(steer.get("effort") or thinking.default_effort)
    if steer.get("enabled") is False or effort == "none":
        effort = "none" if thinking.can_disable else "low"
    if effort not in EFFORT_SHARE:
        effort = thinking.default_effort
    low, high = thinking.tokens
    drawn = random.Random(f"{seed}:{payload.get('model')}:{n}:think").uniform(low, high)
    reasoning = round(drawn * EFFORT_SHARE[effort])
    cap = steer.get("max_tokens")
    if isinstance(cap, int) and not isinstance(cap, bool) and cap >= 0 and effort != "none":
        reasoning = min(reasoning, cap)
    reasoning = min(reasoning, max_tokens)
    answer_tokens = count_tokens(text)
    room = max_tokens - reasoning
    content: str | None = text
    cut = False
    if finish != "length" and answer_tokens > room:
        cut, finish = True, "length"
        # Nothing left for the answer: OpenRouter's reasoning models answer `content: null`.
        content = text[: int(len(text) * room / answer_tokens)] if room > 0 else None
        answer_tokens = max(0, room)
    shown = None if steer.get("exclude") is True or not reasoning else _reasoning_text(reasoning)
    return _Thought(content, finish, reasoning + answer_tokens, reasoning, shown, cut)


def _reasoning_text(tokens: int) -> str:
    """Stand-in reasoning text of about `tokens` tokens."""
    return " ".join(["thinking"] * tokens)


async def _send(resp: web.StreamResponse, obj: Mapping[str, Any]) -> None:
    await resp.write(f"data: {json.dumps(obj)}\n\n".encode())
