"""What the run store records of a run beyond its result: its graph, adapters and outputs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dagwave.run._core import RunPlan
    from dagwave.store._outputs import OutputFiles

__all__ = ["run_details"]

#: The name recorded for a task awaited in trio itself (no adapter).
IN_TRIO = "trio"


def run_details(plan: RunPlan, outputs: OutputFiles) -> dict[str, Any]:
    """The keyword arguments of :meth:`RunStore.finish_run` that describe ``plan``'s run.

    Returns:
        ``deps`` (task id -> its dependencies), ``adapters`` (task id -> the
        adapter's name, :data:`IN_TRIO` for none) and ``outputs`` (the output
        files its commands wrote).
    """
    tasks = plan.tasks
    return {
        "deps": {task.task_id: task.dependencies for task in tasks if task.dependencies},
        "adapters": {
            task.task_id: IN_TRIO if adapter is None else adapter.name
            for task, adapter in zip(tasks, plan.adapters, strict=True)
        },
        "outputs": outputs.records(),
    }
