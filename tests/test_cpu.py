"""nextedit.cpu: the cores other processes leave idle, not counting this process's own threads."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from nextedit import cpu


def _spin_thread(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(range(1000))


def test_a_number_is_taken_as_given() -> None:
    assert cpu.free_cores(3) == 3
    assert cpu.free_cores("2") == 2
    assert cpu.free_cores(0) == 1


def test_a_busy_process_counts_and_a_busy_thread_of_this_process_does_not() -> None:
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        with_child = cpu.busy_elsewhere(0.6)
    finally:
        child.kill()
        child.wait()
    stop = threading.Event()
    spinner = threading.Thread(target=_spin_thread, args=(stop,), daemon=True)
    spinner.start()
    try:
        with_thread = cpu.busy_elsewhere(0.6)
    finally:
        stop.set()
        spinner.join()
    # the child keeps one core busy; the thread's core is this process's own and is not counted
    assert with_child - with_thread > 0.5


def test_auto_is_measured_once_and_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu, "_last", None)
    first = cpu.free_cores("auto")
    measured = cpu._last
    assert measured is not None and 1 <= first <= (__import__("os").cpu_count() or 1)
    assert cpu.free_cores("auto") == first and cpu._last is measured
    assert cpu.free_cores("auto", share=64) == 1
