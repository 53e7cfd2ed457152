"""The state fingerprint that keys snapshots: what an aggregate's state depends on, hashed the
same way in every process.

A snapshot is a shortcut for a replay; it is only valid while the code would fold the same
events into the same state. The fingerprint covers what that code can be seen to depend on:

* the reducer's own code (constants included; nested code objects by content, never by the
  address their ``repr`` carries) and the source of the module that defines it, so a helper or
  a constant of that module changes it too;
* the JSON schema of the state (the reducer's return annotation);
* every event type's name, version and payload (and metadata) schema;
* an explicit ``snapshot_version`` for what no fingerprint can see (helpers in other modules,
  data files, library upgrades).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import BaseModel, TypeAdapter

from .errors import ConfigurationError


def fingerprint(reducer: Callable[..., Any], state_type: Any,
                payloads: Iterable[tuple[str, int, type[BaseModel], type[BaseModel] | None]],
                snapshot_version: int) -> str:
    """A 16-hex-digit digest of everything above (see the module docstring)."""
    h = hashlib.sha256()

    def part(label: str, text: str | bytes) -> None:
        data = text.encode() if isinstance(text, str) else text
        h.update(f"{label}:{len(data)}:".encode())
        h.update(data)

    fn = _target(reducer)
    part("reducer", getattr(fn, "__qualname__", type(fn).__qualname__))
    code = _code_of(fn)
    if code is not None:
        part("code", _code_digest(code))
    source = _module_source(fn)
    if source is not None:
        part("module", source)
    part("state", _schema(state_type))
    for name, version, payload, metadata in sorted(payloads, key=lambda p: p[0]):
        part("event", f"{name}@{version}")
        part("payload", _schema(payload))
        if metadata is not None:
            part("metadata", _schema(metadata))
    part("snapshot_version", str(snapshot_version))
    return h.hexdigest()[:16]


def return_type(reducer: Callable[..., Any]) -> Any:
    """The reducer's return annotation (the state type), or ``None`` when it has none.

    An annotation that does not resolve raises :class:`ConfigurationError` (saying why)."""
    if "return" not in getattr(reducer, "__annotations__", {}):
        return None
    try:
        return typing.get_type_hints(reducer).get("return")
    except (NameError, TypeError) as exc:
        raise ConfigurationError(f"the reducer's return annotation does not resolve: "
                                 f"{exc}") from exc


def _target(fn: Any) -> Any:
    """The function behind a bound method or a ``functools.partial``."""
    fn = getattr(fn, "__func__", fn)
    return getattr(fn, "func", fn)


def _code_of(fn: Any) -> types.CodeType | None:
    code = getattr(fn, "__code__", None)
    if code is None:  # a callable object: its __call__
        code = getattr(vars(type(fn)).get("__call__"), "__code__", None)
    return code if isinstance(code, types.CodeType) else None


def _module_source(fn: Any) -> str | None:
    module = sys.modules.get(getattr(fn, "__module__", None) or type(fn).__module__)
    if module is None:
        return None
    try:
        return inspect.getsource(module)
    except (OSError, TypeError):  # no source file (interactive, frozen): the code alone
        return None


def _code_digest(code: types.CodeType) -> str:
    h = hashlib.sha256()
    for piece in (code.co_code, repr(code.co_names).encode(), repr(code.co_varnames).encode(),
                  repr(code.co_freevars).encode(), str(code.co_argcount).encode()):
        h.update(piece)
        h.update(b"\x00")
    for const in code.co_consts:
        h.update(_const(const).encode())
        h.update(b"\x00")
    return h.hexdigest()


def _const(value: Any) -> str:
    """A constant as text that is the same in every process (no addresses, no set order)."""
    if isinstance(value, types.CodeType):
        return f"code:{value.co_name}:{_code_digest(value)}"
    if isinstance(value, tuple):
        return "(" + ",".join(_const(v) for v in value) + ")"
    if isinstance(value, frozenset):  # iteration order follows string hashing: per process
        return "frozenset(" + ",".join(sorted(_const(v) for v in value)) + ")"
    return repr(value)


def _schema(tp: Any) -> str:
    if tp is None:
        return "none"
    try:
        schema = TypeAdapter(tp).json_schema()
    except Exception:
        return repr(tp)
    return json.dumps(schema, sort_keys=True, default=repr)
