"""Benchmark: talix-ray's LocalRuntime (memory journal) vs the `eventsourcing` library (POPO).

The same workload on both, each command awaited/saved before the next:
  (a) create N aggregates with one event each,
  (b) N commands appending to one aggregate,
  (c) load an aggregate of L events, no snapshots.
Like for like: both sides keep events as JSON bytes in memory (eventsourcing's POPO recorder
stores what its transcoder encodes; talix's MemoryJournal stores what the log on object
storage would, and decodes it on every read), each command or method call gets a new input
(talix validates it into its pydantic model, and the event payload again), and both sides
rebuild the loaded aggregate by decoding every stored event and folding it.
Ratios > 1 favour talix-ray: create_ratio and append_ratio are throughput ratios
(talix / eventsourcing), load_ratio is eventsourcing time / talix time. Each round runs both
sides (the first side alternating); a ratio is taken per round, and the medians of the rounds
are reported with their spread (min, max).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys

# bench/ must not be on the import path: bench/http.py would hide the stdlib's http
sys.path[:] = [p for p in sys.path
               if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import statistics
import time
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate as EsAggregate
from eventsourcing.domain import event as es_event
from pydantic import BaseModel

from bench._common import write_results
from talix_ray import Event, EventStore, EventType, LocalRuntime, Service


# -- the talix-ray side -------------------------------------------------------------------------
class Registered(BaseModel):
    name: str


class TrickAdded(BaseModel):
    trick: str


registered = EventType("DOGS:REGISTERED", Registered)
trick_added = EventType("DOGS:TRICK_ADDED", TrickAdded)


class Dog(BaseModel):
    name: str
    tricks: int = 0


def reduce(state: Dog | None, event: Event) -> Dog | None:
    if event.type == "DOGS:REGISTERED":
        return Dog(name=event.payload.name)
    assert state is not None
    state.tricks += 1  # states are private to the aggregate's single writer
    return state


dogs = EventStore("dogs", [registered, trick_added], reduce)


class Register(BaseModel):
    name: str


class AddTrick(BaseModel):
    trick: str


@dogs.command
def register(state: Dog | None, input: Register):
    return registered(name=input.name)


@dogs.command
def add_trick(state: Dog | None, input: AddTrick):
    return trick_added(trick=input.trick)


service = Service("dogs", stores=[dogs])


async def talix_run(n_create: int, n_append: int, n_load: int) -> dict[str, float]:
    out: dict[str, float] = {}
    async with LocalRuntime().add(service).create() as rt:
        gc.collect()
        t = time.perf_counter()
        for i in range(n_create):
            await rt.run(register, f"dog-{i}", Register(name="rex"))
        out["create_s"] = time.perf_counter() - t

        await rt.run(register, "busy", Register(name="rex"))
        gc.collect()
        t = time.perf_counter()
        for _ in range(n_append):
            await rt.run(add_trick, "busy", AddTrick(trick="sit"))
        out["append_s"] = time.perf_counter() - t

        await rt.run(register, "old", Register(name="rex"))
        for _ in range(n_load - 1):
            await rt.run(add_trick, "old", AddTrick(trick="sit"))
        assert rt.host.passivate(dogs, "old")
        gc.collect()
        t = time.perf_counter()
        agg = await rt.get_aggregate(dogs, "old")
        out["load_s"] = time.perf_counter() - t
        assert agg.version == n_load and agg.state.tricks == n_load - 1
    return out


# -- the eventsourcing side ---------------------------------------------------------------------
class EsDog(EsAggregate):
    @es_event("Registered")
    def __init__(self, name: str) -> None:
        self.name = name
        self.tricks = 0

    @es_event("TrickAdded")
    def add_trick(self, trick: str) -> None:
        self.tricks += 1


class Dogs(Application[Any]):
    pass


def es_run(n_create: int, n_append: int, n_load: int) -> dict[str, float]:
    out: dict[str, float] = {}
    app = Dogs(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    gc.collect()
    t = time.perf_counter()
    for _ in range(n_create):
        app.save(EsDog("rex"))
    out["create_s"] = time.perf_counter() - t

    dog = EsDog("rex")
    app.save(dog)
    gc.collect()
    t = time.perf_counter()
    for _ in range(n_append):
        dog.add_trick("sit")
        app.save(dog)
    out["append_s"] = time.perf_counter() - t

    old = EsDog("rex")
    for _ in range(n_load - 1):
        old.add_trick("sit")
    app.save(old)
    gc.collect()
    t = time.perf_counter()
    loaded = app.repository.get(old.id)
    out["load_s"] = time.perf_counter() - t
    assert loaded.version == n_load and loaded.tricks == n_load - 1
    return out


def spread(values: list[float]) -> dict[str, float]:
    """The median of the rounds and their spread."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 rounds (well under 60 s)")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    n_create, n_append, n_load = 20_000, 20_000, 10_000
    rounds = args.rounds or (3 if args.quick else 7)
    talix: list[dict[str, float]] = []
    es: list[dict[str, float]] = []
    for r in range(rounds):  # both sides in every round, the first one alternating
        if r % 2 == 0:
            es.append(es_run(n_create, n_append, n_load))
            talix.append(asyncio.run(talix_run(n_create, n_append, n_load)))
        else:
            talix.append(asyncio.run(talix_run(n_create, n_append, n_load)))
            es.append(es_run(n_create, n_append, n_load))
    pairs = list(zip(talix, es, strict=True))
    ratios = {f"{k}_ratio": [e[f"{k}_s"] / t[f"{k}_s"] for t, e in pairs]
              for k in ("create", "append", "load")}
    summary = {k: round(statistics.median(v), 2) for k, v in ratios.items()}

    def side(runs: list[dict[str, float]]) -> dict[str, Any]:
        return {"create_per_s": spread([n_create / r["create_s"] for r in runs]),
                "append_per_s": spread([n_append / r["append_s"] for r in runs]),
                "load_s": spread([r["load_s"] for r in runs])}

    data = {
        "workload": {"create": n_create, "append": n_append, "load_events": n_load,
                     "rounds": rounds, "order": "both sides every round, first side alternating"},
        "ratios": {k: spread(v) for k, v in ratios.items()},
        "talix": {
            "did": "LocalRuntime on the MemoryJournal, which stores each commit's events as "
                   "JSON bytes (orjson) and decodes them on every read; every command gets a "
                   "new input model (Register/AddTrick) and is awaited before the next; create "
                   "= validate input, load the (absent) aggregate, decide, validate the event "
                   "payload, fold, encode and store; load = passivate, then decode 10,000 "
                   "stored events into typed pydantic events and fold them",
            **side(talix)},
        "eventsourcing": {
            "did": "eventsourcing Application with the POPO recorder, which stores each event "
                   "as JSON bytes (its JSONTranscoder) and decodes them on every read; a new "
                   "aggregate object or method call per command, each saved before the next; "
                   "load = repository.get, which decodes and applies every stored event",
            **side(es)},
        "goals": {"create_ratio": 2, "append_ratio": 2, "load_ratio": 1.5},
    }
    for name in ("talix", "eventsourcing"):
        d = data[name]
        print(f"{name:>13}: create {d['create_per_s']['median']:,.0f}/s  append "
              f"{d['append_per_s']['median']:,.0f}/s  load {d['load_s']['median'] * 1000:.1f} ms"
              " (medians)")
    for k, v in data["ratios"].items():
        print(f"{k}: median {v['median']:.2f} (min {v['min']:.2f}, max {v['max']:.2f})")
    write_results("core", data, summary)


if __name__ == "__main__":
    main()
