"""Test-wide settings: hypothesis runs without per-example deadlines (tests never assert timings, and a loaded
2-core CI machine can stall one example past hypothesis's default 200 ms)."""

from hypothesis import settings

settings.register_profile("nextedit", deadline=None)
settings.load_profile("nextedit")
