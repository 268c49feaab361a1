"""HTTP routes for workflow management beyond the core verbs (fork, schedules,
published events, queues). Each route calls a Node verb; errors are EdgeErrors."""

from __future__ import annotations

from edge.api.routes import Route

ROUTES: tuple[Route, ...] = ()
