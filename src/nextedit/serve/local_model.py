"""In-process transformers models under the server: cancellable generation and raw-prompt completion.

`local:PATH` predictors (nextedit.predictors.local) load a Hugging Face model and call `generate`.
The server runs them on the arm's threads and makes generation stop when the request is cancelled
or times out: the model's `generate` gets a stopping criterion that reads a per-thread cancel flag.
"""

from __future__ import annotations

import threading
from typing import Any

from nextedit.serve.backends import CompletionResult

_current = threading.local()


def _cancel_event() -> threading.Event | None:
    return getattr(_current, "cancel", None)


class cancel_scope:
    """Within this block (on this thread), generation stops when `event` is set."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __enter__(self) -> None:
        _current.cancel = self.event

    def __exit__(self, *exc: object) -> None:
        _current.cancel = None


def _stop_on_cancel(event: threading.Event) -> Any:
    import torch
    from transformers import StoppingCriteria

    class StopOnCancel(StoppingCriteria):
        """Ends generation for the whole batch once the request is cancelled."""

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), event.is_set(), dtype=torch.bool, device=input_ids.device)

    return StopOnCancel()


def make_cancellable(predictor: Any) -> None:
    """Load the predictor's model now and wrap its `generate` so a cancel scope can stop it."""
    model, _tokenizer = predictor.load()
    if getattr(model.generate, "_nextedit_cancellable", False):
        return
    original = model.generate

    def generate(*args: Any, **kwargs: Any) -> Any:
        event = _cancel_event()
        if event is not None:
            from transformers import StoppingCriteriaList

            criteria = kwargs.get("stopping_criteria") or StoppingCriteriaList()
            criteria.append(_stop_on_cancel(event))
            kwargs["stopping_criteria"] = criteria
        return original(*args, **kwargs)

    generate._nextedit_cancellable = True  # type: ignore[attr-defined]
    model.generate = generate


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
    import torch

    model, tokenizer = predictor.load()
    if isinstance(prompt, list):
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        else:
            text = "".join(f"{m.get('role', 'user')}: {m.get('content', '')}\n" for m in prompt) + "assistant: "
    else:
        text = prompt
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"].to(model.device)
    kwargs: dict[str, Any] = {"max_new_tokens": max_tokens, "pad_token_id": tokenizer.pad_token_id,
                              "eos_token_id": tokenizer.eos_token_id}
    if stop:
        kwargs.update(stop_strings=stop, tokenizer=tokenizer)
    if temperature > 0:
        kwargs.update(do_sample=True, temperature=temperature)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    if getattr(predictor, "prompt_lookup", False):
        kwargs["prompt_lookup_num_tokens"] = getattr(predictor, "prompt_lookup_num_tokens", 10)
    with cancel_scope(cancel), torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
    new = out[0, ids.shape[1]:].tolist()
    finish = "length" if len(new) >= max_tokens else "stop"
    if new and new[-1] == tokenizer.eos_token_id:
        new = new[:-1]
    completion = tokenizer.decode(new, skip_special_tokens=True)
    for s in stop or []:
        cut = completion.find(s)
        if cut >= 0:
            completion, finish = completion[:cut], "stop"
    if cancel.is_set():
        finish = "cancelled"
    return CompletionResult(text=completion, finish_reason=finish, input_tokens=int(ids.shape[1]),
                            output_tokens=len(new))
