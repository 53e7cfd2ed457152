"""The development stack of ``talix dev`` and what demos use.

``talix dev`` runs an application on this machine as a cluster runs it: the log on an
embedded S3 server (SeaweedFS), aggregates and tasks on a local Ray (loopback, token
authentication), the HTTP API on Ray Serve; then it runs the application's demo
(:mod:`talix_ray.dev.demo`; this repository's example uploads generated receipts through the
API). ``talix demo`` runs a demo against a stack that runs already.
"""

from .client import ApiClient, ApiError
from .demo import Demo, DemoOutcome, DemoSession, load_demo
from .keys import dev_api_key
from .stack import DevStack

__all__ = ["ApiClient", "ApiError", "Demo", "DemoOutcome", "DemoSession", "DevStack",
           "dev_api_key", "load_demo"]
