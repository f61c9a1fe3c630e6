"""The ``dagwave`` command line (also ``python -m engine``).

Subcommands:

* ``dagwave analyze PLAN.json [--workers K] [--json]``: static analysis of a
  plan in the Rust crate's JSON form.

A user error (missing file, bad JSON, wrong shape) prints one line on stderr
and exits with status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from engine import __version__
from engine._analysis import ScheduleAnalysis, ScheduleGraph, analyze_schedule

__all__ = ["main"]

EXIT_USAGE = 2


class UserError(Exception):
    """A problem with the user's input: printed as one line, exit status 2."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dagwave",
        description="Dependency-aware parallel task engine on trio.",
    )
    parser.add_argument("--version", action="version", version=f"dagwave {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    analyze = sub.add_parser(
        "analyze",
        help="static analysis of a plan: critical path, makespan, levels, bounds",
        description=(
            "Analyse a plan given as JSON: "
            '{"units": [{"id": "a", "duration": 3, "depends_on": ["b"]}, ...]}. '
            "Reports the critical path, makespan, topological levels, width, the serial "
            "flag, and for K workers a lower bound and a list-scheduling estimate."
        ),
    )
    analyze.add_argument("plan", help="path to the plan JSON file ('-' for stdin)")
    analyze.add_argument(
        "--workers",
        "-k",
        type=_positive_int,
        default=2,
        metavar="K",
        help="number of workers for the bound and estimate (default: 2)",
    )
    analyze.add_argument("--json", action="store_true", help="print the analysis as JSON")
    return parser


def _load_plan(path: str) -> ScheduleGraph:
    try:
        if path == "-":
            return ScheduleGraph.from_json(sys.stdin.read())
        return ScheduleGraph.load(path)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not a plan file") from None
    except PermissionError:
        raise UserError(f"{path}: permission denied") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except (ValueError, TypeError) as exc:
        # ScheduleGraph.load already names the file in its messages.
        raise UserError(f"<stdin>: {exc}" if path == "-" else str(exc)) from None


def _fmt(value: float | int) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _report(analysis: ScheduleAnalysis, graph: ScheduleGraph, workers: int) -> str:
    durations = {u.id: u.duration for u in graph.units}
    lines = [f"units: {len(graph.units)}"]
    if analysis.has_cycle:
        assert analysis.cycle_path is not None
        lines.append(
            "cycle: "
            + " -> ".join(analysis.cycle_path)
            + "  (metrics below cover the acyclic part only)"
        )
    if analysis.critical_path:
        chain = " -> ".join(f"{u} ({_fmt(durations[u])})" for u in analysis.critical_path)
    else:
        chain = "(none)"
    lines += [
        f"critical path: {chain}",
        f"makespan: {_fmt(analysis.makespan)}",
        f"total work: {_fmt(analysis.total_work)}",
        f"max parallelism: {analysis.max_parallelism}",
        f"serial: {'yes' if analysis.serial else 'no'}",
        f"levels: {len(analysis.levels)}",
    ]
    for number, level in enumerate(analysis.levels, start=1):
        lines.append(f"  {number}: {', '.join(level)}")
    lines += [
        f"with {workers} worker(s):",
        f"  lower bound: {_fmt(analysis.lower_bound(workers))}",
        f"  estimate (critical-path-first list scheduling): "
        f"{_fmt(analysis.estimate_makespan(workers))}",
    ]
    return "\n".join(lines)


def _analyze(args: argparse.Namespace) -> int:
    graph = _load_plan(args.plan)
    analysis = analyze_schedule(graph)
    if args.json:
        print(json.dumps(analysis.to_dict(args.workers), indent=2))
    else:
        print(_report(analysis, graph, args.workers))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Args:
        argv: arguments without the program name (default ``sys.argv[1:]``).
    """
    args = _parser().parse_args(argv)
    handlers: dict[str, Any] = {"analyze": _analyze}
    try:
        return int(handlers[args.command](args))
    except UserError as exc:
        print(f"dagwave {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
