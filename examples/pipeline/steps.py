"""Python steps of the example pipeline: async I/O and blocking CPU work."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import trio

SERVICES = {"users": 0.30, "orders": 0.45, "billing": 0.20}
HERE = Path(__file__).parent


async def fetch_specs(context: Any) -> dict[str, str]:
    """Async I/O: 'download' every API spec concurrently."""
    specs: dict[str, str] = {}

    async def one(name: str, latency: float) -> None:
        await trio.sleep(latency)
        specs[name] = json.dumps({"service": name, "endpoints": 12})

    async with trio.open_nursery() as nursery:
        for name, latency in SERVICES.items():
            nursery.start_soon(one, name, latency)
    return specs


def fingerprint(context: Any) -> dict[str, str]:
    """Blocking CPU work (runs in a worker thread): hash each spec many times."""
    specs = context["dependency_results"]["fetch"]
    prints = {}
    for name, raw in specs.items():
        digest = hashlib.sha256(raw.encode())
        for _ in range(30_000):
            digest = hashlib.sha256(digest.digest())
        prints[name] = digest.hexdigest()[:12]
    return prints


async def render(context: Any) -> list[str]:
    """Async: write one client module per service into build/."""
    prints = context["dependency_results"]["fingerprint"]
    out = HERE / "build"
    await trio.Path(out).mkdir(exist_ok=True)
    written = []
    for name, mark in sorted(prints.items()):
        path = trio.Path(out / f"{name}_client.py")
        await path.write_text(f"# generated from the {name} spec ({mark})\n")
        written.append(path.name)
    return written
