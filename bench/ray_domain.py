"""The aggregates of the Ray benchmark: one sharded store, one dedicated store."""

from __future__ import annotations

from pydantic import BaseModel

from talix_ray import Event, EventStore, EventType, Service


class Bumped(BaseModel):
    n: int


bumped = EventType("BENCH:BUMPED", Bumped)


class Counter(BaseModel):
    total: int = 0


def reduce(state: Counter | None, event: Event) -> Counter | None:
    return Counter(total=(state.total if state else 0) + event.payload.n)


bumps = EventStore("bumps", [bumped], reduce)
bumps_dedicated = EventStore("bumps-dedicated", [bumped], reduce, placement="dedicated")


class Bump(BaseModel):
    n: int


@bumps.command
def bump(state: Counter | None, input: Bump):
    return bumped(n=input.n)


@bumps_dedicated.command
def bump_dedicated(state: Counter | None, input: Bump):
    return bumped(n=input.n)


service = Service("bench", stores=[bumps, bumps_dedicated])
