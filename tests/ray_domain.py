"""A dedicated-placement store and an action that reports its Ray resources (Ray tests only)."""

from __future__ import annotations

from talix_ray import Context, Event, EventStore, Service, action, on_event

from .domain import Add, Added, Book, added, book, ledger, reduce, reset

heavy = EventStore("heavy", [added, reset], reduce, placement="dedicated")


@heavy.command
def heavy_add(state, input: Add):  # type: ignore[no-untyped-def]
    return added(amount=input.amount)


@action(on_event(added), num_cpus=2)
async def record_resources(event: Event[Added], ctx: Context) -> None:
    """Books the CPUs Ray assigned to this task."""
    import ray

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 0)
    await ctx.run(book, f"res-{event.aggregate_id}", Book(source=event.id, amount=int(cpus)))


service = Service("heavy", stores=[heavy, ledger], actions=[record_resources])
