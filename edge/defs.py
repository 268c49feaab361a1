"""What the decorators register: a step's and a workflow's definition.

A leaf of the engine layer (imports only the standard library), so the runtime, the
scheduler and the engine share one definition without importing each other.
"""

from __future__ import annotations

import inspect
import random as _random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StepDef:
    fn: Callable[..., Any]
    name: str
    retries: int = 0
    backoff: float = 2.0
    initial_delay: float = 1.0
    max_delay: float = 60.0
    jitter: bool = True
    non_retryable: tuple[type[BaseException], ...] = ()
    replicated: bool = False
    timeout: float | None = None
    is_async: bool = False  # an ``async def`` body: runs on the node's event loop (aio_run.py)

    def delay(self, attempt: int, rng: _random.Random) -> float:
        """Exponential backoff with full jitter in [50%, 100%] of the capped delay."""
        base = min(self.max_delay, self.initial_delay * (self.backoff ** (attempt - 1)))
        return base * (0.5 + rng.random() / 2) if self.jitter else base


@dataclass(frozen=True)
class WorkflowDef:
    fn: Callable[..., Any]
    name: str
    queue: str | None
    timeout: float | None
    signature: inspect.Signature
    is_async: bool = False  # an ``async def`` workflow: the worker hands it to edge/aio.py

