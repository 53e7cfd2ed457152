"""Errors as RFC 9457 problem+json, never a leak.

Talix errors of the 4xx family keep their message (it was written for the caller: which field,
which rule). Everything else — a storage failure, a bug, an exception of another library —
answers a generic body with an error id that is also in the server log with the traceback;
never the exception's message, a path, an endpoint or a stack.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson
from pydantic import BaseModel, Field
from starlette.responses import Response

from ..model.errors import TalixError

log = logging.getLogger("talix.http")
PROBLEM = "application/problem+json"

_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 406: "Not Acceptable", 409: "Conflict",
           413: "Content Too Large", 415: "Unsupported Media Type",
           422: "Unprocessable Content", 429: "Too Many Requests",
           500: "Internal Server Error", 503: "Service Unavailable", 504: "Gateway Timeout"}


class FieldProblem(BaseModel):
    """One invalid field: where it is and what is wrong (never its value)."""

    field: str
    message: str
    type: str


class Problem(BaseModel):
    """An error response (RFC 9457)."""

    type: str = Field(description="a URN naming the kind of error")
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldProblem] | None = Field(None, description="validation errors by field")
    error_id: str | None = Field(None, description="quote it to the operator (server errors)")
    request_id: str | None = None


class HttpProblem(Exception):
    """An error raised by the HTTP layer itself (413, 415, 405, 504…)."""

    def __init__(self, status: int, detail: str, code: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code
        self.headers = headers or {}


def problem_response(status: int, code: str, detail: str | None = None, *,
                     extra: dict[str, Any] | None = None,
                     headers: dict[str, str] | None = None) -> Response:
    """A problem+json response."""
    body: dict[str, Any] = {"type": f"urn:talix:error:{code}",
                            "title": _TITLES.get(status, "Error"), "status": status}
    if detail:
        body["detail"] = detail
    if extra:
        body.update(extra)
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM,
                    headers=headers)


def talix_problem(exc: TalixError, request_id: str | None) -> Response:
    """The response for a talix error: its own message for 4xx, a generic one otherwise."""
    if exc.status >= 500:
        return server_error(exc, request_id, status=exc.status)
    body = exc.to_problem()
    extra: dict[str, Any] = {}
    if body.get("errors"):
        extra["errors"] = [{"field": e.get("field", ""), "message": e.get("message", ""),
                            "type": e.get("type", "")} for e in body["errors"]]
    headers = {}
    challenge = getattr(exc, "challenge", None)
    if challenge:
        headers["WWW-Authenticate"] = challenge
    if request_id:
        extra["request_id"] = request_id
    return problem_response(exc.status, exc.code, exc.message, extra=extra, headers=headers)


def server_error(exc: BaseException, request_id: str | None, status: int = 500) -> Response:
    """A generic 5xx with an error id; the details go to the log only."""
    error_id = uuid.uuid4().hex[:16]
    log.error("request %s failed: error id %s", request_id or "-", error_id,
              exc_info=(type(exc), exc, exc.__traceback__))
    detail = ("the service is unavailable; retry later" if status == 503
              else "the server could not complete the request")
    extra: dict[str, Any] = {"error_id": error_id}
    if request_id:
        extra["request_id"] = request_id
    code = "unavailable" if status == 503 else "internal_error"
    return problem_response(status if status in (500, 503) else 500, code, detail, extra=extra,
                            headers={"Retry-After": "1"} if status == 503 else None)


def validation_problem(errors: list[dict[str, Any]], request_id: str | None) -> Response:
    """422 from FastAPI's request validation: each field's location and message only."""
    fields = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        fields.append({"field": ".".join(loc) or "(root)",
                       "message": str(err.get("msg", "invalid")),
                       "type": str(err.get("type", "invalid"))})
    extra: dict[str, Any] = {"errors": fields}
    if request_id:
        extra["request_id"] = request_id
    return problem_response(422, "validation_error", "the request is not valid", extra=extra)


def problem_openapi(status: int, description: str) -> dict[str, Any]:
    """An OpenAPI response entry for a problem+json answer."""
    return {"description": description,
            "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
