"""A stored run as the records a live run produces, for the same views.

:func:`rebuild_result` turns a :class:`~dagwave.StoredRun` (read with
:meth:`RunStore.get_run`) into an :class:`~dagwave.ExecutionResult`, and
:func:`stored_graph` gives its DAG and waves, so that ``dagwave report`` and
``dagwave trace`` call the very exporters that ``--report`` and ``--trace``
call. Errors come back as :class:`StoredError` (their type name, message
and stored traceback text, shown as the live error is); ``task_results`` is
empty (results are not part of the store's run record), and the critical
path is measured again from the stored running times, as the run core
measures it.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from dagwave._errors import StandInError
from dagwave.graph._analysis import analyze_compiled
from dagwave.graph._dag import compile_graph
from dagwave.run._ledger import NEVER_STARTED
from dagwave.run._records import (
    AttemptRecord,
    ExecutionResult,
    TaskRecord,
    TaskStatus,
    Wave,
)
from dagwave.store._runstore import StoredRun, StoredTask

__all__ = ["StoredCommandError", "StoredError", "rebuild_result", "stored_graph"]


class StoredError(StandInError):
    """A task's error read back from the run store: its type name, message and traceback text.

    The views show it as they show the live error: ``Type: message``, then
    the last frames of the recorded traceback.
    """

    def __init__(self, text: str, traceback: str = "") -> None:
        type_name, _, message = text.partition(": ")
        if traceback:  # stored without the header describe_traceback looks for
            traceback = "Traceback (most recent call last):\n" + traceback
        super().__init__(type_name, message, traceback)


class StoredCommandError(StoredError):
    """A command's :class:`StoredError`: why it failed is its stderr's last lines.

    Attributes:
        output_tail: the last lines of the command's stderr, as the message
            recorded them (what the views show, as for the live
            ``CommandError``).
    """

    def __init__(self, text: str, traceback: str = "") -> None:
        super().__init__(text, traceback)
        # CommandError's message indents each line of the tail by two spaces.
        self.output_tail = "\n".join(
            line.removeprefix("  ") for line in text.splitlines()[1:]
        )


def _error(text: str | None, traceback: str = "") -> StoredError | None:
    if text is None:
        return None
    if text.startswith("CommandError: "):
        return StoredCommandError(text, traceback)
    return StoredError(text, traceback)


def _run_uuid(run_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(run_id)
    except ValueError:  # a run recorded under an id of one's own
        return uuid.uuid5(uuid.NAMESPACE_URL, run_id)


def stored_graph(run: StoredRun) -> tuple[dict[str, list[str]], list[list[str]]]:
    """The run's DAG (task id -> its dependencies) and its waves' task ids.

    Dependencies on tasks the run did not have (none, for a run dagwave
    recorded) are left out, so the views can draw every edge. A run stored
    before schema 3 has no waves: its tasks come as one wave, without edges.
    """
    ids = {task.task_id for task in run.tasks}
    dag = {task.task_id: [d for d in task.deps if d in ids] for task in run.tasks}
    by_wave: dict[int, list[str]] = {}
    for task in run.tasks:
        by_wave.setdefault(task.wave or 1, []).append(task.task_id)
    return dag, [by_wave[number] for number in sorted(by_wave)]


def _says_why_only(task: StoredTask) -> bool:
    """Whether a task's stored error text only says why it did not run (no exception).

    A skipped task's entry in ``task_errors`` says which dependency failed,
    and that of a task cancelled before it could start says so: their live
    records have no error.
    """
    return task.status == "skipped" or (task.status == "cancelled" and task.error == NEVER_STARTED)


def rebuild_result(run: StoredRun) -> ExecutionResult:
    """The :class:`~dagwave.ExecutionResult` of a stored run (see the module docstring)."""
    records: dict[str, TaskRecord] = {}
    errors: dict[str, str] = {}
    for task in run.tasks:
        last = task.attempt_log[-1].traceback if task.attempt_log else ""
        records[task.task_id] = TaskRecord(
            task_id=task.task_id,
            status=TaskStatus(task.status),
            wave_number=task.wave or 1,
            attempts=task.attempts,
            start_ms=task.start_ms,
            end_ms=task.end_ms,
            duration_ms=task.duration_ms,
            error=None if _says_why_only(task) else _error(task.error, last),
            skipped_because=task.skipped_because,
            attempt_log=tuple(
                AttemptRecord(
                    attempt=a.attempt,
                    outcome=a.outcome,  # type: ignore[arg-type]  # written from AttemptOutcome
                    start_ms=a.start_ms,
                    end_ms=a.end_ms,
                    slot=a.slot,
                    error=_error(a.error, a.traceback),
                    cpu_ms=a.cpu_ms,
                )
                for a in task.attempt_log
            ),
        )
        if task.error is not None:
            errors[task.task_id] = task.error
    _, wave_ids = stored_graph(run)
    created = datetime.fromtimestamp(run.started_at)
    stored_waves = {w.wave: w for w in run.waves}
    waves = []
    for number, ids in enumerate(wave_ids, start=1):
        stored = stored_waves.get(number)
        waves.append(
            Wave(
                wave_number=number,
                task_ids=ids,
                status=TaskStatus(stored.status) if stored else TaskStatus.PENDING,
                duration_ms=stored.duration_ms if stored else None,
                created_at=created,
                start_ms=stored.start_ms if stored else None,
                end_ms=stored.end_ms if stored else None,
            )
        )
    wall = run.wall_ms or 0.0
    sequential = run.sequential_ms or 0.0
    # The critical path as the run core measures it: the plan analysis over
    # the tasks' running times, in the order they were added.
    order = [task.task_id for task in run.tasks]
    compiled = compile_graph(order, [task.deps for task in run.tasks])
    critical = list(analyze_compiled(compiled, [t.duration_ms for t in run.tasks]).critical_path)
    return ExecutionResult(
        execution_id=_run_uuid(run.run_id),
        total_tasks=run.total_tasks,
        successful_tasks=run.completed_tasks,
        failed_tasks=run.failed_tasks,
        skipped_tasks=run.skipped_tasks,
        cancelled_tasks=run.cancelled_tasks,
        total_waves=len(waves),
        total_duration_ms=wall,
        sequential_duration_ms=sequential,
        speedup_ratio=run.speedup or 1.0,
        task_results={},
        task_errors=errors,
        waves=tuple(waves),
        mode=run.mode or "waves",
        max_concurrent=run.max_concurrent or 0,
        cpu_ms=run.cpu_ms or 0.0,
        thread_cpu_ms=run.thread_cpu_ms or 0.0,
        task_records_source=lambda: dict(records),
        critical_path_source=lambda: list(critical),
    )
