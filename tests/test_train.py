"""`nextedit train`: LoRA / full SFT of a random tiny Qwen2 on CPU lowers the loss, exports loadable models,
resumes from checkpoints, runs DPO on rejected patches, and refuses bad configs with file:line: field."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from eval_fixtures import dataset
from tiny_model import build_tiny_model

from nextedit import patch as patchlib
from nextedit.jsonl import write_examples
from nextedit.train.config import TrainConfig, TrainConfigError, load_config
from nextedit.train.sft import TrainError, train


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train")
    build_tiny_model(root / "tiny")
    write_examples(root / "train.jsonl", dataset(6, 4, 2))
    write_examples(root / "eval.jsonl", dataset(2, 1, 1))
    return root


def config(root: Path, out: str, **extra) -> TrainConfig:
    raw = {"base_model": str(root / "tiny"), "output_dir": str(root / out),
           "data": {"train": str(root / "train.jsonl"), "eval": str(root / "eval.jsonl")},
           "train": {"max_steps": 5, "batch_size": 2, "learning_rate": 5e-3, "logging_steps": 1, "eval_steps": 5,
                     "save_steps": 5, "warmup_ratio": 0.0}}
    for key, value in extra.items():
        if isinstance(value, dict):
            raw.setdefault(key, {}).update(value)
        else:
            raw[key] = value
    return TrainConfig.model_validate(raw)


def test_lora_five_steps_lower_the_loss_and_export_loadable_models(workdir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = train(config(workdir, "lora"))
    assert result.steps == 5
    assert result.train_rows == 12  # the two no-edit examples train on the unchanged region
    assert result.train_loss_last < result.train_loss_first
    assert result.eval_loss_after < result.eval_loss_before
    merged = Path(result.exported["merged"])
    meta = json.loads((merged / "nextedit.json").read_text())
    assert meta["format"] == "zeta1" and meta["method"] == "lora" and meta["stop"]
    model = AutoModelForCausalLM.from_pretrained(str(merged))
    tok = AutoTokenizer.from_pretrained(str(merged))
    assert not any("lora" in name for name, _ in model.named_parameters())
    ids = tok("def order_total(", return_tensors="pt")
    assert model.generate(**ids, max_new_tokens=3, do_sample=False).shape[1] == ids["input_ids"].shape[1] + 3
    base = AutoModelForCausalLM.from_pretrained(str(workdir / "tiny"))
    adapted = PeftModel.from_pretrained(base, result.exported["adapter"])
    assert any("lora" in name for name, _ in adapted.named_parameters())
    saved = json.loads((workdir / "lora" / "train.json").read_text())
    assert saved["steps"] == 5 and saved["tokens_seen"] > 0


@pytest.mark.parametrize("method,packing", [("lora", True), ("full", False)])
def test_lean_loss_trains_like_trl_loss_with_token_metrics(workdir, method, packing):
    # Without token metrics only the labelled positions go through the LM head: same losses and updates
    # as TRL's loss (which also logs entropy and token accuracy), up to float rounding.
    common = {"method": method, "export": {"merged": False, "adapter": False}, "data": {"eval": None}}
    lean = train(config(workdir, f"lean-{method}", **common,
                        train={"max_steps": 3, "packing": packing, "bf16": False}))
    trl = train(config(workdir, f"trl-{method}", **common,
                       train={"max_steps": 3, "packing": packing, "bf16": False, "token_metrics": True}))
    lean_loss = [h["loss"] for h in lean.log_history if "loss" in h]
    trl_loss = [h["loss"] for h in trl.log_history if "loss" in h]
    assert len(lean_loss) == len(trl_loss) == 3
    assert lean_loss == pytest.approx(trl_loss, rel=1e-3)
    assert any("mean_token_accuracy" in h for h in trl.log_history)
    assert not any("mean_token_accuracy" in h for h in lean.log_history)


def test_full_fine_tune_without_packing_exports_only_the_merged_model(workdir):
    result = train(config(workdir, "full", method="full", train={"max_steps": 3, "packing": False,
                                                                 "learning_rate": 1e-3}))
    assert set(result.exported) == {"merged"}
    assert result.train_loss_last < result.train_loss_first
    assert not (workdir / "full" / "adapter").exists()


def test_a_rerun_resumes_from_the_newest_checkpoint(workdir):
    first = train(config(workdir, "resume", train={"max_steps": 2, "save_steps": 2}))
    assert first.resumed_from is None and first.steps == 2
    second = train(config(workdir, "resume", train={"max_steps": 4, "save_steps": 2}))
    assert second.resumed_from is not None and second.resumed_from.endswith("checkpoint-2")
    assert second.steps == 4


def test_a_rerun_under_other_settings_refuses_to_resume_before_any_work(workdir):
    train(config(workdir, "guarded", train={"max_steps": 2, "save_steps": 2}))
    checkpoints = workdir / "guarded" / "checkpoints"
    with pytest.raises(TrainError, match=r"checkpoint-2 was trained under other settings "
                                         r"\(train\.learning_rate: 0\.005 -> 0\.002\): pass --no-resume"):
        train(config(workdir, "guarded", train={"max_steps": 4, "save_steps": 2, "learning_rate": 2e-3}))
    assert sorted(p.name for p in checkpoints.glob("checkpoint-*")) == ["checkpoint-2"]
    with pytest.raises(TrainError, match=r"already at step 2, past train\.max_steps = 1"):
        train(config(workdir, "guarded", train={"max_steps": 1, "save_steps": 2}))
    # Starting over keeps the previous checkpoints aside, and the new run's settings are the ones recorded.
    fresh = train(config(workdir, "guarded", resume=False,
                         train={"max_steps": 1, "save_steps": 1, "learning_rate": 2e-3}))
    assert fresh.resumed_from is None and fresh.steps == 1
    assert (workdir / "guarded" / "checkpoints.old" / "checkpoint-2").is_dir()
    assert sorted(p.name for p in checkpoints.glob("checkpoint-*")) == ["checkpoint-1"]
    again = train(config(workdir, "guarded", train={"max_steps": 2, "save_steps": 1, "learning_rate": 2e-3}))
    assert again.resumed_from.endswith("checkpoint-1") and again.steps == 2


def test_dpo_on_rejected_patches_runs_after_sft(workdir):
    examples = dataset(4, 0, 0)
    for ex in examples:  # the user rejected a prediction that renamed to the wrong name
        ex.rejected = patchlib.make(ex.snapshot.text, ex.snapshot.text.replace("amount", "count"),
                                    path=ex.snapshot.path)
    write_examples(workdir / "dpo.jsonl", examples)
    cfg = config(workdir, "dpo", data={"train": str(workdir / "dpo.jsonl"), "eval": None},
                 train={"max_steps": 2}, dpo={"enabled": True, "max_steps": 2, "batch_size": 2})
    result = train(cfg)
    assert result.dpo["rows"] == 4 and result.dpo["steps"] == 2
    meta = json.loads((workdir / "dpo" / "merged" / "nextedit.json").read_text())
    assert meta["train"]["dpo"] is True


def test_config_errors_name_file_line_and_field(tmp_path):
    bad = tmp_path / "train.toml"
    bad.write_text('base_model = "x"\n\n[data]\ntrain = "t.jsonl"\n\n[lora]\nalpha = 8\nr = 0\n')
    with pytest.raises(TrainConfigError, match=r"train\.toml:8: field lora\.r: Input should be greater"):
        load_config(bad)
    missing = tmp_path / "m.toml"
    missing.write_text('[train]\nmax_steps = 3\n')
    with pytest.raises(TrainConfigError, match=r"m\.toml: field data: Field required"):
        load_config(missing)
    broken = tmp_path / "b.toml"
    broken.write_text("[data\n")
    with pytest.raises(TrainConfigError, match=r"b\.toml: "):
        load_config(broken)
    ok = tmp_path / "ok.toml"
    ok.write_text('[data]\ntrain = "t.jsonl"\n')
    cfg = load_config(ok, **{"train.max_steps": 7})
    assert cfg.data.train == tmp_path / "t.jsonl" and cfg.train.max_steps == 7


def test_train_command_end_to_end(workdir, tmp_path):
    cfg = tmp_path / "t.toml"
    cfg.write_text(f'base_model = "{workdir / "tiny"}"\noutput_dir = "run"\n[data]\n'
                   f'train = "{workdir / "train.jsonl"}"\n[train]\nbatch_size = 2\n')
    run = subprocess.run([sys.executable, "-m", "nextedit", "train", str(cfg), "--max-steps", "2"], check=False,
                         capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert "trained lora on 12 rows: 2 steps" in run.stdout
    assert (tmp_path / "run" / "merged" / "model.safetensors").is_file()
    example = subprocess.run([sys.executable, "-m", "nextedit", "train", "--example-config"], check=False,
                             capture_output=True,
                             text=True, timeout=120)
    assert "[data]" in example.stdout and tomllib_loads(example.stdout)["method"] == "lora"


def tomllib_loads(text: str) -> dict:
    import tomllib

    return tomllib.loads(text)


def test_a_time_budget_stops_training_at_the_first_step_past_it(workdir):
    result = train(config(workdir, "budget", train={"max_steps": 50, "max_seconds": 1e-6, "eval_steps": 50,
                                                    "save_steps": 50}))
    assert result.steps == 1
    assert (workdir / "budget" / "merged" / "nextedit.json").is_file()


@pytest.mark.parametrize("on", [False, True])
def test_gradient_checkpointing_follows_the_config(workdir, on):
    # TRL's SFTConfig turns it on by default (every forward pass recomputed in the backward pass, about a
    # third more work per step): the config's value, false by default, must be what the trainer gets.
    import torch

    out = f"checkpointing-{on}"
    train(config(workdir, out, export={"merged": False, "adapter": False}, data={"eval": None},
                 train={"max_steps": 1, "save_steps": 1, "gradient_checkpointing": on}))
    args = torch.load(workdir / out / "checkpoints" / "checkpoint-1" / "training_args.bin", weights_only=False)
    assert args.gradient_checkpointing is on


@pytest.mark.parametrize("checkpointing", [False, True])
def test_training_only_the_top_layers_leaves_the_rest_as_they_were(workdir, checkpointing):
    # train.trainable_layers = 1 on a 2-layer model: the top layer and the final norm learn; the bottom layer and
    # the embeddings (the LM head is tied to them) come out of training bit for bit as they went in.
    from safetensors.torch import load_file

    out = f"top-{checkpointing}"
    result = train(config(workdir, out, method="full", data={"eval": None},
                          train={"max_steps": 3, "learning_rate": 1e-3, "trainable_layers": 1,
                                 "gradient_checkpointing": checkpointing}))
    trained, total = result.trainable
    assert 0 < trained < total
    base = load_file(str(workdir / "tiny" / "model.safetensors"))
    after = load_file(str(Path(result.exported["merged"]) / "model.safetensors"))
    changed = {name for name, weight in base.items() if name in after and not after[name].equal(weight)}
    assert changed and all(name.startswith(("model.layers.1.", "model.norm.")) for name in changed)
    assert any(name.startswith("model.layers.1.") for name in changed)
    assert after["model.embed_tokens.weight"].equal(base["model.embed_tokens.weight"])
    assert sum(w.numel() for name, w in base.items() if name.startswith(("model.layers.1.", "model.norm."))) == trained


def test_trainable_layers_are_checked_against_the_method_and_the_model(workdir, tmp_path):
    from pydantic import ValidationError

    from nextedit.train.sft import TrainError

    with pytest.raises(ValidationError, match="trainable_layers needs method = \"full\""):
        config(workdir, "top-lora", train={"trainable_layers": 1})
    with pytest.raises(ValidationError, match="add_special_tokens = true would add tokens that never learn"):
        config(workdir, "top-tokens", method="full", add_special_tokens=True, train={"trainable_layers": 1})
    bad = tmp_path / "t.toml"
    bad.write_text(f'method = "lora"\n[data]\ntrain = "{workdir / "train.jsonl"}"\n[train]\ntrainable_layers = 1\n')
    with pytest.raises(TrainConfigError, match=r"t\.toml.*trainable_layers needs method"):
        load_config(bad)
    with pytest.raises(TrainError, match="trainable_layers = 3, but the model has 2 decoder layers"):
        train(config(workdir, "top-3", method="full", train={"trainable_layers": 3}))
    assert not (workdir / "top-3" / "checkpoints").exists()  # refused before any step
