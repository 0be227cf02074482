"""Inference runtimes of the local predictor: transformers (default), CTranslate2 (CPU, int8 or float32) and
llama.cpp (CPU, a GGUF export; nextedit.predictors.llamacpp).

All take prompt token ids and return the generated ids and text, cut at the first end-of-sequence token
or stop string (`finish_output`: prompt-lookup decoding accepts several tokens per step, so a stop string
or EOS may sit inside the accepted block and the raw output runs past it). All score given completions
(`logprobs`), which the local predictor's candidate scoring and confidence need.

transformers: prompt-lookup decoding (n-gram drafts from the prompt, verified in one forward pass).
ct2: a CTranslate2 export of the model (`export_ct2`, written by `nextedit train` with
`[export] runtimes = ["ct2"]`, or converted once into the model cache), weights quantised at load to
`compute_type`; the KV cache of the prompt prefix shared with the previous prompt can be kept between calls
(`static_prompt`), so a keystroke re-encodes only what changed (exact with float32; with int8 the split encoding
quantises activations differently, so outputs may differ near ties). CTranslate2 has no speculative decoding.
llama: a GGUF export (`export_gguf`, q8_0 or float weights) with prompt-lookup drafts and the prompt prefix kept.

Generation on any runtime stops when the thread's cancel event (`cancel_scope`) is set.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nextedit.cpu import free_cores
from nextedit.predictors.base import PredictorError

RUNTIMES = ("transformers", "ct2", "llama")
COMPUTE_TYPES = ("int8", "int8_float32", "float32")
#: The GGUF weight type a compute type asks for when the llama runtime converts an HF folder itself.
GGUF_TYPES = {"int8": "q8_0", "int8_float32": "q8_0", "float32": "f32"}
#: What `nextedit train` writes next to merged/ for each runtime in `[export] runtimes`.
EXPORT_DIRS = {"ct2": "ct2", "llama": "gguf"}
CT2_WEIGHTS = "model.bin"

_current = threading.local()


class cancel_scope:
    """Within this block (on this thread), generation on any runtime stops once `event` is set."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __enter__(self) -> None:
        _current.cancel = self.event

    def __exit__(self, *exc: object) -> None:
        _current.cancel = None


def cancel_event() -> threading.Event | None:
    """The cancel event of the current thread's `cancel_scope`, if any."""
    return getattr(_current, "cancel", None)


@dataclass
class Generated:
    """One generation: new token ids (without EOS, up to the stop string), their text, why it ended, time."""

    ids: list[int]
    text: str
    finish: str  # "stop" (EOS or a stop string), "length" or "cancelled"
    ms: float


def first_stop(text: str, stop: list[str]) -> int:
    """End offset of the earliest stop string in `text`, -1 when none occurs."""
    ends = [i + len(s) for s in stop if s and (i := text.find(s)) >= 0]
    return min(ends) if ends else -1


def finish_output(ids: list[int], tokenizer: Any, stop: list[str], *, eos: int | None,
                  max_new_tokens: int) -> tuple[list[int], str, str]:
    """(ids, text, finish) of raw generated ids cut after the first EOS or stop string.

    The ids keep the token that completes the stop string (its text may reach past it, exactly as
    token-by-token decoding stops there); EOS is dropped. Decoding beyond it (prompt lookup accepts
    drafts in blocks) is discarded.
    """
    finish = "length" if len(ids) >= max_new_tokens else "stop"
    if eos is not None and eos in ids:
        ids, finish = ids[:ids.index(eos)], "stop"
    text = tokenizer.decode(ids, skip_special_tokens=False)
    if stop and first_stop(text, stop) >= 0:
        lo, hi = 1, len(ids)  # the shortest prefix whose text holds a stop string (monotone in length)
        while lo < hi:
            mid = (lo + hi) // 2
            if first_stop(tokenizer.decode(ids[:mid], skip_special_tokens=False), stop) >= 0:
                hi = mid
            else:
                lo = mid + 1
        ids, finish = ids[:lo], "stop"
        text = tokenizer.decode(ids, skip_special_tokens=False)
    return ids, text, finish


def load_tokenizer(model_dir: Path) -> Any:
    """The model folder's tokenizer, with a pad token (EOS when it has none)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


class TransformersRuntime:
    """A Hugging Face causal LM in torch (CPU or GPU), greedy or sampled, with prompt-lookup decoding."""

    name = "transformers"

    def __init__(self, model_dir: Path, *, dtype: str = "auto", threads: int | str = "auto") -> None:
        import torch
        from transformers import AutoModelForCausalLM

        from nextedit.train.sft import bf16_supported, cpu_threads

        if (Path(model_dir) / CT2_WEIGHTS).is_file():
            raise PredictorError(f"{model_dir} is a CTranslate2 export: use the option runtime=ct2, or the "
                                 "merged/ folder beside it for runtime=transformers")
        if not torch.cuda.is_available():
            cpu_threads(threads)
        torch_dtype = (torch.bfloat16 if bf16_supported() else torch.float32) if dtype == "auto" \
            else getattr(torch, dtype)
        self.tokenizer = load_tokenizer(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch_dtype).eval()

    def generate(self, ids: list[int], *, max_new_tokens: int, stop: list[str], temperature: float = 0.0,
                 top_p: float = 1.0, seed: int = 0, prompt_lookup: int = 0) -> Generated:
        """Generate after `ids`; `prompt_lookup` > 0 drafts that many tokens from the prompt per step."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        tok = self.tokenizer
        kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "pad_token_id": tok.pad_token_id,
                                  "eos_token_id": tok.eos_token_id}
        if stop:
            kwargs.update(stop_strings=stop, tokenizer=tok)
        if temperature > 0:
            torch.manual_seed(seed)
            kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if prompt_lookup > 0:
            kwargs["prompt_lookup_num_tokens"] = prompt_lookup
        event = cancel_event()
        if event is not None:
            class StopOnCancel(StoppingCriteria):
                """Ends generation once the request is cancelled."""

                def __call__(self, input_ids: Any, scores: Any, **kw: Any) -> Any:
                    return torch.full((input_ids.shape[0],), event.is_set(), dtype=torch.bool,
                                      device=input_ids.device)

            kwargs["stopping_criteria"] = StoppingCriteriaList([StopOnCancel()])
        input_ids = torch.tensor([ids], dtype=torch.long, device=self.model.device)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **kwargs)
        ms = (time.perf_counter() - t0) * 1000
        new, text, finish = finish_output(out[0, len(ids):].tolist(), tok, stop, eos=tok.eos_token_id,
                                          max_new_tokens=max_new_tokens)
        if event is not None and event.is_set():
            finish = "cancelled"
        return Generated(new, text, finish, ms)

    def logprobs(self, prompt_ids: list[int], completions: list[list[int]]) -> list[float]:
        """Sum of the token log-probabilities of each completion after the prompt (one batched forward pass)."""
        import torch

        model, tok = self.model, self.tokenizer
        seqs = [prompt_ids + c for c in completions]
        width = max(len(s) for s in seqs)
        pad = tok.pad_token_id or 0
        input_ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], dtype=torch.long, device=model.device)
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], dtype=torch.long,
                            device=model.device)
        with torch.inference_mode():
            logits = model(input_ids=input_ids, attention_mask=mask).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, input_ids[:, 1:, None])[..., 0]
        start = len(prompt_ids) - 1
        return [float(logp[k, start:start + len(c)].sum()) for k, c in enumerate(completions)]


def is_ct2_export(model_dir: Path) -> bool:
    """Whether a folder holds a CTranslate2 model (what `export_ct2` writes)."""
    return (Path(model_dir) / CT2_WEIGHTS).is_file()


def export_ct2(hf_dir: Path, out_dir: Path, *, quantization: str = "float32",
               metadata: dict[str, Any] | None = None) -> Path:
    """Convert an HF Llama-family folder into a CTranslate2 folder `out_dir` (with its tokenizer and
    nextedit.json), atomically. float32 weights load as any compute type; int8 weights are 4x smaller."""
    try:
        from ctranslate2.converters import TransformersConverter
    except ImportError:
        raise PredictorError("the ct2 runtime needs CTranslate2: pip install 'nextedit[cpu]'") from None
    from nextedit.train.export import export_runtime_copy

    def write(tmp: Path) -> None:
        TransformersConverter(str(hf_dir), low_cpu_mem_usage=True).convert(str(tmp), quantization=quantization,
                                                                          force=True)
        config_path = tmp / "config.json"
        config = json.loads(config_path.read_text())
        if config.get("bos_token") is None:  # tokenizers without BOS (Qwen2): CTranslate2 needs a string
            config["bos_token"] = config.get("eos_token")
            config_path.write_text(json.dumps(config, indent=2))

    return export_runtime_copy(hf_dir, out_dir, write, runtime="ct2", kind="ct2", quantization=quantization,
                               metadata=metadata)


def ct2_folder(model_dir: Path, fingerprint: str) -> Path:
    """A CTranslate2 folder for `model_dir`: itself when it is one, else a float32 conversion in the model cache."""
    if is_ct2_export(model_dir):
        return Path(model_dir)
    from nextedit.train.base_models import cache_root

    out = cache_root() / "ct2" / f"{Path(model_dir).name}-{fingerprint}"
    if is_ct2_export(out):
        return out
    return export_ct2(model_dir, out)


class CT2Runtime:
    """A CTranslate2 generator on the CPU: int8 or float32 compute, the shared prompt prefix cached between calls.

    `prefix_block`: the cached prefix is the part shared with the previous prompt, rounded down to this many
    tokens (so successive keystrokes name the same prefix); `prefix_cache`: how many distinct prefixes are kept
    (each holds the KV cache of its tokens) before the generator is reloaded to free them; 0 turns reuse off.
    """

    name = "ct2"

    def __init__(self, model_dir: Path, *, compute_type: str = "int8", threads: int | str = "auto",
                 prefix_cache: int = 4, prefix_block: int = 64) -> None:
        try:
            import ctranslate2
        except ImportError:
            raise PredictorError("the ct2 runtime needs CTranslate2: pip install 'nextedit[cpu]'") from None
        if compute_type not in COMPUTE_TYPES:
            raise PredictorError(f"unknown compute_type {compute_type!r} (known: {', '.join(COMPUTE_TYPES)})")
        self.model_dir = Path(model_dir)
        self.compute_type = compute_type
        self.threads = free_cores(threads)
        self.prefix_cache = max(0, int(prefix_cache))
        self.prefix_block = max(1, int(prefix_block))
        self.tokenizer = load_tokenizer(self.model_dir)
        self._ct2 = ctranslate2
        self._prefixes: set[tuple[int, ...]] = set()
        self._last: list[int] = []
        self.model = self._load()
        #: Tokens of the last prompt served from the cached prefix (0 = encoded in full).
        self.reused = 0

    def _load(self) -> Any:
        self._prefixes.clear()
        return self._ct2.Generator(str(self.model_dir), device="cpu", compute_type=self.compute_type,
                                   inter_threads=1, intra_threads=self.threads)

    def forget_prefix(self) -> None:
        """Encode the next prompt in full (the cached prefixes stay, but none is shared with a previous prompt)."""
        self._last = []

    def _static_prefix(self, ids: list[int]) -> int:
        """How many leading prompt tokens to serve from (or put into) the prefix cache."""
        if not self.prefix_cache:
            return 0
        shared = 0
        for a, b in zip(self._last, ids, strict=False):
            if a != b:
                break
            shared += 1
        self._last = list(ids)
        n = min(shared, len(ids) - 1) // self.prefix_block * self.prefix_block
        if n <= 0:
            return 0
        key = tuple(ids[:n])
        if key not in self._prefixes:
            if len(self._prefixes) >= self.prefix_cache:
                self.model = self._load()  # CTranslate2 keeps every cached prefix: start afresh
            self._prefixes.add(key)
        return n

    def generate(self, ids: list[int], *, max_new_tokens: int, stop: list[str], temperature: float = 0.0,
                 top_p: float = 1.0, seed: int = 0, prompt_lookup: int = 0) -> Generated:
        """Generate after `ids` (prompt lookup is not available in CTranslate2 and is ignored)."""
        tok = self.tokenizer
        tokens = tok.convert_ids_to_tokens(ids)
        n = self._static_prefix(ids)
        new: list[int] = []
        event = cancel_event()
        window = max((len(s) for s in stop), default=0) + 8  # tokens that can hold a stop string: <= its chars

        def step(result: Any) -> bool:
            new.append(result.token_id)
            if event is not None and event.is_set():
                return True
            return bool(stop) and first_stop(tok.decode(new[-window:], skip_special_tokens=False), stop) >= 0

        kwargs: dict[str, Any] = {"max_length": max_new_tokens, "include_prompt_in_result": False,
                                  "end_token": [tok.eos_token_id] if tok.eos_token_id is not None else None,
                                  "callback": step}
        if temperature > 0:
            self._ct2.set_random_seed(seed)
            kwargs.update(sampling_topk=0, sampling_topp=top_p, sampling_temperature=temperature)
        if n:
            kwargs.update(static_prompt=tokens[:n], cache_static_prompt=True)
        t0 = time.perf_counter()
        self.model.generate_batch([tokens[n:]], **kwargs)
        ms = (time.perf_counter() - t0) * 1000
        self.reused = n
        out, text, finish = finish_output(new, tok, stop, eos=tok.eos_token_id, max_new_tokens=max_new_tokens)
        if event is not None and event.is_set():
            finish = "cancelled"
        return Generated(out, text, finish, ms)

    def logprobs(self, prompt_ids: list[int], completions: list[list[int]]) -> list[float]:
        """Sum of the token log-probabilities of each completion after the prompt (one scoring batch)."""
        tok = self.tokenizer
        batch = [tok.convert_ids_to_tokens(prompt_ids + c) for c in completions]
        results = self.model.score_batch(batch, max_input_length=0)
        start = len(prompt_ids) - 1  # log_probs[i] scores token i + 1
        return [float(sum(r.log_probs[start:start + len(c)])) for r, c in zip(results, completions, strict=True)]


def gguf_folder(model_dir: Path, fingerprint: str, compute_type: str) -> Path:
    """A GGUF folder for `model_dir`: itself when it is one, else a conversion in the model cache (q8_0 weights
    for the int8 compute types, f32 for float32)."""
    from nextedit.predictors.gguf_export import export_gguf, is_gguf_export

    if is_gguf_export(model_dir):
        return Path(model_dir)
    from nextedit.train.base_models import cache_root

    quantization = GGUF_TYPES[compute_type]
    out = cache_root() / "gguf" / f"{Path(model_dir).name}-{fingerprint}-{quantization}"
    if is_gguf_export(out):
        return out
    return export_gguf(model_dir, out, quantization=quantization)


def load_runtime(name: str, model_dir: Path, *, fingerprint: str, dtype: str = "auto", threads: int | str = "auto",
                 compute_type: str = "int8", prefix_cache: int = 4) -> Any:
    """Load the named runtime for a model folder (converting it for ct2 or llama when needed)."""
    if name == "transformers":
        return TransformersRuntime(model_dir, dtype=dtype, threads=threads)
    if name == "ct2":
        return CT2Runtime(ct2_folder(model_dir, fingerprint), compute_type=compute_type, threads=threads,
                          prefix_cache=prefix_cache)
    if name == "llama":
        from nextedit.predictors.llamacpp import LlamaCppRuntime

        return LlamaCppRuntime(gguf_folder(model_dir, fingerprint, compute_type), threads=threads,
                               prefix_cache=prefix_cache > 0)
    raise PredictorError(f"unknown runtime {name!r} (known: {', '.join(RUNTIMES)})")
