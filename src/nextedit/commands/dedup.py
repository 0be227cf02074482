"""`nextedit dedup`: drop exact and near-duplicate examples (MinHash + LSH), keeping input order."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the `dedup` command."""

    @app.command("dedup")
    def dedup(
        file: Annotated[Path, typer.Argument(help="Examples JSONL file (.gz ok).")],
        output: Annotated[Path, typer.Option("-o", "--output", help="Where the kept examples go.")],
        threshold: Annotated[float, typer.Option("--threshold", help="Estimated Jaccard similarity of token "
                                                                  "5-gram shingles that makes a near-duplicate.")] = 0.5,
        max_duplicates: Annotated[int, typer.Option("--max-duplicates", min=1,
                                           help="Keep up to K examples per near-duplicate cluster, "
                                                "chosen for diversity.")] = 1,
        window_lines: Annotated[int, typer.Option("--window-lines", min=0,
                                         help="Compare text within this many lines of the cursor (0: all).")] = 20,
        shingle: Annotated[int, typer.Option("--shingle", min=1, help="Tokens per shingle.")] = 5,
        num_perm: Annotated[int, typer.Option("--num-perm", min=2, help="MinHash permutations.")] = 128,
        against: Annotated[Path | None, typer.Option("--against",
                                            help="Also drop examples that duplicate any example of this "
                                                 "file (e.g. remove from train what is in test).")] = None,
        dropped: Annotated[Path | None, typer.Option("--dropped",
                                            help="Write one row per removed example (id, line, reason, "
                                                 "duplicate_of, similarity) here.")] = None,
    ) -> None:
        """Remove exact duplicates and near-duplicates; kept examples stay in input order."""
        from nextedit.dataset.dedup import DedupConfig, dedup_file

        try:
            config = DedupConfig(threshold=threshold, num_perm=num_perm, shingle=shingle,
                                 max_duplicates=max_duplicates, window_lines=window_lines)
            summary = dedup_file(file, output, config, reference=against, dropped_path=dropped)
        except (ValueError, OSError) as exc:  # RecordError is a ValueError
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        line = (f"{summary.total} examples: kept {summary.kept}, removed {summary.exact_removed} exact "
                f"duplicates and {summary.near_removed} near-duplicates "
                f"({summary.near_clusters} clusters, up to {max_duplicates} kept each)")
        if against is not None:
            line += f", {summary.reference_removed} found in {against}"
        typer.echo(line + f" -> {output}")
