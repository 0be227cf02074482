"""Random tiny Qwen2 models with a byte-level BPE tokenizer trained on the fly (no download, no weights)."""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "def order_total(price, amount):\n    return price * amount\n",
    "<|editable_region_start|>\n<|editable_region_end|>\n<|user_cursor_is_here|>\n<|start_of_file|>\n",
    "### Instruction:\n### User Edits:\n### User Excerpt:\n### Response:\n```python\n",
    "--- a/app.py\n+++ b/app.py\n@@ -1,3 +1,3 @@\n-old line\n+new line\n context\n",
]


def build_tokenizer(vocab_size: int = 400):
    """A byte-level BPE tokenizer (every byte encodable) wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|pad|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS * 20, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|pad|>")


def build_tiny_model(path: Path, *, seed: int = 0) -> Path:
    """Save a random 2-layer Qwen2 model and its tokenizer into `path` (an HF model folder)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=None, tie_word_embeddings=True)
    model = Qwen2ForCausalLM(config)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


def build_tiny_llama(path: Path, *, seed: int = 0) -> Path:
    """Save a random 2-layer Llama model (the SmolLM2 architecture) and its tokenizer into `path`.

    Weights are drawn wider than the default (std 0.2) so greedy choices are not near-ties between runtimes.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=None, tie_word_embeddings=True, initializer_range=0.2)
    model = LlamaForCausalLM(config)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path
