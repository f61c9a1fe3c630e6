"""The run summary tells CPU time beside the speedup, and when the GIL made the speedup hollow."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from dagwave.cli._main import gil_note


def result(wall: float, sequential: float, thread_cpu: float) -> SimpleNamespace:
    return SimpleNamespace(
        total_duration_ms=wall,
        sequential_duration_ms=sequential,
        speedup_ratio=sequential / wall if wall else 1.0,
        thread_cpu_ms=thread_cpu,
        cpu_ms=thread_cpu,
    )


def test_gil_bound_threads_get_a_note_suggesting_processes() -> None:
    # Four threads of pure-Python work: 4x "speedup", CPU time = wall time.
    note = gil_note(result(wall=1000, sequential=3780, thread_cpu=990))
    assert note == (
        "note: the blocking tasks were CPU-bound (990 ms of thread CPU time in 1000 ms): "
        "the GIL ran them one at a time, so the speedup is not parallel work; "
        'adapter = "process" runs such tasks in parallel'
    )


@pytest.mark.parametrize(
    ("wall", "sequential", "thread_cpu", "why"),
    [
        (1000, 4000, 5, "waiting threads (sleep, I/O) use no CPU: their speedup is real"),
        (1000, 4000, 3900, "threads in C code that releases the GIL really ran in parallel"),
        (1000, 1100, 1000, "no speedup claimed"),
        (0, 0, 0, "an empty run"),
    ],
)
def test_no_note_where_the_speedup_is_honest(
    wall: float, sequential: float, thread_cpu: float, why: str
) -> None:
    assert gil_note(result(wall, sequential, thread_cpu)) is None, why
