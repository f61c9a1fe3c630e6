"""dagwave's engine: validate a task DAG, run it on trio, report what happened.

This module is the one public door: everything in ``__all__`` is supported
API; the ``engine._*`` modules behind it are private and may change.

Layers, each in its own module, imports pointing one way:

* ``_graph`` (task graph, waves, cycles) and ``_analysis`` (static plan
  analysis): pure Python, no trio, no logging;
* ``_state``: the shared store (a threading lock, no trio);
* ``_records``, ``_tasks``, ``_adapter``: records, task definitions, the
  adapter interface;
* ``_events``: the only module that imports structlog;
* ``_run``: the run core, the only module that opens nurseries;
* ``_scheduler``: the seed-compatible ``DependencyAwareScheduler``;
* ``_cli``: the ``dagwave`` command line.
"""

from engine._adapter import Adapter, Invocation, Runner
from engine._analysis import ScheduleAnalysis, ScheduleGraph, ScheduleUnit, analyze_schedule
from engine._errors import (
    CircularDependencyError,
    InvalidTaskError,
    SchedulerError,
    StateError,
    StateKeyError,
    StateRollbackError,
    StateVersionError,
    TaskNotFoundError,
    TaskTimeoutError,
    WaveExecutionError,
)
from engine._graph import DependencyGraph
from engine._records import (
    AttemptRecord,
    ExecutionResult,
    RetryPolicy,
    RunStatistics,
    TaskRecord,
    TaskStatus,
    Wave,
)
from engine._scheduler import DependencyAwareScheduler
from engine._state import SharedState, StateChange, StateView
from engine._tasks import Task, TaskContext

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
    "RetryPolicy",
    "RunStatistics",
    "Runner",
    "ScheduleAnalysis",
    "ScheduleGraph",
    "ScheduleUnit",
    "SchedulerError",
    "SharedState",
    "StateChange",
    "StateError",
    "StateKeyError",
    "StateRollbackError",
    "StateVersionError",
    "StateView",
    "Task",
    "TaskContext",
    "TaskNotFoundError",
    "TaskRecord",
    "TaskStatus",
    "TaskTimeoutError",
    "ThreadSafeState",
    "Wave",
    "WaveExecutionError",
    "__version__",
    "analyze_schedule",
]
