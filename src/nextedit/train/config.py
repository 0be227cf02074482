"""The `nextedit train CONFIG.toml` configuration (pydantic): base model, data, format, method, schedule, export."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from nextedit.train.base_models import DEFAULT_BASE


class TrainConfigError(ValueError):
    """A config file that cannot be read or validated (one line: file, line, field, message)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Section):
    """Training and held-out examples (JSONL of records with `expected` patches)."""

    train: Path = Field(description="examples to train on (JSONL, .gz ok)")
    eval: Path | None = Field(None, description="held-out examples evaluated during training")
    max_length: int = Field(1024, ge=16, description="tokens per training row; longer rows are dropped")
    max_examples: int | None = Field(None, ge=1, description="use at most this many training examples")
    max_eval_examples: int | None = Field(64, ge=1, description="use at most this many held-out examples")


class LoraConfig(_Section):
    """LoRA adapter settings (method = "lora")."""

    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


class ScheduleConfig(_Section):
    """Optimiser and schedule."""

    learning_rate: float = Field(2e-4, gt=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, description="stop after this many optimiser steps (-1: run all epochs)")
    batch_size: int = Field(4, ge=1, description="rows per device per forward pass")
    gradient_accumulation: int = Field(1, ge=1, description="forward passes per optimiser step")
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    lr_scheduler: str = "cosine"
    weight_decay: float = Field(0.0, ge=0)
    packing: bool = Field(True, description="pack several rows into one sequence (best-fit decreasing)")
    bf16: bool | Literal["auto"] = Field("auto", description="bf16 mixed precision; auto = where supported")
    gradient_checkpointing: bool = False
    trainable_layers: int | None = Field(None, ge=1, description="method = \"full\" only: train the top N decoder "
                                         "layers and the final norm; the layers below and the embeddings (with an LM "
                                         "head tied to them) stay frozen, so backward stops at layer N from the top "
                                         "(unset: every weight)")
    threads: int | Literal["auto"] = Field("auto", description="CPU threads; auto = cores not busy elsewhere")
    eval_steps: int = Field(50, ge=1, description="evaluate the held-out loss every N steps")
    save_steps: int = Field(50, ge=1, description="write a checkpoint every N steps")
    save_total_limit: int = Field(2, ge=1, description="checkpoints kept")
    logging_steps: int = Field(5, ge=1)
    max_seconds: float | None = Field(None, gt=0, description="stop training after this many seconds (a time "
                                      "budget: the run ends at the first step past it, then evaluates and exports)")
    token_metrics: bool = Field(False, description="log entropy and token accuracy every step (projects every "
                                "position through the LM head over the full vocabulary: slow on CPU)")
    seed: int = 0


class DpoConfig(_Section):
    """Optional preference training on rejected patches after SFT (examples with `rejected`)."""

    enabled: bool = False
    beta: float = Field(0.1, gt=0)
    learning_rate: float = Field(5e-6, gt=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int = -1
    batch_size: int = Field(2, ge=1)
    gradient_accumulation: int = Field(1, ge=1)


class PreferenceConfig(_Section):
    """Preference training from feedback records (method = "kto" or "dpo"), starting from an SFT student."""

    adapter: Literal["lora", "full"] = Field("lora", description="train a LoRA adapter on the student (merged at "
                                             "export) or every weight")
    beta: float = Field(0.1, gt=0, description="KL strength: higher keeps the model closer to the SFT student")
    learning_rate: float = Field(1e-5, gt=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, description="stop after this many optimiser steps (-1: run all epochs)")
    batch_size: int = Field(4, ge=1, description="rows per forward pass (KTO needs at least 2: its KL estimate "
                            "pairs each row with another row of the batch)")
    gradient_accumulation: int = Field(1, ge=1)
    ignored: Literal["skip", "undesirable"] = Field("skip", description="KTO: what a shown prediction nobody "
                                                    "decided on counts as")
    use_settled: bool = Field(True, description="the settled text as a desirable completion (KTO) or the "
                              "chosen side of a pair (DPO) where it differs from the prediction")
    desirable_weight: float | Literal["auto"] = Field("auto", description="KTO: weight of desirable rows; auto "
                                                      "balances desirable against undesirable counts")
    undesirable_weight: float | Literal["auto"] = "auto"
    sft_data: Path | None = Field(None, description="SFT examples (records with expected patches) mixed in")
    sft_ratio: float = Field(0.0, ge=0, description="SFT rows per feedback row (KTO: desirable rows; DPO: rows "
                             "trained by the NLL term alone, so sft_weight must be > 0)")
    sft_weight: float = Field(0.0, ge=0, description="DPO: weight of an NLL term on the chosen side (RPO)")
    seed: int = 0


class ExportConfig(_Section):
    """What to write at the end: a merged HF folder (for `local:PATH`) and/or the adapter alone."""

    merged: bool = True
    adapter: bool = True
    runtimes: list[Literal["ct2", "llama"]] = Field(default_factory=list, description="inference runtimes to "
                                                    "export the merged model for: ct2 writes ct2/ (CTranslate2), "
                                                    "llama writes gguf/ (llama.cpp), both for CPU inference")
    ct2_quantization: Literal["float32", "int8_float32", "int8", "bfloat16"] = Field(
        "float32", description="weights stored in ct2/: float32 loads as any compute_type, int8 is 4x smaller")
    gguf_quantization: Literal["f32", "f16", "q8_0"] = Field(
        "q8_0", description="weights stored in gguf/: q8_0 (int8, 4x smaller and fastest on a CPU), f16 or f32")

    @model_validator(mode="after")
    def _runtimes_need_merged(self) -> ExportConfig:
        if self.runtimes and not self.merged:
            raise ValueError("runtimes are exported from the merged model: set merged = true")
        return self


class DistributedConfig(_Section):
    """Data-parallel training on several processes, GPUs or nodes (torch DDP through the same TRL trainer)."""

    processes: int = Field(1, ge=1, description="training processes per node (one per GPU); 1 = one process")
    nodes: int = Field(1, ge=1, description="machines taking part; each runs the same `nextedit train` command")
    backend: Literal["auto", "nccl", "gloo"] = Field("auto", description="collective backend: nccl for GPUs, "
                                                     "gloo for CPUs; auto = nccl where CUDA is available")
    launcher: Literal["torchrun", "external"] = Field("torchrun", description="torchrun: nextedit starts the "
                                                      "processes of this node; external: it was started by "
                                                      "torchrun, srun, accelerate launch or a PyTorchJob")
    rendezvous: str | None = Field(None, description="HOST:PORT every node reaches (node 0's address), for "
                                   "nodes > 1 with launcher = torchrun")
    job_id: str = Field("nextedit", description="rendezvous id shared by the nodes of one run")

    @property
    def world_size(self) -> int:
        """Processes in the whole run."""
        return self.processes * self.nodes

    @model_validator(mode="after")
    def _rendezvous_for_nodes(self) -> DistributedConfig:
        if self.nodes > 1 and self.launcher == "torchrun" and not self.rendezvous:
            raise ValueError("nodes > 1 needs rendezvous = \"HOST:PORT\" (an address of node 0 every node reaches)")
        return self


class TrainConfig(_Section):
    """A whole training run. Relative paths are resolved against the config file's folder."""

    base_model: str = Field(DEFAULT_BASE, description="embedded name, HF folder or .gguf file")
    output_dir: Path = Field(Path("runs/student"), description="checkpoints/, merged/, adapter/, train.json")
    format: str = Field("zeta1", description="student prompt format (nextedit.formats)")
    format_options: dict[str, Any] = Field(default_factory=dict, description="FormatOptions overrides")
    method: Literal["lora", "full", "kto", "dpo"] = Field("lora", description="lora / full: SFT on examples; "
                                                          "kto / dpo: preference training of an SFT student "
                                                          "(base_model) on feedback records ([preference])")
    add_special_tokens: bool = Field(False, description="add the format's markers as real tokens (full only)")
    resume: bool = Field(True, description="continue from the newest checkpoint in output_dir")
    data: DataConfig
    lora: LoraConfig = Field(default_factory=LoraConfig)
    train: ScheduleConfig = Field(default_factory=ScheduleConfig)
    dpo: DpoConfig = Field(default_factory=DpoConfig)
    preference: PreferenceConfig = Field(default_factory=PreferenceConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)

    @model_validator(mode="after")
    def _settings_fit_the_method(self) -> TrainConfig:
        p = self.preference
        if self.method == "kto" and p.batch_size < 2:
            raise ValueError("method = \"kto\" needs preference.batch_size >= 2 (its KL estimate pairs rows "
                             "within a batch)")
        if self.train.trainable_layers is not None and self.method != "full":
            raise ValueError(f"train.trainable_layers needs method = \"full\" (not {self.method!r}): LoRA and "
                             "preference training choose their trainable weights themselves")
        if self.train.trainable_layers is not None and self.add_special_tokens:
            raise ValueError("train.trainable_layers freezes the embeddings, so add_special_tokens = true would add "
                             "tokens that never learn: use one or the other")
        if self.method == "dpo" and p.sft_data is not None and p.sft_ratio > 0 and p.sft_weight <= 0:
            raise ValueError("method = \"dpo\" with preference.sft_data needs preference.sft_weight > 0 (SFT rows "
                             "train through the NLL term only)")
        return self

    def resolve_paths(self, root: Path) -> TrainConfig:
        """A copy with relative data/output paths (and a relative base-model path that exists) made absolute."""
        def fix(p: Path | None) -> Path | None:
            return p if p is None or p.is_absolute() else root / p

        data = self.data.model_copy(update={"train": fix(self.data.train), "eval": fix(self.data.eval)})
        pref = self.preference.model_copy(update={"sft_data": fix(self.preference.sft_data)})
        update: dict[str, Any] = {"data": data, "output_dir": fix(self.output_dir), "preference": pref}
        base = Path(self.base_model).expanduser()
        if not base.is_absolute() and (root / base).exists():
            update["base_model"] = str(root / base)
        return self.model_copy(update=update)


def _line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """Best-effort 1-based line of a field in TOML text: the section header, then the key inside it."""
    lines = text.splitlines()
    start = 0
    keys = [str(k) for k in loc if not isinstance(k, int)]
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        header = rf"^\s*\[\s*([\w.]+\.)?{re.escape(key)}\s*\]"
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=" if last and depth else rf"{header}|^\s*{re.escape(key)}\s*=")
        for i in range(start, len(lines)):
            if pattern.match(lines[i]):
                start = i
                break
        else:
            return start + 1 if depth else None
    return start + 1


def read_toml(path: Path, error: type[Exception]) -> tuple[str, dict[str, Any]]:
    """The text and parsed content of a TOML config; `error` names the file (and TOML's line) when it cannot
    be read or parsed."""
    try:
        text = path.read_text(encoding="utf-8")
        return text, tomllib.loads(text)
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: {exc}") from None


def load_config(path: Path, **overrides: Any) -> TrainConfig:
    """Read and validate a training config; `overrides` are dotted keys (e.g. `train.max_steps=5`)."""
    text, raw = read_toml(path, TrainConfigError)
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    try:
        config = TrainConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        line = _line_of(text, loc)
        where = f"{path}:{line}" if line else str(path)
        field = ".".join(str(k) for k in loc) or "(top level)"
        raise TrainConfigError(f"{where}: field {field}: {err['msg']}") from None
    return config.resolve_paths(path.resolve().parent)


EXAMPLE_CONFIG = """\
# nextedit train config (all keys optional except data.train). Paths are relative to this file.
base_model = "smollm2-135m-instruct"   # embedded default; or an HF folder, or a .gguf file
output_dir = "runs/student"            # checkpoints/, merged/, adapter/, train.json
format = "zeta1"                       # student prompt format (nextedit formats)
method = "lora"                        # "lora" or "full"

[format_options]
editable_tokens = 350
context_tokens = 1024

[data]
train = "train.jsonl"
eval = "test.jsonl"
max_length = 1024

[lora]
r = 16
alpha = 32

[train]
learning_rate = 2e-4
epochs = 1
batch_size = 4
gradient_accumulation = 1
packing = true
bf16 = "auto"
eval_steps = 50
save_steps = 50

[dpo]
enabled = false                        # preference training on examples with a `rejected` patch

# method = "kto" or "dpo": preference training of an SFT student (base_model = its merged/ folder) on
# feedback records (data.train = `nextedit feedback export` output); docs/feedback.md
[preference]
adapter = "lora"                       # or "full"
beta = 0.1                             # KL strength: higher stays closer to the SFT student
learning_rate = 1e-5
batch_size = 4
sft_ratio = 0.0                        # SFT rows (from sft_data) per feedback row

[export]
merged = true
adapter = true
runtimes = []                          # ["ct2"] / ["llama"]: also write ct2/ (CTranslate2) / gguf/ (llama.cpp)

[distributed]
processes = 1                          # data-parallel processes per node (one per GPU); 1 = one process
nodes = 1                              # > 1: run the same command on every node, with rendezvous = "HOST:PORT"
backend = "auto"                       # nccl (GPUs) or gloo (CPUs); auto = nccl where CUDA is available
launcher = "torchrun"                  # or "external" when started by torchrun / srun / accelerate launch
"""
