"""The few Delta Lake operations views need, in one place (``deltalake`` is imported lazily:
it is an optional extra, ``talix-ray[views]``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from ..model.errors import ConfigurationError, NotFound

_IMPORT_HINT = "views need the deltalake package: pip install 'talix-ray[views]'"


def deltalake() -> Any:
    """The ``deltalake`` module (a clear error when it is not installed)."""
    try:
        import deltalake as dl
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ConfigurationError(_IMPORT_HINT) from exc
    return dl


def app_id(view: str, partition: int) -> str:
    """The application-transaction id holding a view's offset in a partition."""
    return f"{view}:{partition}"


def transactions(view: str, offsets: dict[int, int]) -> Any:
    """Commit properties carrying a view's offsets (the segment seq read up to, per partition)."""
    dl = deltalake()
    return dl.CommitProperties(app_transactions=[
        dl.Transaction(app_id=app_id(view, p), version=seq) for p, seq in sorted(offsets.items())])


def is_conflict(exc: BaseException) -> bool:
    """Whether a Delta commit lost a race (another writer committed first): reload and retry."""
    dl = deltalake()
    return isinstance(exc, dl.exceptions.CommitFailedError) or "Concurrent" in str(exc)


def load(uri: str, storage_options: dict[str, str], *, version: int | None = None) -> Any:
    """The table at ``uri`` (its latest version or ``version``); :class:`NotFound` if absent."""
    dl = deltalake()
    try:
        return dl.DeltaTable(uri, storage_options=storage_options or None, version=version)
    except dl.exceptions.TableNotFoundError as exc:
        raise NotFound(f"no view table at {uri} (has a runner written it yet?)") from exc


def exists(uri: str, storage_options: dict[str, str]) -> bool:
    """Whether a Delta table exists at ``uri``."""
    dl = deltalake()
    return bool(dl.DeltaTable.is_deltatable(uri, storage_options=storage_options or None))


def create(uri: str, storage_options: dict[str, str], schema: pa.Schema, *, name: str,
           description: str) -> Any:
    """Create the table if it does not exist (racing creators are fine) and load it."""
    dl = deltalake()
    dl.DeltaTable.create(uri, schema, mode="ignore", name=name, description=description,
                         storage_options=storage_options or None)
    return load(uri, storage_options)


def offsets(table: Any, view: str, partitions: int) -> dict[int, int]:
    """The offsets a view's table has committed (0 where it has none)."""
    return {p: table.transaction_version(app_id(view, p)) or 0 for p in range(partitions)}


def arrow_schema(table: Any) -> pa.Schema:
    """The table's schema as pyarrow types."""
    return pa.schema(table.schema().to_arrow())


def same_schema(table: Any, schema: pa.Schema) -> bool:
    """Whether the table stores exactly ``schema`` (names, types, nullability)."""
    dl = deltalake()
    return bool(table.schema() == dl.Schema.from_arrow(schema))


def _view_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return pa.string_view()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return pa.binary_view()
    return t


def dataset(table: Any, schema: pa.Schema | None = None) -> Any:
    """A pyarrow dataset over the table for scanning engines (DuckDB).

    Strings are declared as ``string_view`` — what delta-rs writes into Parquet — so engines
    do not push string filters into pyarrow, which has no kernels for them yet (apache/arrow
    #49368, duckdb/duckdb-python #187); numeric and date filters are still pushed down.
    """
    schema = schema if schema is not None else arrow_schema(table)
    return table.to_pyarrow_dataset(
        schema=pa.schema([f.with_type(_view_type(f.type)) for f in schema]))


def read(table: Any, columns: Iterable[str] | None = None) -> pa.Table:
    """The whole table (or some columns) with plain Arrow types."""
    schema = full = arrow_schema(table)
    cols = list(columns) if columns is not None else None
    if cols is not None:
        unknown = [c for c in cols if c not in schema.names]
        if unknown:
            raise NotFound(f"no column(s) {unknown} (the view has {schema.names})")
        schema = pa.schema([schema.field(c) for c in cols])
    data = dataset(table, full).to_table(columns=cols)
    return data.cast(schema)


def read_keys(table: Any, key: str, keys: list[Any]) -> pa.Table:
    """The rows whose ``key`` is in ``keys``.

    Filtered once read and cast to plain Arrow types: pyarrow has no kernel to take, filter
    or compare the ``string_view`` columns delta-rs writes (nor to prune on their
    statistics), so neither the scan nor the dataset can select the rows.
    """
    import pyarrow.compute as pc

    schema = arrow_schema(table)
    if not keys:
        return schema.empty_table()
    data = dataset(table, schema).to_table().cast(schema)
    values = pa.array(keys, type=schema.field(key).type)
    return data.filter(pc.is_in(data.column(key), value_set=values))
