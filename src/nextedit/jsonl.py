"""Streaming JSONL read/write for example files: orjson, transparent gzip, atomic finish, quarantine of bad lines."""

from __future__ import annotations

import glob
import gzip
import itertools
import os
import secrets
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Self

import orjson

from nextedit.record import Example, RecordError, parse_example

__all__ = [
    "DamagedInput",
    "FailedWriter",
    "JsonlWriter",
    "copy_head",
    "copy_sample",
    "failed_path",
    "iter_lines",
    "open_binary",
    "read_dicts",
    "read_examples",
    "remove_stale_temps",
    "write_examples",
    "write_if_changed",
]

OnError = Callable[[int, bytes, str], None]


def _is_gz(path: str | os.PathLike[str]) -> bool:
    return str(path).endswith(".gz")


def open_binary(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a file for binary reading, decompressing it when its name ends in `.gz`."""
    if _is_gz(path):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb", buffering=1 << 20)


class DamagedInput(RecordError):
    """A compressed input that ends early or fails its checksum; names the file, the first line not
    read and the byte offsets (in the file and in the decompressed stream) where reading stopped."""


def iter_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, bytes]]:
    """Yield (1-based line number, line without its newline); blank lines are skipped.

    A damaged `.gz` (truncated, corrupt) raises DamagedInput after the last line that decompressed
    whole, so callers can keep what came before the damage."""
    number = 0
    done = 0  # decompressed bytes handed out
    with open_binary(path) as fh:
        lines = iter(fh)
        while True:
            try:
                raw = next(lines)
            except StopIteration:
                return
            except (EOFError, OSError, zlib.error) as exc:
                if not _is_gz(path):
                    raise
                raw_fh = getattr(fh, "fileobj", None)
                at = raw_fh.tell() if raw_fh is not None else None
                where = f"byte {at} of the file, " if at is not None else ""
                raise DamagedInput(f"damaged gzip data after line {number} ({where}byte {done} decompressed): "
                                   f"{exc or type(exc).__name__}", file=str(path), line=number + 1) from None
            number += 1
            done += len(raw)
            line = raw.rstrip(b"\r\n")
            if line.strip():
                yield number, line


def write_if_changed(dst: str | os.PathLike[str], data: bytes) -> None:
    """Write `dst` atomically, and only when its bytes change (downstream caches key on size and mtime)."""
    dst = Path(dst)
    if dst.exists() and dst.read_bytes() == data:
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(dst)


def copy_head(src: str | os.PathLike[str], dst: str | os.PathLike[str], n: int) -> int:
    """Copy the first `n` non-blank lines of `src` (`.gz` ok) into plain `dst`, rewriting `dst` only when it
    changes (so caches keyed on its content stay valid); returns how many lines were copied."""
    lines = [line + b"\n" for _, line in itertools.islice(iter_lines(src), n)]
    write_if_changed(dst, b"".join(lines))
    return len(lines)


def copy_sample(src: str | os.PathLike[str], dst: str | os.PathLike[str], n: int, *, seed: int = 0) -> int:
    """Copy at most `n` records of `src` (`.gz` ok) into plain `dst`, chosen by a seeded hash of their `id` and
    kept in file order: a sample spread over the whole file (a file's head holds neighbouring, correlated
    examples). Rewrites `dst` only when it changes; returns how many lines were copied."""
    import hashlib

    lines = [line for _, line in iter_lines(src)]

    def rank(i: int) -> str:
        ex_id = orjson.loads(lines[i]).get("id", i)
        return hashlib.sha256(f"{seed}:{ex_id}".encode()).hexdigest()

    chosen = set(sorted(range(len(lines)), key=rank)[:n])
    write_if_changed(dst, b"".join(line + b"\n" for i, line in enumerate(lines) if i in chosen))
    return len(chosen)


def _loads_object(raw: bytes, file: str, line: int) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"malformed JSON ({exc})", file=file, line=line) from None
    if not isinstance(data, dict):
        raise RecordError(f"expected a JSON object, got {type(data).__name__}", file=file, line=line)
    return data


def read_dicts(path: str | os.PathLike[str], *, errors: Literal["raise", "skip"] = "raise",
               on_error: OnError | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, JSON object) per line; a line that is not a JSON object raises RecordError
    (or, with errors="skip", is reported to `on_error(line, raw, reason)` and skipped)."""
    name = str(path)
    for number, raw in iter_lines(path):
        try:
            yield number, _loads_object(raw, name, number)
        except RecordError as exc:
            if errors == "raise":
                raise
            if on_error is not None:
                on_error(number, raw, str(exc))


def read_examples(path: str | os.PathLike[str], *, errors: Literal["raise", "skip"] = "raise",
                  on_error: OnError | None = None) -> Iterator[Example]:
    """Yield validated examples; a bad line raises RecordError naming file, line and field
    (or, with errors="skip", is reported to `on_error(line, raw, reason)` and skipped)."""
    name = str(path)
    for number, raw in iter_lines(path):
        try:
            yield parse_example(_loads_object(raw, name, number), file=name, line=number)
        except RecordError as exc:
            if errors == "raise":
                raise
            if on_error is not None:
                on_error(number, raw, str(exc))


def _dumps(obj: Example | dict[str, Any] | bytes) -> bytes:
    if isinstance(obj, bytes):
        return obj
    if isinstance(obj, Example):
        return obj.to_json()
    return orjson.dumps(obj)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(path: str | os.PathLike[str]) -> int:
    """Delete the temp files `.NAME.PID[.HEX].tmp` that writers of `path` killed by SIGKILL left beside
    it (their process is gone); return how many were removed."""
    p = Path(path)
    removed = 0
    for tmp in p.parent.glob(f".{glob.escape(p.name)}.*.tmp"):
        pid = tmp.name[len(p.name) + 2:].split(".")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


class JsonlWriter:
    """Write one JSON object per line to a temp file beside `path`; rename it onto `path` only when
    the `with` block ends without error, so readers never see a half-written file (`.gz` compresses)."""

    def __init__(self, path: str | os.PathLike[str], *, compresslevel: int = 6):
        self.path = Path(path)
        self.count = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.path)
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        raw = open(self._tmp, "xb", buffering=1 << 20)  # noqa: SIM115 (closed in close/abort)
        self._raw = raw
        self._fh: IO[bytes] = (gzip.GzipFile(filename=self.path.name[:-3], mode="wb", fileobj=raw,
                                             compresslevel=compresslevel)  # type: ignore[assignment]
                               if _is_gz(self.path) else raw)
        self._closed = False

    def write(self, obj: Example | dict[str, Any] | bytes) -> None:
        """Append one record (an Example, a dict, or an already serialised JSON line without newline)."""
        self._fh.write(_dumps(obj) + b"\n")
        self.count += 1

    def close(self) -> None:
        """Finish: flush, fsync and atomically rename the temp file onto the target path."""
        if self._closed:
            return
        self._closed = True
        if self._fh is not self._raw:
            self._fh.close()
        try:
            self._raw.flush()
            os.fsync(self._raw.fileno())
            self._raw.close()
            if self.path.is_dir():
                raise IsADirectoryError(f"{self.path}: is a folder, not a file")
            os.replace(self._tmp, self.path)
        except BaseException:
            self._raw.close()
            self._tmp.unlink(missing_ok=True)
            raise

    def abort(self) -> None:
        """Give up: delete the temp file and leave any existing target untouched."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._fh is not self._raw:
                self._fh.close()
            self._raw.close()
        finally:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def failed_path(out_path: str | os.PathLike[str]) -> Path:
    """Where the failed rows of output `out_path` go: `out.jsonl` -> `out.failed.jsonl`."""
    p = Path(out_path)
    name = p.name
    for suffix in (".jsonl.gz", ".jsonl", ".json.gz", ".json", ".gz"):
        if name.endswith(suffix):
            return p.with_name(name[: -len(suffix)] + ".failed.jsonl")
    return p.with_name(name + ".failed.jsonl")


def failed_row(*, file: str, line: int | None, reason: str, stage: str | None = None,
               raw: bytes | dict[str, Any] | None = None) -> dict[str, Any]:
    """One quarantine row: where the record came from, why it failed, and the record itself
    (as a JSON object when it parses, else as the raw text)."""
    record: Any = raw
    if isinstance(raw, bytes):
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            record = raw.decode("utf-8", errors="replace")
    rid = record.get("id") if isinstance(record, dict) else None
    return {"file": file, "line": line, "id": rid if isinstance(rid, str) else None,
            "stage": stage, "reason": reason, "record": record}


class FailedWriter:
    """Quarantine file `<out>.failed.jsonl`: one row {file, line, id, stage, reason, record} per bad
    record. Opened lazily (no file when nothing failed); finished atomically like JsonlWriter."""

    def __init__(self, out_path: str | os.PathLike[str], *, stage: str | None = None):
        self.path = failed_path(out_path)
        self.stage = stage
        self.count = 0
        self._writer: JsonlWriter | None = None

    def write(self, *, file: str, line: int | None, reason: str,
              raw: bytes | dict[str, Any] | None = None, stage: str | None = None) -> None:
        """Record one failure."""
        if self._writer is None:
            self._writer = JsonlWriter(self.path)
        self._writer.write(failed_row(file=file, line=line, reason=reason,
                                      stage=stage or self.stage, raw=raw))
        self.count += 1

    def on_error(self, file: str) -> OnError:
        """A callback for `read_examples(..., errors="skip", on_error=...)` that quarantines bad lines."""
        return lambda line, raw, reason: self.write(file=file, line=line, reason=reason, raw=raw)

    def close(self) -> None:
        """Finish the file (only written when something failed)."""
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._writer is not None:
            # What failed so far is kept even when the caller's block raised.
            self._writer.close()


def write_examples(path: str | os.PathLike[str], examples: Iterable[Example | dict[str, Any]]) -> int:
    """Write all records to `path` atomically; return how many were written."""
    with JsonlWriter(path) as writer:
        for example in examples:
            writer.write(example)
    return writer.count
