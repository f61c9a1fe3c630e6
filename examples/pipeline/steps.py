"""Python steps of the example pipeline: blocking CPU work and async file writes."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import trio

HERE = Path(__file__).parent


def fingerprint(context: Any) -> dict[str, str]:
    """Blocking CPU work (runs in a worker thread): hash each downloaded spec many times."""
    prints = {}
    for spec in sorted((HERE / "specs").glob("*.json")):
        digest = hashlib.sha256(spec.read_bytes())
        for _ in range(20_000):
            digest = hashlib.sha256(digest.digest())
        prints[spec.stem] = digest.hexdigest()[:12]
    return prints


async def render(context: Any) -> list[str]:
    """Async: write one client module per service into build/."""
    prints = context["dependency_results"]["fingerprint"]
    out = trio.Path(HERE / "build")
    await out.mkdir(exist_ok=True)
    written = []
    for name, mark in sorted(prints.items()):
        path = out / f"{name}_client.py"
        source = f'"""Client of the {name} API (spec {mark})."""\n\nSERVICE = {name!r}\n'
        await path.write_text(source)
        written.append(path.name)
    return written
