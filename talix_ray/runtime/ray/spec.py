"""What every process of a RayRuntime needs to rebuild the application.

Services travel as *locators* (module and attribute) so each process imports the user's own
code and object identities hold inside it; a service that cannot be imported (defined in a
function or in ``__main__``) travels by value. Shared services and middleware travel pickled.
Storage travels as its configuration: each process opens its own connections.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, cast

from ray import cloudpickle

from ...engine.app import App
from ...engine.context import Registry
from ...engine.runtime import default_services
from ...journal import ObjectStoreJournal, WriterPolicy
from ...model.errors import ConfigurationError
from ...model.service import Service
from ...objectstore import ObjectStore, S3Options, open_store
from ...secrets import SecretRef, share
from .handles import ActorClass


def actor_class(cls: type) -> ActorClass:
    """A class decorated with ``@ray.remote`` as what it is at run time, an actor class
    (with ``.options`` and ``.remote``); type checkers see the plain class."""
    return cast(ActorClass, cls)  # what @ray.remote made of it


def locate(service: Service) -> tuple[str, str] | None:
    """``(module, attribute)`` under which ``service`` can be imported, if any: the first of
    :meth:`Service.home_modules` that holds it as an attribute, else (no explicit ``module``)
    the first module imported in this process that does — an application module assembling
    services from parts defined elsewhere."""
    for name in service.home_modules():
        if name == "__main__":  # a worker's __main__ is another program
            continue
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        found = _attribute(module, service)
        if found is not None:
            return name, found
    if service.module is not None:
        return None
    for name, module in list(sys.modules.items()):
        if name == "__main__" or module is None:
            continue
        found = _attribute(module, service)
        if found is not None:
            return name, found
    return None


def _attribute(module: ModuleType, service: Service) -> str | None:
    """The name under which ``module`` holds ``service``, if it does."""
    for attr, value in list(vars(module).items()):
        if value is service:
            return attr
    return None


@dataclass(repr=False)
class AppSpec:
    """The application and its settings, as shipped to shard, entity and dispatcher actors.

    It carries no secret: ``store_options`` holds the S3 secret key as a
    :class:`~talix_ray.secrets.SecretRef` (each process fetches the value from the Ray
    cluster's KV store), and its repr names only the application and its store.
    """

    app: str
    namespace: str
    store_url: str
    store_options: S3Options
    partitions: int
    shards: int
    services: list[tuple[str, str] | bytes]
    registrations: bytes
    middleware: bytes
    snapshot_every: int | None
    max_active: int
    policy: WriterPolicy
    idle_timeout: float = 60.0
    actor_options: dict[str, Any] = field(default_factory=dict)
    poll_interval: float = 1.0
    max_concurrency: int = 256
    views: list[str] = field(default_factory=list)
    remember_commands: int = 256
    executors: int = 2

    def __post_init__(self) -> None:
        secret = self.store_options.get("secret_key")
        if secret is not None and not isinstance(secret, SecretRef):
            # a secret value would be pickled into every actor's arguments
            self.store_options = {**self.store_options, "secret_key": share(secret)}

    def __repr__(self) -> str:
        return (f"AppSpec(app={self.app!r}, namespace={self.namespace!r}, "
                f"store_url={self.store_url!r}, partitions={self.partitions}, "
                f"shards={self.shards})")

    @classmethod
    def pack_services(cls, services: list[Service]) -> list[tuple[str, str] | bytes]:
        """Locators where possible, pickles otherwise."""
        out: list[tuple[str, str] | bytes] = []
        for s in services:
            where = locate(s)
            if where is None:
                try:
                    where = cloudpickle.dumps(s)
                except Exception as exc:
                    raise ConfigurationError(
                        f"service {s.name} cannot travel to Ray workers: it is not importable "
                        f"(looked in {', '.join(s.home_modules()) or 'no module'}) and not "
                        f"picklable ({exc}); define it at module level of an importable module "
                        "or pass Service(module=...)"
                    ) from exc
            out.append(where)
        return out

    def load_services(self) -> list[Service]:
        """Import (or unpickle) the services in this process."""
        out = []
        for item in self.services:
            if isinstance(item, bytes):
                out.append(cloudpickle.loads(item))
                continue
            module, attr = item
            try:
                svc = getattr(importlib.import_module(module), attr)
            except Exception as exc:
                raise ConfigurationError(f"cannot import service {module}.{attr} in this "
                                         f"Ray worker: {exc}; is the package installed or on "
                                         "PYTHONPATH for the workers?") from exc
            out.append(svc)
        return out

    def build(self, store: ObjectStore | None = None) -> tuple[App, Registry, list[Any]]:
        """The App, the shared-service registry and the middleware, for this process (files
        go to ``store``, by default a new connection to the application's store)."""
        app = App.build(self.load_services())
        registry = Registry()
        for kind, impl in cloudpickle.loads(self.registrations):
            registry.register(kind, impl)
        for kind, impl in default_services(store if store is not None else self.open_store()):
            if not registry.has(kind):
                registry.register(kind, impl)
        return app, registry, cloudpickle.loads(self.middleware)

    def open_store(self) -> ObjectStore:
        """A new connection to the application's object store."""
        return open_store(self.store_url, **self.store_options)

    def journal(self, owned: list[int] | None) -> ObjectStoreJournal:
        """A journal on the store writing ``owned`` partitions (``[]``: read only)."""
        return ObjectStoreJournal(self.open_store(), partitions=self.partitions, owned=owned,
                                  policy=self.policy, poll_interval=self.poll_interval)

    def shard_of(self, partition: int) -> int:
        """The shard actor that writes ``partition``."""
        return partition % self.shards

    def partitions_of(self, shard: int) -> list[int]:
        """The partitions shard ``shard`` writes."""
        return [p for p in range(self.partitions) if p % self.shards == shard]

    def shard_name(self, shard: int) -> str:
        """``talix:{app}:shard:{i}``."""
        return f"talix:{self.app}:shard:{shard}"

    def entity_name(self, store: str, aggregate_id: str) -> str:
        """``talix:{app}:{store}:{id}`` — a dedicated aggregate's actor."""
        return f"talix:{self.app}:{store}:{aggregate_id}"

    @property
    def dispatcher_name(self) -> str:
        """``talix:{app}:dispatcher``."""
        return f"talix:{self.app}:dispatcher"

    def view_name(self, view: str) -> str:
        """``talix:{app}:view:{name}`` — a view's runner actor."""
        return f"talix:{self.app}:view:{view}"

    def long_lived_options(self) -> dict[str, Any]:
        """Options of the application's long-lived actors (shards, dispatcher, executors,
        views): named in its namespace, detached, restarted by Ray, joined if they run."""
        return {"namespace": self.namespace, "lifetime": "detached", "get_if_exists": True,
                "max_restarts": -1, "max_task_retries": 0, "num_cpus": 0,
                **self.actor_options}

    def executor_name(self, i: int) -> str:
        """``talix:{app}:executor:{i}`` — runs light actions for the dispatcher."""
        return f"talix:{self.app}:executor:{i}"

    @property
    def consumer_names(self) -> list[str]:
        """The actors a shard tells when a segment lands: the dispatcher and the views."""
        return [self.dispatcher_name, *(self.view_name(v) for v in self.views)]
