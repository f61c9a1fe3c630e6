"""The wheel as a user gets it: built, installed into a fresh venv, imported as ``dagwave``.

One test on purpose: building and installing take most of its ~20 s.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("engine", "adapters", "pyproject.toml", "README.md", "LICENSE")


def run(*args: str | Path, cwd: Path) -> str:
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        # no PYTHONPATH or virtualenv of ours leaks into the fresh one
        env={k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}},
    )
    assert done.returncode == 0, f"{args}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def quick_start() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert match is not None
    return match.group(1)


@pytest.mark.slow
def test_the_installed_wheel_is_dagwave_and_only_dagwave(tmp_path: Path) -> None:
    # Build from a copy of the sources, so nothing is written into the repository.
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(ROOT / name, source / name)
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, source, cwd=tmp_path)
    (wheel,) = dist.glob("dagwave-*.whl")

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/RECORD"))
        top_level = archive.read(f"{info}/top_level.txt").decode().split()
        metadata = archive.read(f"{info}/METADATA").decode()
    assert {name.split("/")[0] for name in names} == {"dagwave", info}
    assert top_level == ["dagwave"]
    assert {"dagwave/py.typed", "dagwave/adapters/py.typed", "dagwave/cli/_main.py"} <= set(names)
    assert "Programming Language :: Python :: 3.13" in metadata
    assert any(n.startswith(f"{info}/") and "LICENSE" in n for n in names)

    # A fresh venv, the wheel and its runtime dependencies only.
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", wheel, cwd=tmp_path)

    site = Path(
        run(
            python,
            "-c",
            "import dagwave, pathlib; print(pathlib.Path(dagwave.__file__).parent.parent)",
            cwd=tmp_path,
        ).strip()
    )
    assert site.is_relative_to(venv)
    assert not (site / "engine").exists()
    assert not (site / "adapters").exists()
    assert run(
        python,
        "-c",
        "import importlib.util as u; print(u.find_spec('engine'), u.find_spec('adapters'))",
        cwd=tmp_path,
    ).split() == ["None", "None"]

    script = tmp_path / "quick_start.py"
    script.write_text(quick_start())
    out = run(python, script, cwd=tmp_path)
    # Its own two lines and nothing else: dagwave is quiet until structlog is configured.
    first, second = out.splitlines()
    assert first.startswith("3/3 ok, speedup ")
    assert second == "critical path: fetch -> crunch -> publish"

    assert "usage: dagwave" in run(python, "-m", "dagwave", "--help", cwd=tmp_path)
    assert "usage: dagwave" in run(venv / "bin" / "dagwave", "--help", cwd=tmp_path)
