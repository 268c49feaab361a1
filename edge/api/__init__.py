"""The HTTP API a node serves: JSON verbs under /v1, /metrics, /healthz, /readyz, /openapi.json.

``server.py`` owns the transport (stdlib http.server, request limits,
auth, the error object); ``routes.py`` owns the verbs and their validation;
``models.py`` declares their shapes; ``spec.py`` generates /openapi.json from the route table.
"""

from edge.api.server import ApiServer

__all__ = ["ApiServer"]
