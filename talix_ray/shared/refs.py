"""``module:attribute`` references: how a command line or a deployment names user code."""

from __future__ import annotations

import importlib

from ..model.errors import ConfigurationError


def import_ref(ref: str, *, option: str, default_attribute: str | None = None) -> object:
    """The object ``"module:attribute"`` names (``default_attribute`` when there is no
    ``:attribute``). A :class:`ConfigurationError` prefixed with ``option`` says what is
    wrong: not a reference, a module that cannot be imported (or something it imports), an
    attribute that is not there."""
    if not isinstance(ref, str):
        raise ConfigurationError(f"{option}: use 'module:attribute', not {ref!r}")
    module, _, attribute = ref.partition(":")
    attribute = attribute or default_attribute or ""
    if not module or not attribute:
        raise ConfigurationError(f"{option} {ref}: use 'module:attribute'")
    try:
        loaded = importlib.import_module(module)
    except ImportError as exc:  # the module, or something it imports, is not installed
        raise ConfigurationError(f"{option} {ref}: cannot import module {module!r} "
                                 f"({type(exc).__name__}: {exc})") from exc
    if not hasattr(loaded, attribute):
        raise ConfigurationError(f"{option} {ref}: module {module!r} has no attribute "
                                 f"{attribute!r}")
    return getattr(loaded, attribute)


__all__ = ["import_ref"]
