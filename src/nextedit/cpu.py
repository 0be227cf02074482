"""How many CPU threads a model may use: the cores other processes leave idle, measured over a short window."""

from __future__ import annotations

import os
import threading
import time

#: How long `free_cores` watches the CPU (seconds), and how long a measurement is reused: the runtimes and the
#: trainer of one job (a quickstart's calibration, then its predictions) get the same count, so greedy outputs do
#: not change with a thread count picked a few seconds apart.
WINDOW = 0.3
REUSE = 60.0

_lock = threading.Lock()
_last: tuple[float, float] | None = None  # (monotonic time, cores busy elsewhere)


def busy_elsewhere(window: float = WINDOW) -> float:
    """Cores kept busy by other processes over the next `window` seconds (this process's own threads, such as a
    model still finishing a step, are not counted: a 1-minute load average counts them, and a job that trained on
    2 cores then saw only 1 free for its predictions)."""
    import psutil

    me = psutil.Process()

    def busy() -> tuple[float, float]:
        t = psutil.cpu_times()
        mine = me.cpu_times()
        return t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0) + \
            getattr(t, "steal", 0.0), mine.user + mine.system

    start, (total0, mine0) = time.monotonic(), busy()
    time.sleep(window)
    elapsed, (total1, mine1) = time.monotonic() - start, busy()
    return max(0.0, (total1 - total0) - (mine1 - mine0)) / max(elapsed, 1e-3)


def free_cores(setting: int | str = "auto", *, share: int = 1) -> int:
    """CPU threads to use: "auto" = the cores left idle by other processes (at least 1; measured once a minute at
    most), split between the `share` processes of this machine; a number is taken as given.

    On a shared machine, threads that outnumber the free cores are pre-empted at every barrier: one LoRA step of
    SmolLM2 measured 3.5 s with 1 thread and 45-80 s with 2 threads at load 7 on 2 cores.
    """
    global _last
    if setting != "auto":
        return max(1, int(setting))
    cores = os.cpu_count() or 1
    with _lock:
        now = time.monotonic()
        if _last is None or now - _last[0] > REUSE:
            _last = (now, busy_elsewhere())
        other = _last[1]
    return max(1, min(cores, round(cores - other)) // share)
