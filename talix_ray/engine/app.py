"""An assembled application: the services a runtime hosts, indexed and checked once."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..model.action import Action, Query, TimerTick
from ..model.errors import ConfigurationError, NotFound
from ..model.events import StoredEvent
from ..model.projection import Projection
from ..model.service import Service
from ..model.store import Command, EventStore
from .system import RESERVED_PREFIX, queues, system_service, timers


@dataclass
class App:
    """Indexes of every store, command, action, query and projection, plus event routes."""

    services: list[Service] = field(default_factory=list)
    stores: dict[str, EventStore[Any]] = field(default_factory=dict)
    actions: dict[str, Action] = field(default_factory=dict)
    queries: dict[str, Query] = field(default_factory=dict)
    projections: dict[str, Projection] = field(default_factory=dict)
    event_routes: dict[str, list[Action]] = field(default_factory=dict)
    queue_routes: dict[str, list[Action]] = field(default_factory=dict)
    timer_actions: dict[str, Action] = field(default_factory=dict)
    _known_commands: set[Command[Any, Any]] = field(default_factory=set)

    @classmethod
    def build(cls, services: Iterable[Service]) -> App:
        """Index ``services``; a name used twice or an event type not stored is an error."""
        app = cls()
        user = list(services)
        for svc in user:
            for store in svc.stores:
                if store.name.startswith(RESERVED_PREFIX):
                    raise ConfigurationError(f"store name {store.name}: the prefix "
                                             f"{RESERVED_PREFIX!r} is reserved")
        for svc in [*user, system_service]:
            app._index(svc)
        stored_types = {et.name for s in app.stores.values() for et in s.event_types.values()}
        app._check_projections(stored_types)
        app._route_actions(stored_types)
        return app

    def _index(self, svc: Service) -> None:
        """Add a service's parts by name (a name taken by another part is an error)."""
        if any(s.name == svc.name for s in self.services):
            raise ConfigurationError(f"service {svc.name} added twice")
        self.services.append(svc)
        kinds: list[tuple[dict[str, Any], Sequence[Any]]] = [
            (self.stores, svc.stores), (self.actions, svc.actions),
            (self.queries, svc.queries), (self.projections, svc.projections)]
        for index, items in kinds:
            for item in items:
                if item.name in index and index[item.name] is not item:
                    raise ConfigurationError(f"two parts named {item.name} "
                                             f"(second in service {svc.name})")
                index[item.name] = item

    def _check_projections(self, stored_types: set[str]) -> None:
        for view in self.projections.values():
            if view.name == "events":
                raise ConfigurationError("the view name 'events' is taken by the built-in view "
                                         "of every event")
            for name in view.handlers:
                if name not in stored_types:
                    raise ConfigurationError(f"view {view.name} folds {name}, which no added "
                                             "event store declares")

    def _route_actions(self, stored_types: set[str]) -> None:
        """Which actions each event type, queue and timer triggers."""
        for action in self.actions.values():
            if (trig := action.event_trigger) is not None:
                for et in trig.event_types:
                    if et.name not in stored_types:
                        raise ConfigurationError(f"action {action.name} listens to {et.name}, "
                                                 "which no added event store declares")
                    self.event_routes.setdefault(et.name, []).append(action)
            if (qt := action.queue_trigger) is not None:
                self.queue_routes.setdefault(qt.queue, []).append(action)
            if action.timer_trigger is not None:
                self.timer_actions[action.name] = action

    # -- look-ups ---------------------------------------------------------------------------
    def store(self, store: EventStore[Any] | str) -> EventStore[Any]:
        """The added store (by object or name); :class:`NotFound` otherwise."""
        name = store if isinstance(store, str) else store.name
        found = self.stores.get(name)
        if found is None or (not isinstance(store, str) and found is not store):
            raise NotFound(f"event store {name!r} is not part of this runtime's services")
        return found

    def command(self, command: Command[Any, Any]) -> Command[Any, Any]:
        """Check the command belongs to an added store."""
        if command in self._known_commands:
            return command
        if not isinstance(command, Command):
            raise ConfigurationError(f"{command!r} is not a command")
        store = self.store(command.store)
        if store.commands.get(command.name) is not command:
            raise NotFound(f"command {command.qualname} is not registered")
        self._known_commands.add(command)
        return command

    def action(self, action: Action | str) -> Action:
        """The added action (by object or name)."""
        name = action if isinstance(action, str) else action.name
        found = self.actions.get(name)
        if found is None:
            raise NotFound(f"action {name!r} is not part of this runtime's services")
        return found

    def route(self, record: StoredEvent) -> list[Action]:
        """The actions an event triggers."""
        if record.store == queues.name:
            queue = record.payload.get("queue")
            return self.queue_routes.get(queue, []) if isinstance(queue, str) else []
        if record.store == timers.name:
            action = self.timer_actions.get(record.payload.get("action", ""))
            return [action] if action is not None else []
        return self.event_routes.get(record.type, [])

    def action_input(self, action: Action, record: StoredEvent) -> Any:
        """The input an action gets for a log record: event, queue message or timer tick."""
        if record.store == queues.name:
            return action.validate_input(record.payload["message"])
        if record.store == timers.name:
            return TimerTick(period=record.payload["period"],
                             scheduled_at=datetime.fromisoformat(record.payload["scheduled_at"])
                             .astimezone(UTC))
        return self.store(record.store).decode(record)

    @property
    def has_log_consumers(self) -> bool:
        """Whether anything listens to the log (events, queues or timers)."""
        return bool(self.event_routes or self.queue_routes or self.timer_actions)
