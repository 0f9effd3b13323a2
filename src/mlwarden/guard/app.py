"""The guard's REST face: Open Inference Protocol v2 over FastAPI, plus feedback and metrics.

Routes: ``/v2/health/live`` and ``/v2/health/ready`` (open, for orchestrators); ``/v2``,
``/v2/models/{m}[/versions/{v}]``, ``…/ready``, ``…/infer``, ``/v2/feedback`` and
``/metrics`` (all need an API key; ``/metrics`` a key with ``metrics``). Bodies are read
with a byte cap before parsing, JSON's non-standard NaN/Infinity are refused, and every
error is ``{"error": "<one line>"}`` with the status :mod:`.errors` names — never a stack
trace, never a framework banner (no docs, no OpenAPI route, no ``server`` header).
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from .errors import Forbidden, GuardError, Invalid, TooLarge
from .gateway import Gateway
from .keys import bearer
from .metrics import CONTENT_TYPE
from .wire import from_json, to_json

log = logging.getLogger("mlwarden.guard")
HEADERS = {"cache-control": "no-store", "x-content-type-options": "nosniff"}


def _error(status: int, message: str, retry_after: float | None = None) -> JSONResponse:
    headers = dict(HEADERS)
    if retry_after is not None:
        headers["retry-after"] = str(max(1, math.ceil(retry_after)))
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _reject_constant(name: str) -> Any:
    raise Invalid(f"{name} is not a valid JSON number; send finite numbers only")


def _key(request: Request) -> str | None:
    return bearer(request.headers.get("authorization"), request.headers.get("x-api-key"))


def _peer(request: Request) -> str:
    c = request.client
    return f"{c.host}:{c.port}" if c else "?"


def build_app(gw: Gateway, *, max_body: int = 4 << 20) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    async def body(request: Request) -> Any:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_body:
            raise TooLarge(f"the request body of {int(declared):,} bytes exceeds the {max_body:,}-byte limit")
        buf = bytearray()
        async for chunk in request.stream():
            buf += chunk
            if len(buf) > max_body:
                raise TooLarge(f"the request body exceeds the {max_body:,}-byte limit")
        try:
            return json.loads(bytes(buf), parse_constant=_reject_constant)
        except GuardError:
            raise
        except (ValueError, UnicodeDecodeError) as e:
            raise Invalid(f"the request body is not valid JSON ({str(e).splitlines()[0][:80]})") from None
        except RecursionError:
            raise Invalid("the request body is nested too deeply") from None

    @app.exception_handler(GuardError)
    async def _guard_error(request: Request, e: GuardError) -> JSONResponse:
        return _error(e.status, e.message, e.retry_after if e.status == 429 else None)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, e: HTTPException) -> JSONResponse:
        msg = {404: "no such route", 405: "method not allowed"}.get(e.status_code, "request refused")
        return _error(e.status_code, msg)

    @app.exception_handler(Exception)
    async def _internal(request: Request, e: Exception) -> JSONResponse:
        log.error("unhandled error on %s: %s", request.url.path, type(e).__name__)
        return _error(500, "internal error")

    @app.get("/v2/health/live")
    async def live() -> JSONResponse:
        return JSONResponse({"live": True}, headers=HEADERS)

    @app.get("/v2/health/ready")
    async def ready() -> JSONResponse:
        ok = gw.ready()
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503, headers=HEADERS)

    @app.get("/v2")
    async def server_metadata(request: Request) -> JSONResponse:
        await run_in_threadpool(gw.key, _key(request), _peer(request))
        return JSONResponse({"name": "mlwarden-guard", "version": "", "extensions": []}, headers=HEADERS)

    async def _model(request: Request, name: str, version: str) -> Any:
        key = await run_in_threadpool(gw.key, _key(request), _peer(request))
        gw.route(key, name, version)
        return key

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(request: Request, name: str, version: str = "") -> JSONResponse:
        key = await _model(request, name, version)
        return JSONResponse(gw.model_metadata(key), headers=HEADERS)

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(request: Request, name: str, version: str = "") -> JSONResponse:
        await _model(request, name, version)
        ok = gw.ready()
        return JSONResponse({"name": name, "ready": ok}, status_code=200 if ok else 503, headers=HEADERS)

    async def infer(request: Request) -> JSONResponse:
        name, version = request.path_params["name"], request.path_params.get("version", "")
        doc: Any = None
        err: GuardError | None = None
        try:
            doc = await body(request)
        except GuardError as e:
            err = e  # refused, but only after the key is checked and the refusal logged

        def decode() -> Any:
            if err is not None:
                raise err
            return from_json(doc, name, version)

        answer = await run_in_threadpool(gw.call, "rest", _key(request), name, version, _peer(request), decode)
        return JSONResponse(to_json(answer), headers=HEADERS)

    # the hot path as plain Starlette routes: FastAPI's parameter machinery cost ~35 µs a request
    # on the event loop, which every REST request shares
    for path in ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"):
        app.router.add_route(path, infer, methods=["POST"])

    @app.post("/v2/feedback")
    async def feedback(request: Request) -> JSONResponse:
        key = await run_in_threadpool(gw.keys.authenticate, _key(request), _peer(request))  # metered below
        if not key.feedback:
            await run_in_threadpool(gw.submit_feedback, "rest", _key(request), _peer(request), {})
        doc = await body(request)
        out = await run_in_threadpool(gw.submit_feedback, "rest", _key(request), _peer(request), doc)
        return JSONResponse(out, headers=HEADERS)

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        key = await run_in_threadpool(gw.key, _key(request), _peer(request))
        if not key.metrics:
            raise Forbidden(f"API key '{key.name}' may not read metrics")
        return Response(gw.metrics.render(), media_type=CONTENT_TYPE, headers=HEADERS)

    return app
