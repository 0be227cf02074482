"""Headless Debian Chromium for the browser tests (never `playwright install`): its path and launch flags."""

from __future__ import annotations

import shutil

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
HAVE_CHROMIUM = shutil.which("chromium") is not None
SKIP_REASON = "Debian chromium is not installed (apt-get install -y chromium)"
