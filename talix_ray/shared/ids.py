"""Identifiers as a shared service."""

from __future__ import annotations

import itertools

from ulid import ULID


class IdGenerator:
    """Makes new unique ids. The default makes ULIDs (sortable by creation time)."""

    def new(self) -> str:
        """A new id."""
        return str(ULID()).lower()


class UlidGenerator(IdGenerator):
    """ULIDs, lower case."""


class SequentialIds(IdGenerator):
    """``prefix-1``, ``prefix-2``, …: predictable ids for tests."""

    def __init__(self, prefix: str = "id") -> None:
        self._prefix = prefix
        self._counter = itertools.count(1)

    def new(self) -> str:
        return f"{self._prefix}-{next(self._counter)}"
