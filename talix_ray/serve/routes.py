"""Routes generated from the services: one per HTTP-triggered action and per HTTP query.

The input model is the single source of truth: path parameters are its fields named in the
route, a GET takes the others as query parameters, other methods as a JSON body — or, when a
field is an :class:`~talix_ray.model.files.UploadedFile`, as ``multipart/form-data``. FastAPI
parses and documents them; the action's own model validates the assembled input once more,
so its validators run exactly as they do for ``runtime.call``.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import Body, File, Form, Header, Path, Query, Request, UploadFile
from pydantic import BaseModel, TypeAdapter, create_model

from ..engine.app import App
from ..model.action import Action
from ..model.action import Query as TalixQuery
from ..model.errors import ConfigurationError
from ..model.files import UploadedFile
from ..model.triggers import HttpTrigger

Mode = Literal["json", "query", "multipart", "none"]
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
REQUEST = "talix_request"
BODY = "talix_body"
QUERY = "talix_query"
IDEMPOTENCY_KEY = "talix_idempotency_key"


@dataclass(eq=False)
class RouteSpec:
    """One generated route and everything needed to serve and document it."""

    method: str
    path: str
    target: Action | TalixQuery
    service: str
    input_model: type[BaseModel] | None
    path_params: tuple[str, ...]
    mode: Mode
    output: Any
    files: tuple[str, ...] = ()
    derived: type[BaseModel] | None = None  # the body or query model without path fields
    adapter: TypeAdapter[Any] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """The action's or query's name (the OpenAPI operation id)."""
        return self.target.name

    @property
    def is_action(self) -> bool:
        """Whether the route runs an action (a query otherwise)."""
        return isinstance(self.target, Action)

    @property
    def public(self) -> bool:
        """Whether the route needs no credentials."""
        return self.target.public

    @property
    def scopes(self) -> tuple[str, ...]:
        """The scopes a caller needs."""
        return self.target.scopes

    @property
    def no_content(self) -> bool:
        """Whether the route answers 204 (the function is annotated ``-> None``)."""
        return self.output is type(None)

    @property
    def has_body(self) -> bool:
        """Whether the route reads a request body."""
        return self.mode in ("json", "multipart")


def route_specs(app: App) -> list[RouteSpec]:
    """Every HTTP route of the application's services; a route declared twice is an error."""
    specs: list[RouteSpec] = []
    seen: dict[tuple[str, str], str] = {}
    for svc in app.services:
        targets: list[tuple[Action | TalixQuery, HttpTrigger]] = []
        targets += [(a, t) for a in svc.actions for t in a.http_triggers]
        targets += [(q, q.http) for q in svc.queries if q.http is not None]
        for target, trigger in targets:
            key = (trigger.method, _normalize(trigger.path))
            if key in seen:
                raise ConfigurationError(f"{trigger.method} {trigger.path} is declared by both "
                                         f"{seen[key]} and {target.name}")
            seen[key] = target.name
            specs.append(_spec(target, trigger, svc.name))
    return specs


def _normalize(path: str) -> str:
    return _PARAM.sub("{}", path)


def _spec(target: Action | TalixQuery, trigger: HttpTrigger, service: str) -> RouteSpec:
    model = target.input_model
    params = tuple(_PARAM.findall(trigger.path))
    what = f"{target.name} ({trigger.method} {trigger.path})"
    fields = model.model_fields if model is not None else {}
    missing = [p for p in params if p not in fields]
    if missing:
        raise ConfigurationError(f"{what}: path parameter(s) {missing} are not fields of the "
                                 "input model")
    files = tuple(n for n, f in fields.items() if _is_file(f.annotation))
    mode: Mode
    if model is None:
        mode = "none"
    elif files:
        if trigger.method in ("GET", "DELETE"):
            raise ConfigurationError(f"{what}: a file upload needs POST, PUT or PATCH")
        mode = "multipart"
    elif trigger.method in ("GET", "DELETE"):
        mode = "query"
    else:
        mode = "json"
    output = target.output_model
    adapter = None if output is None or output is type(None) else TypeAdapter(output)
    derived = None
    if model is not None and mode in ("json", "query") and params:
        rest = {n: (f.annotation, f) for n, f in fields.items() if n not in params}
        suffix = "Body" if mode == "json" else "Params"
        # mypy matches **rest against create_model's __base__/__config__ too: an overload miss
        derived = create_model(f"{model.__name__}{suffix}", **rest)  # type: ignore[call-overload]
    return RouteSpec(trigger.method, trigger.path, target, service, model, params, mode,
                     output, files, derived, adapter)


def _is_file(annotation: Any) -> bool:
    if annotation is UploadedFile:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(a is UploadedFile for a in typing.get_args(annotation))
    return False


def _optional(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and \
        type(None) in typing.get_args(annotation)


def signature(spec: RouteSpec) -> inspect.Signature:
    """The endpoint's parameters as FastAPI reads them (and documents them)."""
    kw = inspect.Parameter.KEYWORD_ONLY
    params = [inspect.Parameter(REQUEST, kw, annotation=Request)]
    model = spec.input_model
    fields = model.model_fields if model is not None else {}
    for name in spec.path_params:
        f = fields[name]
        params.append(inspect.Parameter(name, kw, annotation=Annotated[
            f.annotation, Path(description=f.description, **_constraints(f.metadata))]))
    if spec.mode == "json":
        params.append(inspect.Parameter(BODY, kw, annotation=Annotated[
            spec.derived or model, Body()]))
    elif spec.mode == "query":
        params.append(inspect.Parameter(QUERY, kw, annotation=Annotated[
            spec.derived or model, Query()]))
    elif spec.mode == "multipart":
        for name, f in fields.items():
            if name in spec.path_params:
                continue
            if name in spec.files:
                ann: Any = UploadFile | None if _optional(f.annotation) else UploadFile
                marker: Any = File(description=f.description)
            else:
                ann, marker = f.annotation, Form(description=f.description)
            default = None if not f.is_required() else inspect.Parameter.empty
            if not f.is_required() and f.default is not None and name not in spec.files:
                default = f.default
            params.append(inspect.Parameter(name, kw, annotation=Annotated[ann, marker],
                                            default=default))
    if spec.is_action and spec.method != "GET":
        params.append(inspect.Parameter(IDEMPOTENCY_KEY, kw, default=None, annotation=Annotated[
            str | None, Header(alias="Idempotency-Key", max_length=255,
                               pattern=r"^[\x21-\x7e]+$",
                               description="repeat the request safely: the first response "
                               "is recorded and returned again for this key")]))
    return inspect.Signature(params)


_CONSTRAINTS = ("min_length", "max_length", "pattern", "gt", "ge", "lt", "le")


def _constraints(metadata: list[Any]) -> dict[str, Any]:
    """A field's constraints as keyword arguments of FastAPI's ``Path`` (so they are checked
    and documented on the path parameter too)."""
    out: dict[str, Any] = {}
    for m in metadata:
        for name in _CONSTRAINTS:
            value = getattr(m, name, None)
            if value is not None:
                out[name] = value
    return out


async def assemble(spec: RouteSpec, kw: dict[str, Any]) -> Any:
    """The action's input from the parsed parameters (validated by its own model later)."""
    model = spec.input_model
    if model is None:
        return None
    path = {n: kw[n] for n in spec.path_params}
    if spec.mode == "json" and not path:
        return kw[BODY]  # already an instance of the input model
    if spec.mode in ("json", "query"):
        parsed = kw[BODY if spec.mode == "json" else QUERY]
        return {**dict(parsed), **path}
    data = dict(path)
    for name in model.model_fields:
        if name in spec.path_params or name not in kw:
            continue
        value = kw[name]
        if name in spec.files and value is not None:
            value = UploadedFile(content=await value.read(), filename=value.filename,
                                 content_type=value.content_type or "application/octet-stream")
        data[name] = value
    return data
