"""HTTP for talix-ray: a FastAPI app generated from the services, served by Ray Serve
(``serve run serve_app:app``) or by uvicorn on the LocalRuntime (``talix serve --local``)."""

from .app import create_app
from .auth import Authenticator
from .problems import Problem
from .settings import ApiKey, HttpSettings, hash_key

__all__ = ["ApiKey", "Authenticator", "HttpSettings", "Problem", "create_app", "hash_key",
           "serve_deployment"]


def __getattr__(name: str) -> object:
    if name == "serve_deployment":  # imported on use: Ray Serve is an optional extra
        from .deployment import serve_deployment

        return serve_deployment
    raise AttributeError(f"module 'talix_ray.serve' has no attribute {name!r}")
