"""Structured logs: every ``talix.*`` log record can carry where it happened.

The runtime keeps a small context around what it runs — the HTTP request (``request_id``), a
command (``aggregate_id``, ``command_id``), a triggered action (``event_id``,
``aggregate_id``) — and :class:`ContextFilter` copies it, with the application's name
(``app``), onto each record. With ``TALIX_LOG_JSON=1`` :func:`configure` prints the ``talix``
loggers as one JSON object a line on stderr (``ts``, ``level``, ``logger``, ``message``, the
context fields, ``exc`` with the traceback); otherwise logging is left as it is.

The context is one context variable holding a tuple: entering a command costs a tuple and a
variable set and reset; nothing is formatted unless a record is emitted. Code of the user
(deciders, actions) logging through ``logging.getLogger("talix.…")`` gets the same fields;
other loggers can add :class:`ContextFilter` to their handlers.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["FIELDS", "ContextFilter", "JsonFormatter", "configure", "context", "current",
           "enter", "leave", "set_app"]

FIELDS = ("app", "aggregate_id", "command_id", "event_id", "request_id")
_Ctx = tuple[str | None, str | None, str | None, str | None]  # aggregate, command, event, request
_EMPTY: _Ctx = (None, None, None, None)
_context: contextvars.ContextVar[_Ctx] = contextvars.ContextVar("talix_log_context",
                                                                default=_EMPTY)
_app = os.environ.get("TALIX_APP") or "talix"
Token = contextvars.Token


def set_app(name: str) -> None:
    """The ``app`` field of this process's records."""
    global _app
    _app = name


def current() -> dict[str, str]:
    """The context fields set here, with ``app``."""
    out = {"app": _app}
    for name, value in zip(FIELDS[1:], _context.get(), strict=True):
        if value is not None:
            out[name] = value
    return out


def enter(aggregate_id: str | None = None, command_id: str | None = None,
          event_id: str | None = None, request_id: str | None = None) -> Token[_Ctx]:
    """Set context fields (``None`` keeps what the enclosing context has); undo with
    :func:`leave`. A new aggregate without a command id clears the enclosing command id."""
    a, c, e, r = _context.get()
    if aggregate_id is not None:
        a, c = aggregate_id, command_id
    elif command_id is not None:
        c = command_id
    return _context.set((a, c, event_id or e, request_id or r))


def leave(token: Token[_Ctx]) -> None:
    """Undo an :func:`enter`."""
    with contextlib.suppress(ValueError):  # reset from another context (a task that
        _context.reset(token)               # outlived its caller): nothing to undo here


@contextmanager
def context(aggregate_id: str | None = None, command_id: str | None = None,
            event_id: str | None = None, request_id: str | None = None) -> Iterator[None]:
    """``with context(request_id=…):`` — records logged inside carry these fields."""
    token = enter(aggregate_id, command_id, event_id, request_id)
    try:
        yield
    finally:
        leave(token)


class ContextFilter(logging.Filter):
    """Copies ``app`` and the context onto each record (attributes named like the fields)."""

    def filter(self, record: logging.LogRecord) -> bool:
        a, c, e, r = _context.get()
        record.app = _app
        record.aggregate_id, record.command_id, record.event_id, record.request_id = a, c, e, r
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, context fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


_JSON_HANDLER = "talix-json"  # the name of the handler configure() adds


def json_enabled() -> bool:
    """Whether ``TALIX_LOG_JSON`` asks for JSON logs."""
    return os.environ.get("TALIX_LOG_JSON", "").strip().lower() in ("1", "true", "yes", "on")


def configure(json_logs: bool | None = None, level: int | str | None = None) -> None:
    """With ``json_logs`` (default: ``TALIX_LOG_JSON=1``), log the ``talix`` loggers as JSON
    lines on stderr, each with the context fields; ``level`` sets their level. Idempotent:
    runtimes, actors, Serve replicas and the CLI call it."""
    logger = logging.getLogger("talix")
    if json_logs is None:
        json_logs = json_enabled()
    if json_logs and not any(h.get_name() == _JSON_HANDLER for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler.addFilter(ContextFilter())
        handler.set_name(_JSON_HANDLER)
        logger.addHandler(handler)
        logger.propagate = False  # one line per record, not a second one in text
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)
    if level is not None:
        logger.setLevel(level)
