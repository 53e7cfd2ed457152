"""The engine: entity hosting, dispatching and runtimes, in plain asyncio."""

from .context import ActionContext, CommandCtx, Registry
from .invocation import Invocation, Middleware
from .local import LocalRuntime
from .runtime import Aggregate, Page, Runtime, simulate

__all__ = ["ActionContext", "Aggregate", "CommandCtx", "Invocation", "LocalRuntime",
           "Middleware", "Page", "Registry", "Runtime", "simulate"]
