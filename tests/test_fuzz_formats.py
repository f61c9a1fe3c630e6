"""Fuzzing the file formats: pipeline TOML and plan JSON load, or fail with our own one-line error.

For every generated document (random text, TOML/JSON-shaped documents with
hostile values, mutations of valid files):

* ``load_pipeline`` (and building its scheduler) returns or raises
  :class:`PipelineError`; ``ScheduleGraph.from_json`` returns or raises
  ``ValueError``; the message is one line; a loaded plan always analyses;
* the ``dagwave`` command (``main()``, in-process) exits 0, 1 or 2, with
  exactly one line on stderr for 2, and never raises.

Commands and calls in generated pipelines come from a fixed, harmless set,
and only the generated harmless pipelines run for real; hostile and mutated
files go through ``--dry-run`` and ``graph``, so nothing random ever runs.
Examples are derandomized (the same every run); the fuzzers found, before the
fixes, undecodable bytes, nesting too deep for tomllib and json, and empty
commands, each now pinned by a plain test in ``test_cli_hostile_input.py``.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dagwave import ScheduleGraph, analyze_schedule
from dagwave.cli._main import main
from dagwave.cli._pipeline import PipelineError, load_pipeline

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,  # the same examples every run: a failure is reproducible
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

STEPS = """
def ok(ctx):
    return 1

def boom(ctx):
    raise RuntimeError("boom")

NOT_CALLABLE = 3
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz")
    (path / "fuzz_steps.py").write_text(STEPS)
    return path


# -- writing TOML (tomllib only reads) ---------------------------------------------


class Raw(str):
    """TOML text written as is (dates, deep nesting, broken tokens)."""


def toml_key(key: str) -> str:
    bare = key.replace("_", "a").replace("-", "a")
    return key if bare.isascii() and bare.isalnum() else json.dumps(key, ensure_ascii=False)


def toml_value(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise AssertionError(value)


def toml_document(run: dict[str, Any] | None, tasks: dict[str, dict[str, Any]]) -> str:
    lines = []
    if run is not None:
        lines.append("[run]")
        lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in run.items()]
    for task_id, table in tasks.items():
        lines.append(f"[tasks.{toml_key(task_id)}]")
        lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


# -- strategies ----------------------------------------------------------------------

texts = st.text(max_size=12)
huge_ints = st.integers(min_value=-(10**400), max_value=10**400)
numbers = st.one_of(
    st.sampled_from([0, 1, -1, 10_000, 10_001, 2**63, 10**20, 10**400]),
    huge_ints,
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-300, 1e308, math.inf, -math.inf, math.nan]),
)
deep = st.integers(min_value=1, max_value=4000).map(lambda n: Raw("[" * n + "]" * n))
scalars = st.one_of(
    numbers,
    texts,
    st.booleans(),
    deep,
    st.just(Raw("1979-05-27T07:32:00Z")),
    st.just(Raw("07:32:00")),
)
anything = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)),
    max_leaves=6,
)
ids = st.one_of(st.sampled_from(["a", "b", "c", "build", "test"]), texts)
CALLS = [
    "fuzz_steps:ok",
    "fuzz_steps:boom",
    "fuzz_steps:NOT_CALLABLE",
    "fuzz_steps:missing",
    "fuzz_steps:ok.deeper",
    "fuzz_steps",
    ":ok",
    "fuzz_steps:",
    "no_such_module_here:ok",
]
CMDS: list[Any] = ["true", "false", "exit 3", "", "   ", ["true"], [""], [], ["true", 1], 5]


def task_tables() -> st.SearchStrategy[dict[str, Any]]:
    """One ``[tasks.<id>]`` table of any keys with hostile values."""
    value = {
        "cmd": st.one_of(st.sampled_from(CMDS), anything),
        "call": st.one_of(st.sampled_from(CALLS), anything),
        "deps": st.one_of(st.lists(ids, max_size=3), anything),
        "timeout": st.one_of(numbers, anything),
        "retries": st.one_of(numbers, anything),
        "resources": st.one_of(st.dictionaries(texts, numbers, max_size=2), anything),
        "adapter": st.one_of(st.sampled_from(["thread", "process", "warp"]), anything),
        "metadata": st.one_of(
            st.dictionaries(st.sampled_from(["estimated_duration", "x"]), anything), anything
        ),
        "colour": anything,
    }

    @st.composite
    def table(draw: st.DrawFn) -> dict[str, Any]:
        keys = draw(st.lists(st.sampled_from(sorted(value)), unique=True, max_size=5))
        if draw(st.booleans()):  # often exactly one of cmd and call, as valid files have
            keys = [k for k in keys if k not in ("cmd", "call")]
            keys.append(draw(st.sampled_from(["cmd", "call"])))
        return {key: draw(value[key]) for key in keys}

    return table()


run_tables = st.none() | st.fixed_dictionaries(
    {},
    optional={
        "max_concurrent": st.one_of(numbers, anything),
        "mode": st.one_of(st.sampled_from(["waves", "eager"]), anything),
        "fail_fast": anything,
        "resources": st.one_of(st.dictionaries(texts, numbers, max_size=2), anything),
        "colour": anything,
    },
)
pipelines = st.builds(toml_document, run_tables, st.dictionaries(ids, task_tables(), max_size=4))


@st.composite
def harmless_pipelines(draw: st.DrawFn) -> str:
    """Pipelines that mostly load and run in milliseconds: harmless commands and calls."""
    run: dict[str, Any] = {"max_concurrent": draw(st.sampled_from([1, 2, 4]))}
    run["mode"] = draw(st.sampled_from(["waves", "eager"]))
    run["fail_fast"] = draw(st.booleans())
    run["resources"] = {"db": draw(st.integers(min_value=1, max_value=2))}
    tasks: dict[str, dict[str, Any]] = {}
    for n in range(draw(st.integers(min_value=1, max_value=5))):
        table: dict[str, Any] = {}
        if draw(st.booleans()):
            table["cmd"] = draw(st.sampled_from(["true", "false", "exit 3", ["true"]]))
        else:
            table["call"] = draw(st.sampled_from(["fuzz_steps:ok", "fuzz_steps:boom"]))
            if draw(st.booleans()):
                table["adapter"] = draw(st.sampled_from(["thread", "inline"]))
        earlier = list(tasks)
        if earlier:
            table["deps"] = draw(st.lists(st.sampled_from(earlier), unique=True, max_size=2))
        if draw(st.booleans()):
            table["timeout"] = draw(st.sampled_from([1e-9, 0.5, 5, 1e308]))
        if draw(st.booleans()):
            table["retries"] = 1
        if draw(st.booleans()):
            table["resources"] = {"db": draw(st.integers(min_value=1, max_value=2))}
        if draw(st.booleans()):
            table["metadata"] = {"estimated_duration": draw(st.sampled_from([0, 2.5, 1e308]))}
        tasks[f"t{n}"] = table
    return toml_document(run, tasks)


VALID_PIPELINE = """\
[run]
max_concurrent = 4
mode = "eager"
resources = {db = 2}

[tasks.fetch]
call = "fuzz_steps:ok"
timeout = 10
retries = 1
metadata = {estimated_duration = 3}

[tasks.build]
cmd = ["true", "x"]
deps = ["fetch"]
resources = {db = 1}

[tasks."test"]
cmd = "true"
deps = ["build", "fetch"]
"""

VALID_PLAN = json.dumps(
    {
        "units": [
            {"id": "a", "duration": 1},
            {"id": "b", "duration": 2.5, "depends_on": ["a"]},
            {"id": "c", "duration": 3, "depends_on": ["a", "b"]},
        ]
    },
    indent=1,
)


@st.composite
def mutations(draw: st.DrawFn, text: str) -> str:
    """A few random edits of ``text``: cuts, insertions, duplicated or swapped lines."""
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        kind = draw(st.sampled_from(["cut", "insert", "duplicate", "swap", "replace"]))
        if not text:
            kind = "insert"
        at = draw(st.integers(min_value=0, max_value=len(text)))
        if kind == "cut":
            text = text[:at] + text[at + draw(st.integers(min_value=1, max_value=12)) :]
        elif kind == "insert":
            piece = draw(
                st.one_of(
                    st.text(max_size=6),
                    st.sampled_from(
                        ['"', "[", "]", "{", "}", "=", ",", "\n", "\\", "inf", "9" * 400, "0"]
                    ),
                )
            )
            text = text[:at] + piece + text[at:]
        else:
            lines = text.split("\n")
            i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            j = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            if kind == "duplicate":
                lines.insert(j, lines[i])
            elif kind == "swap":
                lines[i], lines[j] = lines[j], lines[i]
            else:
                lines[i] = lines[i].split("=")[0] + "= " + draw(st.builds(toml_value, anything))
            text = "\n".join(lines)
    return text


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        huge_ints,
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([1e308, -1.0, 0, 2**53 + 1]),
        texts,
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)),
    max_leaves=8,
)
unit_ids = st.sampled_from(["a", "b", "c", "d", "e"])
plain_units = st.fixed_dictionaries(
    {"id": unit_ids},
    optional={
        "duration": st.one_of(
            st.sampled_from([0, 1, 2.5, 1e308, 1.7e308, 5e-324, 2**53 + 1, 10**300, 10**400]),
            st.floats(min_value=0, allow_infinity=False),
            st.integers(min_value=0),
        ),
        "depends_on": st.lists(st.one_of(unit_ids, st.just("zz")), max_size=3),
    },
)
hostile_units = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(ids, json_values),
        "duration": st.one_of(st.sampled_from([-1, 10**400, math.inf, math.nan]), json_values),
        "depends_on": st.one_of(st.lists(ids, max_size=3), json_values),
        "colour": json_values,
    },
)
plans = st.one_of(
    # Mostly valid plans (duplicates, cycles and unknown ids included) ...
    st.lists(plain_units, max_size=6).map(lambda units: json.dumps({"units": units})),
    # ... hostile ones, and text that is barely JSON.
    st.lists(st.one_of(plain_units, hostile_units), max_size=4).map(
        lambda units: json.dumps({"units": units})
    ),
    st.builds(
        lambda units, extra: json.dumps({"units": units, **extra}),
        st.lists(plain_units, max_size=2),
        st.dictionaries(st.sampled_from(["name", "units2"]), json_values, min_size=1, max_size=1),
    ),
    st.builds(json.dumps, json_values),
    st.integers(min_value=1, max_value=200_000).map(lambda n: "[" * n + "]" * n),
    st.integers(min_value=1, max_value=200_000).map(lambda n: '{"units": ' * n + "[]" + "}" * n),
    mutations(VALID_PLAN),
    st.text(max_size=40),
)
pipeline_texts = st.one_of(
    pipelines,
    mutations(VALID_PIPELINE),
    st.text(max_size=60),
)


# -- the loaders ---------------------------------------------------------------------


def assert_one_line(message: str) -> None:
    assert message, "empty message"
    assert "\n" not in message, repr(message)
    assert "\r" not in message, repr(message)


@FUZZ
@given(text=pipeline_texts)
def test_pipeline_loader_loads_or_raises_pipeline_error(folder: Path, text: str) -> None:
    path = folder / "pipeline.toml"
    path.write_text(text, encoding="utf-8")
    try:
        load_pipeline(path).scheduler()
    except PipelineError as exc:
        assert_one_line(str(exc))


@FUZZ
@given(data=st.binary(max_size=80))
def test_pipeline_loader_reads_any_bytes(folder: Path, data: bytes) -> None:
    path = folder / "pipeline.toml"
    path.write_bytes(VALID_PIPELINE.encode()[: len(data)] + data)
    try:
        load_pipeline(path).scheduler()
    except PipelineError as exc:
        assert_one_line(str(exc))


@FUZZ
@given(text=plans)
def test_plan_loader_loads_or_raises_value_error_and_every_plan_analyses(text: str) -> None:
    try:
        graph = ScheduleGraph.from_json(text)
    except ValueError as exc:
        assert_one_line(str(exc))
        return
    analysis = analyze_schedule(graph)
    analysis.to_dict(3)


# -- the command line ----------------------------------------------------------------


@contextlib.contextmanager
def captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield out, err


_LOG_LINE = re.compile(r"\d{4}-\d\d-\d\dT")  # a console log line starts with its time
_EVENTS_WITH_TRACEBACKS = ("task.failed", "task.retrying")


def assert_no_stray_traceback(text: str) -> None:
    """Every traceback in ``text`` is a failed attempt's, under its event (exc_info)."""
    event_line = ""
    for line in text.splitlines():
        if _LOG_LINE.match(line):
            event_line = line
        elif line.startswith("Traceback"):
            assert any(name in event_line for name in _EVENTS_WITH_TRACEBACKS), text


def test_a_traceback_outside_a_failure_event_is_caught() -> None:
    failed = "2026-01-01T00:00:00Z [warning  ] task.failed  task_id=a\nTraceback (most r..."
    assert_no_stray_traceback(failed)
    with pytest.raises(AssertionError):
        assert_no_stray_traceback(failed + "\n2026-01-01T00:00:01Z run.completed\nTraceback")
    with pytest.raises(AssertionError):
        assert_no_stray_traceback("Traceback (most recent call last):")


def assert_clean_exit(args: list[str]) -> None:
    with captured() as (_, err):
        status = main(args)
    text = err.getvalue()
    assert status in (0, 1, 2), (status, text)
    assert_no_stray_traceback(text)
    event(f"exit {status}")
    if status == 2:
        assert text.count("\n") == 1, text
        assert text.startswith("dagwave "), text
        event(text.split(": ")[-1][:30])


CLI = settings(FUZZ, max_examples=100)


@CLI
@given(text=pipeline_texts, command=st.sampled_from([["run", "--dry-run"], ["graph"]]))
def test_cli_checks_any_pipeline_file_cleanly(folder: Path, text: str, command: list[str]) -> None:
    path = folder / "pipeline.toml"
    path.write_text(text, encoding="utf-8")
    assert_clean_exit([*command, str(path)])


@settings(CLI, max_examples=40)
@given(text=harmless_pipelines())
def test_cli_runs_any_harmless_pipeline_cleanly(folder: Path, text: str) -> None:
    path = folder / "pipeline.toml"
    path.write_text(text, encoding="utf-8")
    assert_clean_exit(["run", str(path)])


@CLI
@given(text=plans, as_json=st.booleans())
def test_cli_analyzes_any_plan_file_cleanly(folder: Path, text: str, as_json: bool) -> None:
    path = folder / "plan.json"
    path.write_text(text, encoding="utf-8")
    assert_clean_exit(["analyze", str(path), *(["--json"] if as_json else [])])


def test_the_valid_seeds_are_valid(folder: Path) -> None:
    """The mutation fuzzers start from files that load: their mutants are near misses."""
    assert len(load_pipeline(_write(folder, VALID_PIPELINE)).scheduler()) == 3
    assert len(ScheduleGraph.from_json(VALID_PLAN).units) == 3


def _write(folder: Path, text: str) -> Path:
    path = folder / "seed.toml"
    path.write_text(text)
    return path
