"""The llama runtime: a GGUF export of a tiny random Llama (checked against transformers' own GGUF reader), run by
llama.cpp with prompt-lookup drafts and the prompt prefix kept, against transformers float32 greedy decoding."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("gguf")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from eval_fixtures import dataset, rename_example
from runtime_support import model_cache, predict_each  # noqa: F401 (an autouse fixture)
from tiny_model import build_tiny_llama, build_tiny_model

from nextedit.jsonl import write_examples
from nextedit.predictors import PredictorError, get_predictor
from nextedit.predictors.gguf_export import GGUF_FILE, export_gguf, is_gguf_export
from nextedit.predictors.llamacpp import draft_from_prompt
from nextedit.train.config import TrainConfig
from nextedit.train.export import read_metadata
from nextedit.train.sft import train


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("llama") / "model")


@pytest.fixture(scope="module")
def gguf_f32(llama, tmp_path_factory) -> Path:
    return export_gguf(llama, tmp_path_factory.mktemp("gguf") / "f32", quantization="f32")


def test_gguf_export_holds_the_same_model(llama, gguf_f32):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert is_gguf_export(gguf_f32) and read_metadata(gguf_f32)["runtime"] == "llama"
    ours = AutoModelForCausalLM.from_pretrained(str(llama), dtype=torch.float32)
    # transformers reads GGUF on its own (undoing llama.cpp's rotary layout): the same logits, bit for bit.
    back = AutoModelForCausalLM.from_pretrained(str(gguf_f32), gguf_file=GGUF_FILE, dtype=torch.float32)
    ids = AutoTokenizer.from_pretrained(str(llama))("def order_total(price, amount):", return_tensors="pt").input_ids
    assert torch.equal(ours(ids).logits, back(ids).logits)
    vocab = AutoTokenizer.from_pretrained(str(gguf_f32), gguf_file=GGUF_FILE).get_vocab()
    assert vocab == AutoTokenizer.from_pretrained(str(llama)).get_vocab()


def test_gguf_export_refuses_what_it_cannot_write(tmp_path):
    qwen = build_tiny_model(tmp_path / "qwen")
    with pytest.raises(PredictorError, match="Qwen2ForCausalLM"):
        export_gguf(qwen, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))
    with pytest.raises(PredictorError, match="unknown GGUF quantization 'q2'"):
        export_gguf(qwen, tmp_path / "out", quantization="q2")


def test_drafts_come_from_the_latest_earlier_ngram():
    seq = [1, 2, 3, 4, 5, 9, 2, 3, 7, 8, 2, 3]
    assert draft_from_prompt(seq, 2) == [7, 8]  # "2 3" last occurred before 7 8
    assert draft_from_prompt([*seq, 4], 3, max_ngram=3) == [5, 9, 2]  # "2 3 4" occurred once
    assert draft_from_prompt([1, 2, 3], 4) == []
    assert draft_from_prompt([5], 4) == []


def test_llama_greedy_outputs_equal_transformers(llama, gguf_f32):
    pytest.importorskip("llama_cpp")
    examples = dataset(3, 2, 1)
    _, reference = predict_each(llama, examples, runtime="transformers", dtype="float32", prompt_lookup=False)
    plain, stepwise = predict_each(gguf_f32, examples, prompt_lookup=False)
    drafted, fast = predict_each(gguf_f32, examples)
    assert plain.runtime_name == drafted.runtime_name == "llama" and drafted.version.endswith(".llama-f32")
    for a, b, c in zip(reference, stepwise, fast, strict=True):
        assert a.raw == b.raw == c.raw and a.raw
        assert a.usage.output_tokens == b.usage.output_tokens == c.usage.output_tokens
        assert a.patch == c.patch and a.error == c.error
        assert c.confidence == pytest.approx(a.confidence, abs=1e-2)  # scored by llama.cpp's own passes


def test_llama_scores_completions_like_transformers(llama, gguf_f32):
    pytest.importorskip("llama_cpp")
    hf = get_predictor(f"local:{llama}", format="zeta1", runtime="transformers", dtype="float32")
    fast = get_predictor(f"local:{gguf_f32}", format="zeta1")
    tok = hf.load()[1]
    prompt = tok("def order_total(price, amount):\n", add_special_tokens=False)["input_ids"]
    completions = [tok(t, add_special_tokens=False)["input_ids"] for t in ("    return price", "x", "### Response:\n")]
    assert fast._logprobs(prompt, completions) == pytest.approx(hf._logprobs(prompt, completions), abs=1e-3)


def test_llama_keeps_the_shared_prompt_prefix_with_the_same_outputs(gguf_f32):
    pytest.importorskip("llama_cpp")
    examples = [rename_example(0), rename_example(0), rename_example(1)]
    cached, with_cache = predict_each(gguf_f32, examples)
    rt = cached.runtime()
    _, without = predict_each(gguf_f32, examples, prefix_cache=0)
    assert [p.raw for p in with_cache] == [p.raw for p in without]
    again = cached.predict_sync(examples[2])[0]
    assert rt.reused > 0 and again.raw == without[2].raw


def test_llama_sampling_is_seeded(gguf_f32):
    pytest.importorskip("llama_cpp")
    rt = get_predictor(f"local:{gguf_f32}", format="zeta1").runtime()
    ids = rt.tokenizer("def order", add_special_tokens=False)["input_ids"]
    runs = [rt.generate(ids, max_new_tokens=12, stop=[], temperature=1.0, seed=s).ids for s in (1, 1, 2, 3)]
    assert runs[0] == runs[1] and len(runs[0]) == 12
    assert any(r != runs[0] for r in runs[2:])  # other seeds, other samples


def test_train_exports_gguf_and_the_export_selects_its_runtime(tmp_path):
    build_tiny_llama(tmp_path / "base")
    write_examples(tmp_path / "train.jsonl", dataset(4, 2, 1))
    cfg = TrainConfig.model_validate({"base_model": str(tmp_path / "base"), "output_dir": str(tmp_path / "run"),
                                      "data": {"train": str(tmp_path / "train.jsonl")},
                                      "train": {"max_steps": 2, "batch_size": 2, "learning_rate": 5e-3},
                                      "export": {"adapter": False, "runtimes": ["llama"], "gguf_quantization": "f32"}})
    exported = train(cfg).exported
    gguf_dir = Path(exported["llama"])
    assert gguf_dir == tmp_path / "run" / "gguf" and is_gguf_export(gguf_dir)
    meta = read_metadata(gguf_dir)
    assert meta["quantization"] == "f32" and meta["format"] == read_metadata(Path(exported["merged"]))["format"]
    with pytest.raises(PredictorError, match="GGUF export runs on the llama runtime"):
        get_predictor(f"local:{gguf_dir}", runtime="transformers")
    pytest.importorskip("llama_cpp")
    examples = dataset(2, 1, 1)
    student, fast = predict_each(gguf_dir, examples)
    assert student.runtime_name == "llama"
    _, reference = predict_each(Path(exported["merged"]), examples, dtype="float32", prompt_lookup=False)
    assert [p.raw for p in fast] == [p.raw for p in reference]


def test_llama_converts_an_hf_folder_once_into_the_cache(llama, tmp_path):
    pytest.importorskip("llama_cpp")
    first = get_predictor(f"local:{llama}", format="zeta1", runtime="llama")
    folder = first.runtime().model_dir
    assert is_gguf_export(folder) and read_metadata(folder)["quantization"] == "q8_0"
    second = get_predictor(f"local:{llama}", format="zeta1", runtime="llama", compute_type="float32")
    assert read_metadata(second.runtime().model_dir)["quantization"] == "f32"
    again = get_predictor(f"local:{llama}", format="zeta1", runtime="llama")
    assert again.runtime().model_dir == folder
    out = again.predict_sync(rename_example(0))[0]
    assert out.raw is not None and out.usage.output_tokens > 0


def test_llama_runs_after_torch_bf16_kernels_in_one_process(llama, tmp_path):
    """torch's bf16 matrix products and llama.cpp in one process (as when a server hosts both runtimes): on CPUs
    with AMX, a llama.cpp built on OpenMP shared its threads with torch and died with an illegal instruction."""
    pytest.importorskip("llama_cpp")
    import subprocess
    import sys

    q8 = export_gguf(llama, tmp_path / "q8", quantization="q8_0")
    script = f"""
import torch
from nextedit.predictors.llamacpp import LlamaCppRuntime
torch.set_num_threads(2)
rt = LlamaCppRuntime({str(q8)!r}, threads=2)
ids = rt.tokenizer("def order_total(price, amount):", add_special_tokens=False)["input_ids"] * 8
for _ in range(4):
    a = torch.randn(512, 512, dtype=torch.bfloat16)
    for _ in range(3):
        a = (a @ a).clamp(-1, 1)
    rt.forget_prefix()
    n = len(rt.generate(ids, max_new_tokens=8, stop=[]).ids)
print(n)
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "8"


def test_serve_answers_from_a_gguf_export_as_transformers_does(tmp_path, llama, gguf_f32):
    pytest.importorskip("llama_cpp")
    pytest.importorskip("fastapi")
    import httpx

    from nextedit.serve.config import parse_config
    from nextedit.serve.testing import ServerThread

    text = "def order_total(price, amount):\n    return price * amount\n"
    snap = {"path": "app.py", "text": text, "cursor": 20,
            "history": [{"path": "app.py", "diff": "@@ -1,2 +1,2 @@\n-def order_total(price, qty):\n"
                                                    "+def order_total(price, amount):\n     return price * amount\n"}]}
    answers = {}
    for name, backend, options in (("fast", f"local:{gguf_f32}", {}),
                                   ("exact", f"local:{llama}", {"dtype": "float32", "prompt_lookup": False})):
        config = parse_config({"store": str(tmp_path / f"{name}.db"), "deadline_ms": 20_000,
                               "auth": {"api_keys": ["k"]},
                               "arms": [{"name": name, "backend": backend, "format": "zeta1", "share": 1.0,
                                         "options": {"max_new_tokens": 24, **options}}]})
        with ServerThread(config) as server, \
                httpx.Client(base_url=server.url, headers={"Authorization": "Bearer k"}, timeout=60) as client:
            body = client.post("/v1/predict", json={"snapshot": snap, "client_id": "c", "user_id": "u"}).json()
            assert body["arm"] == name and body["tokens"]["output"] > 0
            comp = client.post("/v1/completions", json={"prompt": "def order_total(price", "max_tokens": 8})
            assert comp.status_code == 200, comp.text
            answers[name] = (body["prediction"], body["reason"], body["tokens"], comp.json()["choices"][0]["text"])
            if name == "fast":
                assert ".llama-f32" in body["model_version"]
    assert answers["fast"] == answers["exact"]


def test_llama_refuses_a_prompt_longer_than_its_context_and_recovers(gguf_f32):
    pytest.importorskip("llama_cpp")
    from nextedit.predictors.llamacpp import LlamaCppRuntime

    rt = LlamaCppRuntime(gguf_f32, threads=1, n_ctx=64)
    ids = rt.tokenizer("def order_total(price, amount):\n    return price * amount\n", add_special_tokens=False)
    short = ids["input_ids"][:8]
    first = rt.generate(short, max_new_tokens=6, stop=[])
    with pytest.raises(PredictorError, match="context holds 64"):
        rt.generate(short * 12, max_new_tokens=6, stop=[])
    assert rt.generate(short, max_new_tokens=6, stop=[]).ids == first.ids
