"""Export a trained model: a merged HF folder (what `local:PATH` loads), the LoRA adapter and runtime copies
(ct2/, gguf/), each with nextedit.json."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: Written into every exported folder: how to prompt the model and where it came from.
METADATA_FILE = "nextedit.json"


def model_metadata(*, format_name: str, format_version: str, format_options: dict[str, Any], base_model: str,
                   method: str, stop: list[str], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The nextedit.json content of an exported model."""
    from nextedit import __version__

    return {"format": format_name, "format_version": format_version, "format_options": format_options,
            "stop": stop, "base_model": base_model, "method": method, "nextedit_version": __version__,
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"), **(extra or {})}


def read_metadata(model_dir: Path) -> dict[str, Any] | None:
    """The model folder's nextedit.json, or None when it has none."""
    path = Path(model_dir) / METADATA_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None


def _atomic_dir(target: Path):
    """A temp folder beside `target`; `finish(tmp)` swaps it into place (the old export survives a crash)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))

    def finish() -> Path:
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
        tmp.rename(target)
        tmp_mode = 0o755
        target.chmod(tmp_mode)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return target

    return tmp, finish


def export_model(model: Any, tokenizer: Any, out_dir: Path, metadata: dict[str, Any], *,
                 merged: bool = True, adapter: bool = True) -> dict[str, Path]:
    """Write `out_dir/adapter` (PEFT models only) and `out_dir/merged`; returns the folders written.

    The adapter is saved before merging (merging folds the adapter into the base weights in place).
    A full fine-tune has no adapter: only `merged` is written.
    """
    written: dict[str, Path] = {}
    is_peft = hasattr(model, "peft_config")
    if adapter and is_peft:
        tmp, finish = _atomic_dir(out_dir / "adapter")
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        (tmp / METADATA_FILE).write_text(json.dumps({**metadata, "kind": "adapter"}, indent=2))
        written["adapter"] = finish()
    if merged:
        full = model.merge_and_unload() if is_peft else model
        tmp, finish = _atomic_dir(out_dir / "merged")
        full.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        (tmp / METADATA_FILE).write_text(json.dumps({**metadata, "kind": "merged"}, indent=2))
        written["merged"] = finish()
    return written


def export_runtime_copy(hf_dir: Path, out_dir: Path, write: Callable[[Path], None], *, runtime: str, kind: str,
                        quantization: str, metadata: dict[str, Any] | None = None) -> Path:
    """Write a runtime's copy of an HF model folder into `out_dir`, atomically: `write(tmp)` converts the weights,
    then the HF tokenizer and nextedit.json (the source's, plus `metadata`, kind, runtime and quantization) go
    beside them. A failed conversion leaves nothing behind and an older copy in place."""
    from nextedit.predictors.runtimes import load_tokenizer

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        write(tmp)
        load_tokenizer(hf_dir).save_pretrained(str(tmp))
        meta = {**(read_metadata(Path(hf_dir)) or {}), **(metadata or {})}
        meta.update(kind=kind, runtime=runtime, quantization=quantization)
        (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=2))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def export_runtimes(merged: Path, out_dir: Path, runtimes: list[str], *, quantization: str = "float32",
                    gguf_quantization: str = "q8_0") -> dict[str, Path]:
    """Convert the merged folder for each inference runtime named (ct2: `out_dir/ct2`, llama: `out_dir/gguf`);
    returns the folders written."""
    from nextedit.predictors.gguf_export import export_gguf
    from nextedit.predictors.runtimes import EXPORT_DIRS, export_ct2

    written: dict[str, Path] = {}
    for name in runtimes:
        if name == "ct2":
            written[name] = export_ct2(merged, out_dir / EXPORT_DIRS[name], quantization=quantization)
        elif name == "llama":
            written[name] = export_gguf(merged, out_dir / EXPORT_DIRS[name], quantization=gguf_quantization)
    return written
