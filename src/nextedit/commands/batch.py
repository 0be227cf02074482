"""`nextedit batch submit|status|collect`: LLM Batch API jobs with their state in job files."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import orjson
import typer

batch_app = typer.Typer(help="LLM Batch API jobs (half price): submit, check, collect into the request cache.",
                        no_args_is_help=True)


def _paths(targets: list[Path]) -> list[Path]:
    from nextedit.llm.batch import job_files

    out: list[Path] = []
    for target in targets:
        out.extend(job_files(target))
    if not out:
        raise ValueError(f"no *.batch.json job files in {', '.join(map(str, targets))}")
    return out


def _fail(err: Exception) -> None:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(1)


@batch_app.command("submit")
def submit(
    requests: Annotated[Path, typer.Argument(help="JSONL of chat requests ({model?, system, messages, max_tokens, ...}).")],
    model: Annotated[str, typer.Option("--model", "-m", help="anthropic:MODEL, openai:MODEL or openai-compatible:URL#MODEL")],
    job_dir: Annotated[Path, typer.Option("--dir", help="Folder for the job files.")] = Path(".nextedit/batches"),
    base_url: Annotated[str | None, typer.Option("--base-url", help="Provider base URL override.")] = None,
    cache: Annotated[Path | None, typer.Option("--cache", help="Request cache (default $NEXTEDIT_LLM_CACHE or ~/.cache/nextedit/llm_cache.sqlite).")] = None,
    max_cost_usd: Annotated[float | None, typer.Option("--max-cost-usd", help="Refuse to submit more than this could cost.")] = None,
) -> None:
    """Submit the requests that are not cached yet as provider batch jobs; prints the job files."""
    from nextedit.jsonl import read_dicts
    from nextedit.llm import ChatRequest, LLMError, get_client
    from nextedit.llm.batch import run, submit_requests

    try:
        reqs = []
        for line, row in read_dicts(requests):
            try:
                reqs.append(ChatRequest.model_validate(row))
            except Exception as err:  # noqa: BLE001 - reported with file and line
                first = err.errors()[0] if hasattr(err, "errors") else {"loc": (), "msg": str(err)}
                raise ValueError(f"{requests}:{line}: field {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
        options = {"cache_path": str(cache) if cache else None, "max_cost_usd": max_cost_usd}
        if base_url:
            options["base_url"] = base_url
        client = get_client(model, **options)
        paths = run(submit_requests(client, reqs, job_dir))
    except (ValueError, OSError, LLMError) as err:
        _fail(err)
    typer.echo(f"{len(paths)} job(s) submitted" + (", all requests already cached" if not paths else ""))
    for path in paths:
        typer.echo(str(path))


@batch_app.command("status")
def status(
    targets: Annotated[list[Path], typer.Argument(help="Job files or folders of *.batch.json.")],
    refresh: Annotated[bool, typer.Option("--refresh/--no-refresh", help="Ask the provider first.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per job.")] = False,
) -> None:
    """Show each job's state (asking the provider about submitted ones unless --no-refresh)."""
    from nextedit.llm import LLMError
    from nextedit.llm.batch import load_job, refresh_job, run

    try:
        jobs = [(p, run(refresh_job(p)) if refresh else load_job(p)) for p in _paths(targets)]
    except (ValueError, OSError, LLMError) as err:
        _fail(err)
    if as_json:
        for path, job in jobs:
            row = {"file": str(path), **job.model_dump(mode="json", exclude={"requests", "items", "errors"}),
                   "requests": len(job.requests), "errored": len(job.errors)}
            typer.echo(orjson.dumps(row).decode())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for name in ("job file", "provider batch", "status", "requests", "stored", "errored", "submitted",
                 "collected"):
        table.add_column(name, overflow="fold")  # wrap long ids on narrow terminals, never cut them
    for path, job in jobs:
        table.add_row(path.name, job.provider_batch_id or "-", job.status, str(len(job.requests)),
                      str(job.stored), str(len(job.errors)), job.submitted_at or "-", job.collected_at or "-")
    from nextedit.tables import print_table

    print_table(table, Console(highlight=False))


@batch_app.command("collect")
def collect(
    targets: Annotated[list[Path], typer.Argument(help="Job files or folders of *.batch.json.")],
    wait: Annotated[bool, typer.Option("--wait", help="Poll until every job has ended, then collect.")] = False,
    poll_s: Annotated[float, typer.Option("--poll-s", min=0.0, help="Seconds between polls with --wait.")] = 30.0,
    timeout_s: Annotated[float | None, typer.Option("--timeout-s", help="Give up waiting after this long.")] = None,
) -> None:
    """Write the results of ended jobs into the request cache; a normal run then finds them there."""
    from nextedit.llm import LLMError
    from nextedit.llm.batch import collect_job, run

    t0 = time.monotonic()
    try:
        paths = _paths(targets)
        while True:
            results = [run(collect_job(p)) for p in paths]
            waiting = [r for r in results if r.status == "submitted"]
            if not wait or not waiting or (timeout_s is not None and time.monotonic() - t0 > timeout_s):
                break
            time.sleep(poll_s)
    except (ValueError, OSError, LLMError) as err:
        _fail(err)
    for r in results:
        typer.echo(f"{r.path}: {r.status}, {r.stored} stored, {r.errored} errored")
    if any(r.status == "submitted" for r in results):
        typer.echo("some jobs are still in progress: run `nextedit batch collect` again later", err=True)
        raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    """Add the `batch` command group."""
    app.add_typer(batch_app, name="batch")
