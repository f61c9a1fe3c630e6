"""``dagwave run`` reaches a dask cluster: ``--cluster``, ``[run] cluster``, ``[run] adapter``.

End to end through the real ``dagwave`` command in a subprocess. Each command
task writes the pid of the process that started it (``$PPID``): a dask worker's,
not the ``dagwave`` process's.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dagwave.cli._pipeline import max_local_workers
from tests._helpers import process_alive, wait_until

distributed = pytest.importorskip("distributed")

TWO_COMMANDS = """
[tasks.a]
cmd = "echo $PPID > a.pid"

[tasks.b]
cmd = "echo $PPID > b.pid"
deps = ["a"]
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[str, set[int]]]:
    """A running cluster of two worker processes: its address and the workers' pids."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as local, distributed.Client(local) as client:
        pids = set(client.run(os.getpid).values())
        yield local.scheduler_address, pids


def dagwave(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run the ``dagwave`` command to the end; its output and its pid."""
    process = subprocess.Popen(
        [sys.executable, "-m", "dagwave", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err), process.pid


def end(process: subprocess.Popen[str]) -> None:
    """After a failed check: kill what is left and close its pipes (left open, they
    would fail a later test: an unclosed file is an error under ``filterwarnings``)."""
    if process.poll() is None:
        process.kill()
    process.communicate()


def pipeline(tmp_path: Path, run_table: str, tasks: str = TWO_COMMANDS) -> Path:
    path = tmp_path / "pipeline.toml"
    path.write_text(f"[run]\n{run_table}\n{tasks}")
    return path


def pids_written(tmp_path: Path) -> set[int]:
    return {int((tmp_path / f"{t}.pid").read_text()) for t in "ab"}


def test_the_run_adapter_is_the_default_and_a_cluster_adapter_replaces_the_name(
    tmp_path: Path,
) -> None:
    from dagwave.adapters.dask import DaskAdapter
    from dagwave.cli._pipeline import load_pipeline

    tasks = TWO_COMMANDS + '[tasks.own]\ncall = "os.path:basename"\nadapter = "thread"\n'
    loaded = load_pipeline(pipeline(tmp_path, 'adapter = "dask"\ncluster = "local:3"', tasks))
    assert (loaded.adapter, loaded.cluster) == ("dask", "local:3")
    dask = DaskAdapter("tcp://nowhere:1")  # never connected: scheduling does not connect
    s = loaded.scheduler(adapters={"dask": dask})
    assert (s.tasks["a"].adapter, s.tasks["b"].adapter) == (dask, dask)
    assert s.tasks["own"].adapter == "thread"  # a task's own adapter is not replaced


def test_cluster_local_n_runs_the_default_adapters_tasks_on_worker_processes(
    tmp_path: Path,
) -> None:
    path = pipeline(tmp_path, 'adapter = "dask"')
    done, pid = dagwave("run", str(path), "--cluster", "local:2", "--no-store", cwd=tmp_path)
    assert (done.returncode, done.stderr.count("Traceback")) == (0, 0), done.stderr
    assert "2/2 completed" in done.stdout
    assert pid not in pids_written(tmp_path)


TRACKED_STEPS = """
import os

LOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "unpickled.txt")


def _unpickled(payload):
    with open(LOG, "a") as log:  # in whichever process unpickles it
        log.write(f"{os.getpid()}\\n")
    return Tracked(payload)


class Tracked:
    def __init__(self, payload):
        self.payload = payload

    def __reduce__(self):
        return (_unpickled, (self.payload,))


def make(context):
    return Tracked(b"x" * 1000)


def size(context):
    return len(context["dependency_results"]["make"].payload)
"""


def test_without_a_cluster_the_run_does_not_bring_the_results_into_dagwave(
    tmp_path: Path,
) -> None:
    (tmp_path / "steps.py").write_text(TRACKED_STEPS)
    tasks = '[tasks.make]\ncall = "steps:make"\n[tasks.size]\ncall = "steps:size"\n'
    tasks += 'deps = ["make"]\n'
    path = pipeline(tmp_path, 'adapter = "dask"', tasks)
    done, pid = dagwave("run", str(path), "--no-store", cwd=tmp_path)
    assert (done.returncode, done.stderr.count("Traceback")) == (0, 0), done.stderr
    assert "2/2 completed" in done.stdout
    log = tmp_path / "unpickled.txt"  # a worker that fetched "make" unpickled it too
    assert str(pid) not in (log.read_text().split() if log.exists() else [])


def test_run_cluster_sends_dask_tasks_to_that_scheduler(
    tmp_path: Path, cluster: tuple[str, set[int]]
) -> None:
    address, workers = cluster
    tasks = TWO_COMMANDS.replace(".pid\"\n", '.pid"\nadapter = "dask"\n')
    path = pipeline(tmp_path, f"cluster = {address!r}", tasks)
    done, _ = dagwave("run", str(path), "--no-store", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert pids_written(tmp_path) <= workers


def test_an_unreachable_cluster_is_one_line_and_exit_2_before_anything_runs(
    tmp_path: Path,
) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    path = pipeline(tmp_path, 'adapter = "dask"')
    done, _ = dagwave("run", str(path), "--cluster", address, "--no-store", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(
        f"dagwave run: error: cannot reach the dask cluster at {address}: "
    )
    assert done.stderr.count("\n") == 1
    assert not (tmp_path / "a.pid").exists()


def test_a_malformed_address_is_one_line_saying_so(tmp_path: Path) -> None:
    path = pipeline(tmp_path, 'adapter = "dask"')
    done, _ = dagwave("run", str(path), "--cluster", "foo:bar", "--no-store", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(
        "dagwave run: error: cannot reach the dask cluster at foo:bar: "
        "not a scheduler address dask can use ("
    ), done.stderr
    assert done.stderr.count("\n") == 1


@pytest.mark.usefixtures("terminal_signals")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_while_connecting_ends_with_one_line(
    tmp_path: Path, sig: signal.Signals
) -> None:
    # A scheduler that takes the connection and never answers: dagwave waits in connect.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        path = pipeline(tmp_path, 'adapter = "dask"')
        process = subprocess.Popen(
            [sys.executable, "-m", "dagwave", "run", str(path), "--cluster", address, "--no-store"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            connecting, _, _ = select.select([silent], [], [], 60)  # its connection is waiting
            assert connecting, "dagwave did not connect"
            process.send_signal(sig)
            out, err = process.communicate(timeout=60)
        finally:
            end(process)
    assert (process.returncode, out, err) == (128 + sig, "", f"interrupted ({sig.name})\n")


@pytest.mark.usefixtures("terminal_signals")
def test_ctrl_c_to_the_whole_group_ends_the_run_without_the_workers_tracebacks(
    tmp_path: Path,
) -> None:
    tasks = '[tasks.slow]\ncmd = "sleep 60 & echo $! > child.pid; wait"\n'
    path = pipeline(tmp_path, 'adapter = "dask"', tasks)
    process = subprocess.Popen(
        [sys.executable, "-m", "dagwave", "run", str(path), "--cluster", "local:2", "--no-store"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a group of its own, as a terminal's foreground job
    )
    child = tmp_path / "child.pid"
    try:
        wait_until(lambda: child.exists() and bool(child.read_text().strip()), "the command to run")
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        _, err = process.communicate(timeout=60)
    finally:
        end(process)
    assert (process.returncode, err.count("Traceback")) == (130, 0), err
    assert "interrupted (SIGINT)" in err.splitlines()
    wait_until(lambda: not process_alive(int(child.read_text())), "the command's child to end")


MOST = max_local_workers()


@pytest.mark.parametrize(
    ("run_table", "args", "message"),
    [
        *[
            (
                f'cluster = "{value}"',
                (),
                f"[run]: 'cluster' must be 'local:N' with 1 <= N <= {MOST} worker processes "
                f"(four per CPU of this machine, at least 8) (got '{value}')",
            )
            for value in ("local:0", f"local:{MOST + 1}", "local:100000", "local:\u0663")
        ],
        (
            "",
            ("--cluster", "local:1" + "0" * 30),
            f"'cluster' must be 'local:N' with 1 <= N <= {MOST} worker processes "
            f"(four per CPU of this machine, at least 8) (got 'local:1{'0' * 30}')",
        ),
        (
            'adapter = "gpu"',
            (),
            "[run]: unknown adapter 'gpu' (known: asyncio, dask, inline, process, thread)",
        ),
        (
            "",
            ("--cluster", "nowhere"),
            "'cluster' must be a scheduler address such as 'tcp://host:8786', "
            "or 'local:N' (got 'nowhere')",
        ),
    ],
)
def test_a_bad_cluster_or_adapter_is_one_line_and_exit_2(
    tmp_path: Path, run_table: str, args: tuple[str, ...], message: str
) -> None:
    path = pipeline(tmp_path, run_table)
    done, _ = dagwave("run", str(path), *args, "--no-store", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert done.stderr.rstrip().endswith(message), done.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port



def test_a_pipeline_named_by_a_relative_path_runs_its_commands_in_its_own_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command may run elsewhere (a worker of a cluster): its folder is absolute."""
    from dagwave.cli._pipeline import load_pipeline

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "p.toml").write_text('[tasks.a]\ncmd = "pwd"\n')
    monkeypatch.chdir(tmp_path)
    (task,) = load_pipeline("sub/p.toml").tasks
    assert Path(task.executor.cwd) == tmp_path / "sub"
    assert Path(task.executor.cwd).is_absolute()
