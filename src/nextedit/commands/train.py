"""`nextedit train CONFIG.toml`: fine-tune a student (SFT with LoRA or full, optional DPO) and export it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the `train` command."""

    @app.command("train")
    def train_command(
        config: Annotated[Path | None, typer.Argument(help="Training config (TOML); see --example-config.")] = None,
        output_dir: Annotated[Path | None, typer.Option("-o", "--output-dir", help="Override output_dir.")] = None,
        base_model: Annotated[str | None, typer.Option("--base-model", help="Override base_model.")] = None,
        max_steps: Annotated[int | None, typer.Option("--max-steps", help="Override train.max_steps.")] = None,
        no_resume: Annotated[bool, typer.Option("--no-resume", help="Start over even if checkpoints exist.")] = False,
        example_config: Annotated[bool, typer.Option("--example-config",
                                                     help="Print a commented example config and exit.")] = False,
    ) -> None:
        """Fine-tune a base model on examples rendered with a student format.

        Loss on the completion only (the format's target), LoRA or full fine-tuning, bf16 where the
        machine supports it, gradient accumulation, sequence packing, held-out loss during training,
        checkpoints (a re-run resumes from the newest), then export: OUTPUT/merged (load it with
        `--provider local:OUTPUT/merged`) and OUTPUT/adapter. Data-parallel on several GPUs or nodes
        with a [distributed] section (docs/training.md).
        """
        from nextedit.train.config import EXAMPLE_CONFIG, TrainConfigError, load_config

        if example_config:
            typer.echo(EXAMPLE_CONFIG, nl=False)
            return
        if config is None:
            typer.echo("error: give a config file (nextedit train --example-config > train.toml)", err=True)
            raise typer.Exit(2)
        overrides = {"output_dir": str(output_dir) if output_dir else None, "base_model": base_model,
                     "train.max_steps": max_steps, "resume": False if no_resume else None}
        try:
            cfg = load_config(config, **overrides)
            from nextedit.train.distributed import check

            check(cfg.distributed)
        except TrainConfigError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        from rich.console import Console

        from nextedit.train.base_models import BaseModelError
        from nextedit.train.sft import TrainError, train

        console = Console(stderr=True)
        try:
            result = train(cfg, console=console)
        except (TrainError, BaseModelError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        for line in result.lines():
            typer.echo(line)
