"""Benchmark: talix-ray's LocalRuntime (memory journal) vs the `eventsourcing` library (POPO).

The same workload on both, each command awaited/saved before the next:
  (a) create N aggregates with one event each,
  (b) N commands appending to one aggregate,
  (c) load an aggregate of L events, no snapshots.
Ratios > 1 favour talix-ray: create_ratio and append_ratio are throughput ratios
(talix / eventsourcing), load_ratio is eventsourcing time / talix time.
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
        inp = Register(name="rex")
        gc.collect()
        t = time.perf_counter()
        for i in range(n_create):
            await rt.run(register, f"dog-{i}", inp)
        out["create_s"] = time.perf_counter() - t

        await rt.run(register, "busy", inp)
        trick = AddTrick(trick="sit")
        gc.collect()
        t = time.perf_counter()
        for _ in range(n_append):
            await rt.run(add_trick, "busy", trick)
        out["append_s"] = time.perf_counter() - t

        await rt.run(register, "old", inp)
        for _ in range(n_load - 1):
            await rt.run(add_trick, "old", trick)
        rt.host.passivate(dogs, "old")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 rounds (well under 60 s)")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    n_create, n_append, n_load = 20_000, 20_000, 10_000
    rounds = args.rounds or (3 if args.quick else 7)
    best_t: dict[str, float] = {}
    best_e: dict[str, float] = {}
    for _ in range(rounds):  # interleaved, best of rounds: fair on a noisy machine
        e = es_run(n_create, n_append, n_load)
        t = asyncio.run(talix_run(n_create, n_append, n_load))
        for k in t:
            best_t[k] = min(best_t.get(k, float("inf")), t[k])
            best_e[k] = min(best_e.get(k, float("inf")), e[k])
    summary = {
        "create_ratio": round(best_e["create_s"] / best_t["create_s"], 2),
        "append_ratio": round(best_e["append_s"] / best_t["append_s"], 2),
        "load_ratio": round(best_e["load_s"] / best_t["load_s"], 2),
    }
    data = {
        "workload": {"create": n_create, "append": n_append, "load_events": n_load,
                     "rounds": rounds},
        "talix": {"create_per_s": n_create / best_t["create_s"],
                  "append_per_s": n_append / best_t["append_s"], "load_s": best_t["load_s"]},
        "eventsourcing": {"create_per_s": n_create / best_e["create_s"],
                          "append_per_s": n_append / best_e["append_s"],
                          "load_s": best_e["load_s"]},
        "goals": {"create_ratio": 2, "append_ratio": 2, "load_ratio": 1.5},
    }
    for side in ("talix", "eventsourcing"):
        d = data[side]
        print(f"{side:>13}: create {d['create_per_s']:,.0f}/s  append {d['append_per_s']:,.0f}/s"
              f"  load {d['load_s'] * 1000:.1f} ms")
    write_results("core", data, summary)


if __name__ == "__main__":
    main()
