"""Module-level executors for the process adapter tests (they must be picklable)."""

from __future__ import annotations

import os
import threading
import time
from typing import Any


def pid_and_square(context: dict[str, Any]) -> tuple[int, int]:
    return os.getpid(), context["task_metadata"]["n"] ** 2


def add_dependencies(context: dict[str, Any]) -> int:
    return sum(value[1] for value in context["dependency_results"].values())


def read_state(context: dict[str, Any]) -> Any:
    return context["greeting"]


def fail(context: dict[str, Any]) -> None:
    raise ValueError(f"bad input in {context['task_id']}")


def spin_forever(context: dict[str, Any]) -> None:
    while True:
        time.sleep(0.01)


def unpicklable_result(context: dict[str, Any]) -> Any:
    return threading.Lock()


def count(context: dict[str, Any]) -> int:
    total = 0
    for i in range(context["task_metadata"]["n"]):
        total += i * i
    return total


class LockedError(Exception):
    """An exception holding a lock: it cannot be pickled."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


class KeywordError(Exception):
    """Pickles, but cannot be rebuilt from its args (a required keyword)."""

    def __init__(self, *, code: int) -> None:
        super().__init__(f"code {code}")


def fail_holding_lock(context: dict[str, Any]) -> None:
    raise LockedError(f"stuck in {context['task_id']}")


def fail_needing_keyword(context: dict[str, Any]) -> None:
    raise KeywordError(code=7)


def fail_while_handling_locked(context: dict[str, Any]) -> None:
    try:
        raise LockedError("first")
    except LockedError:
        raise ValueError("second") from None


# -- for the dask tests (worker processes import them from here) ------------------


def _unpickled(path: str, payload: bytes) -> Tracked:
    with open(path, "a") as log:  # in whichever process unpickles it
        log.write(f"{os.getpid()}\n")
    return Tracked(path, payload)


class Tracked:
    """A result that writes the pid of every process that unpickles it to ``path``."""

    def __init__(self, path: str, payload: bytes) -> None:
        self.path = path
        self.payload = payload

    def __reduce__(self) -> tuple[Any, ...]:
        return (_unpickled, (self.path, self.payload))


def make_tracked(context: dict[str, Any]) -> Tracked:
    meta = context["task_metadata"]
    return Tracked(meta["log"], b"x" * meta["size"])


def tracked_size(context: dict[str, Any]) -> int:
    return sum(len(t.payload) for t in context["dependency_results"].values())


def blob(context: dict[str, Any]) -> bytes:
    return b"y" * context["task_metadata"]["size"]


def dependency_sizes(context: dict[str, Any]) -> int:
    return sum(len(value) for value in context["dependency_results"].values())


def worker_address(context: dict[str, Any]) -> str:
    import distributed

    return str(distributed.get_worker().address)


async def give_gpu(dask_worker: Any) -> None:
    await dask_worker.set_resources(gpu=1)
