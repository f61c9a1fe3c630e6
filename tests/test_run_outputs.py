"""Every command's stdout and stderr kept in files beside the run store, within a cap."""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from dagwave import DependencyAwareScheduler, RetryPolicy, RunStore, output_writer
from dagwave.adapters.subprocess import Command
from dagwave.store._outputs import OutputFiles, current_output_files, safe_file_name
from tests._helpers import GIVE_UP_S

# -- the files -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task_id", "expected"),
    [
        ("build", "build"),
        ("build-docs_v2.1", "build-docs_v2.1"),
        ("a/b", "a_b-" + "x"),
        ("..", "task-" + "x"),
        (".hidden", "hidden-" + "x"),
        ("", "task-" + "x"),
        ("naïve step", "na_ve_step-" + "x"),
        ("x" * 200, "x" * 80 + "-" + "x"),
    ],
)
def test_a_task_id_becomes_a_safe_file_name(task_id: str, expected: str) -> None:
    name = safe_file_name(task_id)
    if expected.endswith("-x"):  # cleaned: an 8-hex hash of the id is added
        base, digest = name.rsplit("-", 1)
        assert base == expected[:-2]
        assert len(digest) == 8
        assert int(digest, 16) >= 0
    else:
        assert name == expected
    assert "/" not in name
    assert not name.startswith(".")


def test_names_are_unambiguous_within_a_run_ignoring_case(tmp_path: Path) -> None:
    files = OutputFiles(tmp_path, cap=100)
    for task_id in ("a/b", "a_b", "Report", "report"):
        with files.writer(task_id, "stdout") as writer:
            writer.write(task_id.encode())
    names = {r.task_id: r.file for r in files.records()}
    assert names["a_b"] == "a_b.stdout"
    assert names["a/b"].startswith("a_b-")
    assert names["Report"] == "Report.stdout"
    assert names["report"] == "report-2.stdout"
    assert len({name.casefold() for name in names.values()}) == 4
    for task_id, name in names.items():
        assert (tmp_path / name).read_bytes() == task_id.encode()


def test_output_within_the_cap_is_kept_whole(tmp_path: Path) -> None:
    files = OutputFiles(tmp_path, cap=10)
    with files.writer("t", "stdout") as writer:
        writer.write(b"01234")
        writer.write(b"56789")
    assert (tmp_path / "t.stdout").read_bytes() == b"0123456789"
    (record,) = files.records()
    assert (record.total_bytes, record.kept_bytes, record.cut) == (10, 10, False)


def test_output_beyond_the_cap_keeps_its_head_and_tail_and_says_so(tmp_path: Path) -> None:
    files = OutputFiles(tmp_path, cap=10)
    with files.writer("t", "stderr") as writer:
        for chunk in (b"0123", b"456789ab", b"cdefghij"):
            writer.write(chunk)
    assert (tmp_path / "t.stderr").read_bytes() == (
        b"01234\n[dagwave: 10 bytes cut here: output_cap keeps 10 bytes of each stream "
        b"per attempt]\nfghij"
    )
    (record,) = files.records()
    assert (record.stream, record.total_bytes, record.kept_bytes, record.cut) == (
        "stderr",
        20,
        10,
        True,
    )


def test_a_later_attempt_is_marked_in_the_same_file(tmp_path: Path) -> None:
    files = OutputFiles(tmp_path, cap=100)
    for attempt in (1, 2):
        with files.writer("t", "stdout", attempt) as writer:
            writer.write(f"try {attempt}\n".encode())
    assert (tmp_path / "t.stdout").read_text() == "try 1\n\n[dagwave: attempt 2]\ntry 2\n"


def test_a_task_that_prints_nothing_gets_no_file(tmp_path: Path) -> None:
    files = OutputFiles(tmp_path / "run", cap=100)
    files.writer("quiet", "stdout").close()
    assert files.records() == []
    assert not (tmp_path / "run").exists()


def test_a_file_that_cannot_be_written_stops_keeping_but_counts(tmp_path: Path) -> None:
    (tmp_path / "run").write_text("a file where the run's folder would be")
    files = OutputFiles(tmp_path / "run", cap=10)
    with files.writer("t", "stdout") as writer:
        writer.write(b"0123456789abcdef")
    (record,) = files.records()
    assert (record.total_bytes, record.kept_bytes, record.cut) == (16, 0, False)
    assert record.error is not None
    assert record.error.startswith(f"cannot write {tmp_path / 'run' / 't.stdout'}: ")


def test_no_writer_outside_a_recorded_run() -> None:
    assert current_output_files.get() is None
    assert output_writer({"task_id": "t", "attempt": 1}, "stdout") is None


def test_no_writer_without_a_task_context(tmp_path: Path) -> None:
    token = current_output_files.set(OutputFiles(tmp_path))
    try:
        assert output_writer(None, "stdout") is None
        assert output_writer({"attempt": 1}, "stdout") is None
        assert output_writer({"task_id": "t"}, "stdout") is not None
    finally:
        current_output_files.reset(token)


@pytest.mark.parametrize("cap", [-1, 1.5, True])
def test_a_bad_output_cap_is_refused(tmp_path: Path, cap: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="output_cap"):
        RunStore(tmp_path / "runs.db", output_cap=cap)


# -- through a recorded run ------------------------------------------------------------

LOUD = "import sys; print('out ' * 5000); print('err', file=sys.stderr)"


def loud_scheduler(tmp_path: Path, **command: Any) -> DependencyAwareScheduler:
    s = DependencyAwareScheduler()
    s.add_task("loud", Command(["python3", "-c", LOUD], cwd=tmp_path, **command))
    s.add_task("call", lambda ctx: 7, ["loud"])
    s.schedule()
    return s


async def test_a_recorded_run_keeps_each_commands_whole_output(tmp_path: Path) -> None:
    s = loud_scheduler(tmp_path, max_output=100)
    (tmp_path / ".dagwave").mkdir()
    with RunStore(tmp_path / ".dagwave" / "runs.db") as store:
        result = await s.execute(store=store)
        run = store.get_run(str(result.execution_id))
        folder = Path(store.output_folder(run.run_id))
    assert folder == tmp_path / ".dagwave" / "runs" / run.run_id
    expected = ("out " * 5000 + "\n").encode()
    assert (folder / "loud.stdout").read_bytes() == expected
    assert (folder / "loud.stderr").read_bytes() == b"err\n"
    # The result in memory stays bounded, as before.
    assert len(result.task_results["loud"].stdout) == 100
    loud = run.task("loud")
    call = run.task("call")
    assert loud is not None
    assert call is not None
    assert [(o.stream, o.file, o.total_bytes, o.cut) for o in loud.outputs] == [
        ("stdout", "loud.stdout", len(expected), False),
        ("stderr", "loud.stderr", 4, False),
    ]
    assert call.outputs == ()  # only commands' output is kept
    assert sorted(os.listdir(folder)) == ["loud.stderr", "loud.stdout"]


async def test_the_stores_cap_cuts_the_files(tmp_path: Path) -> None:
    s = loud_scheduler(tmp_path)
    with RunStore(tmp_path / "runs.db", output_cap=64) as store:
        result = await s.execute(store=store)
        run = store.get_run(str(result.execution_id))
        folder = Path(store.output_folder(run.run_id))
    text = (folder / "loud.stdout").read_text()
    assert text.startswith("out " * 8)
    assert "bytes cut here: output_cap keeps 64 bytes" in text
    assert text.endswith("\nut " + "out " * 7 + "\n")  # the last 32 bytes
    loud = run.task("loud")
    assert loud is not None
    assert (loud.outputs[0].kept_bytes, loud.outputs[0].cut) == (64, True)


async def test_a_retried_command_keeps_every_attempts_output(tmp_path: Path) -> None:
    s = DependencyAwareScheduler(retry_policy=RetryPolicy(initial_delay=0))
    s.add_task("flaky", Command("echo try; exit 1", cwd=tmp_path), retry_count=1)
    s.schedule()
    with RunStore(tmp_path / "runs.db") as store:
        result = await s.execute(store=store)
        folder = Path(store.output_folder(str(result.execution_id)))
    assert (folder / "flaky.stdout").read_text() == "try\n\n[dagwave: attempt 2]\ntry\n"


async def _glob(folder: trio.Path, pattern: str) -> AsyncIterator[trio.Path]:
    if await folder.exists():
        for path in await folder.glob(pattern):
            yield path


async def test_a_cancelled_command_still_writes_what_it_printed(tmp_path: Path) -> None:
    s = DependencyAwareScheduler()
    s.add_task("slow", Command("echo started; sleep 30", cwd=tmp_path, kill_grace=0))
    s.schedule()
    with RunStore(tmp_path / "runs.db", output_cap=10) as store:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(s.execute, store=store))
            runs = trio.Path(tmp_path / "runs")
            with trio.fail_after(GIVE_UP_S):  # a bound, not a pause
                # The run writes it as the output comes: there is no event to wait on.
                while not [p async for p in _glob(runs, "*/slow.stdout")]:  # noqa: ASYNC110
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
        (run,) = store.runs()
        folder = Path(store.output_folder(run.run_id))
        stored = store.get_run(run.run_id)
    assert run.status == "cancelled"
    assert (folder / "slow.stdout").read_text() == "started\n"
    slow = stored.task("slow")
    assert slow is not None
    assert [(o.stream, o.total_bytes) for o in slow.outputs] == [("stdout", 8)]


async def test_only_the_trio_side_of_a_recorded_run_gets_writers(tmp_path: Path) -> None:
    def blocking(ctx: Any) -> bool:
        return output_writer(ctx, "stdout") is not None

    async def awaited(ctx: Any) -> bool:
        writer = output_writer(ctx, "stdout")
        if writer is None:
            return False
        with writer:
            writer.write(b"kept\n")
        return True

    s = DependencyAwareScheduler()
    s.add_task("blocking", blocking)
    s.add_task("awaited", awaited)
    s.schedule()
    with RunStore(tmp_path / "runs.db") as store:
        result = await s.execute(store=store)
        folder = Path(store.output_folder(str(result.execution_id)))
    assert result.task_results == {"blocking": False, "awaited": True}
    assert (folder / "awaited.stdout").read_text() == "kept\n"


async def test_a_run_without_a_store_writes_no_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = await loud_scheduler(tmp_path).execute()
    assert result.succeeded
    assert os.listdir(tmp_path) == []
