"""A Ray instance that talix-ray starts on this machine: every socket on loopback, token
authentication on, with a token of its own.

Ray picks the address its processes bind to (GCS, raylet, object manager, workers, agents)
from the node IP, which a new local node takes from ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER``:
``0`` means 127.0.0.1. Ray reads that variable once, when ``ray`` is imported, so setting it
later (what talix-ray did before) changes nothing in this process: here it is set for the
processes Ray spawns and for the value this process already read. Passing
``_node_ip_address="127.0.0.1"`` does not help either: Ray replaces a loopback node address
by the machine's external one unless that same switch is off.

Authentication: ``RAY_AUTH_MODE=token`` makes every Ray gRPC and HTTP endpoint demand
``Authorization: Bearer <token>``; the token comes from ``RAY_AUTH_TOKEN``, else the file in
``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token`` (which ``ray.init`` would create
world-readable). talix-ray generates its own token file (mode 0600) in its data directory and
points ``RAY_AUTH_TOKEN_PATH`` at it; the processes Ray starts inherit the variables, and a
second driver joins with the same two variables.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from typing import Any

import ray

from ...model.errors import ConfigurationError
from ...privatefiles import private_text

TOKEN_FILE = "auth_token"


def token_file(directory: str | os.PathLike[str]) -> Path:
    """The Ray token in ``directory`` (created 0700), generated on first use with mode 0600;
    an existing token whose mode lets others read it is refused."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / TOKEN_FILE
    # what Ray's own generator makes: 256 bits
    if not private_text(path, lambda: secrets.token_hex(32)).strip():
        raise ConfigurationError(f"the Ray token {path} is empty; delete it")
    return path


def joins_a_cluster(ray_init: dict[str, Any]) -> bool:
    """Whether ``ray.init(**ray_init)`` is meant to join a running cluster (an ``address``, or
    ``RAY_ADDRESS`` in the environment) rather than start a local instance."""
    return bool(ray_init.get("address") or os.environ.get("RAY_ADDRESS"))


def use_local_ray_environment(token: Path) -> None:
    """Make this process, and every process Ray starts from it, use loopback and ``token``."""
    from ray._private import ray_constants
    from ray._raylet import (  # type: ignore[attr-defined]  # compiled, no stubs name them
        AuthenticationTokenLoader,
        Config,
    )

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False  # what Ray would have read from it at import
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(Path(token).resolve())
    os.environ.pop("RAY_AUTH_TOKEN", None)  # it would take precedence over the file
    Config.initialize("")  # Ray's native config re-reads RAY_AUTH_MODE
    AuthenticationTokenLoader.instance().reset_cache()


def init_local_ray(token_dir: str | os.PathLike[str], **ray_init: Any) -> None:
    """Start a new local Ray instance bound to loopback with token authentication (the token
    in ``token_dir``); ``ray_init`` goes to ``ray.init`` (not ``address``: that joins a
    cluster)."""
    if "address" in ray_init:
        raise ConfigurationError("init_local_ray starts a new local instance; to join a "
                                 "cluster call ray.init(address=...) yourself")
    if ray.is_initialized():
        raise ConfigurationError("Ray is already initialized in this process")
    use_local_ray_environment(token_file(token_dir))
    # "local": a new instance even when another one runs on this machine (ray.init() would
    # join the last one `ray start` made, with its own bind address and token)
    ray.init(address="local", **{"include_dashboard": False, **ray_init})
    node_ip = ray.util.get_node_ip_address()
    if not ipaddress.ip_address(node_ip).is_loopback:
        ray.shutdown()
        raise ConfigurationError(f"Ray chose the node address {node_ip}, not loopback; "
                                 "refusing to run it reachable from the network")


__all__ = ["init_local_ray", "joins_a_cluster", "token_file", "use_local_ray_environment"]
