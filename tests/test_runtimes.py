"""Runtimes of the local predictor: a tiny random Llama through transformers and CTranslate2 (ct2), the ct2
export of `nextedit train`, prefix reuse between calls, cancellation (ct2 and llama), and cutting output at a stop
string. The llama runtime's own tests are in test_runtime_llama.py."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("ctranslate2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from eval_fixtures import dataset, rename_example
from runtime_support import model_cache, predict_each  # noqa: F401 (an autouse fixture)
from tiny_model import build_tiny_llama, build_tokenizer

from nextedit.jsonl import write_examples
from nextedit.predictors import PredictorError, get_predictor
from nextedit.predictors.runtimes import export_ct2, finish_output, is_ct2_export
from nextedit.train.config import TrainConfig
from nextedit.train.export import read_metadata
from nextedit.train.sft import train

STOP = "<|editable_region_end|>"


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("llama") / "model")


def test_finish_output_cuts_after_the_first_stop_string_or_eos():
    tok = build_tokenizer()
    ids = tok(f"    return price * amount\n{STOP}\n### Response:\n{STOP}", add_special_tokens=False)["input_ids"]
    # Prompt lookup accepts drafted tokens in blocks: the raw output can run past the stop string.
    out, text, finish = finish_output(ids, tok, [STOP], eos=tok.eos_token_id, max_new_tokens=len(ids))
    assert finish == "stop" and text.count(STOP) == 1
    assert text.startswith(f"    return price * amount\n{STOP}") and "Response" not in text
    assert tok.decode(out) == text and out == ids[:len(out)]
    # The token that completes the stop string is kept, exactly where token-by-token decoding stops.
    assert STOP not in tok.decode(out[:-1])
    eos = tok.eos_token_id
    out, text, finish = finish_output([*ids[:3], eos, *ids[3:]], tok, [STOP], eos=eos, max_new_tokens=99)
    assert out == ids[:3] and finish == "stop"
    out, text, finish = finish_output(ids[:4], tok, [STOP], eos=eos, max_new_tokens=4)
    assert out == ids[:4] and finish == "length"
    out, text, finish = finish_output(ids[:4], tok, [], eos=eos, max_new_tokens=9)
    assert finish == "stop"  # ended early: the model said EOS (already removed by the runtime)


def test_ct2_float32_greedy_outputs_equal_transformers(llama):
    examples = dataset(3, 2, 1)
    _, plain = predict_each(llama, examples, runtime="transformers", dtype="float32", prompt_lookup=False)
    _, lookup = predict_each(llama, examples, runtime="transformers", dtype="float32")
    ct2, fast = predict_each(llama, examples, runtime="ct2", compute_type="float32")
    assert ct2.runtime().name == "ct2" and ct2.version.endswith(".ct2-float32")
    for a, b, c in zip(plain, lookup, fast, strict=True):
        assert a.raw == b.raw == c.raw and a.raw
        assert a.usage.output_tokens == b.usage.output_tokens == c.usage.output_tokens
        assert a.patch == c.patch and a.error == c.error
        assert c.confidence == pytest.approx(a.confidence, abs=1e-2)  # scored by ct2's own forward pass
    _, int8 = predict_each(llama, examples[:2], runtime="ct2", compute_type="int8")
    assert all(p.raw is not None and p.usage.output_tokens > 0 for p in int8)


def test_ct2_scores_completions_like_transformers(llama):
    hf = get_predictor(f"local:{llama}", format="zeta1", runtime="transformers", dtype="float32")
    ct2 = get_predictor(f"local:{llama}", format="zeta1", runtime="ct2", compute_type="float32")
    tok = hf.load()[1]
    prompt = tok("def order_total(price, amount):\n", add_special_tokens=False)["input_ids"]
    completions = [tok(t, add_special_tokens=False)["input_ids"] for t in ("    return price", "x", "### Response:\n")]
    assert ct2._logprobs(prompt, completions) == pytest.approx(hf._logprobs(prompt, completions), abs=1e-3)


def test_ct2_reuses_the_shared_prompt_prefix_with_the_same_outputs(llama):
    examples = [rename_example(0), rename_example(0), rename_example(1)]
    cached, with_cache = predict_each(llama, examples, runtime="ct2", compute_type="float32", prefix_cache=1)
    rt = cached.runtime()
    assert rt.reused % rt.prefix_block == 0
    _, without = predict_each(llama, examples, runtime="ct2", compute_type="float32", prefix_cache=0)
    assert [p.raw for p in with_cache] == [p.raw for p in without]
    again = cached.predict_sync(examples[0])[0]  # its prefix shared with the last prompt is fed as static
    assert rt.reused > 0 and again.raw == without[0].raw


@pytest.mark.parametrize("runtime", ["ct2", "llama"])
def test_generation_stops_when_cancelled(llama, runtime):
    from nextedit.serve.local_model import local_complete, make_cancellable

    if runtime == "llama":
        pytest.importorskip("llama_cpp")
    predictor = get_predictor(f"local:{llama}", format="zeta1", runtime=runtime, compute_type="float32")
    make_cancellable(predictor)
    free = local_complete(predictor, "def order", max_tokens=20, stop=None, temperature=0.0,
                          cancel=threading.Event())
    cancelled = threading.Event()
    cancelled.set()
    stopped = local_complete(predictor, "def order", max_tokens=20, stop=None, temperature=0.0, cancel=cancelled)
    assert stopped.finish_reason == "cancelled" and stopped.output_tokens <= 1 < free.output_tokens


def test_train_exports_ct2_and_the_export_selects_its_runtime(tmp_path):
    build_tiny_llama(tmp_path / "base")
    write_examples(tmp_path / "train.jsonl", dataset(4, 2, 1))
    cfg = TrainConfig.model_validate({"base_model": str(tmp_path / "base"), "output_dir": str(tmp_path / "run"),
                                      "data": {"train": str(tmp_path / "train.jsonl")},
                                      "train": {"max_steps": 2, "batch_size": 2, "learning_rate": 5e-3},
                                      "export": {"adapter": False, "runtimes": ["ct2"]}})
    exported = train(cfg).exported
    ct2_dir = Path(exported["ct2"])
    assert ct2_dir == tmp_path / "run" / "ct2" and is_ct2_export(ct2_dir)
    meta = read_metadata(ct2_dir)
    assert meta["runtime"] == "ct2" and meta["format"] == read_metadata(Path(exported["merged"]))["format"]
    examples = dataset(2, 1, 1)
    student, fast = predict_each(ct2_dir, examples, compute_type="float32")
    assert student.runtime_name == "ct2"
    _, reference = predict_each(Path(exported["merged"]), examples, dtype="float32")
    assert [p.raw for p in fast] == [p.raw for p in reference]
    with pytest.raises(PredictorError, match="CTranslate2 export"):
        get_predictor(f"local:{ct2_dir}", runtime="transformers").load()


def test_runtime_options_are_checked(llama, tmp_path):
    with pytest.raises(PredictorError, match="unknown runtime 'onnx'"):
        get_predictor(f"local:{llama}", format="zeta1", runtime="onnx")
    with pytest.raises(PredictorError, match="unknown compute_type 'int4'"):
        get_predictor(f"local:{llama}", format="zeta1", runtime="ct2", compute_type="int4")
    with pytest.raises(ValueError, match="merged = true"):
        TrainConfig.model_validate({"output_dir": str(tmp_path), "data": {"train": str(tmp_path / "t.jsonl")},
                                    "export": {"merged": False, "runtimes": ["ct2"]}})
    out = export_ct2(llama, tmp_path / "int8", quantization="int8")
    assert is_ct2_export(out) and (out / "model.bin").stat().st_size < (llama / "model.safetensors").stat().st_size
