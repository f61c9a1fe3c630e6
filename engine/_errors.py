"""Every error dagwave raises.

All of them derive from :class:`SchedulerError`, and each also subclasses the
built-in it refines (``LookupError``, ``TimeoutError``, ...) so that code written
against plain Python exceptions keeps working. Errors carry their facts as
attributes (``.task_id``, ``.cycle_path``, ...); the message is for people.

:func:`describe_error` is the one way every layer turns an exception into text
(events, results, reports, the command line): it never fails.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Mapping, Sequence
from typing import Self

__all__ = [
    "CircularDependencyError",
    "InvalidTaskError",
    "SchedulerError",
    "SchedulingTimeoutError",
    "StandInError",
    "StateError",
    "StateKeyError",
    "StateRollbackError",
    "StateVersionError",
    "StoreError",
    "TaskExit",
    "TaskNotFoundError",
    "TaskTimeoutError",
    "WaveExecutionError",
    "describe_error",
    "describe_failure",
    "describe_traceback",
    "writable_text",
]


# How a traceback line of a frame in dagwave's own files starts (adapters included).
_OWN_FRAME = '  File "' + os.path.dirname(os.path.abspath(__file__)) + os.sep


def writable_text(text: str) -> str:
    """``text`` with lone surrogates written as ``\\udcXX`` escapes, so it encodes as UTF-8.

    ``os.fsdecode`` of a file name that is not UTF-8 gives such surrogates;
    any file or stream opened with ``encoding="utf-8"`` refuses them.

    Args:
        text: any string.

    Returns:
        ``text`` itself when it encodes as UTF-8, else the escaped copy.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def describe_error(error: BaseException) -> str:
    """``"Type: message"`` for an exception; never raises.

    An exception's ``__str__`` is user code and may raise (or return
    something that is not a ``str``): then its ``repr`` stands in for the
    message, and when that fails too, only the type name is given, with a
    note. Lone surrogates are escaped (see :func:`writable_text`).

    Args:
        error: the exception.

    Returns:
        One string, e.g. ``"ValueError: bad row 3"``.
    """
    if isinstance(error, StandInError):
        return writable_text(f"{error.type_name}: {error.message}")
    return writable_text(f"{_type_name(error)}: {_message(error)}")


def _type_name(error: BaseException) -> str:
    try:
        return str.__str__(type(error).__name__)
    except Exception:  # a metaclass with a broken __name__
        return "<exception>"


def _message(error: BaseException) -> str:
    """``str(error)``, else its ``repr``, else a note; never raises."""
    for form in (str, repr):
        try:
            text = form(error)
        except Exception:
            continue
        # str() and repr() only return str; a subclass of it could still
        # misbehave when formatted, so take a plain copy.
        return str.__str__(text)
    return "(the message could not be formatted)"


def _traceback_text(error: BaseException) -> str:
    """The whole formatted traceback of ``error`` (chained causes included); never raises."""
    if isinstance(error, StandInError):
        return error.traceback_text
    try:
        return "".join(traceback.format_exception(error))
    except Exception:  # a broken __str__ is handled by traceback; anything else is not
        return ""


def describe_traceback(error: BaseException, frames: int = 3) -> str:
    """The last ``frames`` frames of ``error``'s traceback and its closing lines; never raises.

    What a person needs to see why a task failed: the innermost frames of
    the exception itself (not of the ones it chained), leaving out the frames
    above the task's code (dagwave's, and those of a worker process's entry
    point), then the ``Type: message`` line. For a
    :class:`StandInError`, the traceback text it carries is cut the same way.

    Args:
        error: the exception.
        frames: how many of the innermost frames to keep (>= 1).

    Returns:
        Lines of text (no trailing newline); ``""`` when ``error`` has no
        traceback (it was never raised, or lost it crossing a process).
    """
    lines = _traceback_text(error).rstrip("\n").splitlines()
    heads = [i for i, line in enumerate(lines) if line == "Traceback (most recent call last):"]
    last_block = heads[-1] + 1 if heads else 0  # the exception itself, not what it chained
    starts = [i for i in range(last_block, len(lines)) if lines[i].startswith('  File "')]
    if not starts:
        return ""
    # The task's code starts below the last of dagwave's own frames (the run
    # core, an adapter, a worker's entry point) that calls into other code.
    own = [lines[i].startswith(_OWN_FRAME) for i in starts]
    cut = max((n + 1 for n in range(len(starts) - 1) if own[n] and not own[n + 1]), default=0)
    theirs = starts[cut:]
    return writable_text("\n".join(lines[theirs[-min(frames, len(theirs))] :]))


def describe_failure(error: BaseException, frames: int = 3) -> str:
    """What shows why a task failed, beyond ``Type: message``; never raises.

    An exception that carries the output of the command that failed (an
    ``output_tail`` attribute holding a ``str``, as
    ``dagwave.adapters.subprocess.CommandError`` does) gives that output: its
    traceback would only show dagwave's own frames. Any other gives the last
    frames of its traceback (:func:`describe_traceback`).

    Args:
        error: the exception that failed the task.
        frames: how many of the innermost frames to keep.

    Returns:
        Lines of text (no trailing newline); ``""`` when there is nothing to show.
    """
    try:
        output = getattr(error, "output_tail", None)
    except Exception:  # user code: a property or __getattr__ may raise
        output = None
    if isinstance(output, str):
        return writable_text(str.__str__(output).rstrip("\n"))
    return describe_traceback(error, frames)


class SchedulerError(Exception):
    """Base class of every error raised by dagwave."""


class CircularDependencyError(SchedulerError):
    """The tasks depend on each other in a circle, so none of them can start.

    Attributes:
        cycle_path: the cycle in dependency order, closed: the first id is
            repeated at the end (``['a', 'b', 'a']`` means a needs b, b needs a).
    """

    def __init__(self, cycle_path: Sequence[str]) -> None:
        self.cycle_path: list[str] = list(cycle_path)
        super().__init__(
            "Circular dependency detected: "
            + " -> ".join(self.cycle_path)
            + " (remove one of these dependencies)"
        )


class TaskNotFoundError(SchedulerError, LookupError):
    """A task depends on, or a call names, a task id that was never added.

    Attributes:
        task_id: the task whose dependency is missing (None when a call such as
            ``get_task_status`` named the unknown id directly).
        missing_dependency: the id that does not exist.
        available_tasks: every known id, in the order they were added.
        suggestion: the closest known id, or None.
    """

    def __init__(
        self,
        task_id: str | None,
        missing_dependency: str,
        available_tasks: Sequence[str],
        suggestion: str | None = None,
    ) -> None:
        self.task_id = task_id
        self.missing_dependency = missing_dependency
        self.available_tasks: list[str] = list(available_tasks)
        self.suggestion = suggestion
        if task_id is None:
            msg = f"Unknown task {missing_dependency!r}"
        else:
            msg = f"Task {task_id!r} depends on unknown task {missing_dependency!r}"
        if suggestion is not None:
            msg += f"; did you mean {suggestion!r}?"
        super().__init__(msg)


class InvalidTaskError(SchedulerError, TypeError):
    """A task was defined with something that cannot run (e.g. a non-callable executor).

    Attributes:
        task_id: the offending task.
    """

    def __init__(self, task_id: str, message: str) -> None:
        self.task_id = task_id
        super().__init__(message)


class TaskTimeoutError(SchedulerError, TimeoutError):
    """One attempt of a task ran longer than its ``timeout_seconds``.

    Attributes:
        task_id: the task that timed out.
        timeout_seconds: the limit it exceeded.
        attempt: which attempt (1-based) timed out.
    """

    def __init__(self, task_id: str, timeout_seconds: float, attempt: int = 1) -> None:
        self.task_id = task_id
        self.timeout_seconds = timeout_seconds
        self.attempt = attempt
        super().__init__(
            f"Task {task_id!r} timed out after {timeout_seconds:g}s (attempt {attempt})"
        )


class SchedulingTimeoutError(SchedulerError, TimeoutError):
    """The seed's error for a schedule that took too long to build.

    Exported so that code catching it keeps importing; dagwave builds its plan
    in linear time with no time limit, so it never raises it.
    """


class WaveExecutionError(SchedulerError):
    """Raised by ``ExecutionResult.raise_for_failures()`` when any task failed.

    Attributes:
        failures: task id -> the exception that failed it (in completion order).
        skipped: task id -> the failed task that caused it to be skipped.
    """

    def __init__(
        self,
        failures: Mapping[str, BaseException],
        skipped: Mapping[str, str] | None = None,
    ) -> None:
        self.failures: dict[str, BaseException] = dict(failures)
        self.skipped: dict[str, str] = dict(skipped or {})
        parts = [f"{tid}: {describe_error(exc)}" for tid, exc in self.failures.items()]
        msg = f"{len(self.failures)} task(s) failed: " + "; ".join(parts)
        if self.skipped:
            msg += f" ({len(self.skipped)} dependent task(s) skipped)"
        super().__init__(msg)


class StandInError(SchedulerError):
    """Stands in for a task's exception that could not be kept as itself.

    An exception raised in a worker process that does not survive pickling
    (it holds a lock, or its class cannot be rebuilt from its args) comes back
    as this, as does a pipeline ``call`` task's ``SystemExit`` (see
    :class:`TaskExit`). It keeps what a person needs, and
    :func:`describe_error` shows it as the original ``Type: message``.

    Attributes:
        type_name: the original exception's type name (``"ValueError"``).
        message: its message (``str()``, or ``repr()`` when that failed).
        traceback_text: its formatted traceback, as ``traceback.format_exception`` gives.
    """

    def __init__(self, type_name: str, message: str, traceback_text: str = "") -> None:
        self.type_name = type_name
        self.message = message
        self.traceback_text = traceback_text
        super().__init__(type_name, message, traceback_text)  # args rebuild it when unpickled

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}"

    @classmethod
    def of(cls, error: BaseException) -> Self:
        """A stand-in keeping ``error``'s type name, message and traceback text; never raises.

        Args:
            error: the exception to describe (with its ``__traceback__``, if raised).

        Returns:
            An instance of ``cls``, which pickles with plain pickle.
        """
        return cls(
            _type_name(error), writable_text(_message(error)), writable_text(_traceback_text(error))
        )


class TaskExit(StandInError):
    """A pipeline ``call`` task called ``sys.exit()`` (raised ``SystemExit``).

    In a pipeline file a script's ``main()`` ending in ``sys.exit(0)`` fails
    only its task, and the task is never retried: exiting was its choice.
    (Through the Python API a task's ``SystemExit`` still cancels the run
    and propagates.) Its message is the exit code: ``"SystemExit: 0"``.
    """

    @classmethod
    def of(cls, error: BaseException) -> Self:
        """A TaskExit for ``error`` (a ``SystemExit``); ``sys.exit()`` reads ``SystemExit: None``.

        Args:
            error: the ``SystemExit`` the task raised.

        Returns:
            The TaskExit.
        """
        stand_in = super().of(error)
        if isinstance(error, SystemExit) and error.code is None:  # str() of it is ""
            return cls(stand_in.type_name, "None", stand_in.traceback_text)
        return stand_in


class StateError(SchedulerError):
    """Base class of the shared state's errors."""


class StateKeyError(StateError, KeyError):
    """``SharedState.get_required`` (or ``modify`` without a default) found no such key.

    Attributes:
        key: the missing key.
        available_keys: the keys that were set, in insertion order.
    """

    def __init__(self, key: str, available_keys: Sequence[str] = ()) -> None:
        self.key = key
        self.available_keys: list[str] = list(available_keys)
        known = ", ".join(repr(k) for k in self.available_keys[:10])
        if len(self.available_keys) > 10:
            known += f", ... ({len(self.available_keys)} in all)"
        super().__init__(f"Required state key {key!r} is not set (set keys: {known or 'none'})")

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message and add quotes.
        return str(self.args[0])


class StateVersionError(StateError, ValueError):
    """A rollback named a version the state never had.

    Attributes:
        target_version: the requested version.
        current_version: the state's version at the time.
    """

    def __init__(self, target_version: int, current_version: int) -> None:
        self.target_version = target_version
        self.current_version = current_version
        super().__init__(
            f"Cannot roll back to version {target_version}: "
            f"versions run from 0 to {current_version}"
        )


class StateRollbackError(StateError, RuntimeError):
    """The history no longer reaches back to the requested version.

    Attributes:
        target_version: the requested version.
        oldest_reachable: the oldest version the kept history can rebuild.
    """

    def __init__(self, target_version: int, oldest_reachable: int) -> None:
        self.target_version = target_version
        self.oldest_reachable = oldest_reachable
        super().__init__(
            f"Cannot roll back to version {target_version}: history only reaches back "
            f"to version {oldest_reachable} (raise max_history_size to keep more)"
        )

    @property
    def oldest_version(self) -> int:
        """The seed's name for :attr:`oldest_reachable`."""
        return self.oldest_reachable


class StoreError(SchedulerError):
    """The run store cannot be used: missing, not a store, from a newer dagwave, or unknown run.

    Its message is one line naming the file and what to do.

    Attributes:
        path: the store's file.
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")
