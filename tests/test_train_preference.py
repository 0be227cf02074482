"""Preference training from feedback records (`method = "kto" | "dpo"`): the rows each outcome yields, and a few
TRL steps on a random tiny SFT student that export a loadable model in the student's format."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("trl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from feedback_fixtures import BAD, GOOD, TEXT, record
from tiny_model import build_tiny_model, build_tokenizer
from typer.testing import CliRunner

from nextedit import patch as patchlib
from nextedit.cli import app
from nextedit.feedback.records import FeedbackRecord
from nextedit.formats import FormatOptions, get_format
from nextedit.jsonl import write_examples
from nextedit.train.config import (
    PreferenceConfig,
    TrainConfig,
    TrainConfigError,
    load_config,
)
from nextedit.train.export import METADATA_FILE, model_metadata
from nextedit.train.preference import PreferenceStats, Renderer, dpo_pairs, kto_rows
from nextedit.train.sft import train

OPTIONS = {"editable_tokens": 64, "context_tokens": 32, "related_tokens": 0, "history_tokens": 0}


def records() -> list[FeedbackRecord]:
    return [
        record(0, "accepted", GOOD, GOOD),
        record(1, "accepted", BAD, GOOD),  # accepted, then touched up: both sides desirable
        record(2, "rejected", BAD, GOOD),
        record(3, "rejected", BAD, TEXT),  # rejected, and the user changed nothing: no edit was right
        record(4, "ignored", BAD, None),
        record(5, "partially_accepted", GOOD, GOOD),
    ]


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(get_format("zeta1"), FormatOptions(**OPTIONS), build_tokenizer(), max_length=1024)


def test_kto_rows_follow_the_explicit_outcomes(renderer):
    stats = PreferenceStats()
    rows = kto_rows(records(), renderer, PreferenceConfig(), stats)
    labels = [r["label"] for r in rows]
    target = {name: renderer.render(records()[0].snapshot, patchlib.make(TEXT, region, path="stock.py"))[1]
              for name, region in (("good", GOOD), ("bad", BAD), ("none", TEXT))}
    assert [(r["completion"], r["label"]) for r in rows] == [
        (target["good"], True),                          # accepted
        (target["bad"], True), (target["good"], True),   # accepted then touched up: not a negative
        (target["bad"], False), (target["good"], True),  # rejected; the settled text is desirable
        (target["bad"], False), (target["none"], True),  # rejected; the unchanged region is desirable
    ]
    assert (stats.desirable, stats.undesirable) == (labels.count(True), labels.count(False)) == (5, 2)
    assert stats.skipped == {"ignored without a usable label": 1, "partially_accepted without a usable label": 1}
    strict = kto_rows(records(), renderer, PreferenceConfig(ignored="undesirable", use_settled=False),
                      PreferenceStats())
    assert [r["label"] for r in strict] == [True, True, False, False, False]


def test_dpo_pairs_prefer_the_settled_text_or_an_accepted_prediction(renderer):
    stats = PreferenceStats()
    rows = dpo_pairs(records(), renderer, PreferenceConfig(), stats)
    good, bad, none = (renderer.render(records()[0].snapshot, patchlib.make(TEXT, r, path="stock.py"))[1]
                       for r in (GOOD, BAD, TEXT))
    assert [(r["chosen"], r["rejected"]) for r in rows] == [(good, bad), (none, bad)]
    # Without settled texts the accepted prediction for the same context is chosen.
    no_settled = dpo_pairs(records(), renderer, PreferenceConfig(use_settled=False), PreferenceStats())
    assert [(r["chosen"], r["rejected"]) for r in no_settled] == [(good, bad), (good, bad)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pref")
    student = build_tiny_model(root / "student")
    fmt = get_format("zeta1")
    meta = model_metadata(format_name=fmt.name, format_version=fmt.version, format_options=OPTIONS,
                          base_model="tiny", method="full", stop=list(fmt.stop), extra={"max_reversal": 0.5,
                                                                                     "abstain_below": 1.5,
                                                                                     "quiet_when_clean": True})
    (student / METADATA_FILE).write_text(json.dumps(meta))
    lines = [r.model_dump_json() for r in records() * 2]
    (root / "feedback.jsonl").write_text("\n".join(lines) + "\n")
    (root / "feedback.eval.jsonl").write_text("\n".join(lines[:4]) + "\n")
    from eval_fixtures import dataset

    write_examples(root / "sft.jsonl", dataset(4, 2, 2))
    return root


def config(root: Path, out: str, method: str, **preference) -> TrainConfig:
    return TrainConfig.model_validate({
        "base_model": str(root / "student"), "output_dir": str(root / out), "method": method,
        "data": {"train": str(root / "feedback.jsonl"), "max_length": 512},
        "train": {"bf16": False},
        "preference": {"max_steps": 3, "batch_size": 2, "learning_rate": 1e-3, **preference}})


def _weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_kto_from_a_student_exports_a_model_in_its_format(workdir):
    cfg = config(workdir, "kto", "kto", sft_data=str(workdir / "sft.jsonl"), sft_ratio=0.5)
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"eval": workdir / "feedback.eval.jsonl"})})
    result = train(cfg)
    p = result.preference
    assert result.steps == 3 and result.method == "kto"
    assert (p["desirable"], p["undesirable"], p["sft_rows"]) == (10 + 7, 4, 7)  # 14 feedback rows, half as SFT
    assert p["desirable_weight"] == 1.0 and p["undesirable_weight"] == pytest.approx(17 / 4)
    assert result.train_loss_first is not None and result.eval_loss_before is not None
    merged = Path(result.exported["merged"])
    meta = json.loads((merged / METADATA_FILE).read_text())
    assert meta["format"] == "zeta1" and meta["format_options"]["editable_tokens"] == 64
    assert meta["method"] == "kto" and meta["max_reversal"] == 0.5 and "abstain_below" not in meta
    assert meta["quiet_when_clean"] is True  # a given rule, kept (the threshold is recalibrated)
    before, after = _weights(workdir / "student"), _weights(merged)
    assert any(not (before[k] == after[k]).all() for k in before)  # the LoRA update was merged in


def test_dpo_full_with_sft_mixture_through_the_cli(workdir, tmp_path):
    toml = tmp_path / "dpo.toml"
    toml.write_text(f'''base_model = "{workdir / 'student'}"
output_dir = "{workdir / 'dpo'}"
method = "dpo"
[data]
train = "{workdir / 'feedback.jsonl'}"
max_length = 512
[train]
bf16 = false
[preference]
adapter = "full"
beta = 0.5
max_steps = 2
batch_size = 2
learning_rate = 1e-3
sft_data = "{workdir / 'sft.jsonl'}"
sft_ratio = 1.0
sft_weight = 0.2
''')
    result = CliRunner().invoke(app, ["train", str(toml)])
    assert result.exit_code == 0, result.output
    saved = json.loads((workdir / "dpo" / "train.json").read_text())
    assert saved["steps"] == 2 and saved["preference"]["pairs"] == 4 and saved["preference"]["sft_rows"] == 4
    assert "dpo (beta 0.5): 4 pairs, 4 SFT rows" in result.output
    assert json.loads((workdir / "dpo" / "merged" / METADATA_FILE).read_text())["method"] == "dpo"


def test_preference_config_errors_name_the_field(tmp_path):
    toml = tmp_path / "t.toml"
    toml.write_text('method = "kto"\n[data]\ntrain = "f.jsonl"\n[preference]\nbatch_size = 1\n')
    with pytest.raises(TrainConfigError, match=r"t.toml.*needs preference.batch_size >= 2"):
        load_config(toml)
    toml.write_text('method = "dpo"\n[data]\ntrain = "f.jsonl"\n[preference]\nbeta = -1\n')
    with pytest.raises(TrainConfigError, match=r"t.toml:5: field preference.beta: Input should be greater than 0"):
        load_config(toml)
    toml.write_text('method = "kto"\nbase_model = "nowhere"\n[data]\ntrain = "missing.jsonl"\n')
    result = CliRunner().invoke(app, ["train", str(toml)])
    assert result.exit_code == 1 and "error:" in result.output
