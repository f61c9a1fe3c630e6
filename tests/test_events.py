"""structlog events: names, fields, one start and one end per attempt, run_id everywhere."""

from __future__ import annotations

import io
import json
import threading
from collections import Counter
from typing import Any

import pytest
import structlog
import trio
from structlog.testing import capture_logs
from trio.testing import MockClock

from dagwave import DependencyAwareScheduler, RetryPolicy
from dagwave.run._events import configure_logging
from tests._helpers import GIVE_UP_S, wait_until

END_EVENTS = {"task.completed", "task.failed", "task.retrying", "task.timed_out", "task.cancelled"}


async def flaky_then_ok(context: Any) -> str:
    await trio.sleep(1)
    if context["attempt"] == 1:
        raise ConnectionError("flaky")
    return "ok"


async def broken(context: Any) -> None:
    raise ValueError("broken")


async def slow(context: Any) -> None:
    await trio.sleep(10)


async def quick(context: Any) -> None:
    await trio.sleep(1)


async def run_with_capture(s: DependencyAwareScheduler) -> list[dict[str, Any]]:
    s.schedule()
    with capture_logs() as logs:
        await s.execute()
    return logs


def mixed_scheduler() -> DependencyAwareScheduler:
    s = DependencyAwareScheduler(retry_policy=RetryPolicy(initial_delay=0.5, jitter=0))
    s.add_task("flaky", flaky_then_ok, retry_count=1)
    s.add_task("broken", broken)
    s.add_task("slow", slow, timeout_seconds=2)
    s.add_task("after_broken", quick, dependencies=["broken"])
    s.add_task("after_flaky", quick, dependencies=["flaky"])
    s.add_task("blocking", lambda ctx: "b", timeout_seconds=None)
    return s


async def test_one_start_and_one_end_event_per_attempt(autojump_clock: MockClock) -> None:
    logs = await run_with_capture(mixed_scheduler())
    starts = Counter((e["task_id"], e["attempt"]) for e in logs if e["event"] == "task.started")
    ends = Counter((e["task_id"], e["attempt"]) for e in logs if e["event"] in END_EVENTS)
    assert starts == ends
    assert set(starts.values()) == {1}
    assert starts[("flaky", 2)] == 1


async def test_every_event_carries_the_run_id(autojump_clock: MockClock) -> None:
    s = mixed_scheduler()
    logs = await run_with_capture(s)
    run_ids = {e.get("run_id") for e in logs}
    assert s.last_result is not None
    assert run_ids == {str(s.last_result.execution_id)}


async def test_event_names_per_outcome(autojump_clock: MockClock) -> None:
    logs = await run_with_capture(mixed_scheduler())
    by_task: dict[str, list[str]] = {}
    for e in logs:
        if "task_id" in e:
            by_task.setdefault(e["task_id"], []).append(e["event"])
    assert by_task == {
        "flaky": ["task.started", "task.retrying", "task.started", "task.completed"],
        "broken": [
            "task.started",
            "task.failed",
        ],
        "slow": ["task.started", "task.timed_out"],
        "after_broken": ["task.skipped"],
        "after_flaky": ["task.started", "task.completed"],
        "blocking": ["task.started", "task.completed"],
    }


async def test_retrying_event_has_attempt_delay_and_error(autojump_clock: MockClock) -> None:
    logs = await run_with_capture(mixed_scheduler())
    (retrying,) = [e for e in logs if e["event"] == "task.retrying"]
    assert retrying["attempt"] == 1
    assert retrying["delay_s"] == pytest.approx(0.5)
    assert retrying["error"] == "ConnectionError: flaky"
    assert retrying["log_level"] == "warning"


async def test_skipped_event_names_the_cause(autojump_clock: MockClock) -> None:
    logs = await run_with_capture(mixed_scheduler())
    (skipped,) = [e for e in logs if e["event"] == "task.skipped"]
    assert (skipped["task_id"], skipped["skipped_because"]) == ("after_broken", "broken")


async def test_run_and_wave_events(autojump_clock: MockClock) -> None:
    s = DependencyAwareScheduler()
    s.add_task("a", quick)
    s.add_task("b", quick)
    s.add_task("c", quick, dependencies=["a"])
    logs = await run_with_capture(s)
    lifecycle = [
        (e["event"], e.get("wave_number")) for e in logs if e["event"].startswith(("run.", "wave."))
    ]
    assert lifecycle == [
        ("run.started", None),
        ("wave.started", 1),
        ("wave.completed", 1),
        ("wave.started", 2),
        ("wave.completed", 2),
        ("run.completed", None),
    ]
    wave1 = next(e for e in logs if e["event"] == "wave.completed")
    assert (wave1["task_count"], wave1["duration_ms"], wave1["status"]) == (2, 1000.0, "completed")
    done = logs[-1]
    assert (done["status"], done["successful_tasks"], done["total_tasks"]) == ("completed", 3, 3)


async def test_task_end_events_carry_duration(autojump_clock: MockClock) -> None:
    s = DependencyAwareScheduler()
    s.add_task("a", quick)
    logs = await run_with_capture(s)
    (completed,) = [e for e in logs if e["event"] == "task.completed"]
    assert completed["duration_ms"] == pytest.approx(1000.0)
    assert completed["wave_number"] == 1


async def test_no_event_after_execute_returns(
    autojump_clock: MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagwave.run import _workers

    # Worker threads of this test only, so that their being idle says the abandoned call
    # is over (mock time says nothing of a real thread: 50 sleeps of it take no time).
    pool = _workers.WorkerThreads(name="dagwave-worker-events", idle_timeout=10 * GIVE_UP_S)
    monkeypatch.setattr(_workers, "_WORKERS", pool)
    release = threading.Event()

    def stuck(context: Any) -> None:
        release.wait(GIVE_UP_S)

    s = DependencyAwareScheduler()
    s.add_task("stuck", stuck, timeout_seconds=1)
    s.schedule()
    with capture_logs() as logs:
        await s.execute()
        count = len(logs)
        release.set()
        await trio.to_thread.run_sync(
            wait_until, lambda: pool.idle() == 1, "the abandoned call's thread to be idle"
        )
        for _ in range(50):  # let trio run what that thread handed it, if anything
            await trio.sleep(0.01)
        assert len(logs) == count
    assert logs[-1]["event"] == "run.completed"


async def test_cancelled_run_emits_cancelled_events(autojump_clock: MockClock) -> None:
    s = DependencyAwareScheduler()
    s.add_task("long", slow)
    s.add_task("next", quick, dependencies=["long"])
    s.schedule()
    with capture_logs() as logs, trio.move_on_after(1):
        await s.execute()
    cancelled = {e["task_id"]: e["attempt"] for e in logs if e["event"] == "task.cancelled"}
    assert cancelled == {"long": 1, "next": 0}
    assert logs[-1]["status"] == "cancelled"


async def test_a_logger_can_be_passed_in(autojump_clock: MockClock) -> None:
    s = DependencyAwareScheduler(logger=structlog.get_logger("custom").bind(app="mine"))
    s.add_task("a", quick)
    logs = await run_with_capture(s)
    assert {e.get("app") for e in logs} == {"mine"}


# -- where events go: quiet by default as a library -----------------------------


async def ok(context: Any) -> str:
    return "ok"


def two_tasks(logger: Any = None) -> DependencyAwareScheduler:
    s = DependencyAwareScheduler(logger=logger)
    s.add_task("good", ok)
    s.add_task("bad", broken, retry_count=0)
    s.schedule()
    return s


async def test_unconfigured_structlog_prints_nothing_on_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert not structlog.is_configured()
    await two_tasks().execute()
    out, err = capsys.readouterr()
    assert out == ""
    assert "task.failed" in err
    assert "bad" in err
    # info events (starts, completions, the run's summary) are dropped
    assert not {"run.started", "task.started", "task.completed", "run.completed"} & set(
        err.split()
    )


async def test_configured_structlog_decides_where_events_go(
    capsys: pytest.CaptureFixture[str],
) -> None:
    s = two_tasks()  # configuring after the scheduler was made still counts
    structlog.configure(
        processors=[structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(),
    )
    await s.execute()
    out, err = capsys.readouterr()
    assert err == ""
    events = Counter(line.split('"event": "')[1].split('"')[0] for line in out.splitlines())
    assert events["task.started"] == 2
    assert events["task.failed"] == 1
    assert events["run.completed"] == 1


async def test_a_logger_passed_by_the_user_gets_every_event(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sink = structlog.testing.CapturingLogger()
    logger = structlog.wrap_logger(sink, processors=[])
    await two_tasks(logger).execute()
    assert capsys.readouterr() == ("", "")
    names = Counter(call.kwargs["event"] for call in sink.calls)
    assert names["task.started"] == 2
    assert names["run.completed"] == 1


async def test_capture_logs_sees_every_event_of_the_default_logger() -> None:
    s = two_tasks()
    with capture_logs() as logs:
        await s.execute()
    names = Counter(entry["event"] for entry in logs)
    assert names["task.started"] == 2
    assert names["task.completed"] == 1
    assert names["task.failed"] == 1


def nested_failure(context: Any) -> None:
    def parse_row() -> None:
        raise ValueError("bad row 3")

    parse_row()


@pytest.mark.parametrize("log_format", ["console", "json"])
async def test_the_command_lines_log_formats_show_a_failures_traceback(log_format: str) -> None:
    stream = io.StringIO()
    configure_logging(log_format, stream)
    s = DependencyAwareScheduler()
    s.add_task("bad", nested_failure)
    s.schedule()
    await s.execute()
    text = stream.getvalue()
    if log_format == "json":
        (failed,) = [e for e in map(json.loads, text.splitlines()) if e["event"] == "task.failed"]
        (exception,) = failed["exception"]
        assert (exception["exc_type"], exception["exc_value"]) == ("ValueError", "bad row 3")
        assert [f["name"] for f in exception["frames"]][-2:] == ["nested_failure", "parse_row"]
    else:
        after = text.split("task.failed", 1)[1]
        assert "Traceback (most recent call last):" in after
        assert ", in nested_failure\n" in after
        assert ", in parse_row\n" in after
        assert "ValueError: bad row 3" in after
