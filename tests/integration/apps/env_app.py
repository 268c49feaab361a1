"""An app whose one step reports the token variables it (and so its children) can see."""

from __future__ import annotations

import os

import edge

app = edge.App("env")


@app.step()
def token_variables() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if "TOKEN" in k and not k.endswith("_FILE")}


@app.workflow()
def environment() -> dict[str, str]:
    return token_variables()
