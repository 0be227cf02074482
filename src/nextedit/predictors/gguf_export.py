"""Export an HF Llama-family model folder as a GGUF file for llama.cpp (the `llama` runtime).

The weights go through the `gguf` library's writer and quantisers; tensor names come from its own name map
(`gguf.TensorNameMap`). The query and key projections are reordered for llama.cpp's rotary embedding, which
rotates adjacent pairs where Hugging Face's Llama rotates the two halves of each head. The tokenizer travels as
a GGUF gpt2-style vocabulary, but nextedit tokenizes with the folder's own HF tokenizer and hands llama.cpp
token ids, so prompts and outputs are tokenized exactly as in training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nextedit.predictors.base import PredictorError

GGUF_FILE = "model.gguf"
#: Weight types a GGUF export can store: f32 (outputs closest to transformers float32), f16, q8_0 (4x smaller).
QUANTIZATIONS = ("f32", "f16", "q8_0")
#: HF architectures written as llama.cpp's `llama` architecture.
ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM")


def is_gguf_export(model_dir: Path) -> bool:
    """Whether a folder holds a GGUF export (what `export_gguf` writes: model.gguf beside its HF tokenizer)."""
    return (Path(model_dir) / GGUF_FILE).is_file() and (Path(model_dir) / "tokenizer_config.json").is_file()


def _rope_theta(config: Any) -> float:
    params = getattr(config, "rope_parameters", None) or {}
    scaling = getattr(config, "rope_scaling", None) or {}
    kind = params.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
    if kind != "default":
        raise PredictorError(f"GGUF export: rope type {kind!r} is not supported (only the default rotary embedding)")
    return float(params.get("rope_theta") or getattr(config, "rope_theta", 10000.0))


def _pairwise_rope(weight: Any, heads: int) -> Any:
    """Reorder a query/key projection's rows from HF's half-split rotary layout to llama.cpp's adjacent pairs."""
    rows = weight.shape[0]
    return weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _vocabulary(tokenizer: Any, size: int) -> tuple[list[str], list[int]]:
    """Token strings by id and their GGUF types (control for special tokens, unused for padding ids)."""
    import gguf

    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    tokens, types = [], []
    for i in range(size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL)
    return tokens, [int(t) for t in types]


def _write(hf_dir: Path, path: Path, quantization: str) -> None:
    import gguf
    import numpy as np
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from nextedit.predictors.runtimes import load_tokenizer

    config = AutoConfig.from_pretrained(str(hf_dir))
    arch = (getattr(config, "architectures", None) or ["?"])[0]
    if arch not in ARCHITECTURES:
        raise PredictorError(f"GGUF export: {hf_dir} is a {arch}; the llama runtime exports "
                             f"{', '.join(ARCHITECTURES)} models")
    theta = _rope_theta(config)
    model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32)
    tokenizer = load_tokenizer(hf_dir)
    heads, kv_heads, layers = config.num_attention_heads, config.num_key_value_heads, config.num_hidden_layers
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                 "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[quantization]
    matrix_type = {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
                   "q8_0": gguf.GGMLQuantizationType.Q8_0}[quantization]

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(Path(hf_dir).name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(theta)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(file_type)
    tokens, types = _vocabulary(tokenizer, config.vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    gguf.SpecialVocab(str(hf_dir), load_merges=True, n_vocab=len(tokens)).add_to_gguf(writer)

    names = gguf.TensorNameMap(gguf.MODEL_ARCH.LLAMA, layers)
    state = model.state_dict()
    tied = getattr(config, "tie_word_embeddings", False)
    for hf_name, tensor in state.items():
        if hf_name.endswith("rotary_emb.inv_freq") or (tied and hf_name == "lm_head.weight"):
            continue
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise PredictorError(f"GGUF export: no llama.cpp name for the tensor {hf_name}")
        data = tensor.detach().to(torch.float32).numpy()
        if hf_name.endswith("q_proj.weight"):
            data = _pairwise_rope(data, heads)
        elif hf_name.endswith("k_proj.weight"):
            data = _pairwise_rope(data, kv_heads)
        data = np.ascontiguousarray(data)
        if data.ndim == 1 or quantization == "f32" or (quantization == "q8_0" and data.shape[-1] % 32):
            writer.add_tensor(name, data)  # norms (and rows q8_0 cannot split into blocks) stay float32
        else:
            writer.add_tensor(name, gguf.quants.quantize(data, matrix_type), raw_dtype=matrix_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def export_gguf(hf_dir: Path, out_dir: Path, *, quantization: str = "q8_0",
                metadata: dict[str, Any] | None = None) -> Path:
    """Convert an HF Llama-family folder into `out_dir` (model.gguf, the HF tokenizer, nextedit.json), atomically."""
    if quantization not in QUANTIZATIONS:
        raise PredictorError(f"unknown GGUF quantization {quantization!r} (known: {', '.join(QUANTIZATIONS)})")
    from nextedit.train.export import export_runtime_copy

    return export_runtime_copy(hf_dir, out_dir, lambda tmp: _write(Path(hf_dir), tmp / GGUF_FILE, quantization),
                               runtime="llama", kind="gguf", quantization=quantization, metadata=metadata)
