"""Structured events: the only module that imports structlog.

Every event carries ``run_id``; task events carry ``task_id``, ``wave_number``
(1-based) and ``attempt``; end events carry ``duration_ms``. All events are
emitted from the trio thread (worker threads report back to it first), so no
context leaks between threads, and none is emitted after ``execute()`` returns.
Task and wave events are ``info``; failures, retries and time-outs ``warning``.

To get JSON lines::

    import structlog
    structlog.configure(processors=[
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
        structlog.processors.JSONRenderer(),
    ])
"""

from __future__ import annotations

import logging
from typing import Any

import structlog

from dagwave._errors import describe_error

__all__ = ["RunEvents", "configure_logging", "default_logger"]


def default_logger() -> Any:
    """The logger used when none is given: ``structlog.get_logger("dagwave")``."""
    return structlog.get_logger("dagwave")


def configure_logging(log_format: str, stream: Any, min_level: str = "info") -> None:
    """Configure structlog for the command line: ``console`` or ``json`` lines on ``stream``."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            renderer,
        ],
        logger_factory=structlog.PrintLoggerFactory(stream),
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, min_level.upper())),
        cache_logger_on_first_use=False,
    )


def _error_text(error: BaseException) -> str:
    # Never fails: an error whose __str__ raises must not break the run.
    return describe_error(error)


class RunEvents:
    """Emits one run's events through a structlog logger bound to its ``run_id``."""

    __slots__ = ("_log",)

    def __init__(self, logger: Any, run_id: str) -> None:
        # bind() once: a bound logger is cheap to call, a lazy proxy re-binds per call.
        self._log = logger.bind(run_id=run_id)

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

    def run_completed(self, *, status: str, duration_ms: float, counts: dict[str, int]) -> None:
        self._log.info("run.completed", status=status, duration_ms=duration_ms, **counts)

    def wave_started(self, *, wave_number: int, task_count: int) -> None:
        self._log.info("wave.started", wave_number=wave_number, task_count=task_count)

    def wave_completed(
        self, *, wave_number: int, task_count: int, duration_ms: float, status: str
    ) -> None:
        self._log.info(
            "wave.completed",
            wave_number=wave_number,
            task_count=task_count,
            duration_ms=duration_ms,
            status=status,
        )

    def task_started(self, task_id: str, wave_number: int, attempt: int, adapter: str) -> None:
        self._log.info(
            "task.started",
            task_id=task_id,
            wave_number=wave_number,
            attempt=attempt,
            adapter=adapter,
        )

    def task_completed(
        self, task_id: str, wave_number: int, attempt: int, duration_ms: float
    ) -> None:
        self._log.info(
            "task.completed",
            task_id=task_id,
            wave_number=wave_number,
            attempt=attempt,
            duration_ms=duration_ms,
        )

    def task_failed(
        self, task_id: str, wave_number: int, attempt: int, duration_ms: float, error: BaseException
    ) -> None:
        self._log.warning(
            "task.failed",
            task_id=task_id,
            wave_number=wave_number,
            attempt=attempt,
            duration_ms=duration_ms,
            error=_error_text(error),
        )

    def task_timed_out(
        self, task_id: str, wave_number: int, attempt: int, duration_ms: float, error: BaseException
    ) -> None:
        self._log.warning(
            "task.timed_out",
            task_id=task_id,
            wave_number=wave_number,
            attempt=attempt,
            duration_ms=duration_ms,
            error=_error_text(error),
        )

    def task_retrying(
        self,
        task_id: str,
        wave_number: int,
        attempt: int,
        duration_ms: float,
        error: BaseException,
        delay_s: float,
    ) -> None:
        self._log.warning(
            "task.retrying",
            task_id=task_id,
            wave_number=wave_number,
            attempt=attempt,
            duration_ms=duration_ms,
            error=_error_text(error),
            delay_s=delay_s,
        )

    def task_cancelled(
        self, task_id: str, wave_number: int, attempt: int, duration_ms: float | None
    ) -> None:
        self._log.warning(
            "task.cancelled",
            task_id=task_id,
            wave_number=wave_number,
            attempt=attempt,
            duration_ms=duration_ms,
        )

    def task_skipped(self, task_id: str, wave_number: int, skipped_because: str) -> None:
        self._log.info(
            "task.skipped",
            task_id=task_id,
            wave_number=wave_number,
            skipped_because=skipped_because,
        )
