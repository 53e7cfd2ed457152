"""Reading a declared function's annotations, the same way everywhere in the model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, get_type_hints

from .errors import ConfigurationError


def type_hints(fn: Callable[..., Any], what: str) -> dict[str, Any]:
    """``fn``'s resolved annotations, as :func:`typing.get_type_hints` reads them: names in
    string annotations (``from __future__ import annotations``) resolve in the module that
    defines ``fn``, never in the caller's frame; a :class:`ConfigurationError` otherwise."""
    try:
        return get_type_hints(fn)
    except NameError as exc:
        raise ConfigurationError(
            f"{what}: cannot resolve annotations: {exc}. String annotations resolve in the "
            f"module's globals ({fn.__module__}): define the model at module level, or "
            "annotate with the class itself (no `from __future__ import annotations`)"
        ) from exc
    except Exception as exc:
        raise ConfigurationError(f"{what}: cannot resolve annotations: {exc}") from exc
