"""In-process models under the server: cancellable generation and raw-prompt completion.

`local:PATH` predictors (nextedit.predictors.local) generate through a runtime (transformers or ct2,
nextedit.predictors.runtimes). The server runs them on the arm's threads and makes generation stop when
the request is cancelled or times out: both runtimes read the thread's cancel event (`cancel_scope`).
"""

from __future__ import annotations

import threading
from typing import Any

from nextedit.predictors.runtimes import cancel_scope
from nextedit.serve.backends import CompletionResult

__all__ = ["cancel_scope", "local_complete", "make_cancellable", "warm_up"]


def make_cancellable(predictor: Any) -> None:
    """Load the predictor's runtime now (its generation honours `cancel_scope`)."""
    predictor.runtime()


def warm_up(predictor: Any) -> None:
    """One tiny prediction at start, so the first user request does not pay one-time setup
    (kernel selection, stop-string tables, prompt-lookup buffers) and time out."""
    from nextedit.record import Example, Snapshot

    example = Example(id="warm-up", snapshot=Snapshot(path="warm_up.py", text="x = 1\n", cursor=0))
    try:
        predictor.predict_sync(example, samples=1)
    except Exception as exc:  # noqa: BLE001 - a failed warm-up shows up again on the first request
        import logging

        logging.getLogger("nextedit.serve").warning("warm-up of %s failed: %s", predictor.name, exc)


def local_complete(predictor: Any, prompt: str | list[dict[str, Any]], *, max_tokens: int, stop: list[str] | None,
                   temperature: float, cancel: threading.Event) -> CompletionResult:
    """Complete a raw prompt (or chat messages, through the tokenizer's chat template) with the local model."""
    runtime = predictor.runtime()
    tokenizer = runtime.tokenizer
    if isinstance(prompt, list):
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        else:
            text = "".join(f"{m.get('role', 'user')}: {m.get('content', '')}\n" for m in prompt) + "assistant: "
    else:
        text = prompt
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    lookup = getattr(predictor, "prompt_lookup_num_tokens", 10) if getattr(predictor, "prompt_lookup", False) else 0
    with cancel_scope(cancel):
        out = runtime.generate(ids, max_new_tokens=max_tokens, stop=list(stop or []), temperature=temperature,
                               prompt_lookup=lookup)
    completion = tokenizer.decode(out.ids, skip_special_tokens=True)
    for s in stop or []:
        cut = completion.find(s)
        if cut >= 0:
            completion = completion[:cut]
    return CompletionResult(text=completion, finish_reason=out.finish, input_tokens=len(ids),
                            output_tokens=len(out.ids))
