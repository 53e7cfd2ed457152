"""The applications of the HTTP benchmark: a talix service and its plain FastAPI twin.

Both do the same work per request: check an API key (a SHA-256 compared in constant time),
validate the same pydantic query model and answer the same response model.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import FastAPI, Header, HTTPException, Query
from pydantic import BaseModel, Field

from talix_ray import Context, Service, action, http
from talix_ray.serve import hash_key

from .ray_domain import Bump, bump, bumps

API_KEY = "tlx_bench-key-not-secret-0123456789"


class Ping(BaseModel):
    n: int = Field(0, ge=0, le=1_000_000)


class Pong(BaseModel):
    n: int


@action(http.get("/ping"))
async def ping(input: Ping, ctx: Context) -> Pong:
    """A trivial route: authenticated, validated, nothing else."""
    return Pong(n=input.n)


class BumpCounter(BaseModel):
    counter_id: str = Field(pattern=r"^[a-z0-9-]{1,40}$")
    n: int = Field(ge=1, le=1000)


class Bumped(BaseModel):
    version: int


@action(http.post("/counters/{counter_id}/bump"))
async def bump_counter(input: BumpCounter, ctx: Context) -> Bumped:
    """One command on one aggregate."""
    result = await ctx.run(bump, input.counter_id, Bump(n=input.n))
    return Bumped(version=result.version)


service = Service("bench-http", stores=[bumps], actions=[ping, bump_counter])


def build_runtime():
    """The benchmark service on the RayRuntime (``TALIX_*`` from the replica's env)."""
    from talix_ray import RayRuntime

    return RayRuntime.from_settings(views=False).add(service)


# -- the plain FastAPI twin -------------------------------------------------------------------
plain = FastAPI()
_HASH = hash_key(API_KEY)


@plain.get("/ping")
async def plain_ping(q: Annotated[Ping, Query()],
                     x_api_key: Annotated[str | None, Header()] = None) -> Pong:
    if x_api_key is None or not hmac.compare_digest(hash_key(x_api_key), _HASH):
        raise HTTPException(401)
    return Pong(n=q.n)


# -- the load generator's ceiling: the most trivial route uvicorn can serve ------------------
ceiling = FastAPI()


@ceiling.get("/ping")
async def ceiling_ping() -> dict[str, int]:
    return {"n": 0}
