"""The plan's data model and its JSON form: :class:`ScheduleUnit`, :class:`ScheduleGraph`.

Pure Python, no trio and no logging. A plan is a list of units with a duration
and the ids they depend on; its JSON form is ``{"units": [{"id": ...,
"duration": ..., "depends_on": [...]}]}``. Shape errors are one-line
messages that say where (``units[3] ('build'): "duration" must be a number,
got "fast"``). The algorithms over a plan live in
:mod:`dagwave.graph._analysis`.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any, TypeAlias

__all__ = ["Number", "ScheduleGraph", "ScheduleUnit"]

Number: TypeAlias = int | float

_UNIT_KEYS = ("id", "duration", "depends_on")
_MAX_FLOAT = sys.float_info.max


# -- input checks shared by the constructors and the JSON reader ---------------


def _show(value: object) -> str:
    """One short line showing ``value`` as JSON (the form users wrote), else repr."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        try:
            text = repr(value).replace("\n", " ")
        except (ValueError, RecursionError):  # an int too long to print, or too deep
            text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


_Problem: TypeAlias = tuple[type[Exception], str] | None


def _id_problem(value: object) -> _Problem:
    if not isinstance(value, str):
        return TypeError, f'"id" must be a string, got {_show(value)}'
    if not value.strip():
        return ValueError, f'"id" must be a non-empty string, got {_show(value)}'
    return None


def _duration_problem(value: object) -> _Problem:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return TypeError, f'"duration" must be a number, got {_show(value)}'
    # An int is always finite (math.isfinite would overflow on a huge one).
    if isinstance(value, float) and not math.isfinite(value):
        return ValueError, f'"duration" must be finite, got {_show(value)}'
    if value < 0:
        return ValueError, f'"duration" must be >= 0, got {_show(value)}'
    return None


def _depends_problem(value: object) -> _Problem:
    if isinstance(value, str):
        return TypeError, (
            f'"depends_on" must be a list of ids, got the string {_show(value)} '
            f"(did you mean [{_show(value)}]?)"
        )
    if not isinstance(value, list | tuple):
        return TypeError, f'"depends_on" must be a list of ids, got {_show(value)}'
    for n, dep in enumerate(value):
        if not isinstance(dep, str):
            return TypeError, f'"depends_on"[{n}] must be a string id, got {_show(dep)}'
    return None


# -- the plan ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, init=False)
class ScheduleUnit:
    """One schedulable unit of a plan.

    Attributes:
        id: a non-empty string, unique in its graph.
        duration: how long the unit runs, in any time unit (int or float,
            finite, >= 0).
        depends_on: ids of the units that must finish first. A list is
            accepted and stored as a tuple; ids missing from the graph are
            ignored by the analysis and repeats count once.

    Raises:
        TypeError: the id is not a str, the duration is not an int or float
            (bools are refused), or depends_on is a bare string, not a list or
            tuple, or holds a non-str.
        ValueError: the id is empty, or the duration is negative, NaN or
            infinite.
    """

    id: str
    duration: Number = 0
    depends_on: tuple[str, ...] = ()

    def __init__(self, id: str, duration: Number = 0, depends_on: Sequence[str] = ()) -> None:
        # Plans hold up to 100k units, so the common case (a str id, a plain
        # int or float, a tuple of str) is checked with exact type tests and
        # stored as given; anything else takes the full checks, which give the
        # messages. The fields are set through their slot descriptors because
        # the class is frozen.
        dt = type(duration)
        if (
            type(id) is str
            and id
            and not id.isspace()
            and ((dt is float and 0.0 <= duration <= _MAX_FLOAT) or (dt is int and duration >= 0))
            and type(depends_on) is tuple
        ):
            try:
                "".join(depends_on)  # TypeError unless every item is a str
            except TypeError:
                pass
            else:
                _set_id(self, id)
                _set_duration(self, duration)
                _set_depends_on(self, depends_on)
                return
        self._checked_init(id, duration, depends_on)

    def _checked_init(self, id: object, duration: object, depends_on: object) -> None:
        problem = _id_problem(id)
        if problem is not None:
            exc_type, text = problem
            raise exc_type(f"ScheduleUnit: {text}")
        for problem in (_duration_problem(duration), _depends_problem(depends_on)):
            if problem is not None:
                exc_type, text = problem
                raise exc_type(f"unit {id!r}: {text}")
        _set_id(self, id)
        _set_duration(self, duration)
        _set_depends_on(self, tuple(depends_on))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        """The unit in the plan's JSON form (every key present)."""
        return {"id": self.id, "duration": self.duration, "depends_on": list(self.depends_on)}


# The slot descriptors: setting through them bypasses the frozen __setattr__.
_Setter: TypeAlias = Callable[[ScheduleUnit, Any], None]
_set_id: _Setter = vars(ScheduleUnit)["id"].__set__
_set_duration: _Setter = vars(ScheduleUnit)["duration"].__set__
_set_depends_on: _Setter = vars(ScheduleUnit)["depends_on"].__set__
_unit_id = attrgetter("id")
_unit_duration = attrgetter("duration")
_unit_depends_on = attrgetter("depends_on")
_ONLY_UNITS = frozenset({ScheduleUnit})


def _unit_from_dict(n: int, item: object) -> ScheduleUnit:
    """Read ``units[n]``; every problem is a one-line ValueError that says where."""
    where = f"units[{n}]"
    if not isinstance(item, Mapping):
        raise ValueError(f"{where} must be an object, got {_show(item)}")
    if "id" not in item:
        raise ValueError(f'{where}: "id" is missing')
    problem = _id_problem(item["id"])
    if problem is not None:
        raise ValueError(f"{where}: {problem[1]}")
    unit_id: str = item["id"]
    where = f"{where} ({unit_id!r})"
    for key in item:
        if key not in _UNIT_KEYS:
            close = difflib.get_close_matches(key, _UNIT_KEYS, n=1) if isinstance(key, str) else []
            hint = (
                f"did you mean {_show(close[0])}?"
                if close
                else 'expected "id", "duration" or "depends_on"'
            )
            raise ValueError(f"{where}: unknown key {_show(key)} ({hint})")
    duration = item.get("duration", 0)
    depends_on = item.get("depends_on", [])
    for problem in (_duration_problem(duration), _depends_problem(depends_on)):
        if problem is not None:
            raise ValueError(f"{where}: {problem[1]}")
    return ScheduleUnit(unit_id, duration, tuple(depends_on))


@dataclass(frozen=True, slots=True)
class ScheduleGraph:
    """A static plan: units and their dependencies.

    Its JSON form is ``{"units": [{"id": ..., "duration": ..., "depends_on":
    [...]}]}``; a missing ``units`` means no units, a missing ``duration`` is 0
    and a missing ``depends_on`` is empty.

    Attributes:
        units: the units, in the order given (a list is accepted and stored as
            a tuple).

    Raises:
        TypeError: an element of units is not a :class:`ScheduleUnit`.
        ValueError: two units share an id.
    """

    units: tuple[ScheduleUnit, ...] = ()

    def __post_init__(self) -> None:
        units = self.units
        if not isinstance(units, list | tuple):
            raise TypeError(f"units must be a list of ScheduleUnit, got {type(units).__name__}")
        if type(units) is not tuple:
            units = tuple(units)
            object.__setattr__(self, "units", units)
        # Fast path, all in C: only units, and as many distinct ids as units.
        if _ONLY_UNITS.issuperset(map(type, units)) and len(set(map(_unit_id, units))) == len(
            units
        ):
            return
        first_at: dict[str, int] = {}
        for n, unit in enumerate(self.units):
            if not isinstance(unit, ScheduleUnit):
                raise TypeError(f"units[{n}] must be a ScheduleUnit, got {type(unit).__name__}")
            seen = first_at.setdefault(unit.id, n)
            if seen != n:
                raise ValueError(
                    f"units[{n}] ({unit.id!r}): duplicate id, first used by units[{seen}]"
                )

    @classmethod
    def from_dict(cls, data: object) -> ScheduleGraph:
        """Build a graph from the plan's JSON form, already parsed.

        Args:
            data: a mapping with an optional ``"units"`` list of unit objects.

        Returns:
            The graph.

        Raises:
            ValueError: the data has the wrong shape (not an object, unknown
                key, ``units`` not a list, a unit not an object, a missing or
                non-string id, a bad duration, ``depends_on`` not a list of
                strings, a duplicate id). The message is one line and says
                where, e.g. ``units[3] ('build'): "duration" must be a number,
                got "fast"``.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f'the plan must be an object with a "units" list, got {_show(data)}')
        for key in data:
            if key != "units":
                raise ValueError(f'unknown top-level key {_show(key)} (expected "units")')
        raw = data.get("units", [])
        if not isinstance(raw, list | tuple):
            raise ValueError(f'"units" must be a list, got {_show(raw)}')
        return cls(tuple(_unit_from_dict(n, item) for n, item in enumerate(raw)))

    @classmethod
    def from_json(cls, text: str | bytes) -> ScheduleGraph:
        """Parse a graph from JSON text.

        Args:
            text: the JSON document.

        Returns:
            The graph.

        Raises:
            ValueError: the text is not valid JSON (the message gives line and
                column), is nested too deeply to parse, or has the wrong shape
                (see :meth:`from_dict`).
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from exc
        except RecursionError:
            raise ValueError("invalid JSON: arrays or objects nested too deeply") from None
        except ValueError as exc:  # bytes that are not UTF-8, an int with too many digits
            raise ValueError(f"invalid JSON: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ScheduleGraph:
        """Read a graph from a UTF-8 JSON file.

        Args:
            path: the file.

        Returns:
            The graph.

        Raises:
            OSError: the file cannot be read.
            ValueError: as :meth:`from_json` (or the file is not UTF-8), with
                the path in front of the message.
        """
        try:
            return cls.from_json(Path(path).read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValueError(f"{os.fspath(path)}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """The graph in the plan's JSON form, every key present."""
        return {"units": [unit.to_dict() for unit in self.units]}

    def to_json(self, indent: int | None = 2) -> str:
        """The graph as JSON text (see :meth:`to_dict`).

        Args:
            indent: as for :func:`json.dumps`; None for one line.

        Returns:
            The JSON text, without a trailing newline.
        """
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def dump(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_json` and a newline to ``path`` (UTF-8).

        Args:
            path: the file, created or replaced.

        Raises:
            OSError: the file cannot be written.
        """
        Path(path).write_text(self.to_json() + "\n", encoding="utf-8")
