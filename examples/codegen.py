"""An example pipeline: mixed async and blocking work, run on the embedded default.

It builds a small "generate code from API specs" DAG: fetching specs is async
I/O (simulated with ``trio.sleep``), parsing and hashing are blocking CPU work
(run in worker threads), rendering is async, and a final report joins
everything. Run it with::

    python examples/pipeline.py            # waves mode (the default)
    python examples/pipeline.py --eager    # start each task as soon as it can

It prints one line per event on stderr and a summary on stdout.
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any

import structlog
import trio

from dagwave import DependencyAwareScheduler, ExecutionResult, SharedState

SERVICES = {"users": 0.30, "orders": 0.45, "billing": 0.20, "search": 0.35}


def make_fetch(service: str, latency: float) -> Any:
    async def fetch(context: Any) -> str:
        await trio.sleep(latency)  # network I/O
        spec = {"service": service, "version": context["api_version"], "endpoints": 12}
        return json.dumps(spec)

    return fetch


def parse(context: Any) -> dict[str, Any]:
    """Blocking CPU work: runs in a worker thread."""
    (raw,) = context["dependency_results"].values()
    spec: dict[str, Any] = json.loads(raw)
    digest = hashlib.sha256(raw.encode())
    for _ in range(20_000):  # a little real hashing work
        digest = hashlib.sha256(digest.digest())
    spec["fingerprint"] = digest.hexdigest()[:12]
    return spec


async def render(context: Any) -> str:
    (spec,) = context["dependency_results"].values()
    await trio.sleep(0.1)  # templating service
    context.state.modify("files_written", lambda n: n + 1, default=0)
    return f"{spec['service']}_client.py ({spec['fingerprint']})"


def report(context: Any) -> str:
    files = sorted(context["dependency_results"].values())
    return f"{len(files)} clients generated: " + ", ".join(files)


def build(mode: str) -> DependencyAwareScheduler:
    scheduler = DependencyAwareScheduler(
        state=SharedState({"api_version": "v2"}), max_concurrent=4, mode=mode  # type: ignore[arg-type]
    )
    for service, latency in SERVICES.items():
        scheduler.add_task(f"fetch_{service}", make_fetch(service, latency), timeout_seconds=5)
        scheduler.add_task(f"parse_{service}", parse, dependencies=[f"fetch_{service}"])
        scheduler.add_task(
            f"render_{service}", render, dependencies=[f"parse_{service}"], retry_count=2
        )
    scheduler.add_task("report", report, dependencies=[f"render_{s}" for s in SERVICES])
    return scheduler


def summary(result: ExecutionResult) -> str:
    state = result.state if result.state is not None else SharedState()
    lines = [f"{'wave':>4}  {'tasks':>5}  {'status':<10} {'ms':>8}"]
    for wave in result.wave_summary:
        lines.append(
            f"{wave['wave_number']:>4}  {wave['task_count']:>5}  {wave['status'].upper():<10} "
            f"{wave['duration_ms'] or 0:>8.1f}"
        )
    lines.append("")
    for tid, rec in result.tasks.items():
        lines.append(
            f"{tid:<16} {rec.status.name:<10} attempts={rec.attempts} {rec.duration_ms:7.1f} ms"
        )
    lines += [
        "",
        f"tasks: {result.successful_tasks}/{result.total_tasks} completed, "
        f"{result.failed_tasks} failed, {result.skipped_tasks} skipped",
        f"wall {result.total_duration_ms:.0f} ms, "
        f"sequential {result.sequential_duration_ms:.0f} ms, "
        f"speedup {result.speedup_ratio:.2f}x",
        "critical path: " + " -> ".join(result.critical_path),
        f"files written (shared state): {state.get('files_written')}",
        str(result.task_results.get("report", "")),
    ]
    return "\n".join(lines)


def main() -> int:
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    mode = "eager" if "--eager" in sys.argv[1:] else "waves"
    result = build(mode).run()
    print(summary(result))
    return 0 if result.succeeded else 1


if __name__ == "__main__":
    raise SystemExit(main())
