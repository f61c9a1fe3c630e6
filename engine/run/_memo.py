"""Cached tasks and resume: which tasks of a store-backed run end without running.

A run with a store keeps, per completed task, its result (JSON text where it
round-trips, else a pickle) and, for a task that caches, its *cache key*: a
SHA-256 over

* what it runs: a command's argv or string, env overrides and cwd (its
  ``cache_identity()``); a function's module, qualified name and code (the
  code object's bytecode, constants and names, nested code objects
  recursively; its defaults and the values its closure holds), the
  ``func``/``args`` of a ``functools.partial``, the fields of a dataclass
  that wraps one. Not the functions it calls, nor objects of other kinds
  it holds (only their type): say so with ``cache_key``;
* its metadata;
* its declared input files (glob patterns, relative to the pipeline file's
  folder, or to the current folder through the API): their paths and contents;
* its dependencies: their keys and their results;
* the user's ``cache_key`` (a string, or a callable of the context);
* :data:`KEY_SCHEMA`, so a dagwave that computes keys differently misses.

:class:`Memo` holds one run's side of it. It is built before the run, when
it reads what it needs from the store once (the last successful key of every
caching task of the pipeline; for ``resume``, the results of the tasks that
completed in the run resumed). The run core asks it, through one hook where
a task's first attempt would start (its dependencies are done then, so their
results are known), whether the task can end without running: :meth:`check`
(on the trio thread; the files of a task that declares some are hashed in a
worker thread).
Tasks it may answer for run on the trio side (the hook is there), so a
blocking one is then called through its adapter's ``run``, not continued into
by a worker thread. While the run goes on, :meth:`watch` writes the rows of
the tasks that completed, in one transaction every :data:`FLUSH_EVERY`
seconds; the rest are written with the run's end (:meth:`rows_at_end`).

A pickled result is only loaded from a store no one but the current user
could have written (:meth:`~dagwave.RunStore.unsafe_for_pickles`); otherwise
the task runs, with a ``task.not_cached`` warning.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import gc
import glob
import hashlib
import itertools
import json
import math
import operator
import os
import pickle
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict

import trio

from dagwave._checks import check_type, must_be
from dagwave._errors import StoreError, describe_error
from dagwave.run._recording import IN_TRIO
from dagwave.run._records import ExecutionResult, TaskStatus
from dagwave.store._runstore import (
    CacheEntry,
    PlainTasks,
    ResumedTask,
    RunStore,
    SavedTask,
    TaskPlace,
    attempt_row,
    task_row,
)

if TYPE_CHECKING:
    from dagwave.run._core import RunCore, RunPlan

__all__ = [
    "KEY_SCHEMA",
    "MAX_RESULT_BYTES",
    "CacheSpec",
    "Hit",
    "Memo",
    "dump_result",
    "load_result",
    "make_spec",
]

#: Bumped whenever the key is computed differently: older keys then miss.
KEY_SCHEMA = 1

#: Results bigger than this (as stored) are not kept: the store is no place
#: for a run's bulk data; such a task is not cached, and runs again on resume.
MAX_RESULT_BYTES = 16 * 2**20

#: Seconds between the writes of completed tasks' rows while a run goes on.
FLUSH_EVERY = 0.5

CacheKey = str | Callable[[Any], object]

_COMPLETED = TaskStatus.COMPLETED
_CACHED = TaskStatus.CACHED


class RowsAtEnd(TypedDict, total=False):
    """What :meth:`Memo.rows_at_end` gives :meth:`~dagwave.RunStore.finish_run` (its arguments)."""

    tasks: list[tuple[Any, ...]]
    attempts: list[tuple[Any, ...]]
    plain: PlainTasks


@dataclass(frozen=True, slots=True)
class CacheSpec:
    """How one task caches (what ``add_task(cache=..., inputs=..., ...)`` said).

    Attributes:
        cache: True: the task caches; False: never (even in a run with
            ``cache=True``); None: only in such a run.
        inputs: glob patterns of the files it reads.
        outputs: glob patterns of the files it writes.
        cache_key: a string, or a callable of the context, added to the key.
    """

    cache: bool | None = None
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    cache_key: CacheKey | None = None


def _patterns(task_id: str, name: str, value: object) -> tuple[str, ...]:
    owner = f"task {task_id!r}"
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    items = list(check_type(name, value, Iterable, owner=owner, expected="a list of glob patterns"))
    for item in items:
        if not isinstance(item, str) or not item:
            raise TypeError(must_be(name, "a list of non-empty glob patterns", item, owner=owner))
    return tuple(items)


def make_spec(
    task_id: str,
    cache: bool | None,
    inputs: Iterable[str] | str | None,
    outputs: Iterable[str] | str | None,
    cache_key: CacheKey | None,
) -> CacheSpec | None:
    """The task's :class:`CacheSpec`, checked (None when it declares nothing).

    Declaring ``inputs``, ``outputs`` or ``cache_key`` makes a task cache
    unless ``cache=False`` says otherwise.

    Raises:
        TypeError: an argument of the wrong type.
    """
    owner = f"task {task_id!r}"
    if cache is not None:
        check_type("cache", cache, bool, owner=owner, expected="True, False or None")
    if cache_key is not None and not (isinstance(cache_key, str) or callable(cache_key)):
        raise TypeError(must_be("cache_key", "a string or a callable of the context", cache_key,
                                owner=owner, show_type=True))
    ins, outs = _patterns(task_id, "inputs", inputs), _patterns(task_id, "outputs", outputs)
    if cache is None and not ins and not outs and cache_key is None:
        return None
    if cache is None:
        cache = True
    return CacheSpec(cache, ins, outs, cache_key)


# -- results: stored as JSON where they round-trip, else pickled -----------------------


def _plain(value: Any, depth: int = 0) -> bool:
    """Whether JSON gives ``value`` back exactly (same types, str keys, finite floats)."""
    kind = type(value)
    if value is None or kind is str or kind is bool or kind is int:
        return True
    if kind is float:
        return value == value and value not in (float("inf"), float("-inf"))
    if depth > 100:
        return False
    if kind is list:
        return all(_plain(v, depth + 1) for v in value)
    if kind is dict:
        return all(type(k) is str and _plain(v, depth + 1) for k, v in value.items())
    return False


def dump_result(value: Any) -> tuple[str, bytes]:
    """A result as stored: ``("json", text)`` where JSON gives it back exactly, else a pickle.

    Raises:
        Exception: it can be neither (whatever pickle raised).
    """
    if value is None:
        return "json", b"null"
    if _plain(value):
        return "json", json.dumps(value, ensure_ascii=False).encode()
    return "pickle", pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def load_result(kind: str, data: bytes) -> Any:
    """A stored result back (pickles only from a store already judged safe)."""
    if kind == "json":
        return json.loads(data.decode())
    if kind == "pickle":
        return pickle.loads(data)  # only from a store no one else can write
    raise ValueError(f"unknown result kind {kind!r}")


def _digest(kind: str, data: bytes) -> str:
    return hashlib.sha256(kind.encode() + b"\0" + data).hexdigest()


# -- what a task runs, as data a key can hash -----------------------------------------


def _qualname(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


_CODE_DIGESTS: dict[types.CodeType, str] = {}


def _code(code: types.CodeType) -> str:
    """A digest of a code object: bytecode, constants (nested code too) and names.

    Line numbers and the file name are left out, so moving a function in its
    file keeps its key.
    """
    known = _CODE_DIGESTS.get(code)
    if known is not None:
        return known
    consts = [
        _code(c) if isinstance(c, types.CodeType) else _canon(c, set()) for c in code.co_consts
    ]
    text = json.dumps(
        [
            code.co_code.hex(),
            consts,
            code.co_names,
            code.co_varnames,
            code.co_freevars,
            code.co_cellvars,
            code.co_argcount,
            code.co_kwonlyargcount,
            code.co_flags,
        ],
        default=repr,
    )
    digest = _CODE_DIGESTS[code] = hashlib.sha256(text.encode()).hexdigest()
    return digest


def _canon(value: Any, seen: set[int]) -> Any:
    """``value`` as JSON-able data for a key: stable across runs (never an id or a repr)."""
    if value is None or type(value) in (bool, int, str):
        return value
    if isinstance(value, float):
        return repr(value)  # NaN and infinities too
    if isinstance(value, enum.Enum):
        return ["enum", _qualname(type(value)), _canon(value.value, seen)]
    if isinstance(value, bool | int | str):
        return ["of", _qualname(type(value)), _canon(json.loads(json.dumps(value)), seen)]
    if isinstance(value, bytes | bytearray):
        return ["bytes", hashlib.sha256(value).hexdigest()]
    if isinstance(value, os.PathLike):
        return ["path", os.fspath(value)]
    if isinstance(value, types.CodeType):
        return ["code", _code(value)]
    if callable(value) and not isinstance(value, Mapping):
        return _identity(value, seen)  # it guards against cycles itself
    if id(value) in seen:
        return ["cycle"]
    seen = seen | {id(value)}
    if isinstance(value, list | tuple):
        return [_canon(v, seen) for v in value]
    if isinstance(value, Mapping):
        items = [[_canon(k, seen), _canon(v, seen)] for k, v in value.items()]
        return ["map", sorted(items, key=lambda kv: json.dumps(kv, default=repr))]
    if isinstance(value, set | frozenset):
        return ["set", sorted((_canon(v, seen) for v in value), key=lambda v: json.dumps(v))]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [
            "dataclass",
            _qualname(type(value)),
            [[f.name, _canon(getattr(value, f.name), seen)] for f in dataclasses.fields(value)],
        ]
    return ["object", _qualname(type(value))]


def _identity(obj: Any, seen: set[int]) -> Any:
    """What a callable runs, as data (see the module docstring)."""
    custom = getattr(type(obj), "cache_identity", None)
    if callable(custom) and not isinstance(obj, type):
        return ["custom", _qualname(type(obj)), _canon(obj.cache_identity(), seen)]
    if isinstance(obj, functools.partial):
        return [
            "partial",
            _identity(obj.func, seen),
            _canon(obj.args, seen),
            _canon(obj.keywords, seen),
        ]
    if isinstance(obj, types.MethodType):
        return ["method", _identity(obj.__func__, seen), _qualname(type(obj.__self__))]
    if isinstance(obj, types.FunctionType):
        if id(obj) in seen:
            return ["function", obj.__module__, obj.__qualname__]
        seen = seen | {id(obj)}
        cells = []
        for cell in obj.__closure__ or ():
            try:
                cells.append(_canon(cell.cell_contents, seen))
            except ValueError:  # an empty cell
                cells.append(None)
        return [
            "function",
            obj.__module__,
            obj.__qualname__,
            _code(obj.__code__),
            _canon(obj.__defaults__, seen),
            _canon(obj.__kwdefaults__, seen),
            cells,
        ]
    if isinstance(obj, types.BuiltinFunctionType | types.BuiltinMethodType):
        return ["builtin", getattr(obj, "__module__", None), obj.__qualname__]
    if isinstance(obj, type):
        return ["class", _qualname(obj)]
    kind = type(obj)
    call = getattr(kind, "__call__", None)  # noqa: B004 - the class's, not the instance's
    fields: Any = None
    if dataclasses.is_dataclass(obj):
        fields = [[f.name, _canon(getattr(obj, f.name), seen)] for f in dataclasses.fields(obj)]
    return [
        "callable",
        _qualname(kind),
        None if call is None else _identity(call, seen),
        fields,
    ]


def identity_of(executor: Any) -> str:
    """A digest of what ``executor`` runs (see the module docstring)."""
    text = json.dumps(_identity(executor, set()), separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


# -- files --------------------------------------------------------------------------


class _Files:
    """Hashes of files matched by glob patterns under one folder (each file read once per run)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self._hashes: dict[tuple[str, int, int], str] = {}

    def match(self, patterns: Sequence[str]) -> dict[str, str]:
        """Relative path -> SHA-256, for every file the patterns match now."""
        found: dict[str, str] = {}
        for pattern in patterns:
            for relative in sorted(glob.glob(pattern, root_dir=self.base, recursive=True)):
                if relative in found:
                    continue
                path = os.path.join(self.base, relative)
                try:
                    info = os.stat(path)
                except OSError:
                    continue
                if not os.path.isfile(path):
                    continue
                stamp = (path, info.st_mtime_ns, info.st_size)
                digest = self._hashes.get(stamp)
                if digest is None:
                    digest = self._hashes[stamp] = _file_digest(path)
                found[relative] = digest
        return found


def _file_digest(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


# -- one run's side -----------------------------------------------------------------


class Hit(NamedTuple):
    """A task that ends CACHED: its value and why."""

    value: Any
    reason: str  # "cache" or "resume"
    from_run: str  # the run it came from
    because: str  # the TaskRecord's cached_because


class Memo:
    """One store-backed run's cached tasks, resume and per-task rows (see the module docstring).

    Args:
        plan: the run's plan.
        store: the run store.
        run_id: this run's id.
        pipeline: the pipeline's path ("" through the API), under which keys are kept.
        base: the folder that input and output patterns are relative to.
        specs: task id -> its :class:`CacheSpec` (tasks that declared one).
        cache: True: every task caches (but those with ``cache=False``);
            False: none does; None: those that declared it.
        forced: task indices that run whatever their key (their keys are
            still computed and recorded).
        resume: the id of the run resumed, with its completed tasks, or None.

    Raises:
        StoreError: the store could not be read.
    """

    def __init__(
        self,
        plan: RunPlan,
        store: RunStore,
        *,
        run_id: str,
        pipeline: str,
        base: str,
        specs: Mapping[str, CacheSpec],
        cache: bool | None,
        forced: frozenset[int],
        resume: tuple[str, Mapping[str, ResumedTask]] | None,
    ) -> None:
        tasks = plan.tasks
        n = len(tasks)
        self.plan = plan
        self.store = store
        self.run_id = run_id
        self._files = _Files(base)
        # Lists of the run's length (most runs declare no caching: no pass per task then).
        self.specs: list[CacheSpec | None] = (
            [specs.get(t.task_id) for t in tasks] if specs else [None] * n
        )
        if cache is False or (cache is None and not specs):
            self.caching = [False] * n
        elif cache is True:
            self.caching = [spec is None or spec.cache is not False for spec in self.specs]
        else:
            self.caching = [spec is not None and spec.cache is True for spec in self.specs]
        self.forced = forced
        self.resume_id: str | None = None if resume is None else resume[0]
        self.resumed: Mapping[str, ResumedTask] = {} if resume is None else resume[1]
        self.entries: dict[str, CacheEntry] = (
            store.cache_entries(pipeline) if any(self.caching) else {}
        )
        #: Tasks the hook may answer for: those that cache, and those resumed.
        self.candidate = (
            [
                self.caching[i] or (tasks[i].task_id in self.resumed and i not in forced)
                for i in range(n)
            ]
            if self.resumed
            else list(self.caching)
        )
        self.keys: list[str | None] = [None] * n
        # Per task: its result as stored and that form's digest, once known.
        self._dumped: dict[int, tuple[str, bytes]] = {}
        self._result_digest: dict[int, str] = {}
        self._cached_rows: dict[int, SavedTask] = {}  # CACHED tasks: what their rows hold
        self._identities: dict[int, str] = {}  # id(executor) -> digest
        self._pickles_refused: str | bool | None = False  # False: not checked yet
        self.written = bytearray(n)  # 1: its row was written during the run
        self.notes: list[tuple[str, str]] = []  # (event, task or message) for the trio thread

    # -- the hook (trio thread) ----------------------------------------------------

    async def check(self, core: RunCore, i: int) -> Hit | None:
        """Whether task ``i`` (about to start its first attempt) ends CACHED, and with what.

        Never raises (but ``Cancelled``): what goes wrong makes the task run,
        with a ``task.not_cached`` warning. A task that declares files has
        them hashed (and its key computed) in a worker thread, so that big
        inputs do not hold up the trio thread.
        """
        task_id = self.plan.tasks[i].task_id
        if i not in self.forced:
            resumed = self.resumed.get(task_id)
            if resumed is not None:
                value = self._load(core, i, resumed.result_kind, resumed.result)
                if value is not _MISS:
                    assert self.resume_id is not None
                    because = f"resumed from run {self.resume_id}"
                    self.keys[i] = resumed.key
                    self._cached_rows[i] = SavedTask(
                        cache_key=resumed.key,
                        result_run=resumed.run_id,
                        outputs=json.dumps(resumed.outputs) if resumed.outputs else None,
                        cached_because=because,
                    )
                    return Hit(value, "resume", self.resume_id, because)
        if not self.caching[i]:
            return None
        spec = self.specs[i]
        files = spec is not None and bool(spec.inputs or spec.outputs)
        try:
            if files:
                key = await trio.to_thread.run_sync(self._key, core, i)
            else:
                key = self._key(core, i)
            self.keys[i] = key
        except _Uncached as exc:
            core.events.task_not_cached(task_id, str(exc))
            return None
        except Exception as exc:  # a cache_identity() that raises, a value that cannot be hashed
            core.events.task_not_cached(
                task_id, f"its cache key cannot be computed ({describe_error(exc)})"
            )
            return None
        if i in self.forced:
            return None
        entry = self.entries.get(task_id)
        if entry is None or entry.key != key:
            return None
        if spec is not None and spec.outputs:
            try:
                now = await trio.to_thread.run_sync(self._files.match, spec.outputs)
            except OSError:
                now = None
            if now != entry.outputs:
                return None  # an output is missing or changed: run it again
        stored = entry.result
        if stored is None:
            try:
                stored = self.store.load_result(entry.run_id, task_id)
            except StoreError as exc:
                core.events.task_not_cached(task_id, str(exc))
                return None
        if stored is None:
            return None
        value = self._load(core, i, *stored)
        if value is _MISS:
            return None
        because = f"unchanged since run {entry.run_id}"
        self._cached_rows[i] = SavedTask(
            cache_key=key,
            result_run=entry.run_id,
            outputs=json.dumps(entry.outputs) if entry.outputs else None,
            cached_because=because,
        )
        return Hit(value, "cache", entry.run_id, because)

    def _load(self, core: RunCore, i: int, kind: str, data: bytes) -> Any:
        task_id = self.plan.tasks[i].task_id
        if kind == "pickle":
            if self._pickles_refused is False:
                self._pickles_refused = self.store.unsafe_for_pickles()
            if self._pickles_refused:
                core.events.task_not_cached(
                    task_id, f"pickled result refused: {self._pickles_refused}"
                )
                return _MISS
        try:
            value = load_result(kind, data)
        except Exception as exc:
            core.events.task_not_cached(
                task_id, f"stored result cannot be loaded ({describe_error(exc)})"
            )
            return _MISS
        self._result_digest[i] = _digest(kind, data)
        return value

    def _key(self, core: RunCore, i: int) -> str:
        plan = self.plan
        task = plan.tasks[i]
        spec = self.specs[i]
        executor = task.executor
        identity = self._identities.get(id(executor))
        if identity is None:
            identity = self._identities[id(executor)] = identity_of(executor)
        deps = []
        for d in plan.deps[i]:
            deps.append([plan.tasks[d].task_id, self.keys[d], self._digest_of(core, d)])
        deps.sort()
        inputs: dict[str, str] = {}
        user_key: Any = None
        if spec is not None:
            if spec.inputs:
                try:
                    inputs = self._files.match(spec.inputs)
                except OSError as exc:
                    raise _Uncached(f"cannot read its inputs ({exc})") from None
            if isinstance(spec.cache_key, str):
                user_key = spec.cache_key
            elif spec.cache_key is not None:
                try:
                    user_key = _canon(spec.cache_key(core.context(i, 1)), set())
                except Exception as exc:
                    raise _Uncached(f"its cache_key raised {describe_error(exc)}") from None
        text = json.dumps(
            [
                KEY_SCHEMA,
                identity,
                _canon(dict(task.metadata), set()),
                [spec.inputs if spec else [], sorted(inputs.items())],
                deps,
                user_key,
            ],
            separators=(",", ":"),
            default=repr,
        )
        return hashlib.sha256(text.encode()).hexdigest()

    def _digest_of(self, core: RunCore, d: int) -> str:
        """The digest of dependency ``d``'s result as stored (it is done: its result is final)."""
        digest = self._result_digest.get(d)
        if digest is None:
            dumped = self._dump(d, core.ledger.results[d])
            if dumped is None:
                raise _Uncached(
                    f"the result of its dependency {self.plan.tasks[d].task_id!r} "
                    "cannot be stored, so it cannot be compared"
                )
            digest = self._result_digest[d] = _digest(*dumped)
            if len(dumped[1]) > MAX_RESULT_BYTES:
                del self._dumped[d]  # only its digest is needed: it will not be kept
        return digest

    def _dump(self, i: int, value: Any) -> tuple[str, bytes] | None:
        dumped = self._dumped.get(i)
        if dumped is None:
            try:
                dumped = self._dumped[i] = dump_result(value)
            except Exception:
                return None
        return dumped

    # -- the rows ------------------------------------------------------------------

    def _saved(self, i: int, status: TaskStatus, value: Any, notes: list[str]) -> SavedTask:
        """What the row of a task that succeeded keeps (any thread; its result is final)."""
        if status is _CACHED:
            return self._cached_rows.get(i) or _EMPTY
        key = self.keys[i]
        dumped = self._dumped.get(i)
        if dumped is None:
            if value is None:
                if key is None:
                    return _NULL_ROW
                dumped = _NULL
            else:
                try:
                    dumped = dump_result(value)
                except Exception as exc:
                    if self.caching[i]:  # a task that does not cache just runs again on resume
                        notes.append(
                            f"its result cannot be stored ({describe_error(exc)}), "
                            "so it is not cached and --resume runs it again"
                        )
                    return SavedTask(cache_key=key)
        if len(dumped[1]) > MAX_RESULT_BYTES:
            if self.caching[i]:
                notes.append(
                    f"its result is too big to keep ({len(dumped[1]) / 2**20:.0f} MiB stored, "
                    f"more than {MAX_RESULT_BYTES // 2**20} MiB), so it is not cached and "
                    "--resume runs it again"
                )
            return SavedTask(cache_key=key)
        outputs = None
        spec = self.specs[i]
        if key is not None and spec is not None and spec.outputs:
            try:
                outputs = json.dumps(self._files.match(spec.outputs))
            except OSError:
                outputs = None
        return SavedTask(cache_key=key, result_kind=dumped[0], result=dumped[1], outputs=outputs)

    def _unwritten(
        self, core: RunCore, status: Sequence[TaskStatus], results: Sequence[Any], *, ended: bool
    ) -> tuple[list[int], list[tuple[int, TaskStatus, Any]]]:
        """The tasks whose rows are not written yet: the plain ones, and the others.

        A plain task completed at its first attempt, returning None, without a
        cache key (most tasks of most runs): its row is packed with the others
        like it (no row, no attempts row of its own). The others come as
        ``(task, status, result)``: those that succeeded, or (``ended``) all.
        """
        written = self.written
        n = len(status)
        if (
            status.count(_COMPLETED) == n
            and all(map(operator.is_, results, itertools.repeat(None)))  # no == on results
            and core.ledger.attempts.count(1) == n
            and self.keys.count(None) == n
            and written.count(0) == n
        ):  # a whole run of plain tasks, none written yet (the commonest): at C speed
            return list(range(n)), []
        plain = [
            i
            for i, (s, value, count, key, done) in enumerate(
                zip(status, results, core.ledger.attempts, self.keys, written, strict=True)
            )
            if s is _COMPLETED and count == 1 and value is None and key is None and not done
        ]
        if written.count(0) == len(plain):  # nothing else (a whole run of plain tasks)
            return plain, []
        packed = set(plain)
        return plain, [
            (i, s, results[i])
            for i, s in enumerate(status)
            if not written[i]
            and i not in packed
            and (ended or s is _COMPLETED or s is _CACHED)
        ]

    def _task_rows(
        self,
        core: RunCore,
        plain: list[int],
        found: Sequence[tuple[int, TaskStatus, Any]],
        errors: Mapping[str, str],
        notes: list[tuple[str, str]],
    ) -> tuple[list[tuple[Any, ...]], PlainTasks]:
        """The rows of ``found`` (``(task, status, result)``) and those of the plain tasks.

        Rows of :data:`~dagwave.store._runstore.TASK_COLUMNS` and a
        :class:`~dagwave.store._runstore.PlainTasks` (see :meth:`_unwritten`).
        """
        ledger, plan, run_id, t0 = core.ledger, self.plan, self.run_id, core._t0
        tasks, adapters, wave_of = plan.tasks, plan.adapters, plan.wave_of
        start, end, attempts, busy = ledger.start, ledger.end, ledger.attempts, ledger.busy
        first_slot, first_cpu = ledger.first_slot, ledger.first_cpu
        rows: list[tuple[Any, ...]] = []
        append = rows.append
        said: list[str] = []
        for i, status, value in found:
            count = attempts[i]
            s, e = start[i], end[i]
            task_id = tasks[i].task_id
            adapter = adapters[i]
            place = TaskPlace(
                i,
                wave_of[i] + 1,
                IN_TRIO if adapter is None else adapter.name,
                None if s != s else (s - t0) * 1000.0,  # s != s: NaN, it never started
                None if e != e else (e - t0) * 1000.0,
                ledger.skipped_because.get(i),
            )
            if status is _COMPLETED and count == 1:
                cpu = first_cpu[i]
                place = place._replace(
                    first_slot=first_slot[i], first_cpu_ms=None if cpu is None else cpu * 1000.0
                )
                duration = (e - s) * 1000.0
            else:
                duration = busy.get(i, 0.0) * 1000.0
            saved = None
            if status is _COMPLETED or status is _CACHED:
                saved = self._saved(i, status, value, said)
                if said:
                    notes += [(task_id, text) for text in said]
                    said.clear()
            append(
                task_row(
                    run_id,
                    task_id,
                    _VALUES[status],
                    count,
                    duration,
                    errors.get(task_id),
                    saved,
                    place,
                )
            )
        return rows, self._plain(core, plain)

    def _plain(self, core: RunCore, plain: list[int]) -> PlainTasks:
        """The rows of the plain tasks ``plain``, column by column (whole lists at once)."""
        ledger, plan = core.ledger, self.plan
        get = _items(plain, len(plan.tasks))
        kinds = get(plan.adapters)
        used = dict(zip(map(id, kinds), kinds, strict=True))  # id(adapter) -> adapter
        index = {key: n for n, key in enumerate(used)}
        names = [IN_TRIO if adapter is None else adapter.name for adapter in used.values()]
        cpu = get(ledger.first_cpu)
        if None in cpu:  # a task that did not run in a worker thread
            nan = math.nan
            cpu = [nan if c is None else c for c in cpu]
        return PlainTasks(
            ids=get(plan.compiled.order),  # the ids, in the plan's order
            t0=core._t0,
            start=get(ledger.start),
            end=get(ledger.end),
            cpu=cpu,
            position=plain,
            wave=get(plan.wave_of),
            slot=get(ledger.first_slot),
            adapter=[0] * len(plain) if len(names) == 1 else [index[id(a)] for a in kinds],
            adapters=names,
        )

    async def watch(self, core: RunCore) -> None:
        """Write the rows of tasks that completed, every :data:`FLUSH_EVERY` s (trio thread)."""
        for event, text in self.notes:
            core.events.run_note(event, message=text)
        self.notes.clear()
        while True:
            await trio.sleep(FLUSH_EVERY)
            await self._flush(core)

    async def _flush(self, core: RunCore) -> None:
        """Write the rows of the tasks that succeeded since the last time, in a worker thread."""
        ledger, written = core.ledger, self.written
        with core.dispatch.lock:  # a result is written before its status, under this lock
            status, results = list(ledger.status), list(ledger.results)
        plain, found = self._unwritten(core, status, results, ended=False)
        if not plain and not found:
            return
        for i in plain:
            written[i] = 1
        for i, _, _ in found:
            written[i] = 1
        notes: list[tuple[str, str]] = []

        def write() -> None:
            self.store.record_tasks(self.run_id, *self._task_rows(core, plain, found, {}, notes))

        try:
            await trio.to_thread.run_sync(write)
        except Exception as exc:  # the store is busy or full: the run goes on
            for i in plain:
                written[i] = 0  # written with the run's end instead
            for i, _, _ in found:
                written[i] = 0
            text = str(exc) if isinstance(exc, StoreError) else describe_error(exc)
            core.events.run_note("run.store_failed", message=text)
            return
        for task_id, text in notes:
            core.events.task_not_cached(task_id, text)

    def rows_at_end(self, core: RunCore) -> RowsAtEnd:
        """The task rows not written yet and every attempt row, once the run has ended.

        Its ``task.not_cached`` warnings come after ``run.completed``.

        Returns:
            The keyword arguments ``tasks``, ``attempts`` and ``plain`` of
            :meth:`~dagwave.RunStore.finish_run` (none before the run produced a result).
        """
        result = core.last_result
        if result is None:
            return RowsAtEnd()
        # Thousands of rows, none of them cyclic: no collection pass over the
        # whole run's objects while they are made.
        enabled = gc.isenabled()
        gc.disable()
        try:
            return self._rows_at_end(core, result)
        finally:
            if enabled:
                gc.enable()

    def _rows_at_end(self, core: RunCore, result: ExecutionResult) -> RowsAtEnd:
        ledger, run_id, t0 = core.ledger, self.run_id, core._t0
        plain, found = self._unwritten(core, ledger.status, ledger.results, ended=True)
        notes: list[tuple[str, str]] = []
        rows, packed = self._task_rows(core, plain, found, result.task_errors, notes)
        for task_id, text in notes:
            core.events.task_not_cached(task_id, text)
        tasks = self.plan.tasks
        attempts = [
            attempt_row(
                run_id,
                tasks[entry.task].task_id,
                entry.attempt,
                (entry.start - t0) * 1000.0,
                (entry.end - t0) * 1000.0,
                entry.outcome,
                entry.error,
                entry.slot,
                None if entry.cpu is None else entry.cpu * 1000.0,
            )
            for entry in ledger.log
        ]
        return RowsAtEnd(tasks=rows, attempts=attempts, plain=packed)


def _items(indexes: list[int], n: int) -> Callable[[Sequence[Any]], Sequence[Any]]:
    """A function that gives the items at ``indexes`` (ascending, below ``n``) of a sequence."""
    if len(indexes) == n:  # all of them: the sequence itself
        return lambda seq: seq
    if len(indexes) > 1:
        return operator.itemgetter(*indexes)  # a tuple of the items, in one C call
    return lambda seq: [seq[i] for i in indexes]  # itemgetter(i) gives the item itself


class _Uncached(Exception):
    """Why a task's key cannot be computed (it runs, uncached)."""


_MISS: Any = object()
_NULL = ("json", b"null")
_NULL_ROW = SavedTask(result_kind="json", result=b"null")
_EMPTY = SavedTask()
_VALUES = {status: status.value for status in TaskStatus}


def resume_plan(
    store: RunStore, run: str | bool, *, pipeline: str, pipeline_hash: str
) -> tuple[tuple[str, Mapping[str, ResumedTask]], str | None]:
    """The run to resume and its completed tasks, and a warning if the pipeline changed since.

    Args:
        store: the run store.
        run: a run id (or a unique prefix), or True for the latest run of ``pipeline``.
        pipeline: this run's pipeline path ("" through the API).
        pipeline_hash: this run's pipeline hash.

    Raises:
        StoreError: no such run; no earlier run of this pipeline; a run of
            another pipeline.
    """
    if run is True:
        found = store.last_run(pipeline, None if pipeline else pipeline_hash)
        if found is None:
            what = pipeline or "this task graph"
            raise StoreError(store.path, f"no earlier run of {what} to resume")
        run_id = found
    else:
        assert isinstance(run, str)
        run_id = store.resolve(run)
    stored = store.run_info(run_id)
    if stored.pipeline != pipeline:
        raise StoreError(
            store.path,
            f"run {run_id} is a run of {stored.pipeline or 'the Python API'}, "
            f"not of {pipeline or 'the Python API'}: it cannot be resumed here",
        )
    note = None
    if stored.pipeline_hash != pipeline_hash:
        note = (
            f"the pipeline changed since run {run_id}; tasks that completed there keep "
            "their recorded results (--force TASK runs one again)"
        )
    return (run_id, store.completed_tasks(run_id)), note
