"""Row models → Arrow schemas (the types Delta Lake stores), and rows → Arrow tables."""

from __future__ import annotations

import datetime as dt
import enum
import json
import types
import typing
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ..model.errors import ConfigurationError

DEFAULT_DECIMAL = (38, 9)
Converter = Callable[[Any], Any]


def _decimal_type(info: FieldInfo | None) -> pa.DataType:
    digits = places = None
    for m in info.metadata if info is not None else ():
        digits = getattr(m, "max_digits", digits)
        places = getattr(m, "decimal_places", places)
    if digits is None and places is None:
        return pa.decimal128(*DEFAULT_DECIMAL)
    places = places if places is not None else 0
    digits = max(digits if digits is not None else 38, places, 1)
    return pa.decimal128(min(digits, 38), places)


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], len(args) != len(typing.get_args(tp))
        return tp, type(None) in typing.get_args(tp)
    return tp, False


def _json(value: Any) -> Any:
    if value is None:
        return None
    return json.dumps(value, default=str, sort_keys=True, separators=(",", ":"))


_SCALARS: dict[Any, pa.DataType] = {
    bool: pa.bool_(), int: pa.int64(), float: pa.float64(), str: pa.string(),
    uuid.UUID: pa.string(), bytes: pa.binary(), dt.datetime: pa.timestamp("us", tz="UTC"),
    dt.date: pa.date32(),
}
_AS_JSON = (Any, dict, object)  # stored as JSON text


def arrow_type(tp: Any, info: FieldInfo | None = None, where: str = "") -> pa.DataType:
    """The Arrow type a Python annotation is stored as (see :func:`arrow_schema`)."""
    tp, _ = _strip_optional(tp)
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return arrow_type(typing.get_args(tp)[0], info, where)
    if tp is Decimal:
        return _decimal_type(info)
    scalar = next((arrow for t, arrow in _SCALARS.items() if t is tp), None)
    if scalar is not None:  # by identity, as before: an annotation may not be hashable
        return scalar
    found = _enumerated_type(tp, origin)
    if found is not None:
        return found
    if origin in (list, tuple, set, frozenset, Sequence) or tp in (list, tuple, set):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        if len(set(args)) != 1:
            raise ConfigurationError(f"{where}: a list needs one item type (got {tp!r})")
        return pa.list_(arrow_type(args[0], None, where))
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return pa.struct([pa.field(n, arrow_type(f.annotation, f, f"{where}.{n}"),
                                   nullable=True) for n, f in tp.model_fields.items()])
    if any(tp is t for t in _AS_JSON) or origin is dict:
        return pa.string()
    raise ConfigurationError(f"{where}: no Delta Lake type for {tp!r}; use str, int, float, "
                             "bool, Decimal, date, datetime, an enum or Literal, list[...], a "
                             "nested model, or dict (stored as JSON)")


def _enumerated_type(tp: Any, origin: Any) -> pa.DataType | None:
    """The type of a ``Literal`` of strings or integers, or of an enum (``None``: neither)."""
    if origin is Literal:
        values = typing.get_args(tp)
        if all(isinstance(v, str) for v in values):
            return pa.string()
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return pa.int64()
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        kinds = {type(m.value) for m in tp}
        return pa.int64() if kinds == {int} else pa.string()
    return None


def _converter(tp: Any) -> Converter | None:
    """How a ``model_dump()`` value becomes an Arrow value (``None``: as it is)."""
    tp, _ = _strip_optional(tp)
    if typing.get_origin(tp) is typing.Annotated:
        return _converter(typing.get_args(tp)[0])
    if tp is Any or tp is dict or typing.get_origin(tp) is dict or tp is object:
        return _json
    if tp is uuid.UUID:
        return lambda v: None if v is None else str(v)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return lambda v: None if v is None else getattr(v, "value", v)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        inner = _converters(tp)
        if not inner:
            return None
        return lambda v: None if v is None else _apply(inner, dict(v))
    if typing.get_origin(tp) in (list, tuple, set, frozenset):
        args = typing.get_args(tp)
        item = _converter(args[0]) if args else None
        if item is None:
            return (lambda v: None if v is None else list(v)) \
                if typing.get_origin(tp) in (set, frozenset) else None
        return lambda v: None if v is None else [item(x) for x in v]
    return None


def _converters(model: type[BaseModel]) -> list[tuple[str, Converter]]:
    out = []
    for name, f in model.model_fields.items():
        conv = _converter(f.annotation)
        if conv is not None:
            out.append((name, conv))
    return out


def _apply(converters: list[tuple[str, Converter]], row: dict[str, Any]) -> dict[str, Any]:
    for name, conv in converters:
        row[name] = conv(row.get(name))
    return row


class RowSchema:
    """A view's row model compiled once: its Arrow schema and a fast row → Arrow path."""

    def __init__(self, model: type[BaseModel], *, view: str, key: str | None = None) -> None:
        fields = []
        for name, f in model.model_fields.items():
            if f.exclude:
                continue
            _, optional = _strip_optional(f.annotation)
            nullable = optional or not f.is_required()
            if name == key:
                if optional:
                    raise ConfigurationError(f"view {view}: the key {key!r} cannot be optional")
                nullable = False
            fields.append(pa.field(name, arrow_type(f.annotation, f, f"view {view}: {name}"),
                                   nullable=nullable))
        self.model = model
        self.key = key
        self.schema = pa.schema(fields)
        self.names = [f.name for f in fields]
        self._converters = _converters(model)

    def table(self, rows: Sequence[BaseModel]) -> pa.Table:
        """Rows (instances of the model) as an Arrow table with the view's schema."""
        dicts = [_apply(self._converters, r.model_dump()) if self._converters else r.model_dump()
                 for r in rows]
        return pa.Table.from_pylist(dicts, schema=self.schema)

    def rows(self, table: pa.Table) -> list[BaseModel]:
        """Arrow rows back as model instances (JSON columns parsed)."""
        json_cols = {n for n, c in self._converters if c is _json}
        out = []
        for d in table.select(self.names).to_pylist():
            for n in json_cols:
                if d.get(n) is not None:
                    d[n] = json.loads(d[n])
            out.append(self.model.model_validate(d))
        return out


def arrow_schema(model: type[BaseModel], *, key: str | None = None) -> pa.Schema:
    """The Arrow schema of a row model: ``str``/``UUID`` → string, ``int`` → int64, ``float`` →
    float64, ``bool``, ``Decimal`` → decimal128 (precision and scale from ``max_digits`` and
    ``decimal_places``, else 38, 9), ``date`` → date32, ``datetime`` → timestamp[us, UTC],
    enums and ``Literal`` → their values, ``list[X]`` → list, nested models → struct,
    ``dict``/``Any`` → JSON text. Optional or defaulted fields are nullable."""
    return RowSchema(model, view=model.__name__, key=key).schema
