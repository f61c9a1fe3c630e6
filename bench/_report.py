"""Benchmark records, timing helpers and the table printer."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Measurement:
    """One timed case: ``seconds`` is the best of ``repeats`` runs."""

    suite: str
    case: str
    contender: str
    seconds: float
    per_item_us: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def best_of(repeats: int, fn: Callable[[], Any]) -> float:
    """Best wall time of ``repeats`` calls (the least disturbed by the machine)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    """Print a plain-text table with right-aligned columns after the first."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n## {title}")
    line = "  ".join(
        h.ljust(widths[i]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(header)
    )
    print(line)
    print("-" * len(line))
    for row in rows:
        print(
            "  ".join(
                str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i])
                for i, c in enumerate(row)
            )
        )


def write_json(path: Path, measurements: list[Measurement]) -> None:
    """Write every measurement as JSON (the directory is created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(m) for m in measurements], indent=2) + "\n")
    print(f"\nwrote {path}")
