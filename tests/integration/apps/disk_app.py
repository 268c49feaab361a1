"""An app for the disk-full node test: workflows whose checkpoints fill a small disk."""

from __future__ import annotations

import time

import edge

app = edge.App("disk")

CHUNK = 8_000


@app.step()
def chunk(i: int) -> str:
    time.sleep(0.02)  # a slow step: keeps many runs in flight while the disk fills
    return f"{i}:" + "x" * CHUNK


@app.workflow()
def fill(n: int, pad: str = "") -> int:
    return sum(len(chunk(i)) for i in range(n))
