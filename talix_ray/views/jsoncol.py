"""JSON values → an Arrow string column, without keeping one ``bytes`` object per value.

``orjson.dumps`` returns each value in a buffer it allocated at about a kilobyte and shrank:
kept by the hundred thousand (a list for ``pa.array``), those buffers fragment the heap and
every new one takes fresh pages (measured: ~2 µs per value instead of ~0.1 µs). Here the
values are serialized a few hundred at a time and joined at once, so each buffer is freed
before the next batch is made, and the column is assembled from one data buffer and its
offsets (the same strings ``pa.array`` would build from the same bytes).
"""

from __future__ import annotations

from array import array
from itertools import accumulate
from typing import Any

import orjson
import pyarrow as pa

_CHUNK = 256  # values serialized before they are joined (their buffers freed)
_MAX_DATA = 2**31 - 1  # what a ``string`` column's int32 offsets can address


def json_strings(values: list[Any], *,
                 nullable: bool = False) -> pa.Array | pa.ChunkedArray:
    """``values`` as compact JSON (``orjson.dumps``) in a ``string`` array; with
    ``nullable``, a ``None`` value is a null (not the JSON ``null``)."""
    dumps = orjson.dumps
    n = len(values)
    lengths: list[int] = []
    data: list[bytes] = []
    valid: list[bool] | None = None
    nulls = values.count(None) if nullable else 0
    if nulls == n and n:
        return pa.nulls(n, pa.string())
    if nulls:
        valid = [v is not None for v in values]
    for i in range(0, n, _CHUNK):
        chunk = values[i:i + _CHUNK]
        parts = [b"" if v is None else dumps(v) for v in chunk] if valid is not None \
            else [dumps(v) for v in chunk]
        lengths += map(len, parts)
        data.append(b"".join(parts))
        del parts
    body = b"".join(data)
    if len(body) > _MAX_DATA:  # more than one string array holds: Arrow chunks it
        del body, data
        return pa.array([None if v is None and nullable else dumps(v) for v in values],
                        type=pa.string())
    offsets = array("i", accumulate(lengths, initial=0))
    bitmap = None if valid is None else pa.array(valid, pa.bool_()).buffers()[1]
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(body), bitmap,
                                       -1 if valid is not None else 0)
