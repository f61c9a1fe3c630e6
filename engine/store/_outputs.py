"""Every command's output, kept in files beside the run store.

A run recorded in a :class:`~dagwave.RunStore` gets a folder,
``<store folder>/runs/<run id>/``, and an :class:`OutputFiles` for it, set as
the *current* one (a context variable) while the run goes on. A command
executor asks :func:`output_writer` for the writer of its task's stdout and
stderr and hands it every chunk it reads; without a store there is no
current :class:`OutputFiles` and nothing is written. Executors that are not
commands never ask, so they cost nothing.

One file per task and stream, ``<name>.stdout`` and ``<name>.stderr``,
created on the first byte (a task that prints nothing has no file). The name
is the task id with every character outside ``[A-Za-z0-9._-]`` replaced by
``_`` and, when that changed anything, an 8-hex hash of the id added, so
``a/b`` and ``a_b`` get different files; names are also kept unique within
a run ignoring case (``-2``, ``-3``, ... added), for case-blind file systems.
The store records each file's name, so nobody needs to recompute it.
A file that cannot be written (the disk is full, the folder cannot be made)
never fails the task: its stream stops being kept and the record says why.

Each attempt of a task keeps at most ``cap`` bytes of each stream (a task
retried twice may keep three times that). What goes beyond is cut from the
middle: the first half of the cap is written as it comes, the last half is
held in memory and written when the attempt ends, with a line between saying
how many bytes were cut (so a running command holds at most ``cap / 2``
bytes of each stream here, beside the ``max_output`` bytes its
:class:`~dagwave.adapters.subprocess.CommandResult` keeps). A retried task's
file gets a ``[dagwave: attempt N]`` line before each later attempt's output.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Literal

__all__ = [
    "DEFAULT_OUTPUT_CAP",
    "OutputFiles",
    "OutputRecord",
    "OutputWriter",
    "Stream",
    "current_output_files",
    "output_writer",
    "safe_file_name",
]

Stream = Literal["stdout", "stderr"]

#: Bytes of each stream kept per attempt when no cap is given (4 MiB).
DEFAULT_OUTPUT_CAP = 4 << 20

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_NAME = 80  # characters of the id kept in a file name, before the hash

#: The :class:`OutputFiles` of the run in progress in this context (None: keep nothing).
current_output_files: contextvars.ContextVar[OutputFiles | None] = contextvars.ContextVar(
    "dagwave_output_files", default=None
)


def safe_file_name(task_id: str) -> str:
    """A file name for ``task_id``: the id when it is safe, else a cleaned id and its hash.

    Safe means only ``[A-Za-z0-9._-]``, at most 80 characters, not starting
    with ``.`` (no hidden files, no ``..``) and not empty.
    """
    cleaned = _UNSAFE.sub("_", task_id)[:_MAX_NAME]
    if cleaned == task_id and task_id and not task_id.startswith("."):
        return task_id
    digest = hashlib.sha256(task_id.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{cleaned.lstrip('.') or 'task'}-{digest}"


@dataclass(frozen=True, slots=True)
class OutputRecord:
    """What was kept of one stream of one task (a row of the store's ``outputs`` table).

    Attributes:
        task_id: the task.
        stream: ``"stdout"`` or ``"stderr"``.
        file: the file's name in the run's folder.
        total_bytes: bytes the task wrote to the stream, over all its attempts.
        kept_bytes: bytes of it in the file (the rest was cut from the middle).
        error: why the file could not be written (then it holds less, or is
            missing), or None.
    """

    task_id: str
    stream: Stream
    file: str
    total_bytes: int
    kept_bytes: int
    error: str | None = None

    @property
    def cut(self) -> bool:
        """True when some of the output was cut to keep within the cap."""
        return self.error is None and self.kept_bytes < self.total_bytes


class _Kept:
    """One task's stream over its attempts: its file, and what went into it."""

    __slots__ = ("attempts", "error", "file", "kept", "path", "total")

    def __init__(self, path: str, file: str) -> None:
        self.path = path
        self.file = file
        self.total = 0
        self.kept = 0
        self.attempts = 0
        self.error: str | None = None


class OutputWriter:
    """Writes one attempt's stream of one task into its file (see the module docstring).

    Call :meth:`write` with each chunk as it comes and :meth:`close` once at
    the end of the attempt, however it ends (the held tail is written then).
    Used by one task at a time; not thread-safe by itself.
    """

    __slots__ = (
        "_attempt",
        "_cap",
        "_file",
        "_head",
        "_kept",
        "_seen",
        "_tail",
        "_tail_size",
        "_written",
    )

    def __init__(self, kept: _Kept, attempt: int, cap: int) -> None:
        self._kept = kept
        self._attempt = attempt
        self._head = cap - cap // 2  # bytes still written as they come
        self._tail_size = cap // 2  # bytes held for the end
        self._tail = bytearray()
        self._cap = cap
        self._seen = 0  # bytes of this attempt
        self._written = 0  # of them, written as they came
        self._file: IO[bytes] | None = None

    def _open(self) -> IO[bytes]:
        file = self._file
        if file is None:
            kept = self._kept
            os.makedirs(os.path.dirname(kept.path), exist_ok=True)
            file = self._file = open(kept.path, "ab")  # noqa: SIM115 - closed in close()
            if kept.attempts:  # an earlier attempt wrote here
                file.write(f"\n[dagwave: attempt {self._attempt}]\n".encode())
            kept.attempts += 1
        return file

    def write(self, data: bytes | bytearray) -> None:
        """Keep ``data`` (the next bytes of the stream), within the cap."""
        if not data:
            return
        kept = self._kept
        kept.total += len(data)
        self._seen += len(data)
        if kept.error is not None:
            return
        if self._head:
            part = data[: self._head]
            try:
                self._open().write(part)
            except OSError as exc:
                self._fail(exc)
                return
            self._head -= len(part)
            self._written += len(part)
            kept.kept += len(part)
            data = data[len(part) :]
            if not data:
                return
        if self._tail_size:
            tail = self._tail
            tail += data
            excess = len(tail) - self._tail_size
            if excess > 0:
                del tail[:excess]

    def close(self) -> None:
        """End the attempt: write the held tail (after a note of what was cut), close the file."""
        kept = self._kept
        tail = self._tail
        cut = self._seen - self._written - len(tail)
        self._written = self._seen  # a second close() writes nothing
        try:
            if kept.error is None:
                if cut:
                    self._open().write(
                        f"\n[dagwave: {cut} bytes cut here: output_cap keeps {self._cap} "
                        "bytes of each stream per attempt]\n".encode()
                    )
                if tail:
                    self._open().write(tail)
                    kept.kept += len(tail)
            if self._file is not None:
                file, self._file = self._file, None
                file.close()
        except OSError as exc:
            self._fail(exc)
        tail.clear()

    def _fail(self, exc: OSError) -> None:
        """Stop keeping this stream (the task goes on); remember why."""
        self._kept.error = f"cannot write {self._kept.path}: {exc.strerror or exc}"
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()

    def __enter__(self) -> OutputWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class OutputFiles:
    """The output files of one run, in ``folder`` (created when the first byte comes).

    Args:
        folder: the run's folder (``<store folder>/runs/<run id>``).
        cap: bytes of each stream kept per attempt (>= 0; 0 keeps nothing but counts).

    Thread-safe, so that code holding it may hand writers to worker threads;
    :func:`output_writer` itself finds it only on the trio thread.
    """

    def __init__(self, folder: str | os.PathLike[str], cap: int = DEFAULT_OUTPUT_CAP) -> None:
        self.folder = os.fspath(folder)
        self.cap = cap
        self._lock = threading.Lock()
        self._kept: dict[tuple[str, Stream], _Kept] = {}
        self._names: dict[str, str] = {}  # task id -> its file name (without the stream)
        self._taken: set[str] = set()  # names given, casefolded

    def _name(self, task_id: str) -> str:
        name = self._names.get(task_id)
        if name is None:
            base = name = safe_file_name(task_id)
            number = 1
            while name.casefold() in self._taken:
                number += 1
                name = f"{base}-{number}"
            self._taken.add(name.casefold())
            self._names[task_id] = name
        return name

    def writer(self, task_id: str, stream: Stream, attempt: int = 1) -> OutputWriter:
        """The writer for one attempt of ``task_id``'s ``stream``.

        Args:
            task_id: the task.
            stream: ``"stdout"`` or ``"stderr"``.
            attempt: its 1-based attempt number (said in the file before a later attempt).
        """
        with self._lock:
            kept = self._kept.get((task_id, stream))
            if kept is None:
                file = f"{self._name(task_id)}.{stream}"
                kept = self._kept[(task_id, stream)] = _Kept(
                    os.path.join(self.folder, file), file
                )
        return OutputWriter(kept, attempt, self.cap)

    def records(self) -> list[OutputRecord]:
        """What each task's streams wrote, and what was kept (silent streams left out)."""
        with self._lock:
            return [
                OutputRecord(task_id, stream, kept.file, kept.total, kept.kept, kept.error)
                for (task_id, stream), kept in self._kept.items()
                if kept.total
            ]


def output_writer(context: object, stream: Stream) -> OutputWriter | None:
    """The writer for this attempt's ``stream``, or None when the run keeps no output.

    A run keeps its commands' output when it is recorded in a run store
    (``execute(store=...)``, or ``dagwave run``). Call it from an async
    executor (as :class:`~dagwave.adapters.subprocess.Command` does), with the
    context it received, and close the writer when the attempt ends. The run
    is found through a context variable that the trio tasks of the run
    inherit; blocking executors in worker threads and executors in other
    processes do not see it and get None.

    Args:
        context: the executor's context (a :class:`~dagwave.TaskContext` or
            the plain dict form); anything else (None) means no writer.
        stream: ``"stdout"`` or ``"stderr"``.

    Returns:
        An :class:`OutputWriter`, or None outside a recorded run.
    """
    files = current_output_files.get()
    if files is None or not isinstance(context, Mapping):
        return None
    task_id = context.get("task_id")
    if not isinstance(task_id, str):
        return None
    attempt = context.get("attempt", 1)
    return files.writer(task_id, stream, attempt if isinstance(attempt, int) else 1)
