"""The FastAPI application generated from a runtime's services."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ..engine.calls import CallOutcome
from ..engine.runtime import Runtime, dump_result
from ..model.action import Action
from ..model.errors import TalixError
from ..observability import logs
from ..observability.metrics import HTTP_REQUESTS, HTTP_SECONDS
from .auth import Authenticator, check_scopes
from .problems import (
    PROBLEM,
    FieldProblem,
    HttpProblem,
    Problem,
    problem_openapi,
    problem_response,
    server_error,
    talix_problem,
    validation_problem,
)
from .routes import BODY, IDEMPOTENCY_KEY, REQUEST, RouteSpec, assemble, route_specs, signature
from .settings import HttpSettings

log = logging.getLogger("talix.http")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def create_app(runtime: Runtime | Callable[[], Runtime],
               settings: HttpSettings | None = None, *, title: str = "talix-ray",
               version: str = "0.1.0") -> FastAPI:
    """A FastAPI app serving ``runtime``'s HTTP actions and queries.

    ``runtime`` is a runtime (or a function making one); it is started when the app starts
    (unless it runs already) and stopped with the app. Every route needs credentials unless
    its action or query is ``public``; ``GET /healthz`` is public; OpenAPI is at
    ``/openapi.json`` and the docs at ``/docs``.
    """
    s = settings or HttpSettings()
    rt = runtime if isinstance(runtime, Runtime) else runtime()
    if rt.app is None:
        rt.create()
    assert rt.app is not None
    rt.idempotency_ttl = s.idempotency_ttl
    rt.idempotency_lease = max(60.0, 2 * s.http_timeout)
    auth = Authenticator(s)
    if not auth.configured:
        log.warning("no API keys or JWT keys configured: every non-public route answers 401")
    specs = route_specs(rt.app)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        started_here = not rt._started
        if started_here:
            await rt.start()
        try:
            yield
        finally:
            if started_here:
                await rt.stop()

    api = FastAPI(title=title, version=version, lifespan=lifespan, redoc_url=None,
                  docs_url="/docs" if s.http_docs else None,
                  openapi_url="/openapi.json" if s.http_docs else None)
    api.state.talix_runtime = rt
    guard = Guard(auth, s)
    for spec in specs:
        _add_route(api, spec, guard)
    _add_health(api, rt)
    _add_error_handlers(api)
    # FastAPI's documented way to customize the schema: replace the app's openapi method
    api.openapi = lambda: _openapi(api, specs, title, version)  # type: ignore[method-assign]
    return api


class Guard:
    """What every generated route does around FastAPI's own handler: request id (in the log
    context of everything the request runs), authentication and scopes, content type, body
    limit, timeout, errors as problems, and the ``talix_http_*`` metrics (by route template,
    method and status)."""

    def __init__(self, auth: Authenticator, settings: HttpSettings) -> None:
        self.auth = auth
        self.settings = settings

    async def run(self, spec: RouteSpec, request: Request, handler: Handler) -> Response:
        started = time.perf_counter()
        rid = request.headers.get("x-request-id", "")
        if not _REQUEST_ID.match(rid):
            rid = uuid.uuid4().hex
        request.state.request_id = rid
        token = logs.enter(request_id=rid)
        try:
            response = await self._run(spec, request, handler, rid)
        finally:
            logs.leave(token)
        response.headers["X-Request-Id"] = rid
        HTTP_REQUESTS.inc(spec.path, spec.method, str(response.status_code))
        HTTP_SECONDS.observe(spec.path, spec.method, value=time.perf_counter() - started)
        return response

    async def _run(self, spec: RouteSpec, request: Request, handler: Handler,
                   rid: str) -> Response:
        timer = asyncio.timeout(self.settings.http_timeout)
        try:
            request.state.principal = None
            if not spec.public:
                principal = self.auth.authenticate(request.headers)
                check_scopes(principal, spec.scopes)
                request.state.principal = principal
            if spec.has_body:
                _check_content_type(spec, request)
                limit = self.settings.http_max_upload if spec.mode == "multipart" \
                    else self.settings.http_max_body
                await _read_body(request, limit)
            async with timer:
                response = await handler(request)
        except RequestValidationError as exc:
            response = validation_problem(list(exc.errors()), rid)
        except TalixError as exc:
            response = talix_problem(exc, rid)
        except HttpProblem as exc:
            response = problem_response(exc.status, exc.code, exc.detail,
                                        extra={"request_id": rid}, headers=exc.headers)
        except StarletteHTTPException as exc:
            response = problem_response(exc.status_code, "http_error",
                                        extra={"request_id": rid})
        except TimeoutError as exc:
            if not timer.expired():
                response = server_error(exc, rid)
            else:
                response = problem_response(
                    504, "timeout", f"no answer within {self.settings.http_timeout:g} s; the "
                    "request may still complete: repeat it with the same Idempotency-Key",
                    extra={"request_id": rid})
        except Exception as exc:  # anything else: a generic 500, details in the log only
            response = server_error(exc, rid)
        return response


def _check_content_type(spec: RouteSpec, request: Request) -> None:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if spec.mode == "multipart":
        if ctype != "multipart/form-data":
            raise HttpProblem(415, "this route takes multipart/form-data", "unsupported_media")
    elif ctype and ctype != "application/json" and not ctype.endswith("+json"):
        raise HttpProblem(415, "this route takes application/json", "unsupported_media")


async def _read_body(request: Request, limit: int) -> None:
    """Read the body up to ``limit`` bytes: 413 from Content-Length before reading, or as
    soon as the streamed bytes pass the limit."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HttpProblem(400, "invalid Content-Length", "bad_request")
        if int(declared) > limit:
            raise HttpProblem(413, f"the body is larger than {limit} bytes", "too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HttpProblem(413, f"the body is larger than {limit} bytes", "too_large")
        chunks.append(chunk)
    request._body = b"".join(chunks)  # FastAPI and the form parser read it from here


def _add_route(api: FastAPI, spec: RouteSpec, guard: Guard) -> None:
    async def endpoint(**kw: Any) -> Response:
        request: Request = kw.pop(REQUEST)
        rt: Runtime = request.app.state.talix_runtime
        data = await assemble(spec, kw)
        principal = request.state.principal
        target = spec.target
        if not isinstance(target, Action):
            value = await rt.query(target, data, principal=principal)
            return _respond(spec, value)
        outcome = await rt.invoke(target, data, idempotency_key=kw.get(IDEMPOTENCY_KEY),
                                  principal=principal)
        return _respond(spec, outcome.value, _version_headers(outcome))

    # FastAPI reads the parameters from __signature__, which functions do not declare
    endpoint.__signature__ = signature(spec)  # type: ignore[attr-defined]
    endpoint.__name__ = spec.name

    class Route(APIRoute):
        def get_route_handler(self) -> Handler:
            handler = super().get_route_handler()

            async def guarded(request: Request) -> Response:
                return await guard.run(spec, request, handler)

            return guarded

    doc = spec.target.description or ""
    summary, _, description = doc.partition("\n")
    api.router.add_api_route(
        spec.path, endpoint, methods=[spec.method], name=spec.name, operation_id=spec.name,
        tags=[spec.service], summary=summary.strip() or spec.name.replace("_", " "),
        description=description.strip() or None, route_class_override=Route,
        status_code=204 if spec.no_content else 200,
        response_model=None if spec.no_content or spec.output is None else spec.output,
        responses=_error_responses(spec), openapi_extra={"x-talix-kind": (
            "action" if spec.is_action else "query")})


def _respond(spec: RouteSpec, value: Any, headers: dict[str, str] | None = None) -> Response:
    if spec.no_content:
        return Response(status_code=204, headers=headers)
    if spec.adapter is not None:
        body = spec.adapter.dump_json(value)
    else:
        import orjson

        body = orjson.dumps(dump_result(spec.target, value)) \
            if isinstance(spec.target, Action) else orjson.dumps(value, default=str)
    return Response(body, media_type="application/json", headers=headers)


def _version_headers(outcome: CallOutcome) -> dict[str, str]:
    """Where the request's commands left their aggregates: ``ETag`` (one aggregate) and
    ``X-Talix-Versions`` (all of them), so a client can read its own writes."""
    headers: dict[str, str] = {}
    if outcome.versions:
        if len(outcome.versions) == 1:
            headers["ETag"] = f'"{outcome.versions[0][2]}"'
        headers["X-Talix-Versions"] = ", ".join(f"{s}/{a}={v}" for s, a, v in outcome.versions
                                                if a.isascii() and a.isprintable())
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    return headers


def _error_responses(spec: RouteSpec) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {
        422: problem_openapi(422, "invalid input (each field and why, never its value)"),
        500: problem_openapi(500, "server error (generic, with an error id)"),
        503: problem_openapi(503, "unavailable for a moment; retry"),
        504: problem_openapi(504, "no answer in time"),
    }
    if not spec.public:
        out[401] = problem_openapi(401, "no or invalid credentials")
        out[403] = problem_openapi(403, "a scope is missing")
    if spec.is_action:
        out[400] = problem_openapi(400, "rejected by a business rule")
        out[409] = problem_openapi(409, "conflicts with the current state")
    out[404] = problem_openapi(404, "not found")
    if spec.has_body:
        out[413] = problem_openapi(413, "body too large")
        out[415] = problem_openapi(415, "wrong content type")
        out[400] = problem_openapi(400, "malformed request or rejected by a business rule")
    return out


def _add_health(api: FastAPI, rt: Runtime) -> None:
    async def healthz() -> Response:
        if not rt._started:
            return problem_response(503, "unavailable", "starting or stopping")
        return Response(b'{"status":"ok"}', media_type="application/json")

    api.add_api_route("/healthz", healthz, methods=["GET"], tags=["health"],
                      operation_id="healthz", summary="liveness (public)",
                      responses={503: problem_openapi(503, "not started")})


def _add_error_handlers(api: FastAPI) -> None:
    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
        headers = dict(getattr(exc, "headers", None) or {})
        code = {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")
        return problem_response(status, code, headers=headers)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return validation_problem(list(exc.errors()), None)

    async def crashed(request: Request, exc: Exception) -> Response:
        return server_error(exc, None)

    api.add_exception_handler(StarletteHTTPException, http_error)
    api.add_exception_handler(RequestValidationError, invalid)
    api.add_exception_handler(Exception, crashed)


def _openapi(api: FastAPI, specs: list[RouteSpec], title: str, version: str) -> dict[str, Any]:
    if api.openapi_schema:
        return api.openapi_schema
    schema = get_openapi(title=title, version=version, routes=api.routes,
                         description="Generated by talix-ray from the services' actions and "
                         "queries. Errors are application/problem+json (RFC 9457).")
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in (Problem, FieldProblem):
        js = model.model_json_schema(ref_template="#/components/schemas/{model}")
        js.pop("$defs", None)
        schemas[model.__name__] = js
    components["securitySchemes"] = {
        "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        "Bearer": {"type": "http", "scheme": "bearer",
                   "description": "a JWT, or an API key as a bearer token"},
    }
    by_name = {s.name: s for s in specs}
    for path_item in schema.get("paths", {}).values():
        for op in path_item.values():
            spec = by_name.get(op.get("operationId", ""))
            if spec is None:
                op["security"] = []
                continue
            op["security"] = [] if spec.public else [{"ApiKey": []}, {"Bearer": []}]
            if spec.scopes:
                op["x-talix-scopes"] = list(spec.scopes)
    api.openapi_schema = schema
    return schema


__all__ = ["BODY", "PROBLEM", "Guard", "create_app"]
