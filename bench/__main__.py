"""Command line: ``python -m bench {graph,run,all} [--quick] [--json PATH]``."""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import structlog


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("suite", choices=["graph", "run", "all"])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument(
        "--json", type=Path, help="write results here (default bench/results/<suite>.json)"
    )
    args = parser.parse_args(argv)
    print(f"# python {platform.python_version()} on {platform.machine()}, {platform.system()}")
    from bench import graph, run

    measurements = []
    if args.suite in ("graph", "all"):
        measurements += graph.main(quick=args.quick)
    if args.suite in ("run", "all"):
        measurements += run.main(quick=args.quick)
    structlog.reset_defaults()
    from bench._report import write_json

    target = args.json or Path(__file__).parent / "results" / f"{args.suite}.json"
    write_json(target, measurements)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
