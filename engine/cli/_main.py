"""The ``dagwave`` command line (also ``python -m dagwave``).

Subcommands:

* ``dagwave run PIPELINE.toml [TASK...] [--from TASK]``: run a pipeline file (see
  :mod:`dagwave.cli._pipeline`), or only the given tasks and what they need,
  or only what is downstream of ``--from`` tasks and what that needs (see
  :mod:`dagwave.graph._select`);
  logs on stderr, the summary on stdout; exit 0 when every task completed, 1
  otherwise, 2 for a bad file, 130 on Ctrl-C (SIGINT), 143 on SIGTERM and 129
  on SIGHUP: each cancels the run, ends the running commands' process groups,
  prints what finished and still writes ``--trace`` and ``--report`` (the
  tasks that were stopped are marked cancelled).
  Each run is recorded in the run store ``.dagwave/runs.db`` beside the
  pipeline file (``--no-store``: not recorded), its commands' stdout and
  stderr in ``.dagwave/runs/<run>/`` (``--output-cap``, ``[run] output_cap``).
  Cached tasks (``cache``, ``inputs``, ``outputs`` in the file) end CACHED
  while nothing they depend on changed (``--no-cache``, ``--force TASK``,
  ``--force-all`` override); ``--resume [RUN]`` runs only what did not
  complete in RUN (default: the pipeline's last run).
* ``dagwave history [PIPELINE.toml]``: the recorded runs (of that pipeline), oldest first.
* ``dagwave show RUN``: one recorded run, per task; RUN may be a unique prefix of its id.
* ``dagwave logs RUN TASK``: the task's kept stdout and stderr, and the
  tracebacks of its failed attempts.
* ``dagwave report RUN -o FILE`` and ``dagwave trace RUN -o FILE``: the HTML
  report and the Chrome trace of a recorded run, as ``--report`` and
  ``--trace`` write them.
  ``history``, ``show``, ``logs``, ``report`` and ``trace`` read the store in
  ``.dagwave/`` under the current folder, or beside the file given with
  ``--pipeline FILE``.
* ``dagwave graph PIPELINE.toml --format mermaid|dot``: the DAG as a diagram.
* ``dagwave analyze PLAN.json [--workers K] [--json]``: static analysis of a
  plan in its JSON form (see :class:`dagwave.ScheduleGraph`).

A user error (missing file, bad JSON, wrong shape, a bad argument, an output
file that cannot be written) prints one line on stderr and exits with status
2; never a traceback. Outputs (``--trace``, ``--report``) are checked before
anything runs.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from dagwave import __version__
from dagwave._errors import (
    StoreError,
    describe_error,
    describe_failure,
    writable_text,
)
from dagwave.graph._analysis import ScheduleAnalysis, analyze_schedule
from dagwave.graph._dag import suggest_id
from dagwave.graph._plan import ScheduleGraph
from dagwave.graph._select import select_tasks
from dagwave.store._outputs import DEFAULT_OUTPUT_CAP
from dagwave.store._runstore import RunStore, StoredRun, StoredTask

if TYPE_CHECKING:  # trio is imported only when a run starts
    import trio

__all__ = ["main"]

_T = TypeVar("_T")

EXIT_USAGE = 2

#: Where ``dagwave run`` records runs, relative to the pipeline file's folder.
STORE_FILE = os.path.join(".dagwave", "runs.db")
#: seconds ``--cluster ADDRESS`` waits for the scheduler before saying it cannot reach it.
CONNECT_TIMEOUT_S = 5.0


class UserError(Exception):
    """A problem with the user's input: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with errors as one line like every other user error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _size(text: str) -> int:
    from dagwave.cli._pipeline import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _concurrency_limit(text: str) -> int:
    from dagwave.cli._pipeline import MAX_CONCURRENT

    value = _positive_int(text)
    if value > MAX_CONCURRENT:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_CONCURRENT}, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dagwave",
        description="Dependency-aware parallel task engine on trio.",
    )
    parser.add_argument("--version", action="version", version=f"dagwave {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    analyze = sub.add_parser(
        "analyze",
        help="static analysis of a plan: critical path, makespan, levels, bounds",
        description=(
            "Analyse a plan given as JSON: "
            '{"units": [{"id": "a", "duration": 3, "depends_on": ["b"]}, ...]}. '
            "Reports the critical path, makespan, topological levels, width, the serial "
            "flag, and for K workers a lower bound and a list-scheduling estimate."
        ),
    )
    analyze.add_argument("plan", help="path to the plan JSON file ('-' for stdin)")
    analyze.add_argument(
        "--workers",
        "-k",
        type=_positive_int,
        default=2,
        metavar="K",
        help="number of workers for the bound and estimate (default: 2)",
    )
    analyze.add_argument("--json", action="store_true", help="print the analysis as JSON")

    run = sub.add_parser(
        "run",
        help="run a pipeline file (TOML): commands and Python calls with dependencies",
        description="Run a pipeline file. Logs go to stderr, the summary to stdout.",
    )
    run.add_argument("pipeline", help="path to the pipeline TOML file")
    run.add_argument(
        "targets",
        nargs="*",
        metavar="TASK",
        help="run only these tasks and what they need (default: every task)",
    )
    run.add_argument(
        "--from",
        dest="starts",
        action="append",
        default=[],
        metavar="TASK",
        help="run TASK, everything downstream of it, and what those need (repeatable; "
        "with TASK arguments: only up to them)",
    )
    run.add_argument(
        "--max-concurrent", type=_concurrency_limit, metavar="N", help="override [run]"
    )
    run.add_argument("--mode", choices=["waves", "eager"], help="override [run] mode")
    run.add_argument(
        "--fail-fast", action="store_true", default=None, help="cancel on first failure"
    )
    run.add_argument("--log-format", choices=["console", "json"], default="console")
    run.add_argument("--trace", metavar="FILE", help="write a Chrome trace (Perfetto) of the run")
    run.add_argument("--report", metavar="FILE", help="write a self-contained HTML report")
    run.add_argument(
        "--dry-run", action="store_true", help="validate, print waves and the plan; run nothing"
    )
    run.add_argument(
        "--no-store", action="store_true", help=f"do not record the run in {STORE_FILE}"
    )
    run.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help='run adapter = "dask" tasks on this dask scheduler (tcp://host:8786), or on an '
        "embedded cluster of N worker processes (local:N); overrides [run] cluster",
    )
    run.add_argument(
        "--output-cap",
        type=_size,
        metavar="SIZE",
        help="bytes of each command's stdout and of its stderr kept per attempt "
        "(e.g. 1048576, 512k, 10M; default: [run] output_cap, else 4M)",
    )
    run.add_argument(
        "--no-cache", action="store_true", help="run cached tasks too (compute no cache keys)"
    )
    run.add_argument(
        "--force",
        action="append",
        default=[],
        metavar="TASK",
        help="run TASK and everything downstream of it even if cached (repeatable)",
    )
    run.add_argument("--force-all", action="store_true", help="run every task even if cached")
    run.add_argument(
        "--resume",
        nargs="?",
        const=True,
        metavar="RUN",
        help="run only what did not complete in RUN (default: this pipeline's last run); "
        "the other tasks keep their recorded results (a task name after --resume is a target)",
    )

    history = sub.add_parser("history", help="list the recorded runs, oldest first")
    history.add_argument(
        "pipeline", nargs="?", help="only this pipeline's runs (its store is beside it)"
    )
    history.add_argument(
        "--pipeline", dest="pipeline_option", metavar="FILE", help="same as the positional"
    )

    show = sub.add_parser("show", help="the stored summary of one run")
    show.add_argument("run", help="the run's id, or a prefix of it that no other run has")
    show.add_argument("--pipeline", metavar="FILE", help="read the store beside this pipeline file")

    logs = sub.add_parser(
        "logs", help="a task's kept stdout and stderr, and its failed attempts' tracebacks"
    )
    logs.add_argument("run", help="the run's id, or a prefix of it that no other run has")
    logs.add_argument("task", help="the task's id")
    logs.add_argument(
        "--stream",
        choices=["stdout", "stderr"],
        help="print only this stream's kept bytes, as they are",
    )
    logs.add_argument("--pipeline", metavar="FILE", help="read the store beside this pipeline file")

    for name, what in (("report", "a self-contained HTML report"), ("trace", "a Chrome trace")):
        view = sub.add_parser(name, help=f"write {what} of a recorded run")
        view.add_argument("run", help="the run's id, or a prefix of it that no other run has")
        view.add_argument(
            "-o", "--output", metavar="FILE", default="-", help="write it here (default: stdout)"
        )
        view.add_argument(
            "--pipeline", metavar="FILE", help="read the store beside this pipeline file"
        )

    graph = sub.add_parser("graph", help="print a pipeline's DAG as Mermaid or Graphviz DOT")
    graph.add_argument("pipeline", help="path to the pipeline TOML file")
    graph.add_argument("--format", choices=["mermaid", "dot"], default="mermaid")
    return parser


def _load_plan(path: str) -> ScheduleGraph:
    try:
        if path == "-":
            return ScheduleGraph.from_json(sys.stdin.read())
        return ScheduleGraph.load(path)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not a plan file") from None
    except PermissionError:
        raise UserError(f"{path}: permission denied") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except (ValueError, TypeError) as exc:
        # ScheduleGraph.load already names the file in its messages.
        raise UserError(f"<stdin>: {exc}" if path == "-" else str(exc)) from None


def _fmt(value: float | int) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _report(analysis: ScheduleAnalysis, graph: ScheduleGraph, workers: int) -> str:
    durations = {u.id: u.duration for u in graph.units}
    lines = [f"units: {len(graph.units)}"]
    if analysis.has_cycle:
        assert analysis.cycle_path is not None
        lines.append(
            "cycle: "
            + " -> ".join(analysis.cycle_path)
            + "  (metrics below cover the acyclic part only)"
        )
    if analysis.critical_path:
        chain = " -> ".join(f"{u} ({_fmt(durations[u])})" for u in analysis.critical_path)
    else:
        chain = "(none)"
    lines += [
        f"critical path: {chain}",
        f"makespan: {_fmt(analysis.makespan)}",
        f"total work: {_fmt(analysis.total_work)}",
        f"max parallelism: {analysis.max_parallelism}",
        f"serial: {'yes' if analysis.serial else 'no'}",
        f"levels: {len(analysis.levels)}",
    ]
    for number, level in enumerate(analysis.levels, start=1):
        lines.append(f"  {number}: {', '.join(level)}")
    lines += [
        f"with {workers} worker(s):",
        f"  lower bound: {_fmt(analysis.lower_bound(workers))}",
        f"  estimate (critical-path-first list scheduling): "
        f"{_fmt(analysis.estimate_makespan(workers))}",
    ]
    return "\n".join(lines)


_MAX_WARNINGS = 10
_FLOAT_MAX = sys.float_info.max


def _dangling(graph: ScheduleGraph) -> list[str]:
    """One warning per dependency on an id the plan does not have (the crate ignores them)."""
    ids = {unit.id for unit in graph.units}
    found = [(u.id, dep) for u in graph.units for dep in u.depends_on if dep not in ids]
    lines = []
    for unit, dep in found[:_MAX_WARNINGS]:
        close = suggest_id(dep, [u.id for u in graph.units])
        hint = "" if close is None else f"; did you mean {close!r}?"
        lines.append(f"warning: unit {unit!r} depends on unknown id {dep!r} (ignored{hint})")
    if len(found) > _MAX_WARNINGS:
        lines.append(f"warning: ... and {len(found) - _MAX_WARNINGS} more unknown ids (ignored)")
    return lines


def _too_large(data: dict[str, Any]) -> str | None:
    """The first figure beyond float range (durations that add up past 1.8e308), or None."""
    figures = [(key, data[key]) for key in ("makespan", "total_work", "lower_bound", "estimate")]
    for key in ("earliest_start", "slack"):
        figures += [(f"{key} of {unit!r}", value) for unit, value in data[key].items()]
    for name, value in figures:
        if not -_FLOAT_MAX <= value <= _FLOAT_MAX:  # also catches inf
            return name
    return None


def _analyze(args: argparse.Namespace) -> int:
    graph = _load_plan(args.plan)
    where = "<stdin>" if args.plan == "-" else args.plan
    analysis = analyze_schedule(graph)
    data = analysis.to_dict(args.workers)
    name = _too_large(data)
    if name is not None:
        # JSON has no infinity, and such sums say nothing: refuse them.
        raise UserError(
            f"{where}: the durations add up beyond {_FLOAT_MAX:.4g} ({name}); "
            "give them in a larger time unit"
        )
    for line in _dangling(graph):
        print(writable_text(f"dagwave analyze: {where}: {line}"), file=sys.stderr)
    if args.json:
        print(json.dumps(data, indent=2, allow_nan=False))
    else:
        print(writable_text(_report(analysis, graph, args.workers)))
    if analysis.has_cycle:
        assert analysis.cycle_path is not None
        cycle = " -> ".join(map(repr, analysis.cycle_path))
        print(
            writable_text(
                f"dagwave analyze: {where}: cycle {cycle} (the metrics cover the acyclic part only)"
            ),
            file=sys.stderr,
        )
        return 1
    return 0


def _load_pipeline(args: argparse.Namespace) -> Any:
    """The pipeline file the arguments name, checked whole.

    Raises:
        UserError: the file is wrong.
    """
    from dagwave.cli._pipeline import PipelineError, load_pipeline

    try:
        return load_pipeline(args.pipeline)
    except PipelineError as exc:
        raise UserError(str(exc)) from None


def _load_scheduler(
    args: argparse.Namespace,
    logger: Any = None,
    pipeline: Any = None,
    adapters: dict[str, Any] | None = None,
) -> Any:
    """A scheduler of the tasks the arguments select (``targets``, ``--from``).

    The whole file is checked first, so a problem outside the selected tasks
    is found too, then the selection is made.

    Raises:
        UserError: the file is wrong, or a task named does not exist.
    """
    from dagwave.cli._pipeline import PipelineError

    if pipeline is None:
        pipeline = _load_pipeline(args)
    settings = {
        "max_concurrent": getattr(args, "max_concurrent", None),
        "mode": getattr(args, "mode", None),
        "fail_fast": getattr(args, "fail_fast", None),
        "logger": logger,
        "adapters": adapters,
    }
    try:
        scheduler = pipeline.scheduler(**settings)
        targets, starts = getattr(args, "targets", []), getattr(args, "starts", [])
        if not targets and not starts:
            return scheduler
        dag = scheduler.get_dag()
        for option, names in (("", targets), ("--from ", starts)):
            for name in names:
                if name not in dag:
                    close = suggest_id(name, list(dag))
                    hint = "" if close is None else f"; did you mean {close!r}?"
                    raise UserError(f"{args.pipeline}: {option}{name!r}: no such task{hint}")
        try:
            chosen = select_tasks(dag, targets, starts)
        except ValueError as exc:
            raise UserError(f"{args.pipeline}: {exc}") from None
        return pipeline.scheduler(**settings, only=set(chosen))
    except PipelineError as exc:
        raise UserError(str(exc)) from None


def _cluster_adapter(cluster: str) -> Any:
    """The :class:`DaskAdapter` for ``--cluster`` / ``[run] cluster`` (not connected yet).

    Raises:
        UserError: not an address nor ``local:N``, or dask.distributed is missing.
    """
    from dagwave.cli._pipeline import cluster_problem, local_workers

    problem = cluster_problem(cluster)
    if problem is not None:
        raise UserError(problem)
    # Quiet the cluster's own INFO lines (workers inherit it); dagwave's events say enough.
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    try:
        import distributed  # noqa: F401 - only to know it is there

        from dagwave.adapters.dask import DaskAdapter
    except ImportError:
        raise UserError(
            f"cluster {cluster!r} needs dask.distributed: pip install 'dagwave[dask]'"
        ) from None
    workers = local_workers(cluster)
    if workers is not None:
        return DaskAdapter(n_workers=workers, processes=True)
    return DaskAdapter(cluster, connect_timeout=CONNECT_TIMEOUT_S)


def _connect(adapter: Any, cluster: str) -> None:
    """Connect before anything runs.

    Raises:
        UserError: the scheduler cannot be reached (or its address is not one
            dask knows), or the local cluster not started.
    """
    try:
        adapter.connect()
    except Exception as exc:
        if cluster.startswith("local:"):
            raise UserError(
                f"cannot start the dask cluster {cluster}: {describe_error(exc)}"
            ) from None
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if not isinstance(exc, OSError | TimeoutError):  # dask could not parse the address
            reason = f"not a scheduler address dask can use ({reason})"
        raise UserError(f"cannot reach the dask cluster at {cluster}: {reason}") from None


class _Signalled(BaseException):
    """A stop signal arrived while connecting to a cluster (see :func:`_signals_recorded`)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _signals_recorded(received: list[int], *, interrupt: bool) -> Iterator[None]:
    """While inside, SIGINT, SIGTERM and SIGHUP are noted in ``received``, not fatal.

    With ``interrupt`` the first one also raises :class:`_Signalled` to cut a
    blocking connect short; without it nothing is cut short (closing a
    cluster must finish, or its worker processes are left behind). A signal
    that is ignored already stays ignored.
    """

    def handle(signum: int, frame: Any) -> None:
        first = not received
        received.append(signum)
        if interrupt and first:
            raise _Signalled(signum)

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():  # signal.signal needs it
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) is not signal.SIG_IGN:
                previous[sig] = signal.signal(sig, handle)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _failure_lines(task_id: str, error: BaseException) -> list[str]:
    """``task: Type: message``, then why it failed, indented.

    Why is a command's last lines of stderr or the last frames of the
    traceback (see :func:`~dagwave._errors.describe_failure`).
    """
    first, *rest = describe_error(error).splitlines() or [""]
    why = describe_failure(error).splitlines() or rest
    return [f"  {task_id}: {first}", *(f"    {line}" for line in why)]


def _summary(result: Any) -> str:
    lines = ["", "wave  tasks  status       ms"]
    for wave in result.waves:
        lines.append(
            f"{wave.wave_number:>4}  {wave.task_count:>5}  {wave.status.name:<11} "
            f"{(wave.duration_ms or 0.0):>8.1f}"
        )
    lines += ["", f"{'task':<24} {'status':<11} {'attempts':>8} {'ms':>9}"]
    for task_id, record in result.tasks.items():
        lines.append(
            f"{task_id:<24} {record.status.name:<11} {record.attempts:>8} "
            f"{record.duration_ms:>9.1f}"
        )
    failures = [(tid, rec) for tid, rec in result.tasks.items() if rec.status.name == "FAILED"]
    if failures:
        lines += ["", "failures:"]
        for tid, rec in failures:
            lines += _failure_lines(tid, rec.error)
    skipped = [(tid, rec) for tid, rec in result.tasks.items() if rec.status.name == "SKIPPED"]
    if skipped:
        lines.append(
            "skipped: " + ", ".join(f"{t} (after {r.skipped_because})" for t, r in skipped)
        )
    lines += [
        "",
        f"{result.successful_tasks}/{result.total_tasks} completed"
        + (f" ({result.cached_tasks} cached)" if result.cached_tasks else "")
        + f", {result.failed_tasks} failed, "
        f"{result.skipped_tasks} skipped, {result.cancelled_tasks} cancelled",
        "critical path: " + (" -> ".join(result.critical_path) or "(none)"),
        f"wall {result.total_duration_ms:.0f} ms, "
        f"sequential {result.sequential_duration_ms:.0f} ms, speedup {result.speedup_ratio:.2f}x, "
        f"cpu {result.cpu_ms:.0f} ms",
    ]
    note = gil_note(result)
    if note:
        lines.append(note)
    return writable_text("\n".join(lines))


def gil_note(result: Any) -> str | None:
    """A warning when blocking tasks were CPU-bound in threads, so the speedup overstates.

    Python threads running Python code take turns on the GIL: their CPU time
    adds up to about the wall time however many ran "at once", while the
    speedup (attempt time over wall time) counts the turns as parallel. Then
    say so, and point at the process adapter.
    """
    wall, threads = result.total_duration_ms, result.thread_cpu_ms
    if wall <= 0 or threads <= 0:
        return None
    parallel = threads / wall  # CPU-seconds of thread work per wall-second
    if parallel >= 0.5 and result.speedup_ratio >= 1.5 and result.speedup_ratio > 1.5 * parallel:
        return (
            f"note: the blocking tasks were CPU-bound ({threads:.0f} ms of thread CPU time in "
            f"{wall:.0f} ms): the GIL ran them one at a time, so the speedup is not parallel "
            'work; adapter = "process" runs such tasks in parallel'
        )
    return None


def progress_line(stats: Any) -> str:
    """One status line: done/running/failed of total, the current wave, elapsed time."""
    done = stats.completed + stats.failed + stats.skipped + stats.cancelled
    wave = min(stats.waves_done + 1, stats.total_waves)
    return (
        f"[{done}/{stats.total} done, {stats.running} running, {stats.failed} failed] "
        f"wave {wave}/{stats.total_waves}  {stats.elapsed_s:.1f}s"
    )


def _live_progress(stream: Any) -> Any:
    """A progress callback redrawing one status line in place on a terminal."""

    def show(stats: Any) -> None:
        stream.write("\r\x1b[K" + progress_line(stats))
        stream.flush()

    return show


def _check_output(option: str, path: str) -> None:
    """Fail now, before anything runs, when ``path`` cannot be written."""
    if not path:
        raise UserError(f"{option}: give a file name")
    where = f"{option} {path}"
    if os.path.isdir(path):
        raise UserError(f"{where}: is a folder; give a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UserError(f"{where}: no such folder {folder} (create it first)")
    target = path if os.path.exists(path) else folder
    if not os.access(target, os.W_OK):
        raise UserError(f"{where}: permission denied (cannot write {target})")


def _write_output(option: str, path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        raise UserError(f"{option} {path}: cannot write ({exc.strerror})") from None


class _StopSignals:
    """SIGTERM and SIGHUP cancel the run, the way Ctrl-C does (see :func:`_stop_signals`).

    The handler only asks trio, through ``TrioToken.run_sync_soon`` (safe from
    a signal handler), to cancel the scope the run executes in: the run is
    cancelled as a whole, commands' process groups are ended and what
    finished is kept. This does not go through SIGINT, so it works where
    SIGINT is ignored (a background job of a script).
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None

    def handle(self, signum: int, frame: Any) -> None:
        if self.received:  # a repeated signal must not cut the cleanup short
            return
        self.received.append(signum)
        if self._token is not None and self._scope is not None:
            import trio

            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(self._scope.cancel)

    async def run(self, execute: Callable[[], Awaitable[_T]]) -> _T | None:
        """``await execute()``; None when a stop signal cancelled it."""
        import trio

        with trio.CancelScope() as scope:
            self._token, self._scope = trio.lowlevel.current_trio_token(), scope
            if self.received:  # it came before the scope was known
                scope.cancel()
            return await execute()
        return None


@contextlib.contextmanager
def _stop_signals() -> Iterator[_StopSignals]:
    """While inside, SIGTERM and SIGHUP stop the run given to ``.run()``.

    A signal that is ignored already (``nohup``) stays ignored.
    """
    stop = _StopSignals()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():  # signal.signal needs it
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) is not signal.SIG_IGN:
                previous[sig] = signal.signal(sig, stop.handle)
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _write_outputs(args: argparse.Namespace, scheduler: Any, result: Any) -> None:
    """Write the ``--trace`` and ``--report`` files asked for.

    Raises:
        UserError: a file could not be written.
    """
    if args.trace:
        _write_output("--trace", args.trace, json.dumps(result.to_chrome_trace()))
    if args.report:
        _write_output("--report", args.report, scheduler.to_html_report())


def _interrupted(args: argparse.Namespace, scheduler: Any, signum: int) -> int:
    """Print what finished, write the trace and report of it, say how the run was stopped.

    Returns:
        The exit status, 128 + the signal's number.
    """
    result = scheduler.last_result
    # After SIGHUP the terminal may be gone: writing to it must not turn into a traceback.
    with contextlib.suppress(OSError):
        if result is not None:
            print(_summary(result))
    if result is not None:
        try:
            _write_outputs(args, scheduler, result)
        except UserError as exc:  # the signal decides the status; say what was lost
            with contextlib.suppress(OSError):
                print(f"dagwave run: error: {exc}", file=sys.stderr)
    with contextlib.suppress(OSError):
        print(f"interrupted ({signal.Signals(signum).name})", file=sys.stderr)
    return 128 + signum


def _run(args: argparse.Namespace) -> int:
    pipeline = _load_pipeline(args)
    if isinstance(args.resume, str) and args.resume in {t.task_id for t in pipeline.tasks}:
        # ``run p.toml --resume build``: the word after --resume names a task, not a
        # run (run ids are UUIDs): a target, and the pipeline's last run resumed.
        args.targets, args.resume = [*args.targets, args.resume], True
    cluster = args.cluster if args.cluster is not None else pipeline.cluster
    if cluster is None:
        return _run_pipeline(args, pipeline, None)
    adapter = _cluster_adapter(cluster)
    received: list[int] = []
    try:
        status = _run_pipeline(args, pipeline, adapter, cluster)
    except _Signalled as stop:  # while connecting: nothing ran
        status = _say_interrupted(stop.signum)
    finally:
        # After the summary and outputs: the results stay on the cluster until here.
        with _signals_recorded(received, interrupt=False):
            adapter.close()
    if received and status < 128:  # while closing, after a run that was not stopped
        return _say_interrupted(received[0])
    return status


def _say_interrupted(signum: int) -> int:
    with contextlib.suppress(OSError):
        print(f"interrupted ({signal.Signals(signum).name})", file=sys.stderr)
    return 128 + signum


def _run_pipeline(
    args: argparse.Namespace, pipeline: Any, dask: Any, cluster: str | None = None
) -> int:
    from dagwave.run._events import configure_logging

    for option, path in (("--trace", args.trace), ("--report", args.report)):
        if path is not None:
            _check_output(option, path)

    # On a terminal: a live status line, and only warnings and errors as log
    # lines; otherwise every event as a plain line.
    live = sys.stderr.isatty() and args.log_format == "console"
    configure_logging(args.log_format, sys.stderr, min_level="warning" if live else "info")
    if dask is None:  # the per-run cluster: nothing here reads the results, don't fetch them
        from dagwave.adapters.dask import per_run_adapter

        adapters = {"dask": per_run_adapter(fetch_after_run=False)}
    else:
        adapters = {"dask": dask}
    scheduler = _load_scheduler(args, pipeline=pipeline, adapters=adapters)
    if args.dry_run:
        print(f"{len(scheduler)} tasks in {len(scheduler.get_wave_summary())} waves:")
        for wave in scheduler.get_wave_summary():
            print(f"  wave {wave['wave_number']}: {', '.join(wave['task_ids'])}")
        graph = ScheduleGraph.from_dict(
            {
                "units": [
                    {
                        "id": task.task_id,
                        "duration": task.estimated_duration,
                        "depends_on": list(task.dependencies),
                    }
                    for task in scheduler.tasks.values()
                ]
            }
        )
        print(_report(analyze_schedule(graph), graph, scheduler.max_concurrent))
        return 0
    import trio

    if dask is not None:
        assert cluster is not None
        received: list[int] = []
        try:
            with _signals_recorded(received, interrupt=True):
                _connect(dask, cluster)
                if received:  # caught on the way (as some other error, or swallowed)
                    raise _Signalled(received[0])
        except (Exception, KeyboardInterrupt):
            if received:
                raise _Signalled(received[0]) from None
            raise
    execute = scheduler.execute
    if args.no_store and args.resume is not None:
        raise UserError("--resume reads the run store: it cannot go with --no-store")
    for task_id in args.force:
        if task_id not in scheduler.tasks:
            close = suggest_id(task_id, list(scheduler.tasks))
            hint = "" if close is None else f"; did you mean {close!r}?"
            raise UserError(f"--force {task_id}: no such task in {args.pipeline}{hint}")
    cap = args.output_cap if args.output_cap is not None else pipeline.output_cap
    store = None if args.no_store else _open_store_for(args.pipeline, cap)
    if store is not None:
        scheduler.pipeline_file = args.pipeline
        execute = functools.partial(
            execute,
            store=store,
            cache=False if args.no_cache else None,
            force=True if args.force_all else args.force,
            resume=args.resume,
        )
    if live:
        execute = functools.partial(execute, progress=_live_progress(sys.stderr))
    with _stop_signals() as stop, contextlib.ExitStack() as closing:
        if store is not None:
            closing.callback(store.close)
        try:
            try:
                result = trio.run(stop.run, execute)
            finally:
                if live:
                    with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
                        sys.stderr.write("\r\x1b[K")  # leave the terminal clean
        except KeyboardInterrupt:  # Ctrl-C: trio raises it in the run
            return _interrupted(args, scheduler, signal.SIGINT)
        except StoreError as exc:
            raise UserError(str(exc)) from None
    if result is None:  # SIGTERM or SIGHUP cancelled it
        return _interrupted(args, scheduler, stop.received[0])
    print(_summary(result))
    _write_outputs(args, scheduler, result)
    return 0 if result.succeeded else 1


def _open_store_for(pipeline: str, output_cap: int | None = None) -> RunStore:
    """The run store beside ``pipeline`` (its ``.dagwave`` folder created if missing).

    Raises:
        UserError: the folder cannot be made, or the store cannot be used.
    """
    path = os.path.join(os.path.dirname(os.path.abspath(pipeline)), STORE_FILE)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"{os.path.dirname(path)}: cannot create it ({exc.strerror}); "
            "--no-store runs without recording"
        ) from None
    try:
        return RunStore(path, output_cap=DEFAULT_OUTPUT_CAP if output_cap is None else output_cap)
    except StoreError as exc:
        raise UserError(str(exc)) from None


def _existing_store(pipeline: str | None) -> RunStore:
    """The store beside ``pipeline``, or under the current folder; never created."""
    folder = os.getcwd() if pipeline is None else os.path.dirname(os.path.abspath(pipeline))
    path = os.path.join(folder, STORE_FILE)
    if not os.path.isfile(path):
        raise UserError(f"{path}: no run store here (dagwave run records one)")
    try:
        return RunStore(path, create=False)
    except StoreError as exc:
        raise UserError(str(exc)) from None


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _history(args: argparse.Namespace) -> int:
    pipeline = args.pipeline or args.pipeline_option
    with _existing_store(pipeline) as store:
        try:
            runs = store.runs(None if pipeline is None else os.path.abspath(pipeline))
        except StoreError as exc:
            raise UserError(str(exc)) from None
    if not runs:
        print("no runs recorded" + ("" if pipeline is None else f" for {pipeline}"))
        return 0
    lines = [
        f"{'run':<36}  {'when':<19}  {'status':<11}  {'done':>9}  {'failed':>6}  "
        f"{'skipped':>7}  {'cancelled':>9}  {'wall ms':>9}  speedup"
    ]
    for run in runs:
        speedup = run.speedup
        lines.append(
            f"{run.run_id:<36}  {_when(run.started_at):<19}  {run.status.upper():<11}  "
            f"{f'{run.completed_tasks}/{run.total_tasks}':>9}  {run.failed_tasks:>6}  "
            f"{run.skipped_tasks:>7}  {run.cancelled_tasks:>9}  {_ms(run.wall_ms):>9}  "
            + ("-" if speedup is None else f"{speedup:.2f}x")
        )
    print(writable_text("\n".join(lines)))
    return 0


def _show(args: argparse.Namespace) -> int:
    store, run = _stored_run(args)
    speedup = run.speedup
    lines = [
        f"run {run.run_id}",
        f"pipeline: {run.pipeline or '(Python API)'}  (sha256 {run.pipeline_hash[:12]})",
        f"started {_when(run.started_at)}, "
        + ("not ended" if run.ended_at is None else f"ended {_when(run.ended_at)}"),
        f"status: {run.status.upper()}",
        "",
        f"{'task':<24} {'status':<11} {'attempts':>8} {'ms':>9}",
    ]
    for task in run.tasks:
        lines.append(
            f"{task.task_id:<24} {task.status.upper():<11} {task.attempts:>8} "
            f"{task.duration_ms:>9.1f}"
        )
    failures = [task for task in run.tasks if task.status == "failed"]
    if failures:
        lines += ["", "failures:"]
        for task in failures:
            # As the run's summary: a command's output when the error carries
            # it, else the last frames of the traceback.
            first, *rest = (task.error or "").splitlines() or [""]
            last = task.attempt_log[-1] if task.attempt_log else None
            why = rest or ([] if last is None else last.traceback.splitlines())
            lines += [f"  {task.task_id}: {first}", *(f"    {line}" for line in why)]
    lines += [
        "",
        f"{run.completed_tasks}/{run.total_tasks} completed, {run.failed_tasks} failed, "
        f"{run.skipped_tasks} skipped, {run.cancelled_tasks} cancelled",
        f"wall {_ms(run.wall_ms)} ms, sequential {_ms(run.sequential_ms)} ms, "
        f"speedup {'-' if speedup is None else f'{speedup:.2f}x'}, cpu {_ms(run.cpu_ms)} ms",
    ]
    if any(task.outputs for task in run.tasks):
        lines.append(
            f"output: {store.output_folder(run.run_id)} "
            f"(dagwave logs {run.run_id[:8]} TASK)"
        )
    print(writable_text("\n".join(lines)))
    return 0


def _stored_run(args: argparse.Namespace) -> tuple[RunStore, StoredRun]:
    """The run ``args.run`` names, and its store (closed already: only paths are used).

    Raises:
        UserError: no store, or no such run (or several).
    """
    with _existing_store(args.pipeline) as store:
        try:
            return store, store.get_run(args.run)
        except StoreError as exc:
            raise UserError(str(exc)) from None


def _stored_task(run: StoredRun, task_id: str) -> StoredTask:
    task = run.task(task_id)
    if task is None:
        known = [t.task_id for t in run.tasks]
        close = suggest_id(task_id, known)
        hint = "" if close is None else f"; did you mean {close!r}?"
        raise UserError(f"run {run.run_id} has no task {task_id!r}{hint}")
    return task


def _size_text(count: int) -> str:
    return f"{count} byte{'' if count == 1 else 's'}"


def _shown_path(path: str) -> str:
    """``path`` relative to the current folder when it is under it, else as it is."""
    relative = os.path.relpath(path)
    return path if relative.startswith(os.pardir) else relative


def _logs(args: argparse.Namespace) -> int:
    """A task's kept stdout and stderr (each under a header), then its failed attempts.

    With ``--stream``, only that stream's bytes as they are (nothing for a
    stream that wrote nothing).
    """
    store, run = _stored_run(args)
    task = _stored_task(run, args.task)
    folder = store.output_folder(run.run_id)
    out = sys.stdout
    if args.stream is not None:
        for record in task.outputs:
            if record.stream == args.stream:
                path = os.path.join(folder, record.file)
                try:
                    with open(path, "rb") as file:
                        data = file.read()
                except OSError as exc:
                    raise UserError(f"{path}: cannot read it ({exc.strerror})") from None
                out.flush()
                out.buffer.write(data)
                out.buffer.flush()
        return 0
    lines: list[str] = []

    def flush_lines() -> None:
        if lines:
            print(writable_text("\n".join(lines)), file=out)
            lines.clear()

    if not task.outputs:
        lines.append(
            f"--- {task.task_id}: no output kept (only commands' output is; "
            "this one printed nothing, or the run kept none) ---"
        )
    for record in task.outputs:
        path = os.path.join(folder, record.file)
        size = _size_text(record.total_bytes)
        if record.cut:
            size = (
                f"{record.kept_bytes} of {size} kept: the middle was cut "
                "(--output-cap raises the limit)"
            )
        if record.error is not None:
            size = f"{record.kept_bytes} of {size} kept: {record.error}"
        lines.append(f"--- {record.stream}: {size} ({_shown_path(path)}) ---")
        try:
            with open(path, "rb") as file:
                data = file.read()
        except OSError as exc:
            lines.append(f"(cannot read it: {exc.strerror})")
            continue
        flush_lines()
        out.flush()
        out.buffer.write(data if data.endswith(b"\n") else data + b"\n")
        out.buffer.flush()
    for attempt in task.attempt_log:
        if attempt.error is None:
            continue
        lines.append(f"--- attempt {attempt.attempt}: {attempt.outcome} ---")
        if attempt.error.startswith("CommandError: ") or not attempt.traceback:
            # A command's traceback holds only dagwave's frames: its message says why.
            lines.append(attempt.error)
        else:
            lines.append(attempt.traceback)
    flush_lines()
    return 0


def _view(args: argparse.Namespace) -> int:
    """``dagwave report`` / ``dagwave trace``: the exporters ``--report``/``--trace`` use."""
    from dagwave.report._export import html_report
    from dagwave.store._rebuild import rebuild_result, stored_graph

    option = "-o"
    if args.output != "-":
        _check_output(option, args.output)
    _, run = _stored_run(args)
    result = rebuild_result(run)
    if args.command == "trace":
        text = json.dumps(result.to_chrome_trace())
    else:
        text = html_report(result, *stored_graph(run))
    if args.output == "-":
        sys.stdout.write(text + ("" if text.endswith("\n") else "\n"))
    else:
        _write_output(option, args.output, text)
    return 0


def _graph(args: argparse.Namespace) -> int:
    scheduler = _load_scheduler(args)
    print(scheduler.to_mermaid() if args.format == "mermaid" else scheduler.to_dot(), end="")
    return 0


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The parsed arguments; ``dagwave run``'s TASK names may come between its options.

    argparse gives the positionals it finds after an option
    (``run p.toml --dry-run build``) back as unrecognised: those are targets.
    """
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "run" and not any(e.startswith("-") for e in extra):
        args.targets = [*args.targets, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Args:
        argv: arguments without the program name (default ``sys.argv[1:]``).

    Returns:
        0 on success; 1 when a task failed, a plan has a cycle, or the reader
        of the output went away; 2 for bad input (one line on stderr); 128 +
        the signal's number when SIGINT, SIGTERM or SIGHUP stopped a run.
    """
    try:
        args = _parse(argv)
    except SystemExit as exc:  # --help, --version, or a bad argument (one line, status 2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handlers: dict[str, Any] = {
        "analyze": _analyze,
        "run": _run,
        "graph": _graph,
        "history": _history,
        "show": _show,
        "logs": _logs,
        "report": _view,
        "trace": _view,
    }
    try:
        return int(handlers[args.command](args))
    except BrokenPipeError:
        # The reader went away (``dagwave analyze plan.json | head``): stop
        # quietly, and keep Python from complaining again when it flushes.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except UserError as exc:
        # One line, whatever the message holds (a file name may hold a newline).
        message = writable_text(str(exc)).replace("\r", "\\r").replace("\n", "\\n")
        print(f"dagwave {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
