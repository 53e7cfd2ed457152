"""Who is calling: the authenticated identity behind an HTTP request (or none)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

PrincipalKind = Literal["api_key", "jwt", "system"]
ALL_SCOPES = "*"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: how it authenticated, who it is and what it may do.

    ``subject`` is the API key's name or the JWT's ``sub``; ``scopes`` are the scopes it was
    granted (``"*"`` grants every scope). Actions see it as ``ctx.principal``, and the events
    their commands append carry ``principal`` (``"api_key:alice"``) in their metadata.
    """

    kind: PrincipalKind
    subject: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    claims: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def id(self) -> str:
        """``kind:subject``: the form recorded in event metadata."""
        return f"{self.kind}:{self.subject}"

    def has_scopes(self, required: Iterable[str]) -> bool:
        """Whether every scope in ``required`` was granted."""
        return ALL_SCOPES in self.scopes or all(s in self.scopes for s in required)

    def missing_scopes(self, required: Iterable[str]) -> list[str]:
        """The scopes of ``required`` that were not granted."""
        if ALL_SCOPES in self.scopes:
            return []
        return [s for s in required if s not in self.scopes]
