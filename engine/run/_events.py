"""Structured events: the only module that imports structlog.

Every event carries ``run_id``; task events carry ``task_id``, ``wave_number``
(1-based) and ``attempt``; end events carry ``duration_ms``. All events are
emitted from the trio thread (worker threads report back to it first), so no
context leaks between threads, and none is emitted after ``execute()`` returns.
Task and wave events are ``info``; failures, retries and time-outs ``warning``.

As a library dagwave is quiet by default: until the application configures
structlog (``structlog.is_configured()``), the default logger drops events
below ``warning`` and writes the rest to stderr, never stdout. Once structlog
is configured (the command line does, and so does
``structlog.testing.capture_logs``), that configuration decides, and a logger
passed as ``logger=`` is used as it is.

To get every event as JSON lines::

    import structlog
    structlog.configure(processors=[
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
        structlog.processors.JSONRenderer(),
    ])
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from dagwave._errors import describe_error

__all__ = ["RunEvents", "configure_logging", "default_logger"]


class _DefaultLogger:
    """``structlog.get_logger("dagwave")``, or the quiet logger while structlog is unconfigured.

    The choice is made when a run binds it (once per run, like structlog's lazy
    proxy), so configuring structlog after creating a scheduler still counts.
    """

    __slots__ = ()

    def bind(self, **values: Any) -> Any:
        return _current().bind(**values)

    def __getattr__(self, name: str) -> Any:  # info(), warning(), ... called directly
        return getattr(_current(), name)

    def __repr__(self) -> str:
        return "<dagwave default logger>"


def _current() -> Any:
    if structlog.is_configured():
        return structlog.get_logger("dagwave")
    # structlog's default processors and look, filtered, on the stderr of now
    # (a test's capsys replaces sys.stderr).
    return structlog.wrap_logger(
        structlog.PrintLogger(sys.stderr),
        processors=list(structlog.get_config()["processors"]),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        cache_logger_on_first_use=False,
    )


def default_logger() -> Any:
    """The logger used when none is given (see the module docstring).

    Returns:
        A logger that is ``structlog.get_logger("dagwave")`` once structlog is
        configured and, until then, writes only warnings and errors, to stderr.
    """
    return _DefaultLogger()


def configure_logging(log_format: str, stream: Any, min_level: str = "info") -> None:
    """Configure structlog for the command line: ``console`` or ``json`` lines on ``stream``.

    In JSON lines a failure event's ``exc_info`` becomes a structured
    traceback (structlog's dict form, without local variables); its texts
    are taken with structlog's ``safe_str``, so an exception whose ``__str__``
    or ``__repr__`` raises cannot break the line. On the console it is printed
    as a plain Python traceback under the event's line.
    """
    processors: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
    ]
    if log_format == "json":
        processors += [
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            structlog.processors.JSONRenderer(),
        ]
    else:
        # Plain text tracebacks: with rich installed, structlog's default would
        # render its boxes with every local variable's repr.
        processors.append(
            structlog.dev.ConsoleRenderer(
                colors=False, exception_formatter=structlog.dev.plain_traceback
            )
        )
    structlog.configure(
        processors=processors,
        logger_factory=structlog.PrintLoggerFactory(stream),
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, min_level.upper())),
        cache_logger_on_first_use=False,
    )


def _error_text(error: BaseException) -> str:
    # Never fails: an error whose __str__ raises must not break the run.
    return describe_error(error)


def _span_ms(start: float, end: float) -> float:
    """Run-clock seconds to the milliseconds events show."""
    return (end - start) * 1000.0


class RunEvents:
    """Emits one run's events through a structlog logger bound to its ``run_id``.

    The run core speaks in its own units: 0-based wave indices and run-clock
    seconds. This is the edge where they become what events show: 1-based
    ``wave_number``, ``duration_ms``, and ``at_ms``, the time (ms from the
    run's start) at which the thing happened, which for work done in worker
    threads is earlier than the moment the event is emitted.

    Attributes:
        info: whether info events get through the logger's filter; the core
            skips building filtered-out events altogether.
        t0: the run's start on the run clock.
    """

    __slots__ = ("_log", "info", "t0")

    def __init__(self, logger: Any, run_id: str) -> None:
        # bind() once: a bound logger is cheap to call, a lazy proxy re-binds per call.
        self._log = logger.bind(run_id=run_id)
        enabled = getattr(self._log, "is_enabled_for", None)
        self.info = True if enabled is None else bool(enabled(logging.INFO))
        self.t0 = 0.0

    def _ms(self, t: float) -> float:
        return _span_ms(self.t0, t)

    def run_started(
        self, *, total_tasks: int, total_waves: int, mode: str, max_concurrent: int
    ) -> None:
        self._log.info(
            "run.started",
            total_tasks=total_tasks,
            total_waves=total_waves,
            mode=mode,
            max_concurrent=max_concurrent,
        )

    def run_completed(self, *, status: str, end: float, counts: dict[str, int]) -> None:
        self._log.info("run.completed", status=status, duration_ms=self._ms(end), **counts)

    def wave_started(self, wave: int, task_count: int, at: float) -> None:
        self._log.info(
            "wave.started", wave_number=wave + 1, task_count=task_count, at_ms=self._ms(at)
        )

    def wave_completed(
        self, wave: int, task_count: int, start: float | None, end: float | None, status: str
    ) -> None:
        self._log.info(
            "wave.completed",
            wave_number=wave + 1,
            task_count=task_count,
            duration_ms=0.0 if start is None or end is None else _span_ms(start, end),
            status=status,
            at_ms=None if end is None else self._ms(end),
        )

    def progress_failed(self, error: BaseException) -> None:
        self._log.warning("run.progress_failed", error=_error_text(error), exc_info=error)

    def task_started(self, task_id: str, wave: int, attempt: int, adapter: str, at: float) -> None:
        self._log.info(
            "task.started",
            task_id=task_id,
            wave_number=wave + 1,
            attempt=attempt,
            adapter=adapter,
            at_ms=self._ms(at),
        )

    def task_completed(
        self, task_id: str, wave: int, attempt: int, start: float, end: float
    ) -> None:
        self._log.info(
            "task.completed",
            task_id=task_id,
            wave_number=wave + 1,
            attempt=attempt,
            duration_ms=_span_ms(start, end),
            at_ms=self._ms(end),
        )

    def _went_wrong(
        self,
        event: str,
        task_id: str,
        wave: int,
        attempt: int,
        start: float,
        end: float,
        error: BaseException,
        **extra: Any,
    ) -> None:
        """A warning for an attempt that failed, timed out or will be retried."""
        self._log.warning(
            event,
            task_id=task_id,
            wave_number=wave + 1,
            attempt=attempt,
            duration_ms=_span_ms(start, end),
            error=_error_text(error),
            **extra,
            at_ms=self._ms(end),
        )

    def task_failed(
        self, task_id: str, wave: int, attempt: int, start: float, end: float, error: BaseException
    ) -> None:
        # exc_info: the traceback, as structlog renders it (a timeout has none of its own).
        self._went_wrong("task.failed", task_id, wave, attempt, start, end, error, exc_info=error)

    def task_timed_out(
        self, task_id: str, wave: int, attempt: int, start: float, end: float, error: BaseException
    ) -> None:
        self._went_wrong("task.timed_out", task_id, wave, attempt, start, end, error)

    def task_retrying(
        self,
        task_id: str,
        wave: int,
        attempt: int,
        start: float,
        end: float,
        error: BaseException,
        delay_s: float,
    ) -> None:
        self._went_wrong(
            "task.retrying",
            task_id,
            wave,
            attempt,
            start,
            end,
            error,
            delay=delay_s,
            delay_s=delay_s,
            exc_info=error,
        )

    def task_cancelled(
        self, task_id: str, wave: int, attempt: int, start: float | None, end: float
    ) -> None:
        self._log.warning(
            "task.cancelled",
            task_id=task_id,
            wave_number=wave + 1,
            attempt=attempt,
            duration_ms=None if start is None else _span_ms(start, end),
            at_ms=self._ms(end),
        )

    def task_skipped(self, task_id: str, wave: int, skipped_because: str, at: float) -> None:
        self._log.info(
            "task.skipped",
            task_id=task_id,
            wave_number=wave + 1,
            skipped_because=skipped_because,
            at_ms=self._ms(at),
        )

    def task_cached(
        self, task_id: str, wave: int, reason: str, from_run: str, because: str, at: float
    ) -> None:
        """A task ended CACHED: given its stored result, not run (``reason``: cache or resume)."""
        self._log.info(
            "task.cached",
            task_id=task_id,
            wave_number=wave + 1,
            reason=reason,
            from_run=from_run,
            cached_because=because,
            at_ms=self._ms(at),
        )

    def task_not_cached(self, task_id: str, reason: str) -> None:
        """A task that asked to be cached cannot be (it runs, or its result is not kept)."""
        self._log.warning("task.not_cached", task_id=task_id, reason=reason)

    def run_note(self, event: str, **values: Any) -> None:
        """A warning about the run as a whole (e.g. ``run.resume_changed``)."""
        self._log.warning(event, **values)
