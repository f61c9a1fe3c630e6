"""dagwave: validate a task DAG, run it on trio, report what happened.

This module is the one public door: everything in ``__all__`` is supported
API; the private modules behind it may change. The folders show the layers,
imports pointing one way (each may use the ones above it):

* ``graph``: the task graph, waves, cycles and the static plan analysis;
  pure Python, no trio, no logging;
* ``state``: the shared store (a threading lock, no trio);
* ``store``: the run store, runs and their tasks kept in SQLite, and the
  commands' output files beside it (no trio);
* ``run``: task definitions, records, the adapter interface, the run core
  (the only place that opens nurseries), its events (the only place that
  imports structlog) and the seed-compatible ``DependencyAwareScheduler``;
* ``report``: views of a plan or a run (Mermaid, DOT, Chrome trace, HTML);
* ``cli``: pipeline files and the ``dagwave`` command, the only layer that
  imports ``dagwave.adapters`` (the run finds adapters by name, lazily).
"""

from dagwave._errors import (
    CircularDependencyError,
    InvalidTaskError,
    SchedulerError,
    SchedulingTimeoutError,
    StandInError,
    StateError,
    StateKeyError,
    StateRollbackError,
    StateVersionError,
    StoreError,
    TaskExit,
    TaskNotFoundError,
    TaskTimeoutError,
    WaveExecutionError,
)
from dagwave.graph._analysis import ScheduleAnalysis, analyze_schedule
from dagwave.graph._dag import DependencyGraph
from dagwave.graph._plan import ScheduleGraph, ScheduleUnit
from dagwave.run._adapter import Adapter, Invocation, Runner
from dagwave.run._records import (
    AttemptRecord,
    ExecutionResult,
    RecordedError,
    RetryPolicy,
    RunStatistics,
    TaskRecord,
    TaskStatus,
    Wave,
    WaveRecords,
)
from dagwave.run._remote import RemoteResult, RemoteResults
from dagwave.run._scheduler import DependencyAwareScheduler, TaskView
from dagwave.run._tasks import Task, TaskContext
from dagwave.run._workers import run_in_worker_thread
from dagwave.state._store import (
    SharedState,
    StateChange,
    StateChangeRecord,
    StateStore,
    StateView,
)
from dagwave.store._outputs import OutputRecord, OutputWriter, output_writer
from dagwave.store._runstore import RunStore, StoredAttempt, StoredRun, StoredTask, StoredWave

__version__ = "0.1.0"

#: The seed's name for the shared store.
ThreadSafeState = SharedState
#: The seed's names for the records.
ModelWave = Wave
ModelExecutionResult = ExecutionResult
EnumTaskStatus = TaskStatus

__all__ = [
    "Adapter",
    "AttemptRecord",
    "CircularDependencyError",
    "DependencyAwareScheduler",
    "DependencyGraph",
    "EnumTaskStatus",
    "ExecutionResult",
    "InvalidTaskError",
    "Invocation",
    "ModelExecutionResult",
    "ModelWave",
    "OutputRecord",
    "OutputWriter",
    "RecordedError",
    "RemoteResult",
    "RemoteResults",
    "RunStore",
    "RetryPolicy",
    "RunStatistics",
    "Runner",
    "ScheduleAnalysis",
    "ScheduleGraph",
    "ScheduleUnit",
    "SchedulerError",
    "SchedulingTimeoutError",
    "SharedState",
    "StandInError",
    "StateChange",
    "StateChangeRecord",
    "StateError",
    "StateKeyError",
    "StateRollbackError",
    "StateStore",
    "StateVersionError",
    "StoreError",
    "StoredAttempt",
    "StoredRun",
    "StoredTask",
    "StoredWave",
    "StateView",
    "Task",
    "TaskContext",
    "TaskExit",
    "TaskNotFoundError",
    "TaskRecord",
    "TaskStatus",
    "TaskTimeoutError",
    "TaskView",
    "ThreadSafeState",
    "Wave",
    "WaveExecutionError",
    "WaveRecords",
    "__version__",
    "analyze_schedule",
    "output_writer",
    "run_in_worker_thread",
]
