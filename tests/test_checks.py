"""One argument-check helper, one message shape: "'x' must be <rule> (got ...)"."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest

from dagwave import RetryPolicy, SharedState
from dagwave._checks import check_int, check_number, check_type
from dagwave.adapters.process import ProcessAdapter
from dagwave.adapters.subprocess import Command
from dagwave.adapters.thread import ThreadAdapter

ROOT = Path(__file__).resolve().parent.parent


class _BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: check_int("n", "3"), TypeError, "'n' must be an int (got '3', a str)"),
        (lambda: check_int("n", True), TypeError, "'n' must be an int (got True, a bool)"),
        (lambda: check_int("n", 0, minimum=1), ValueError, "'n' must be >= 1 (got 0)"),
        (
            lambda: check_int("n", 0, minimum=1, owner="task 'a'"),
            ValueError,
            "task 'a': 'n' must be >= 1 (got 0)",
        ),
        (lambda: check_number("x", None), TypeError, "'x' must be a number (got None)"),
        (lambda: check_number("x", False), TypeError, "'x' must be a number (got False, a bool)"),
        (
            lambda: check_number("x", math.nan),
            ValueError,
            "'x' must be a number, not NaN (got nan)",
        ),
        (
            lambda: check_number("x", math.inf, finite=True),
            ValueError,
            "'x' must be finite (got inf)",
        ),
        (lambda: check_number("x", -0.5, minimum=0), ValueError, "'x' must be >= 0 (got -0.5)"),
        (lambda: check_number("x", 0, above=0), ValueError, "'x' must be > 0 (got 0)"),
        (lambda: check_number("x", 2, maximum=1), ValueError, "'x' must be <= 1 (got 2)"),
        # An int beyond float range: refused by check_number (its callers take
        # float() of it), and shown by name, never by its digits (past 4300 of
        # them repr() itself raises).
        (
            lambda: check_number("x", 10**5000),
            ValueError,
            "'x' must be <= 1.79769e+308 (got an int beyond float range)",
        ),
        (
            lambda: check_number("x", -(10**400)),
            ValueError,
            "'x' must be >= -1.79769e+308 (got an int beyond float range)",
        ),
        (
            lambda: check_number("x", -(10**400), minimum=0),
            ValueError,
            "'x' must be >= 0 (got an int beyond float range)",
        ),
        (
            lambda: check_int("n", -(10**5000), minimum=0),
            ValueError,
            "'n' must be >= 0 (got an int beyond float range)",
        ),
        (
            lambda: check_type("s", _BadRepr(), str),
            TypeError,
            "'s' must be a string (got <_BadRepr>, a _BadRepr)",
        ),
        (lambda: check_type("s", 1, str), TypeError, "'s' must be a string (got 1, an int)"),
        (lambda: check_type("k", True, int), TypeError, "'k' must be an int (got True, a bool)"),
    ],
)
def test_the_message_shape(call: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message


def test_values_that_pass_come_back_unchanged() -> None:
    assert check_int("n", 10**400, minimum=0) == 10**400
    assert check_number("x", 10**300, finite=True) == 10**300  # an int stays an int
    assert check_number("x", math.inf, above=0) == math.inf
    assert check_type("b", True, bool) is True


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: RetryPolicy(jitter=2), ValueError, "RetryPolicy: 'jitter' must be <= 1 (got 2)"),
        (
            lambda: RetryPolicy(multiplier=0.5),
            ValueError,
            "RetryPolicy: 'multiplier' must be >= 1 (got 0.5)",
        ),
        (
            lambda: RetryPolicy(initial_delay="1"),  # type: ignore[arg-type]
            TypeError,
            "RetryPolicy: 'initial_delay' must be a number (got '1', a str)",
        ),
        (
            lambda: SharedState(max_history_size=-1),
            ValueError,
            "'max_history_size' must be >= 0 (got -1)",
        ),
        (
            lambda: SharedState().rollback(True),
            TypeError,
            "'target_version' must be an int (got True, a bool)",
        ),
        (lambda: ThreadAdapter(max_workers=0), ValueError, "'max_workers' must be >= 1 (got 0)"),
        (
            lambda: ProcessAdapter(max_workers=1.5),  # type: ignore[arg-type]
            TypeError,
            "'max_workers' must be an int (got 1.5, a float)",
        ),
        (
            lambda: Command("true", max_output=0),
            ValueError,
            "Command: 'max_output' must be >= 1 (got 0)",
        ),
        (
            lambda: Command("true", kill_grace=-1),
            ValueError,
            "Command: 'kill_grace' must be >= 0 (got -1)",
        ),
    ],
)
def test_every_layer_uses_the_same_shape(call: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message


def test_no_hand_written_bool_checks_are_left() -> None:
    # The plan's JSON reader keeps its own checks: its messages show values
    # as JSON, the form its users wrote.
    allowed = {"engine/_checks.py", "engine/graph/_plan.py"}
    pattern = re.compile(r"isinstance\([^)]*\bbool\)")
    offenders = {
        str(path.relative_to(ROOT))
        for folder in ("engine", "adapters")
        for path in (ROOT / folder).rglob("*.py")
        if pattern.search(path.read_text())
    } - allowed
    assert not offenders
