"""The `llama` runtime: a GGUF export of the model run by llama.cpp (llama-cpp-python) on the CPU.

Made for a student answering on a laptop: int8 (q8_0) or float weights in a C++ runtime, prompt-lookup
speculative decoding (a region rewrite mostly copies the prompt: n-gram drafts from the prompt are verified
in one batched pass), and the KV cache of the prompt prefix shared with the previous call kept, so a keystroke
re-encodes only what changed. Logits are computed only where a token is chosen or verified.

Every llama.cpp forward pass runs on one thread of the runtime's own (and llama.cpp's worker pool, built without
OpenMP): on CPUs with AMX, ggml configures the tile registers once per thread, and torch's bf16 kernels release
them on the threads they run on, so a pass on a thread torch had used died with an illegal instruction.

Token ids come from the folder's HF tokenizer (as in training), never from llama.cpp's own tokenizer.
Greedy decoding picks the highest logit at each step, as transformers does; drafts only skip forward passes.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from nextedit.predictors.base import PredictorError
from nextedit.predictors.gguf_export import GGUF_FILE
from nextedit.predictors.runtimes import (
    Generated,
    cancel_event,
    finish_output,
    first_stop,
    load_tokenizer,
)


def draft_from_prompt(seq: list[int], n: int, *, max_ngram: int = 3) -> list[int]:
    """Up to `n` tokens that followed the latest earlier occurrence of `seq`'s last tokens (the longest n-gram
    of at most `max_ngram` that occurs before), or [] when none does."""
    for size in range(min(max_ngram, len(seq) - 1), 0, -1):
        tail = seq[-size:]
        for start in range(len(seq) - size - 1, -1, -1):
            if seq[start:start + size] == tail:
                return seq[start + size:start + size + n]
    return []


class LlamaCppRuntime:
    """A GGUF model in llama.cpp: greedy or sampled, prompt-lookup drafts, the shared prompt prefix kept."""

    name = "llama"

    def __init__(self, model_dir: Path, *, threads: int | str = "auto", n_ctx: int = 4096,
                 prefix_cache: bool = True) -> None:
        try:
            import llama_cpp
        except ImportError:
            raise PredictorError("the llama runtime needs llama-cpp-python: pip install 'nextedit[llama]'") from None
        import numpy as np

        from nextedit.cpu import free_cores
        from nextedit.train.export import read_metadata

        self.model_dir = Path(model_dir)
        if not (self.model_dir / GGUF_FILE).is_file():
            raise PredictorError(f"{self.model_dir}: no {GGUF_FILE} (export one with export_gguf or "
                                 "`[export] runtimes = [\"llama\"]`)")
        self._lib = llama_cpp
        self._np = np
        self.tokenizer = load_tokenizer(self.model_dir)
        threads = free_cores(threads)
        # float32 weights keep float32 keys and values (llama.cpp's default cache is f16): scores match transformers.
        cache_type = llama_cpp.GGML_TYPE_F32 if (read_metadata(self.model_dir) or {}).get("quantization") == "f32" \
            else None
        self.model = llama_cpp.Llama(model_path=str(self.model_dir / GGUF_FILE), n_ctx=n_ctx, n_batch=512,
                                     n_ubatch=512, n_threads=threads, n_threads_batch=threads, logits_all=False,
                                     type_k=cache_type, type_v=cache_type, verbose=False)
        self._ctx = self.model.ctx
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._n_vocab = self.model.n_vocab()
        self._n_ctx = n_ctx
        self._n_batch = 512
        self._batch = llama_cpp.llama_batch_init(self._n_batch, 0, 1)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama.cpp")
        self.prefix_cache = bool(prefix_cache)
        #: Token ids whose keys and values the cache holds, at positions 0..len-1.
        self._cached: list[int] = []
        #: Tokens of the last prompt served from the cache (0 = encoded in full).
        self.reused = 0

    def __del__(self) -> None:
        thread = getattr(self, "_thread", None)
        if thread is not None:
            thread.shutdown(wait=False)
        batch, self._batch = getattr(self, "_batch", None), None
        free = getattr(getattr(self, "_lib", None), "llama_batch_free", None)  # None once the interpreter exits
        if batch is not None and callable(free):
            free(batch)

    # -- the cache and forward passes
    def forget_prefix(self) -> None:
        """Encode the next prompt in full."""
        self._keep(0)

    def _keep(self, n: int) -> None:
        """Drop the cached keys and values from position `n` on."""
        if n < len(self._cached):
            self._lib.llama_memory_seq_rm(self._memory, 0, n, -1)
            del self._cached[n:]

    def _decode(self, tokens: list[int], *, logits_from: int) -> list[Any]:
        """Append `tokens` to the cache; the logits (float32 arrays) of every token at index >= `logits_from`."""
        np, lib, batch = self._np, self._lib, self._batch
        if len(self._cached) + len(tokens) > self._n_ctx:
            raise PredictorError(f"prompt and output need {len(self._cached) + len(tokens)} tokens; "
                                 f"the llama runtime's context holds {self._n_ctx}")
        rows: list[Any] = []
        for lo in range(0, len(tokens), self._n_batch):
            chunk = tokens[lo:lo + self._n_batch]
            batch.n_tokens = len(chunk)
            base = len(self._cached)
            wanted = []
            for i, tok in enumerate(chunk):
                batch.token[i] = tok
                batch.pos[i] = base + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = lo + i >= logits_from
                if lo + i >= logits_from:
                    wanted.append(i)
            rc = self._thread.submit(lib.llama_decode, self._ctx, batch).result()
            if rc != 0:  # the cache may hold part of the batch: start the next call afresh
                lib.llama_memory_clear(self._memory, True)
                self._cached.clear()
                raise PredictorError(f"llama.cpp decode failed (code {rc})")
            self._cached.extend(chunk)
            rows.extend(np.ctypeslib.as_array(lib.llama_get_logits_ith(self._ctx, i), shape=(self._n_vocab,)).copy()
                        for i in wanted)
        return rows

    def _prefill(self, ids: list[int]) -> Any:
        """Bring the cache to `ids` (reusing the shared prefix) and return the logits after its last token."""
        shared = 0
        if self.prefix_cache:
            for a, b in zip(self._cached, ids, strict=False):
                if a != b:
                    break
                shared += 1
        shared = min(shared, len(ids) - 1)  # the last prompt token is always decoded: its logits are needed
        self._keep(shared)
        self.reused = shared
        rest = ids[shared:]
        return self._decode(rest, logits_from=len(rest) - 1)[-1]

    # -- generation
    def _pick(self, logits: Any, temperature: float, top_p: float, rng: Any) -> int:
        np = self._np
        if temperature <= 0:
            return int(np.argmax(logits))
        z = logits.astype(np.float64) / temperature
        p = np.exp(z - z.max())
        p /= p.sum()
        order = np.argsort(-p)
        keep = order[:int(np.searchsorted(np.cumsum(p[order]), top_p) + 1)]
        return int(rng.choice(keep, p=p[keep] / p[keep].sum()))

    def generate(self, ids: list[int], *, max_new_tokens: int, stop: list[str], temperature: float = 0.0,
                 top_p: float = 1.0, seed: int = 0, prompt_lookup: int = 0) -> Generated:
        """Generate after `ids`; `prompt_lookup` > 0 drafts that many tokens from the prompt per step (greedy only)."""
        np, tok = self._np, self.tokenizer
        rng = np.random.default_rng(seed)
        eos = tok.eos_token_id
        event = cancel_event()
        window = max((len(s) for s in stop), default=0) + 8
        t0 = time.perf_counter()
        logits = self._prefill(list(ids))
        new: list[int] = []

        def add(token: int) -> bool:
            """Append a chosen token; whether generation ends with it."""
            new.append(token)
            if len(new) >= max_new_tokens or token == eos:
                return True
            return bool(stop) and first_stop(tok.decode(new[-window:], skip_special_tokens=False), stop) >= 0

        while not (event is not None and event.is_set()):
            if add(self._pick(logits, temperature, top_p, rng)):
                break
            # The cache holds ids + new[:-1]: decode the new token with the drafts that may follow it.
            draft = draft_from_prompt([*ids, *new], prompt_lookup) if prompt_lookup > 0 and temperature <= 0 else []
            draft = draft[:max_new_tokens - len(new)]
            rows = self._decode([new[-1], *draft], logits_from=0)
            ended, accepted = False, 0
            for guess, row in zip(draft, rows, strict=False):
                if int(np.argmax(row)) != guess:
                    break
                accepted += 1
                if ended := add(guess):
                    break
            self._keep(len(ids) + len(new))  # drop the rejected drafts
            if ended:
                break
            logits = rows[accepted]
        ms = (time.perf_counter() - t0) * 1000
        out, text, finish = finish_output(new, tok, stop, eos=eos, max_new_tokens=max_new_tokens)
        if event is not None and event.is_set():
            finish = "cancelled"
        return Generated(out, text, finish, ms)

    def logprobs(self, prompt_ids: list[int], completions: list[list[int]]) -> list[float]:
        """Sum of the token log-probabilities of each completion after the prompt (the prompt's cache shared)."""
        np = self._np
        last = self._prefill(list(prompt_ids))
        out = []
        for completion in completions:
            self._keep(len(prompt_ids))
            rows = [last, *self._decode(completion[:-1], logits_from=0)] if completion else []
            total = 0.0
            for row, token in zip(rows, completion, strict=True):
                z = row.astype(np.float64)
                m = z.max()
                total += float(z[token] - m - np.log(np.exp(z - m).sum()))
            out.append(total)
        self._keep(len(prompt_ids))
        return out
