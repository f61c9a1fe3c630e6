"""Turning errors into text never fails: broken ``__str__``, lone surrogates, everywhere."""

from __future__ import annotations

import json
import os
import pickle
from typing import Any

import pytest
import trio
from structlog.testing import capture_logs

from dagwave import DependencyAwareScheduler, SharedState, TaskStatus, WaveExecutionError
from dagwave._errors import (
    StandInError,
    describe_error,
    describe_failure,
    describe_traceback,
    writable_text,
)

# What os.fsdecode makes of a file name that is not UTF-8: a lone surrogate.
UNDECODABLE = os.fsdecode(b"data-\xff.csv")


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ is broken")


class BadStrAndRepr(BadStr):
    def __repr__(self) -> str:
        raise RuntimeError("__repr__ is broken too")


class NotAString(Exception):
    def __str__(self) -> Any:
        return 42


class LoudStr(str):
    def __format__(self, spec: str) -> str:
        raise RuntimeError("__format__ is broken")


class StrSubclass(Exception):
    def __str__(self) -> str:
        return LoudStr("quiet")


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (ValueError("bad row 3"), "ValueError: bad row 3"),
        (ValueError(), "ValueError: "),
        (BadStr("x"), "BadStr: BadStr('x')"),
        (NotAString("x"), "NotAString: NotAString('x')"),
        (BadStrAndRepr("x"), "BadStrAndRepr: (the message could not be formatted)"),
        (StrSubclass(), "StrSubclass: quiet"),
        (OSError(f"cannot open {UNDECODABLE}"), "OSError: cannot open data-\\udcff.csv"),
    ],
)
def test_describe_error_is_type_and_message_and_never_fails(
    error: BaseException, text: str
) -> None:
    assert describe_error(error) == text
    describe_error(error).encode("utf-8")  # always writable as UTF-8


def test_writable_text_escapes_only_surrogates() -> None:
    assert writable_text("plain ü") == "plain ü"
    assert writable_text(UNDECODABLE) == "data-\\udcff.csv"


def raise_bad_str(context: Any) -> None:
    raise BadStr("x")


async def raise_undecodable(context: Any) -> None:
    raise OSError(f"cannot open {UNDECODABLE}")


async def unrelated(context: Any) -> str:
    await trio.sleep(1)
    return "fine"


@pytest.mark.parametrize(
    ("executor", "text"),
    [
        (raise_bad_str, "BadStr: BadStr('x')"),
        (raise_undecodable, "OSError: cannot open data-\\udcff.csv"),
    ],
    ids=["broken-str", "surrogate"],
)
async def test_a_hostile_error_fails_only_its_task_and_every_view_shows_it(
    autojump_clock: Any, executor: Any, text: str
) -> None:
    s = DependencyAwareScheduler(max_concurrent=2)
    # No timeout: autojump does not wait for the worker thread of a blocking task.
    s.add_task("bad", executor, timeout_seconds=None)
    s.add_task("other", unrelated)
    s.schedule()
    with capture_logs() as logs:
        result = await s.execute()
    assert result.tasks["bad"].status is TaskStatus.FAILED
    assert result.tasks["other"].status is TaskStatus.COMPLETED
    assert result.task_errors == {"bad": text}
    assert [e["error"] for e in logs if e["event"] == "task.failed"] == [text]
    trace = json.dumps(result.to_chrome_trace(), ensure_ascii=False)
    assert json.dumps(text)[1:-1] in trace
    trace.encode("utf-8")
    report = s.to_html_report()
    report.encode("utf-8")
    assert "data-\\udcff.csv" in report or "BadStr(&#x27;x&#x27;)" in report
    with pytest.raises(WaveExecutionError, match="bad: "):
        result.raise_for_failures()


# ------------------------------------------------------- tracebacks and stand-ins


def _raised(error: BaseException) -> BaseException:
    def inner() -> None:
        raise error

    def outer() -> None:
        inner()

    try:
        outer()
    except BaseException as caught:
        return caught
    raise AssertionError("unreachable")


def test_describe_traceback_keeps_the_innermost_frames_and_the_error_line() -> None:
    tail = describe_traceback(_raised(ValueError("bad row 3")), frames=2).splitlines()
    files = [line for line in tail if line.startswith('  File "')]
    assert [f.rsplit(" in ", 1)[1] for f in files] == ["outer", "inner"]
    assert tail[-1] == "ValueError: bad row 3"


def test_describe_traceback_of_an_exception_never_raised_is_empty() -> None:
    assert describe_traceback(ValueError("never raised")) == ""


def test_describe_traceback_survives_a_broken_str() -> None:
    last = describe_traceback(_raised(BadStrAndRepr())).splitlines()[-1]
    assert last.endswith("BadStrAndRepr: <exception str() failed>")


def test_a_stand_in_describes_itself_as_the_original_and_pickles() -> None:
    stand_in = StandInError.of(_raised(BadStr()))
    again = pickle.loads(pickle.dumps(stand_in))
    assert (again.type_name, again.traceback_text) == ("BadStr", stand_in.traceback_text)
    assert describe_error(again) == f"BadStr: {again.message}"
    assert again.message.startswith("BadStr(")  # str() raised: repr() stands in
    assert describe_traceback(again, frames=1).splitlines()[0].endswith("in inner")


def test_describe_traceback_shows_the_exception_itself_not_what_it_chained() -> None:
    def fail() -> None:
        try:
            raise KeyError("first")
        except KeyError as exc:
            raise ValueError("second") from exc

    tail = describe_traceback(_raised_by(fail), frames=5)
    assert "KeyError" not in tail
    assert tail.splitlines()[-1] == "ValueError: second"


def _raised_by(func: Any) -> BaseException:
    try:
        func()
    except BaseException as caught:
        return caught
    raise AssertionError("unreachable")


class WithOutput(Exception):
    output_tail = "make: *** [all] Error 1\n"


class BrokenOutput(Exception):
    @property
    def output_tail(self) -> str:
        raise RuntimeError("broken property")


def test_describe_failure_prefers_captured_output_to_the_traceback() -> None:
    assert describe_failure(_raised(WithOutput())) == "make: *** [all] Error 1"


def test_describe_failure_falls_back_to_the_traceback() -> None:
    error = _raised(BrokenOutput("x"))
    assert describe_failure(error) == describe_traceback(error)
    assert describe_failure(error).endswith("BrokenOutput: x")


def test_describe_traceback_keeps_dagwave_frames_the_tasks_code_called() -> None:
    def task() -> None:
        SharedState().get_required("missing")

    tail = describe_traceback(_raised_by(task), frames=2).splitlines()
    files = [line for line in tail if line.startswith('  File "')]
    assert files[0].endswith(", in task")
    assert files[1].endswith(", in get_required")
    assert tail[-1].startswith("dagwave._errors.StateKeyError: Required state key 'missing'")
