"""Shell commands as task executors, run by trio without a thread per command.

``Command(["make", "docs"])`` (or a shell string, ``Command("make docs | tee
log")``) is an async executor: add it like any task. It starts the process
with :func:`trio.lowlevel.open_process` in a session of its own, reads stdout
and stderr concurrently into bounded buffers (the last ``max_output`` bytes of
each are kept), and waits for it to exit. In a run recorded in a run store
the full output also goes to the task's files beside the store, within the
store's ``output_cap`` (see :func:`dagwave.output_writer`; ``dagwave logs``
shows them):

* exit status 0: the task's result is a :class:`CommandResult` (``returncode``,
  ``stdout``, ``stderr``);
* any other status (with ``check=True``, the default): the task fails with
  :class:`CommandError`, whose message shows the command and the last lines of
  its stderr (also kept as ``output_tail``);
* a timeout or cancellation kills the whole process group (the command and
  everything it started), first with SIGTERM, then, after ``kill_grace``
  seconds, with SIGKILL, so nothing is left running.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from dagwave import OutputWriter, SchedulerError, output_writer
from dagwave._checks import check_int, check_number

__all__ = ["Command", "CommandError", "CommandResult"]

_CHUNK = 65536


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a finished command produced.

    Attributes:
        args: the command as run (a list, or the shell string).
        returncode: its exit status (negative: killed by that signal).
        stdout: the last ``max_output`` bytes of its standard output, decoded.
        stderr: the last ``max_output`` bytes of its standard error, decoded.
        stdout_truncated: True when earlier stdout was dropped.
        stderr_truncated: True when earlier stderr was dropped.
    """

    args: str | tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    stdout_truncated: bool = False
    stderr_truncated: bool = False


class CommandError(SchedulerError):
    """A command exited with a non-zero status.

    Attributes:
        result: the :class:`CommandResult` (exit status and output tails).
        output_tail: the last ``tail_lines`` lines of its stderr (what the
            command line summary and the HTML report show for the task).
    """

    def __init__(self, result: CommandResult, tail_lines: int = 10) -> None:
        self.result = result
        shown = result.args if isinstance(result.args, str) else shlex.join(result.args)
        tail = result.stderr.rstrip().splitlines()[-tail_lines:]
        self.output_tail = "\n".join(tail)
        if result.returncode < 0:
            how = f"was killed by signal {-result.returncode}"
        else:
            how = f"exited with status {result.returncode}"
        message = f"Command {shown!r} {how}"
        if tail:
            message += "; last lines of stderr:\n" + "\n".join(f"  {line}" for line in tail)
        super().__init__(message)

    @property
    def returncode(self) -> int:
        """The command's exit status."""
        return self.result.returncode


class _Tail:
    """Keeps the last ``limit`` bytes written to it."""

    __slots__ = ("data", "limit", "truncated")

    def __init__(self, limit: int) -> None:
        self.data = bytearray()
        self.limit = limit
        self.truncated = False

    def add(self, chunk: bytes | bytearray) -> None:
        self.data += chunk
        excess = len(self.data) - self.limit
        if excess > 0:
            del self.data[:excess]
            self.truncated = True

    def text(self) -> str:
        return self.data.decode(errors="replace")


async def _drain(
    stream: trio.abc.ReceiveStream | None, tail: _Tail, keep: OutputWriter | None
) -> None:
    if stream is None:
        return
    async with stream:
        while chunk := await stream.receive_some(_CHUNK):
            tail.add(chunk)
            if keep is not None:
                keep.write(chunk)


def _drain_blocking(stream: Any, tail: _Tail) -> None:
    if stream is None:
        return
    with stream:
        while chunk := stream.read1(_CHUNK):
            tail.add(chunk)


def _kill_group(process: trio.Process, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group is gone already
        os.killpg(process.pid, sig)


@dataclass(frozen=True)
class Command:
    """A shell command as a task executor (see the module docstring).

    Args:
        args: an argv list (run directly) or a string (run by ``/bin/sh -c``).
        cwd: the working directory (default: the current one).
        env: variables to add or override on top of the current environment.
        check: fail the task on a non-zero exit status (default True).
        max_output: bytes of stdout and of stderr kept (the tail), each.
        kill_grace: seconds between SIGTERM and SIGKILL on timeout/cancellation.

    Raises:
        TypeError, ValueError: bad arguments, when the Command is created.
    """

    args: str | Sequence[str]
    cwd: str | os.PathLike[str] | None = None
    env: Mapping[str, str] | None = None
    check: bool = True
    max_output: int = 1 << 20
    kill_grace: float = 2.0
    _argv: str | tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        args = self.args
        if isinstance(args, str):
            if not args.strip():
                raise ValueError("Command needs a non-empty command string")
            argv: str | tuple[str, ...] = args
        elif isinstance(args, Sequence) and args and all(isinstance(a, str) for a in args):
            argv = tuple(args)
        else:
            raise TypeError(
                f"Command args must be a string or a non-empty list of str, got {args!r}"
            )
        check_int("max_output", self.max_output, minimum=1, owner="Command")
        check_number("kill_grace", self.kill_grace, minimum=0, owner="Command")
        object.__setattr__(self, "_argv", argv)

    def __str__(self) -> str:
        return self._argv if isinstance(self._argv, str) else shlex.join(self._argv)

    def cache_identity(self) -> dict[str, Any]:
        """What the command runs, for a cached task's key: argv or string, env overrides, cwd.

        The folder is made absolute, so one pipeline run from anywhere keeps its keys.
        """
        return {
            "args": self._argv if isinstance(self._argv, str) else list(self._argv),
            "env": None if self.env is None else sorted(self.env.items()),
            "cwd": os.path.abspath(self.cwd if self.cwd is not None else os.getcwd()),
            "check": self.check,
        }

    async def __call__(self, context: Any = None) -> CommandResult:
        """Run the command to the end and return its :class:`CommandResult`.

        Raises:
            CommandError: non-zero exit status with ``check=True``.
            OSError: the program could not be started (e.g. not found).
        """
        process = await trio.lowlevel.open_process(self._argv, **self._process_options())
        out, err = _Tail(self.max_output), _Tail(self.max_output)
        keep_out, keep_err = output_writer(context, "stdout"), output_writer(context, "stderr")
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_drain, process.stdout, out, keep_out)
                nursery.start_soon(_drain, process.stderr, err, keep_err)
                await process.wait()
        except BaseException:
            # Timeout, cancellation or a failed read: end the command and
            # everything it started before letting the exception go on.
            with trio.CancelScope(shield=True):
                await self._stop(process)
            raise
        finally:
            for keep in (keep_out, keep_err):
                if keep is not None:
                    keep.close()
        assert process.returncode is not None  # wait() returned
        return self._result(process.returncode, out, err)

    def _process_options(self) -> dict[str, Any]:
        """How the process starts, awaited or blocking: piped output, a group of its own."""
        return {
            "shell": isinstance(self._argv, str),
            "stdin": subprocess.DEVNULL,
            "stdout": subprocess.PIPE,
            "stderr": subprocess.PIPE,
            "cwd": self.cwd,
            "env": None if self.env is None else {**os.environ, **self.env},
            "start_new_session": True,  # its own process group, so we can end all of it
        }

    def _result(self, returncode: int, out: _Tail, err: _Tail) -> CommandResult:
        """The result of an ended call from what was read of its streams (raises when checked)."""
        result = CommandResult(
            args=self._argv,
            returncode=returncode,
            stdout=out.text(),
            stderr=err.text(),
            stdout_truncated=out.truncated,
            stderr_truncated=err.truncated,
        )
        if self.check and returncode != 0:
            raise CommandError(result)
        return result

    def run_blocking(
        self, *, stop: Callable[[], bool] | None = None, poll: float = 0.2
    ) -> CommandResult:
        """Run the command to the end in this thread (no trio): what a cluster worker calls.

        Same result, errors, output bounds and end as awaiting the command:
        it returns once the command exited and its stdout and stderr ended
        (a background child that keeps them open is waited for, its output
        kept). The process group is killed (SIGTERM, then SIGKILL after
        ``kill_grace``) once ``stop()`` returns True; ``stop`` is asked every
        ``poll`` seconds.

        Args:
            stop: asked while the command runs; True ends it.
            poll: seconds between two questions to ``stop``.

        Returns:
            The :class:`CommandResult`.

        Raises:
            CommandError: non-zero exit status with ``check=True``, or the
                command was stopped.
            OSError: the program could not be started.
        """
        process = subprocess.Popen(self._argv, **self._process_options())
        out, err = _Tail(self.max_output), _Tail(self.max_output)
        readers = [
            threading.Thread(target=_drain_blocking, args=(stream, tail), daemon=True)
            for stream, tail in ((process.stdout, out), (process.stderr, err))
        ]
        for reader in readers:
            reader.start()
        try:
            # As awaiting it: done once the command exited and its output ended
            # (a background child may hold the pipes open after the shell exits).
            while process.poll() is None or any(r.is_alive() for r in readers):
                alive = next((r for r in readers if r.is_alive()), None)
                if alive is not None:
                    alive.join(poll)
                else:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        process.wait(timeout=poll)
                if stop is not None and stop():
                    self._stop_blocking(process)
                    break
        except BaseException:
            self._stop_blocking(process)
            raise
        # Only when stopped can a reader still run: a descendant that left the
        # killed group may hold a pipe open. Give the output a moment to end,
        # then leave that reader behind (a daemon), as an awaited drain is cancelled.
        give_up = time.monotonic() + self.kill_grace + 1.0
        for reader in readers:
            reader.join(max(0.0, give_up - time.monotonic()))
        return self._result(process.returncode, out, err)

    def _stop_blocking(self, process: subprocess.Popen[bytes]) -> None:
        """:meth:`_stop` without trio: SIGTERM the group, SIGKILL what is left after the grace."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=self.kill_grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    async def _stop(self, process: trio.Process) -> None:
        """SIGTERM the whole group, then SIGKILL what is left after the grace period."""
        _kill_group(process, signal.SIGTERM)
        with trio.move_on_after(self.kill_grace):
            await process.wait()
        _kill_group(process, signal.SIGKILL)
        await process.wait()
