"""One way to validate user data against a pydantic model, with errors that name the field."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from .errors import ValidationError

M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], data: Any, what: str) -> M:
    """``data`` (an instance of ``model``, another model or a mapping) as a ``model``.

    Raises :class:`~talix_ray.model.errors.ValidationError` naming ``what`` and every
    failing field.
    """
    if type(data) is model:
        return data
    try:
        if isinstance(data, BaseModel):
            data = data.model_dump()
        return model.model_validate(data)
    except PydanticValidationError as exc:
        raise ValidationError.from_pydantic(what, exc) from None
