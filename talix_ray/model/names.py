"""Validation of the names that end up in storage keys: store names, aggregate ids, queues."""

from __future__ import annotations

import re

from .errors import ValidationError

# Aggregate ids are folder names in storage keys (``streams/{store}/{id}/``): a file name
# holds 255 bytes on common file systems, and the limit leaves room for what stores add
# beside a name (``.lock-`` and ``.tmp-`` companions of the local store).
MAX_ID_BYTES = 200
_NAME = re.compile(r"^[a-z][a-z0-9_\-]{0,62}$")
_FORBIDDEN = re.compile(r"[/\\\x00-\x1f\x7f]")


def check_name(kind: str, name: object) -> str:
    """A store, service, view or queue name: lower case, digits, ``_`` or ``-``, ≤ 63 chars."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationError(
            f"invalid {kind} name {name!r}: use 1-63 characters of a-z, 0-9, '_' or '-', "
            "starting with a letter"
        )
    return name


def check_aggregate_id(aggregate_id: object) -> str:
    """An aggregate id: 1-200 bytes in UTF-8, no '/', no backslash, no control characters."""
    if not isinstance(aggregate_id, str):
        raise ValidationError(
            f"invalid aggregate id {aggregate_id!r}: expected a string, "
            f"got {type(aggregate_id).__name__}"
        )
    try:
        size = len(aggregate_id.encode())
    except UnicodeEncodeError:  # a lone surrogate: no storage key can hold it
        raise ValidationError(f"invalid aggregate id {aggregate_id[:40]!r}: not valid "
                              "Unicode text") from None
    if not aggregate_id or size > MAX_ID_BYTES:
        raise ValidationError(
            f"invalid aggregate id {aggregate_id[:40]!r}: it must take 1-{MAX_ID_BYTES} bytes "
            f"in UTF-8, got {size}"
        )
    if _FORBIDDEN.search(aggregate_id) or aggregate_id in (".", ".."):
        raise ValidationError(
            f"invalid aggregate id {aggregate_id!r}: '/', '\\' and control characters "
            "are not allowed"
        )
    return aggregate_id
