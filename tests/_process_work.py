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
