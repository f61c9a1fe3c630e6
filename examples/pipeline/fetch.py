"""Download one API spec from the local mirror: ``python3 fetch.py SERVICE``.

The mirror is ``mirror/<service>.json`` beside this file; its ``latency``
stands in for the network round trip (the machine running the example may be
offline), so the download takes that long and then writes ``specs/<service>.json``.
The same input always gives the same file. ``FETCH_FAIL=orders,auth`` makes
those services fail (an outage, to try ``dagwave run --resume`` on).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def main(service: str) -> int:
    if service in os.environ.get("FETCH_FAIL", "").split(","):
        print(f"{service}: the mirror is down (FETCH_FAIL)", file=sys.stderr)
        return 1
    source = HERE / "mirror" / f"{service}.json"
    try:
        spec = json.loads(source.read_text())
    except FileNotFoundError:
        print(f"no spec for {service!r} on the mirror ({source})", file=sys.stderr)
        return 1
    time.sleep(spec.pop("latency"))  # the network, as far as this example goes
    target = HERE / "specs" / f"{service}.json"
    target.parent.mkdir(exist_ok=True)
    text = json.dumps(spec, indent=2, sort_keys=True) + "\n"
    target.write_text(text)
    print(f"fetched {service}: {len(spec['endpoints'])} endpoints, {len(text)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
