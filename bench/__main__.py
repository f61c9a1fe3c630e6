"""Command line: ``python -m bench {graph,run,all} [--quick] [--only SECTION...] [--json PATH]``."""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import structlog


def main(argv: list[str] | None = None) -> int:
    from bench import graph, run

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("suite", choices=["graph", "run", "all"])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument(
        "--json", type=Path, help="write results here (default bench/results/<suite>.json)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(run.SECTIONS),
        default=[],
        metavar="SECTION",
        help=f"run only these sections of the run suite ({', '.join(run.SECTIONS)})",
    )
    args = parser.parse_args(argv)
    print(f"# python {platform.python_version()} on {platform.machine()}, {platform.system()}")

    measurements = []
    if args.suite in ("graph", "all") and not args.only:
        measurements += graph.main(quick=args.quick)
    if args.suite in ("run", "all"):
        measurements += run.main(quick=args.quick, only=args.only)
    structlog.reset_defaults()
    from bench._report import write_json

    target = args.json or Path(__file__).parent / "results" / f"{args.suite}.json"
    write_json(target, measurements)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
