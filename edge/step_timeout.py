"""Step timeouts: one attempt of a ``@app.step(timeout=...)`` body on a helper thread.

Invariants:
- an attempt that overruns raises TimeoutError on the worker thread, which then
  applies the step's retry policy exactly as for any other error;
- the overrun body's late result (or error) is written into an object nobody reads
  any more: it is never recorded, never returned;
- thread hazard (documented for users): Python cannot stop a thread, so the
  overrun body runs on to its end, possibly alongside its retry; both see the same
  idempotency key, which is what downstream deduplication needs. A body that never
  returns leaks its thread;
- steps without a timeout never come here: the per-step hot path is unchanged.
"""

from __future__ import annotations

import threading
from typing import Any

from edge.defs import StepDef
from edge.run_context import RunContext, set_current_run


class _Attempt:
    __slots__ = ("done", "result", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


def run_with_timeout(run: RunContext, sd: StepDef, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> Any:
    """Run one attempt of a step with ``timeout`` on a helper thread.

    An attempt that overruns raises TimeoutError here (the retry policy decides what
    follows); its late result or error lands in an _Attempt nobody reads, so it is
    never recorded. Thread hazard: Python cannot stop a thread, so the overrun body
    keeps running to its end, possibly alongside its retry; both carry the same
    idempotency key. The timeout is real (monotonic) time, also under a FakeClock.
    """
    attempt = _Attempt()
    ctx = RunContext(run.rt, run.wf, run.token, run.ops, seq=run.seq, step_seq=run.step_seq,
                     attempt=run.attempt, in_step=True)

    def body() -> None:
        set_current_run(ctx)
        try:
            attempt.result = sd.fn(*args, **kwargs)
        except BaseException as exc:  # handed to the worker thread, or dropped if late
            attempt.error = exc
        finally:
            set_current_run(None)
            attempt.done.set()

    threading.Thread(target=body, name=f"edge-step-{sd.name}", daemon=True).start()
    if not attempt.done.wait(sd.timeout):
        raise TimeoutError(f"step {sd.name} attempt {run.attempt} overran its "
                           f"{sd.timeout:g} s timeout")
    if attempt.error is not None:
        raise attempt.error
    return attempt.result
