"""Argument checks, with one message shape for every layer.

As attrs' validators do, a message names the argument, states the rule and
shows what was given, led by whose argument it is when that helps::

    task 'a': 'retry_count' must be an int (got '3', a str)
    task 'a': 'timeout_seconds' must be > 0 (got -1)
    'max_concurrent' must be >= 1 (got 0)

A wrong type raises ``TypeError``, a value out of range ``ValueError``. Bools
are refused where numbers are expected (``True`` is an int to Python, never a
count or a duration to a user). Pure: no trio, no logging.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["check_int", "check_number", "check_type", "must_be"]

_MAX_FLOAT = float.fromhex("0x1.fffffffffffffp+1023")  # sys.float_info.max

# How a type reads in a message; others read as "a <name>".
_KIND_NAMES: dict[Any, str] = {
    int: "an int",
    float: "a float",
    (int, float): "a number",
    str: "a string",
    bool: "a bool",
    dict: "a mapping",
    list: "a list",
}


def _shown(value: object) -> str:
    if _beyond_float_range(value):
        # Such an int may be too long to print at all (ValueError past 4300
        # digits), and its digits say nothing a person can read.
        return "an int beyond float range"
    try:
        text = repr(value).replace("\n", " ")
    except Exception:  # a user's __repr__ that raises, or a structure too deep
        return f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def _beyond_float_range(value: object) -> bool:
    """``value`` is an int that ``float()`` refuses (OverflowError)."""
    if not isinstance(value, int):
        return False
    try:
        float(value)
    except OverflowError:
        return True
    return False


def must_be(
    name: str, rule: str, value: object, *, owner: str | None = None, show_type: bool = False
) -> str:
    """The message for an argument that breaks a rule.

    Args:
        name: the argument, as the user wrote it (quoted in the message).
        rule: what it must be, e.g. ``"an int"`` or ``">= 0"``.
        value: what was given.
        owner: whose argument it is, e.g. ``"task 'a'"`` (leads the message).
        show_type: add the given value's type (for type errors).

    Returns:
        ``"<owner>: '<name>' must be <rule> (got <value>[, a <type>])"``.
    """
    got = _shown(value)
    if show_type and value is not None:
        got += f", {_a(type(value).__name__)}"
    text = f"'{name}' must be {rule} (got {got})"
    return text if owner is None else f"{owner}: {text}"


def _kind_name(kind: type | tuple[type, ...]) -> str:
    if kind in _KIND_NAMES:
        return _KIND_NAMES[kind]
    if isinstance(kind, tuple):
        return " or ".join(_kind_name(k) for k in kind)
    return _a(kind.__name__)


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1].lower() in "aeiou" else f"a {noun}"


def check_type(
    name: str,
    value: Any,
    kind: type | tuple[type, ...],
    *,
    owner: str | None = None,
    expected: str | None = None,
) -> Any:
    """``value`` when it is an instance of ``kind`` (a bool only if ``kind`` says so).

    Args:
        name: the argument, for the message.
        value: what was given.
        kind: the accepted type or types.
        owner: whose argument it is, for the message.
        expected: how the rule reads (default from ``kind``: ``"an int"``).

    Returns:
        ``value``, unchanged.

    Raises:
        TypeError: ``value`` is of another type.
    """
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in kinds):
        rule = expected if expected is not None else _kind_name(kind)
        raise TypeError(must_be(name, rule, value, owner=owner, show_type=True))
    return value


def check_int(
    name: str, value: object, *, minimum: int | None = None, owner: str | None = None
) -> int:
    """``value`` when it is an int (not a bool) and at least ``minimum``.

    Args:
        name: the argument, for the message.
        value: what was given.
        minimum: the smallest value allowed (None: no bound).
        owner: whose argument it is, for the message.

    Returns:
        ``value``.

    Raises:
        TypeError: not an int, or a bool.
        ValueError: below ``minimum``.
    """
    number: int = check_type(name, value, int, owner=owner)
    if minimum is not None and number < minimum:
        raise ValueError(must_be(name, f">= {minimum}", value, owner=owner))
    return number


def check_number(
    name: str,
    value: object,
    *,
    minimum: float | None = None,
    above: float | None = None,
    maximum: float | None = None,
    finite: bool = False,
    owner: str | None = None,
) -> float:
    """``value`` as a float when it is an int or float (not a bool) in range.

    NaN is always refused; infinities only when ``finite`` is set; an int
    beyond float range always (``float()`` of it would raise OverflowError).

    Args:
        name: the argument, for the message.
        value: what was given.
        minimum: the smallest value allowed.
        above: a bound the value must exceed.
        maximum: the largest value allowed.
        finite: refuse infinities.
        owner: whose argument it is, for the message.

    Returns:
        ``value`` (an int stays an int).

    Raises:
        TypeError: not an int or float, or a bool.
        ValueError: NaN, infinite when ``finite``, out of range, or an int
            beyond float range.
    """
    number: float = check_type(name, value, (int, float), owner=owner)
    rule: str | None = None
    if isinstance(number, float) and math.isnan(number):
        rule = "a number, not NaN"
    elif finite and isinstance(number, float) and math.isinf(number):
        rule = "finite"
    elif minimum is not None and not number >= minimum:
        rule = f">= {minimum:g}"
    elif above is not None and not number > above:
        rule = f"> {above:g}"
    elif maximum is not None and not number <= maximum:
        rule = f"<= {maximum:g}"
    elif _beyond_float_range(number):  # callers take float(value): never an OverflowError
        rule = f"<= {_MAX_FLOAT:g}" if number > 0 else f">= {-_MAX_FLOAT:g}"
    if rule is not None:
        raise ValueError(must_be(name, rule, value, owner=owner))
    return number
