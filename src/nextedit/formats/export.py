"""Exporting prompt/completion rows (JSONL) to Parquet (pyarrow) and to a Hugging Face `datasets` folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import orjson

from nextedit.jsonl import iter_lines

__all__ = ["ROW_COLUMNS", "ExportError", "to_hf_dataset", "to_parquet"]

ROW_COLUMNS = ("id", "format", "format_version", "prompt", "completion", "messages")
BATCH_ROWS = 1000


class ExportError(RuntimeError):
    """An export that cannot run (a missing optional package, a bad row)."""


def _need(module: str, package: str) -> Any:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise ExportError(f"this export needs {package}: pip install {package}") from None


def _schema(pa: Any) -> Any:
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    return pa.schema([("id", pa.string()), ("format", pa.string()), ("format_version", pa.string()),
                      ("prompt", pa.string()), ("completion", pa.string()),
                      ("messages", pa.list_(message))])


def to_parquet(rows_path: str | os.PathLike[str], parquet_path: str | os.PathLike[str]) -> int:
    """Write the rows of a JSONL file to Parquet in batches (memory stays flat); return the row count.
    `messages` is null for formats without chat messages. The file appears only when complete."""
    pa = _need("pyarrow", "pyarrow")
    pq = _need("pyarrow.parquet", "pyarrow")
    schema = _schema(pa)
    target = Path(parquet_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    count = 0
    try:
        with pq.ParquetWriter(str(tmp), schema) as writer:
            batch: list[dict[str, Any]] = []
            for line, raw in iter_lines(rows_path):
                row = orjson.loads(raw)
                missing = [c for c in ROW_COLUMNS[:5] if not isinstance(row.get(c), str)]
                if missing:
                    raise ExportError(f"{rows_path}:{line}: field {missing[0]}: missing or not a string")
                batch.append({c: row.get(c) for c in ROW_COLUMNS})
                if len(batch) >= BATCH_ROWS:
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                    count += len(batch)
                    batch = []
            if batch or count == 0:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                count += len(batch)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return count


def to_hf_dataset(rows_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                  parquet_path: str | os.PathLike[str] | None = None) -> int:
    """Save the rows as a Hugging Face dataset folder (`datasets.load_from_disk(out_dir)`), going through
    Parquet (`parquet_path` when already written, else a temporary file); return the row count."""
    datasets = _need("datasets", "datasets")
    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory(prefix="nextedit-hf-") as tmp:
        source = Path(parquet_path) if parquet_path is not None else Path(tmp) / "rows.parquet"
        if parquet_path is None:
            to_parquet(rows_path, source)
        dataset = datasets.Dataset.from_parquet(str(source), cache_dir=str(Path(tmp) / "cache"))
        dataset.save_to_disk(str(out_dir))
        return len(dataset)
