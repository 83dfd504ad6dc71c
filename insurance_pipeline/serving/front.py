"""The service's front door: the outermost ASGI application, in front of FastAPI.

Two kinds of request never go through FastAPI's routing, dependency and middleware layers,
which cost more than the work itself:

- **the probes** (`GET /api/health`, `/ready`, `/startup`): answered at once from the service
  state, with the original's bodies (`routers.health.probe`, the routes' own answers). They
  take no lock, read no body and wait on no model work: a probe is answered in the event
  loop turn that reads it;
- **predictions on their happy path** (`serving.fast_path`): the body read within its limits
  (`limits.read_body`: 413, 408), decoded, validated in the same mode as the routes, predicted
  (a single row on the event loop, a batch on the model threads) and answered with the same
  body and records.

Everything else, including every prediction the fast path declines (not JSON, invalid, no
model), goes to the FastAPI app unchanged, its body replayed: the contract has one definition.
`state` and `openapi()` are the FastAPI app's.
"""

from __future__ import annotations

import asyncio
import json
import logging

from fastapi import FastAPI

from insurance_pipeline.serving.errors import error_body
from insurance_pipeline.serving.fast_path import Declined, many_body, single_body
from insurance_pipeline.serving.limits import read_body, replayed
from insurance_pipeline.serving.routers.health import PROBE_PATHS, probe
from insurance_pipeline.serving.state import PredictionError

JSON_TYPES = (b"", b"application/json")
JSON_HEADERS = [(b"content-type", b"application/json")]
log = logging.getLogger("insurance_pipeline.serving")


class FrontDoor:
    def __init__(
        self, api: FastAPI, *, single: str, batch: str, limits: dict[str, int], timeout: float
    ):
        self.api, self.single, self.batch = api, single, batch
        self.limits, self.timeout = limits, timeout

    @property
    def state(self):
        return self.api.state

    def openapi(self) -> dict:
        return self.api.openapi()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            path, method = scope["path"], scope["method"]
            if method == "GET" and path in PROBE_PATHS:
                return await self._probe(path, send)
            if method == "POST" and path in (self.single, self.batch):
                return await self._predict(scope, receive, send)
        return await self.api(scope, receive, send)

    def probe(self, path: str) -> tuple[int, bytes] | None:
        """(status, body) of the probe at `path`, None for any other path: what the protocol
        answers before the application (`serving.protocol`), and this door after it."""
        found = probe(path, self.api.state.service)
        if found is None:
            return None
        status, body = found
        return status, json.dumps(body, separators=(",", ":")).encode()

    async def _probe(self, path: str, send) -> None:
        status, body = self.probe(path)
        await _answer(send, status, body)

    async def _predict(self, scope, receive, send) -> None:
        service = self.api.state.service
        content_type = dict(scope["headers"]).get(b"content-type", b"")
        if service.model is None or content_type.split(b";")[0].strip().lower() not in JSON_TYPES:
            return await self.api(scope, receive, send)
        body = await read_body(scope, receive, send, self.limits[scope["path"]], self.timeout)
        if body is None:
            return  # refused (413, 408), or the client went away
        try:
            if scope["path"] == self.single:
                status, payload = 200, single_body(service.model, body)
            else:
                loop = asyncio.get_running_loop()
                payload = await loop.run_in_executor(
                    self.api.state.model_threads, many_body, service.model, body
                )
                status = 200
        except Declined:  # not JSON, or invalid: the app says why
            return await self.api(scope, replayed(body, receive), send)
        except PredictionError as error:
            status, payload = 500, error_body("ServiceError", str(error))
        except Exception:  # noqa: BLE001 - as the app's own handler answers it
            log.exception("prediction request failed")
            status, payload = 500, error_body("ServiceError", "internal error")
        await _answer(send, status, payload)


async def _answer(send, status: int, payload: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", b"%d" % len(payload)), *JSON_HEADERS],
        }
    )
    await send({"type": "http.response.body", "body": payload})
