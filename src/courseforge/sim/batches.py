"""The simulator's batch API, shaped like OpenRouter's.

`POST /v1/batches` with `{endpoint, model, completion_window, requests: [{custom_id, body}]}`
answers 202 with the batch (`status: "validating"`); `GET /v1/batches/{id}` reports
`in_progress` until the model profile's `batch_delay_s` (simulated seconds) has passed, then
`completed` with `results` (`{custom_id, response: {status_code, body}, error}`; a share
`batch_failed_request` of them fail with an error instead) or, with probability
`batch_expire`, `expired` with no results. Fates are drawn from the server's seed, the model
and the batch's number, like the chat route's.
"""

from __future__ import annotations

import collections
import random
import time
from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import web

from ..testing._openai_wire import error_response
from .profiles import SimProfile

__all__ = ["BatchDesk"]


class _Server(Protocol):
    """What the desk needs of the simulator (`SimServer`)."""

    seed: int
    time_scale: float
    profile: SimProfile
    stats: collections.Counter[tuple[str, str]]

    def answer_body(self, payload: Mapping[str, Any], n: int, rng: random.Random) -> dict[str, Any]: ...


class BatchDesk:
    def __init__(self, server: _Server) -> None:
        self.server = server
        self.batches: dict[str, dict[str, Any]] = {}

    def _object(
        self, batch: dict[str, Any], status: str, results: list[dict[str, Any]] | None
    ) -> dict[str, Any]:
        total = len(batch["requests"])
        failed = sum(1 for r in results or [] if r.get("error"))
        return {
            "id": batch["id"],
            "object": "batch",
            "endpoint": batch["endpoint"],
            "model": batch["model"],
            "completion_window": batch["completion_window"],
            "status": status,
            "created_at": int(batch["wall"]),
            "error": {"message": "batch expired before it completed"} if status == "expired" else None,
            "request_counts": {
                "total": total,
                "completed": (total - failed) if results is not None else 0,
                "failed": failed,
            },
            "results": results,
        }

    async def create(self, request: web.Request) -> web.StreamResponse:
        try:
            payload = await request.json()
        except ValueError:
            payload = None
        if (
            not isinstance(payload, dict)
            or not isinstance(payload.get("requests"), list)
            or not payload.get("model")
        ):
            return error_response(400, "body must hold model and requests", kind="invalid_request_error")
        keys = list(payload)
        if "endpoint" not in keys or keys.index("requests") < max(
            keys.index("endpoint"), keys.index("model")
        ):
            # OpenRouter reads a batch body as a stream: endpoint and model must come first.
            return error_response(
                400, "endpoint and model must come before requests in the body", kind="invalid_request_error"
            )
        model = str(payload["model"])
        n = len(self.batches)
        rng = random.Random(f"{self.server.seed}:{model}:batch:{n}")
        mp = self.server.profile.for_model(model)
        batch = {
            "id": f"batch-sim-{n}",
            "model": model,
            "endpoint": str(payload.get("endpoint") or "/v1/chat/completions"),
            "completion_window": str(payload.get("completion_window") or "24h"),
            "requests": payload["requests"],
            "created": time.monotonic(),
            "wall": time.time(),
            "expires": rng.random() < mp.batch_expire,
            "seed": n,
            "results": None,
        }
        self.batches[batch["id"]] = batch
        self.server.stats[model, "batch_created"] += 1
        return web.json_response(self._object(batch, "validating", None), status=202)

    async def get(self, request: web.Request) -> web.StreamResponse:
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return error_response(404, "no such batch", kind="not_found")
        model = batch["model"]
        mp = self.server.profile.for_model(model)
        if time.monotonic() - batch["created"] < mp.batch_delay_s * self.server.time_scale:
            return web.json_response(self._object(batch, "in_progress", None))
        if batch["expires"]:
            if batch["results"] is None:
                batch["results"] = []
                self.server.stats[model, "batch_expired"] += 1
            return web.json_response(self._object(batch, "expired", None))
        if batch["results"] is None:
            batch["results"] = self._results(batch, mp.batch_failed_request)
        return web.json_response(self._object(batch, "completed", batch["results"]))

    def _results(self, batch: dict[str, Any], failure_rate: float) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        model = batch["model"]
        for i, item in enumerate(batch["requests"]):
            rng = random.Random(f"{self.server.seed}:{model}:batch:{batch['seed']}:{i}")
            cid = str(item.get("custom_id") if isinstance(item, dict) else i)
            body = item.get("body") if isinstance(item, dict) else None
            if rng.random() < failure_rate or not isinstance(body, dict):
                self.server.stats[model, "batch_failed_request"] += 1
                out.append(
                    {
                        "id": f"{batch['id']}-{i}",
                        "custom_id": cid,
                        "response": None,
                        "error": {"message": "simulated failure", "type": "server_error"},
                    }
                )
                continue
            self.server.stats[model, "batch_ok"] += 1
            answer = self.server.answer_body({**body, "model": model}, i, rng)
            out.append(
                {
                    "id": f"{batch['id']}-{i}",
                    "custom_id": cid,
                    "response": {"status_code": 200, "body": answer},
                    "error": None,
                }
            )
        return out
