"""The error hierarchy of talix-ray.

Every error carries a stable ``code`` and the HTTP ``status`` it maps to, so the same
exception reads well in a traceback, a log line and a problem+json response.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError as PydanticValidationError


class TalixError(Exception):
    """Base of every error raised by talix-ray."""

    code: str = "error"
    status: int = 500
    retryable: bool = False

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_problem(self) -> dict[str, Any]:
        """The error as an RFC 9457 problem+json body."""
        body: dict[str, Any] = {
            "type": f"urn:talix:error:{self.code}",
            "title": self.code.replace("_", " "),
            "status": self.status,
            "detail": self.message,
        }
        if self.details:
            body.update({k: v for k, v in self.details.items() if _jsonable(v)})
        return body


def _jsonable(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | list | dict | type(None))


class ValidationError(TalixError):
    """Bad input: a command input, event payload, HTTP body or name failed validation."""

    code = "validation_error"
    status = 422

    def __init__(self, message: str, errors: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__(message, errors=list(errors))
        self.errors = list(errors)

    @classmethod
    def from_pydantic(cls, what: str, exc: PydanticValidationError) -> ValidationError:
        """Wrap a pydantic error; the message names every failing field."""
        errors = []
        parts = []
        for err in exc.errors(include_url=False, include_context=False):
            loc = ".".join(str(p) for p in err["loc"]) or "(root)"
            errors.append({"field": loc, "message": err["msg"], "type": err["type"]})
            parts.append(f"field '{loc}': {err['msg']}")
        return cls(f"invalid {what}: " + "; ".join(parts), errors)


class NotFound(TalixError):
    """The aggregate, view, action or object asked for does not exist."""

    code = "not_found"
    status = 404


class Unauthenticated(TalixError):
    """No credentials, or credentials that are not valid (HTTP 401)."""

    code = "unauthenticated"
    status = 401


class Forbidden(TalixError):
    """Valid credentials without the right to do this (HTTP 403): a missing scope, or a rule
    of the application (raise it from an action)."""

    code = "forbidden"
    status = 403


class Conflict(TalixError):
    """The request conflicts with the current state."""

    code = "conflict"
    status = 409


class AlreadyExists(Conflict):
    """The aggregate (or object) exists already."""

    code = "already_exists"


class VersionConflict(Conflict):
    """The stream moved on since the state the command was decided on (optimistic concurrency)."""

    code = "version_conflict"
    retryable = True


class DomainError(TalixError):
    """A business rule rejected the command. Subclass it for your domain's rejections."""

    code = "domain_rejection"
    status = 400


class UnknownEventType(TalixError):
    """A stored event names a type its event store does not declare."""

    code = "unknown_event_type"
    status = 500


class ConfigurationError(TalixError):
    """The application or runtime is assembled wrongly (caught at start-up, not at run time)."""

    code = "configuration_error"
    status = 500


class StorageError(TalixError):
    """The storage backend failed; the operation may be retried."""

    code = "storage_error"
    status = 503
    retryable = True


class CorruptObject(TalixError):
    """A stored object cannot be read: wrong format, unknown version or damaged content."""

    code = "corrupt_object"
    status = 500


class Fenced(TalixError):
    """This journal writer was superseded by a newer one and stepped down."""

    code = "fenced"
    status = 503
    retryable = True


class Unavailable(TalixError):
    """The runtime cannot serve the request right now (shutting down, recovering)."""

    code = "unavailable"
    status = 503
    retryable = True
