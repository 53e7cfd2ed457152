"""The RayRuntime: aggregates in named Ray actors, actions as Ray tasks."""

from .runtime import RayRuntime, kill_actors

__all__ = ["RayRuntime", "kill_actors"]
