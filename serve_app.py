"""The example application over HTTP on Ray Serve.

    serve run serve_app:app                   # serve it (a local Ray, or RAY_ADDRESS)
    serve build serve_app:app -o serve.yaml   # its Serve config, for `serve deploy`

Each replica builds the runtime with ``services.app:build_ray_runtime`` from its own
``TALIX_*`` environment (store, API keys or JWT settings) and joins the application's actors.
"""

from talix_ray.serve import serve_deployment

app = serve_deployment("services.app:build_ray_runtime")
