"""Data-parallel `nextedit train`: two CPU processes (gloo) on a tiny random model end with the same weights,
rank 0's are the ones exported, and a distributed setup that cannot run fails before any work with exit 2."""

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

from nextedit.jsonl import write_examples
from nextedit.train.config import TrainConfigError, load_config
from nextedit.train.distributed import weights_digest


def _write_config(tmp_path: Path, method: str) -> Path:
    build_tiny_model(tmp_path / "tiny")
    write_examples(tmp_path / "train.jsonl", dataset(6, 4, 2))
    write_examples(tmp_path / "eval.jsonl", dataset(2, 1, 1))
    cfg = tmp_path / "train.toml"
    cfg.write_text(f'base_model = "tiny"\noutput_dir = "run"\nmethod = "{method}"\n'
                   '[data]\ntrain = "train.jsonl"\neval = "eval.jsonl"\n'
                   '[train]\nmax_steps = 3\nbatch_size = 2\nlearning_rate = 5e-3\nwarmup_ratio = 0.0\n'
                   'logging_steps = 1\neval_steps = 3\nsave_steps = 3\nthreads = 1\n'
                   '[distributed]\nprocesses = 2\nbackend = "gloo"\n')
    return cfg


@pytest.mark.parametrize("method", ["lora", "full"])
def test_two_gloo_processes_train_the_same_weights_and_rank_0_exports_them(tmp_path, method):
    from transformers import AutoModelForCausalLM

    cfg = _write_config(tmp_path, method)
    run = subprocess.run([sys.executable, "-m", "nextedit", "train", str(cfg)], check=False, capture_output=True,
                         text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert "data-parallel on 2 processes (gloo): all ranks ended with the same weights" in run.stdout
    saved = json.loads((tmp_path / "run" / "train.json").read_text())
    assert saved["steps"] == 3 and saved["eval_loss_after"] is not None
    digests = saved["distributed"]["weights"]
    assert saved["distributed"]["world_size"] == 2 and len(digests) == 2 and digests[0] == digests[1]

    base = AutoModelForCausalLM.from_pretrained(str(tmp_path / "tiny"))
    base_digest = weights_digest(base)
    if method == "lora":  # the base with rank 0's exported adapter is the model every rank trained
        import torch
        from peft import PeftModel

        if saved["bf16"]:  # a CPU with bf16 trains LoRA on a bf16 copy of the frozen base
            base = AutoModelForCausalLM.from_pretrained(str(tmp_path / "tiny"), dtype=torch.bfloat16)

        exported = PeftModel.from_pretrained(base, str(tmp_path / "run" / "adapter"))
    else:
        exported = AutoModelForCausalLM.from_pretrained(str(tmp_path / "run" / "merged"))
    assert weights_digest(exported) == digests[0] != base_digest
    assert (tmp_path / "run" / "merged" / "model.safetensors").is_file()


def test_a_distributed_setup_that_cannot_run_fails_before_any_work(tmp_path):
    cfg = tmp_path / "t.toml"
    cfg.write_text('[data]\ntrain = "t.jsonl"\n\n[distributed]\nprocesses = 2\nnodes = 2\n')
    with pytest.raises(TrainConfigError, match=r"t\.toml:4: field distributed: Value error, nodes > 1 needs "
                                               r"rendezvous"):
        load_config(cfg)
    import torch

    if torch.cuda.is_available():
        return
    cfg.write_text('[data]\ntrain = "t.jsonl"\n\n[distributed]\nprocesses = 2\nbackend = "nccl"\n')
    run = subprocess.run([sys.executable, "-m", "nextedit", "train", str(cfg), "-o", str(tmp_path / "out")],
                         check=False, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2
    assert 'distributed.backend = "nccl" needs CUDA GPUs' in run.stderr
    assert not (tmp_path / "out").exists()
