"""`scripted:PATH`: a predictor that replays candidate lists from a file, per example id (tests, benchmarks).

PATH is either a JSON object `{"<example id>": [candidate, ...], ...}` or a JSONL file of rows
`{"id": "<example id>", "candidates": [candidate, ...]}` (`.gz` ok). A JSONL file is indexed once
(id -> byte offset) and each row is read when its example comes, so memory stays flat however
large the file is. A candidate is a unified diff against `snapshot.text` (a string), or an object
with one of `patch` (a diff), `region` (the new text of the editable region; turned into a diff)
or `error` (a failed sample), and optionally `cursor`. The first `samples` candidates are
returned; an example with no row gets no predictions.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson

from nextedit import patch as patchlib
from nextedit.predictors.base import Predictor, PredictorError
from nextedit.record import Example, Prediction

__all__ = ["ScriptedPredictor"]


class ScriptedPredictor(Predictor):
    """Returns the candidates a file lists for each example id."""

    scheme = "scripted"
    version = "1"

    def __init__(self, argument: str | None = None, **options: Any) -> None:
        if not argument:
            raise PredictorError("provider 'scripted' needs a file: scripted:PATH")
        if options:
            raise PredictorError(f"provider 'scripted' takes no options (got {sorted(options)})")
        self.argument = argument
        self.path = Path(argument)
        if not self.path.is_file():
            raise PredictorError(f"scripted:{argument}: no such file")
        self._table: dict[str, list[Any]] | None = None
        self._offsets: dict[str, int] | None = None
        self._fh: Any = None
        if self.path.suffix == ".json":
            self._table = self._load_json()
        else:
            self._offsets = self._index_jsonl()

    def _load_json(self) -> dict[str, list[Any]]:
        try:
            data = orjson.loads(self.path.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise PredictorError(f"{self.path}: invalid JSON ({exc})") from None
        if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
            raise PredictorError(f"{self.path}: expected an object mapping example ids to candidate lists")
        return data

    def _open(self) -> Any:
        return gzip.open(self.path, "rb") if self.path.name.endswith(".gz") else open(self.path, "rb")

    def _index_jsonl(self) -> dict[str, int]:
        offsets: dict[str, int] = {}
        with self._open() as fh:
            pos = 0
            for line_no, raw in enumerate(fh, 1):
                if raw.strip():
                    offsets[self._parse_row(raw, line_no)[0]] = pos
                pos += len(raw)
        return offsets

    def _parse_row(self, raw: bytes, line_no: int) -> tuple[str, list[Any]]:
        try:
            row = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise PredictorError(f"{self.path}:{line_no}: malformed JSON ({exc})") from None
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            raise PredictorError(f"{self.path}:{line_no}: field id: missing or not a string")
        if not isinstance(row.get("candidates"), list):
            raise PredictorError(f"{self.path}:{line_no}: field candidates: missing or not a list")
        return row["id"], row["candidates"]

    def candidates(self, example_id: str) -> list[Any]:
        """The raw candidate list for an example id ([] when the file has none)."""
        if self._table is not None:
            return self._table.get(example_id, [])
        assert self._offsets is not None
        offset = self._offsets.get(example_id)
        if offset is None:
            return []
        if self._fh is None:
            self._fh = self._open()
        self._fh.seek(offset)
        return self._parse_row(self._fh.readline(), 0)[1]

    def _prediction(self, example: Example, i: int, cand: Any) -> Prediction:
        if isinstance(cand, str):
            return Prediction(provider=self.name, sample=i, raw=cand, patch=cand)
        if not isinstance(cand, dict):
            raise PredictorError(f"{self.path}: example {example.id} candidate {i}: expected a string or an object")
        cursor = cand.get("cursor")
        if cand.get("error") is not None:
            return Prediction(provider=self.name, sample=i, error=str(cand["error"]))
        if "region" in cand:
            snap = example.snapshot
            patch = patchlib.from_region(snap.text, snap.editable or (0, len(snap.text)), cand["region"],
                                         path=snap.path, start_line=snap.start_line)
            return Prediction(provider=self.name, sample=i, raw=cand["region"], patch=patch, cursor=cursor)
        if isinstance(cand.get("patch"), str):
            return Prediction(provider=self.name, sample=i, raw=cand["patch"], patch=cand["patch"], cursor=cursor)
        raise PredictorError(f"{self.path}: example {example.id} candidate {i}: needs patch, region or error")

    def predict(self, example: Example, *, samples: int = 1) -> list[Prediction]:
        """The first `samples` scripted candidates of this example."""
        return [self._prediction(example, i, c) for i, c in enumerate(self.candidates(example.id)[:samples])]

    def __del__(self) -> None:
        fh = getattr(self, "_fh", None)
        if fh is not None:
            fh.close()
