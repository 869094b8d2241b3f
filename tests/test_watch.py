"""FileWatcher on real files: one debounced callback per burst of changes."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from monitor.service.watch import FileWatcher

LIMIT = 20.0  # generous upper bound for "eventually"; not a performance assertion


async def _until(predicate, limit: float = LIMIT) -> None:
    async def poll():
        while not predicate():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(poll(), limit)


def _setup(tmp_path: Path):
    rules = tmp_path / "rules"
    (rules / "sub").mkdir(parents=True)
    (rules / "a.yaml").write_text("rules: []\n")
    config = tmp_path / "config.yaml"
    config.write_text("feeds: []\n")
    return config, rules


def test_a_burst_of_edits_gives_one_callback_and_quiet_gives_none(tmp_path: Path):
    config, rules = _setup(tmp_path)
    calls: list[int] = []

    async def on_change() -> None:
        calls.append(1)

    async def scenario():
        stop = asyncio.Event()
        w = FileWatcher([config, rules], on_change, debounce=0.3, poll_interval=0.02)
        task = asyncio.create_task(w.run(stop))
        await _until(lambda: w.scans >= 10)
        assert calls == []  # nothing changed, nothing reloaded
        for n in range(5):
            (rules / "a.yaml").write_text(f"rules: [{n}]\n" * (n + 1))
        (rules / "sub" / "b.yml").write_text("rules: []\n")
        config.write_text("feeds: [x]\n")
        await _until(lambda: calls)
        seen = w.scans
        await _until(lambda: w.scans >= seen + 30)
        stop.set()
        await asyncio.wait_for(task, LIMIT)
        return w

    w = asyncio.run(scenario())
    assert calls == [1] and w.triggers == 1


def test_atomic_replace_delete_and_new_files_are_changes(tmp_path: Path):
    config, rules = _setup(tmp_path)
    calls: list[int] = []

    async def on_change() -> None:
        calls.append(1)

    async def scenario():
        stop = asyncio.Event()
        w = FileWatcher([config, rules], on_change, debounce=0.05, poll_interval=0.02)
        task = asyncio.create_task(w.run(stop))
        await _until(lambda: w.scans >= 2)
        # Same size, same mtime set back: only the inode differs (editor save-by-rename).
        st = os.stat(rules / "a.yaml")
        tmp = rules / ".a.yaml.swp"
        tmp.write_text("rules: []\n")
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(tmp, rules / "a.yaml")
        await _until(lambda: len(calls) == 1)
        (rules / "sub" / "new.yaml").write_text("rules: []\n")
        await _until(lambda: len(calls) == 2)
        (rules / "a.yaml").unlink()
        await _until(lambda: len(calls) == 3)
        (rules / "notes.txt").write_text("not a rules file")  # ignored
        seen = w.scans
        await _until(lambda: w.scans >= seen + 20)
        stop.set()
        await asyncio.wait_for(task, LIMIT)

    asyncio.run(scenario())
    assert len(calls) == 3


def test_a_failing_callback_does_not_stop_the_watcher(tmp_path: Path):
    config, _rules = _setup(tmp_path)
    calls: list[int] = []

    async def on_change() -> None:
        calls.append(1)
        raise ValueError("rules.yaml:3: bad")

    async def scenario():
        stop = asyncio.Event()
        w = FileWatcher([config], on_change, debounce=0.02, poll_interval=0.02)
        task = asyncio.create_task(w.run(stop))
        await _until(lambda: w.scans >= 1)
        config.write_text("one\n")
        await _until(lambda: len(calls) == 1)
        config.write_text("two two\n")
        await _until(lambda: len(calls) == 2)
        stop.set()
        await asyncio.wait_for(task, LIMIT)
        assert task.exception() is None

    asyncio.run(scenario())


def test_missing_paths_are_fine_and_appearing_counts(tmp_path: Path):
    calls: list[int] = []

    async def on_change() -> None:
        calls.append(1)

    async def scenario():
        stop = asyncio.Event()
        later = tmp_path / "later.yaml"
        w = FileWatcher([later, tmp_path / "no-dir"], on_change, debounce=0.02, poll_interval=0.02)
        task = asyncio.create_task(w.run(stop))
        await _until(lambda: w.scans >= 3)
        later.write_text("x: 1\n")
        await _until(lambda: calls)
        stop.set()
        await asyncio.wait_for(task, LIMIT)

    asyncio.run(scenario())
    assert calls == [1]


def test_stop_ends_run_promptly_even_with_a_long_poll_interval(tmp_path: Path):
    async def on_change() -> None:
        pass

    async def scenario():
        stop = asyncio.Event()
        w = FileWatcher([tmp_path], on_change, poll_interval=3600)
        task = asyncio.create_task(w.run(stop))
        await asyncio.sleep(0)
        stop.set()
        await asyncio.wait_for(task, LIMIT)
        return task.done()

    assert asyncio.run(scenario())
