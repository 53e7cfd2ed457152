"""Files in action inputs: a field typed :class:`UploadedFile` makes an HTTP route multipart."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class UploadedFile(BaseModel):
    """A file sent with a request (``multipart/form-data`` over HTTP).

    Declare it as a field of an action's input model; the HTTP route then takes the file as a
    form part and the other fields as form fields. The size is bounded by the server's upload
    limit before the action runs.
    """

    model_config = ConfigDict(frozen=True)

    content: bytes = Field(repr=False)
    filename: str | None = Field(default=None, max_length=1024)
    content_type: str = Field(default="application/octet-stream", max_length=255)

    @property
    def size(self) -> int:
        """The file's size in bytes."""
        return len(self.content)
