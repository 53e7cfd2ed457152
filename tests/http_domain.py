"""A small domain for the HTTP tests: notes with every kind of route."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field

from talix_ray import (
    AlreadyExists,
    Context,
    DomainError,
    Event,
    EventStore,
    EventType,
    Forbidden,
    NotFound,
    Service,
    UploadedFile,
    action,
    http,
    query,
)


class NoteWritten(BaseModel):
    text: str


class NoteArchived(BaseModel):
    reason: str


note_written = EventType("NOTES:WRITTEN", NoteWritten)
note_archived = EventType("NOTES:ARCHIVED", NoteArchived)


class Note(BaseModel):
    text: str
    archived: bool = False
    edits: int = 1


def reduce(state: Note | None, event: Event) -> Note | None:
    match event.payload:
        case NoteWritten(text=text) if state is None:
            return Note(text=text)
        case NoteWritten(text=text):
            return state.model_copy(update={"text": text, "edits": state.edits + 1})
        case NoteArchived() if state is not None:
            return state.model_copy(update={"archived": True})
    return state


notes = EventStore("notes", [note_written, note_archived], reduce)


class Write(BaseModel):
    text: str = Field(min_length=1, max_length=10_000)


@notes.command
def write(state: Note | None, input: Write):
    if state is not None and state.archived:
        raise DomainError("this note is archived")
    return note_written(text=input.text)


class Archive(BaseModel):
    reason: str = Field(min_length=1, max_length=200)


@notes.command
def archive(state: Note | None, input: Archive):
    if state is None:
        raise NotFound("no such note")
    if state.archived:
        raise DomainError("archived already")
    return note_archived(reason=input.reason)


# -- HTTP -------------------------------------------------------------------------------------
class NewNote(BaseModel):
    note_id: str = Field(pattern=r"^[a-z0-9-]{1,40}$")
    text: str = Field(min_length=1, max_length=10_000)


class Written(BaseModel):
    note_id: str
    version: int
    by: str | None


@action(http.post("/notes"))
async def create_note(input: NewNote, ctx: Context) -> Written:
    """Create a note.

    Fails with 409 when the id is taken.
    """
    current = await ctx.load(notes, input.note_id)
    if current is not None:
        raise AlreadyExists(f"note {input.note_id} exists")
    result = await ctx.run(write, input.note_id, Write(text=input.text))
    return Written(note_id=input.note_id, version=result.version,
                   by=ctx.principal.id if ctx.principal else None)


class EditNote(BaseModel):
    note_id: str = Field(pattern=r"^[a-z0-9-]{1,40}$")
    text: str = Field(min_length=1, max_length=10_000)


@action(http.put("/notes/{note_id}"))
async def edit_note(input: EditNote, ctx: Context) -> Written:
    """Rewrite a note (every call appends an event: idempotency keys matter here)."""
    result = await ctx.run(write, input.note_id, Write(text=input.text))
    return Written(note_id=input.note_id, version=result.version,
                   by=ctx.principal.id if ctx.principal else None)


class ArchiveNote(BaseModel):
    note_id: str = Field(pattern=r"^[a-z0-9-]{1,40}$")
    reason: str = Field(min_length=1, max_length=200)


@action(http.post("/notes/{note_id}/archive"), scopes=["notes:archive"])
async def archive_note(input: ArchiveNote, ctx: Context) -> None:
    """Archive a note (needs the notes:archive scope)."""
    await ctx.run(archive, input.note_id, Archive(reason=input.reason))


class NoteId(BaseModel):
    note_id: str = Field(pattern=r"^[a-z0-9-]{1,40}$")


@query(http.get("/notes/{note_id}"))
async def get_note(input: NoteId, ctx: Context) -> Note:
    """Read a note."""
    state = await ctx.load(notes, input.note_id)
    if state is None:
        raise NotFound(f"no note {input.note_id}")
    return state


class Search(BaseModel):
    prefix: str = Field("", max_length=40)
    limit: int = Field(10, ge=1, le=100)


class Found(BaseModel):
    prefix: str
    limit: int


@query(http.get("/search"))
async def search(input: Search, ctx: Context) -> Found:
    """Echo the query parameters (a GET with a query model)."""
    return Found(prefix=input.prefix, limit=input.limit)


class Empty(BaseModel):
    pass


class Pong(BaseModel):
    pong: bool = True


@action(http.get("/ping"), public=True)
async def ping(input: Empty, ctx: Context) -> Pong:
    """A public route."""
    return Pong()


class Boom(BaseModel):
    secret: str = "s3cr3t-value"


@action(http.post("/boom"))
async def boom(input: Boom, ctx: Context) -> Pong:
    """Raises a plain exception whose message must never reach the client."""
    raise RuntimeError(f"internal failure at /srv/app/db.py with {input.secret} "
                       "http://10.0.0.7:9000/bucket")


@action(http.post("/forbidden"))
async def forbidden(input: Empty, ctx: Context) -> Pong:
    """The application refuses (403 from the action)."""
    raise Forbidden("only the owner may do this")


class Slow(BaseModel):
    seconds: float = Field(ge=0, le=60)


@action(http.post("/slow"))
async def slow(input: Slow, ctx: Context) -> Pong:
    """Sleeps (for the timeout test)."""
    await asyncio.sleep(input.seconds)
    return Pong()


class Upload(BaseModel):
    file: UploadedFile
    title: str = Field(min_length=1, max_length=100)


class Stored(BaseModel):
    size: int
    filename: str | None
    content_type: str
    title: str


@action(http.post("/files"))
async def upload(input: Upload, ctx: Context) -> Stored:
    """A multipart upload."""
    return Stored(size=input.file.size, filename=input.file.filename,
                  content_type=input.file.content_type, title=input.title)


service = Service("notes", stores=[notes],
                  actions=[create_note, edit_note, archive_note, ping, boom, forbidden, slow,
                           upload],
                  queries=[get_note, search])


def build_ray_runtime():
    """The notes service on the RayRuntime, configured by ``TALIX_*`` (Serve replicas)."""
    from talix_ray import RayRuntime

    return RayRuntime.from_settings(views=False).add(service)


def build_local_runtime(settings=None):
    """The notes service on the LocalRuntime (``talix serve --local --app …``)."""
    from talix_ray import LocalRuntime

    return LocalRuntime.from_settings(settings).add(service)
