"""The HTML report, loaded in a real headless Chromium: every task's bar is in the DOM."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from dagwave import DependencyAwareScheduler, RetryPolicy


def run_diamond() -> DependencyAwareScheduler:
    async def pause(context: Any) -> None:
        await trio.sleep(1)

    async def flaky(context: Any) -> None:
        await trio.sleep(1)
        if context["attempt"] == 1:
            raise ConnectionError("again")

    async def broken(context: Any) -> None:
        raise ValueError("broken")

    s = DependencyAwareScheduler(retry_policy=RetryPolicy(initial_delay=0))
    s.add_task("a", pause)
    s.add_task("b", flaky, dependencies=["a"], retry_count=1)
    s.add_task("c", pause, dependencies=["a"])
    s.add_task("d", pause, dependencies=["b", "c"])
    s.add_task("x", broken)
    s.add_task("after_x", pause, dependencies=["x"])
    s.schedule()
    trio.run(s.execute, clock=MockClock(autojump_threshold=0))
    return s


class Bars(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.bars: list[tuple[str, str]] = []
        self.nodes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "rect" and "bar" in (a.get("class") or ""):
            self.bars.append((a["data-task"] or "", (a.get("class") or "").split()[-1]))
        if tag == "g" and a.get("class") == "node":
            self.nodes.append(a["data-task"] or "")


def parse(html: str) -> Bars:
    bars = Bars()
    bars.feed(html)
    return bars


def test_report_has_one_bar_per_attempt_and_every_node() -> None:
    bars = parse(run_diamond().to_html_report())
    assert sorted(bars.bars) == [
        ("a", "completed"),
        ("b", "completed"),
        ("b", "failed"),
        ("c", "completed"),
        ("d", "completed"),
        ("x", "failed"),
    ]
    assert sorted(bars.nodes) == ["a", "after_x", "b", "c", "d", "x"]


def test_report_is_self_contained() -> None:
    html = run_diamond().to_html_report()
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html
    assert "<script" not in html


def browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def dump_dom(exe: str, page: Path, profile: Path) -> subprocess.CompletedProcess[str]:
    """Load ``page`` in headless Chromium; its DOM as the browser built it, on stdout."""
    return subprocess.run(
        [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_report_renders_in_a_real_browser(tmp_path: Path) -> None:
    exe = browser()
    if exe is None:
        pytest.skip("no Chromium on this machine (.ci/run installs Debian's chromium)")
    page = tmp_path / "run.html"
    page.write_text(run_diamond().to_html_report())
    proc = dump_dom(exe, page, tmp_path / "profile")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rendered = parse(proc.stdout)  # the DOM as the browser built it
    assert {task for task, _ in rendered.bars} == {"a", "b", "c", "d", "x"}
    assert sorted(rendered.nodes) == ["a", "after_x", "b", "c", "d", "x"]
    assert 'id="summary"' in proc.stdout
