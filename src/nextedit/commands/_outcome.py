"""How a finished stage run ends a command: its summary on stderr, and exit 1 when the input was
damaged or every example failed (the top failure reasons are part of the summary)."""

from __future__ import annotations

import sys

import typer

from nextedit.pipeline.engine import RunSummary


def exit_code(summary: RunSummary) -> int:
    """1 when the input was damaged or every example failed, else 0."""
    return 1 if (summary.input_error or summary.all_failed) else 0


def finish(summary: RunSummary, *, stop: bool = True) -> int:
    """Print the summary lines to stderr; with `stop`, end the command with exit 1 on a failed run."""
    for line in summary.lines():
        print(line, file=sys.stderr)
    code = exit_code(summary)
    if code and summary.all_failed and not summary.input_error:
        print(f"error: {summary.stage}: every example failed ({summary.failed}); see the reasons above "
              f"and {summary.failed_output}", file=sys.stderr)
    if code and stop:
        raise typer.Exit(code)
    return code
