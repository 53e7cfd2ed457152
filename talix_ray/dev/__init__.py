"""The development stack of ``talix dev`` and the client of ``talix demo``.

``talix dev`` runs the example application on this machine as a cluster runs it: the log on
an embedded S3 server (SeaweedFS), aggregates and OCR tasks on a local Ray (loopback, token
authentication), the HTTP API on Ray Serve; then it feeds generated receipts through that
API. ``talix demo`` uploads receipts to a stack that runs already.
"""

from .client import ApiClient, ApiError
from .keys import dev_api_key
from .stack import DevStack

__all__ = ["ApiClient", "ApiError", "DevStack", "dev_api_key"]
