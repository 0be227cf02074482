"""The app factory uvicorn's worker processes import (`nextedit serve --workers N`)."""

from __future__ import annotations

import os

from fastapi import FastAPI

#: The config file the workers load (set by `nextedit serve`).
CONFIG_ENV = "NEXTEDIT_SERVE_CONFIG"


def app() -> FastAPI:
    """Build the server app from the config file named by $NEXTEDIT_SERVE_CONFIG."""
    from nextedit.serve.app import create_app
    from nextedit.serve.config import load_config

    path = os.environ[CONFIG_ENV]
    return create_app(load_config(path), config_path=path)
