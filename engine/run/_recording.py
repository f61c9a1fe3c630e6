"""What the run store records of a run beyond its tasks' rows: its graph and its outputs."""

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
        ``graph`` (per task, the positions of its dependencies) and
        ``outputs`` (the output files its commands wrote). The tasks' rows
        (:meth:`Memo.rows_at_end <dagwave.run._memo.Memo.rows_at_end>`) name
        their adapters.
    """
    return {"graph": plan.deps, "outputs": outputs.records()}
