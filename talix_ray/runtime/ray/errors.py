"""Errors crossing process boundaries: a user's exception out of a Ray task error, and an
action's exception that cannot be pickled, as text."""

from __future__ import annotations

import pickle
import traceback

import ray.exceptions

from ...model.errors import Fenced, Unavailable

RETRYABLE: tuple[type[BaseException], ...] = (
    ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError,
    ray.exceptions.ActorHandleNotFoundError, Fenced, Unavailable)
"""Failures that pass: an actor restarting or unreachable, a partition changing writer."""


class ActionFailed(Exception):
    """An action's exception that cannot travel between processes as itself: its type,
    message and traceback as text."""


def unwrap(exc: BaseException) -> BaseException:
    """The user's exception inside a Ray task error (talix errors keep their type)."""
    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = getattr(exc, "cause", None)
        if isinstance(cause, BaseException):
            return cause
    return exc


def portable(exc: BaseException) -> BaseException:
    """``exc`` if it pickles (talix errors do, so the dispatcher still tells a permanent
    failure from a passing one), else an :class:`ActionFailed` describing it."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        text = "".join(traceback.format_exception(exc))[-4000:]
        return ActionFailed(f"{type(exc).__name__}: {exc}\n{text}")


__all__ = ["RETRYABLE", "ActionFailed", "portable", "unwrap"]
