"""`local:PATH`: a Hugging Face model on this machine (folder, .gguf file or embedded name) as a predictor.

Greedy by default; `prompt_lookup` (on by default) turns on prompt-lookup decoding in HF generate:
next-edit outputs mostly copy the prompt, so n-gram candidates from the prompt are verified in one
forward pass instead of decoding token by token. Latency and token counts are recorded per prediction.
`runtime` picks the inference engine (nextedit.predictors.runtimes): transformers (default), ct2
(CTranslate2 on the CPU, `compute_type` int8 / int8_float32 / float32) or llama (llama.cpp on the CPU, a GGUF
export with prompt-lookup drafts); a folder exported for ct2 or llama selects its runtime.

Constrained decoding: the format's fixed answer start (e.g. the region marker) is fed to the model rather than
generated (`prefill`). Abstention (nextedit.predictors.abstain): `confidence` scores each answer against the
unchanged region (a log-likelihood ratio); `abstain_below` withholds answers under a threshold chosen on
validation data (`nextedit calibrate`), `max_reversal` withholds answers that undo the user's last edit, and
answers that change only whitespace or put a line next to a copy of itself are withheld unless
`allow_whitespace_only` / `allow_repeated_lines`, and `quiet_when_clean` withholds the model's own edits where the
linter reports nothing near the cursor.

Candidates: a cheap heuristic's answer (`candidates = "propagate"`, the default) is scored by the model next
to its own (one extra forward pass, only where the heuristic proposes an edit). The model weighs the part of the
heuristic's edit inside its editable region (the unchanged region when all of it lies outside); when the
candidate wins, the heuristic's whole edit is offered, so a rename it finishes beyond the model's window is not
cut short. The candidate is offered unless the model's own answer is more than `candidate_margin` nats likelier
(default: the value calibrated on validation data in the model folder's nextedit.json, else 0: the likelier
answer wins; "inf": the heuristic's edit goes first, and without confidence to record the model does not answer
at all where one candidate proposes an edit); `abstain_below` then applies to whichever answer is offered,
`max_reversal` to the model's own edits (nextedit.predictors.abstain.guard).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nextedit.predictors.abstain import guard
from nextedit.predictors.base import Predictor, PredictorError
from nextedit.predictors.baselines import PropagatePredictor, propagate_region
from nextedit.record import Example, Prediction, Usage


def _optional_float(value: Any) -> float | None:
    """None for None / "" / "none" / "off", else the value as a float."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "off")):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise PredictorError(f"expected a number or none, got {value!r}") from None


def _flag(value: Any, name: str, argument: str) -> bool:
    """A yes/no option (true or false, as JSON and nextedit.json hold it)."""
    if not isinstance(value, bool):
        raise PredictorError(f"local:{argument}: {name} must be true or false, got {value!r}")
    return value


@dataclass(frozen=True)
class Heuristic:
    """A cheap heuristic whose answer a local model weighs against its own: its whole edit of the example (a patch,
    "" when it proposes none) and its new text for a span of the snapshot (None when it changes nothing there)."""

    edit: Callable[[Example], str]
    region: Callable[[Example, tuple[int, int]], str | None]


#: Heuristic answers a local model can score against its own, by name.
CANDIDATES = {"propagate": Heuristic(PropagatePredictor().propose, propagate_region)}


def _candidate_names(value: str | list[str] | None) -> list[str]:
    """The `candidates` option as a list of known names ("none", "" or None: no candidates)."""
    if value is None:
        return []
    names = [n.strip() for n in (value.split(",") if isinstance(value, str) else value) if n and n.strip()]
    names = [n for n in names if n.lower() not in ("none", "off")]
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        raise PredictorError(f"unknown candidate {unknown[0]!r} (known: {', '.join(CANDIDATES)}, or none)")
    return names


@dataclass(frozen=True)
class ScoredAnswers:
    """The answers a local model weighed ("" = its own, else a candidate's name -> (patch, cursor)), their
    log-probabilities, and the unchanged region's."""

    answers: dict[str, tuple[str, int | None]]
    logprobs: dict[str, float]
    keep: float

    def choose(self, margin: float = 0.0) -> str:
        """The answer to offer: a candidate unless the model's own answer is more than `margin` nats likelier
        (the likeliest such candidate), else the likeliest answer."""
        own = self.logprobs.get("", float("-inf"))
        close = [n for n in self.logprobs if n and self.logprobs[n] + margin > own]
        return max(close or list(self.logprobs), key=self.logprobs.__getitem__)

    def confidence(self, name: str) -> float:
        """How much likelier answer `name` is than leaving the code alone (log-likelihood ratio)."""
        return self.logprobs[name] - self.keep


def _fingerprint(model_dir: Path) -> str:
    """A short hash of the model folder's files (names, sizes, mtimes): a retrained model never hits a stale cache."""
    h = hashlib.sha256()
    for f in sorted(model_dir.iterdir()):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.name}|{st.st_size}|{int(st.st_mtime)}\n".encode())
    return h.hexdigest()[:10]


class LocalPredictor(Predictor):
    """Runs a local causal LM with a student format: render -> generate (stop strings) -> parse.

    Options: format (default: the model folder's nextedit.json), format_options (dict), max_new_tokens
    (default: sized from the editable region), temperature (0 = greedy), top_p, prompt_lookup (bool),
    prompt_lookup_num_tokens, dtype ("auto" | "bfloat16" | "float32"), seed, label (the provider name
    recorded in predictions instead of "local:PATH"), threads (CPU threads, "auto" = cores not busy elsewhere),
    prefill (feed the format's answer prefix, default on), confidence (record `Prediction.confidence`),
    abstain_below (withhold edits whose confidence is below this; default: the model folder's calibrated
    value, if any), max_reversal (withhold edits that undo more than this share of the user's last edit;
    default: the model folder's value, if any), allow_whitespace_only (offer the model's own edits that change
    only whitespace; default off: they are withheld, a re-indent or stray blank line is rarely the next edit),
    allow_repeated_lines (offer the model's own edits that leave a line next to an identical copy; default off:
    they are withheld, that is the loop a small model falls into, hardly ever an edit people make),
    quiet_when_clean (withhold the model's own edits in a file nextedit lints whose snapshot carries no diagnostics
    near the cursor: code that lints clean there is more often finished; needs linted snapshots, as the diagnostics
    stage and the editor integrations make them; default: the model folder's value, else off),
    candidates (heuristic answers the model scores against its own: "propagate" by default, "none" to turn off),
    candidate_margin (nats by which the model's own answer must be likelier than a candidate to be offered instead;
    default: the model folder's calibrated value, else 0: the likelier wins; "inf": candidates first), runtime
    ("transformers" | "ct2" | "llama"; default: the runtime a folder was exported for, else transformers),
    compute_type (ct2: "int8" | "int8_float32" | "float32"; llama converting an HF folder: q8_0 weights for the
    int8 types, f32 for float32), prefix_cache (ct2: prompt prefixes whose KV cache is kept between calls,
    0 = off; "auto" = 4 with float32, off with int8, where encoding a prompt in two parts changes the quantised
    activations and so, near ties, the output; llama: 0 = off, "auto" = on).
    """

    scheme = "local"
    version = "5"

    def __init__(self, argument: str | None = None, *, format: str | None = None,
                 format_options: dict[str, Any] | None = None, max_new_tokens: int | None = None,
                 temperature: float = 0.0, top_p: float = 1.0, prompt_lookup: bool = True,
                 prompt_lookup_num_tokens: int = 10, dtype: str = "auto", seed: int = 0,
                 label: str | None = None, threads: int | str = "auto", prefill: bool = True,
                 confidence: bool = False, abstain_below: float | str | None = "auto",
                 max_reversal: float | str | None = "auto", allow_whitespace_only: bool = False,
                 allow_repeated_lines: bool = False, quiet_when_clean: bool | str = "auto",
                 candidates: str | list[str] | None = "propagate",
                 candidate_margin: float | str = "auto",
                 runtime: str | None = None, compute_type: str = "int8", prefix_cache: int | str = "auto") -> None:
        if not argument:
            raise PredictorError("provider local needs a model: local:PATH (HF folder, .gguf file or "
                                 "an embedded name such as smollm2-135m-instruct)")
        self.argument = argument
        from nextedit.formats import FormatOptions, get_format
        from nextedit.predictors.gguf_export import is_gguf_export
        from nextedit.train.base_models import (
            BaseModelError,
            is_known_name,
            resolve_base,
        )
        from nextedit.train.export import read_metadata

        path = Path(argument).expanduser()
        if not (is_known_name(argument) or path.exists()):
            raise PredictorError(f"local:{argument}: no such model folder or file")
        try:
            self.model_dir = path if is_gguf_export(path) else resolve_base(argument)
            meta = read_metadata(self.model_dir) or {}
        except (BaseModelError, ValueError) as exc:
            raise PredictorError(f"local:{argument}: {exc}") from None
        name = format or meta.get("format")
        if not name:
            raise PredictorError(f"local:{argument}: the model folder has no nextedit.json naming its format; "
                                 "pass the option format=NAME (e.g. --option format=zeta1)")
        try:
            self.format = get_format(name)
            self.options = FormatOptions(**{**meta.get("format_options", {}), **(format_options or {})})
        except (KeyError, ValueError) as exc:
            raise PredictorError(f"local:{argument}: {exc}") from None
        self.stop = list(self.format.stop)
        self.max_new_tokens = max_new_tokens
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.prompt_lookup = bool(prompt_lookup)
        self.prompt_lookup_num_tokens = int(prompt_lookup_num_tokens)
        self.dtype = dtype
        self.seed = int(seed)
        self.label = label
        self.threads = threads
        self.prefill = bool(prefill) and bool(self.format.answer_prefix)
        self.abstain_below = _optional_float(meta.get("abstain_below") if abstain_below == "auto" else abstain_below)
        self.max_reversal = _optional_float(meta.get("max_reversal") if max_reversal == "auto" else max_reversal)
        self.allow_whitespace_only = bool(allow_whitespace_only)
        self.allow_repeated_lines = bool(allow_repeated_lines)
        self.quiet_when_clean = _flag(meta.get("quiet_when_clean", False) if quiet_when_clean == "auto"
                                      else quiet_when_clean, "quiet_when_clean", argument)
        self.confidence = bool(confidence) or self.abstain_below is not None
        self.candidates = _candidate_names(candidates)
        self.candidate_margin = _optional_float(meta.get("candidate_margin", 0.0) if candidate_margin == "auto"
                                                else candidate_margin)
        if self.candidate_margin is None or self.candidate_margin < 0:
            raise PredictorError(f"local:{argument}: candidate_margin must be a number >= 0 or inf, "
                                 f"got {candidate_margin!r}")
        from nextedit.predictors.runtimes import (
            COMPUTE_TYPES,
            GGUF_TYPES,
            RUNTIMES,
            is_ct2_export,
        )

        self.runtime_name = runtime or meta.get("runtime") or ("ct2" if is_ct2_export(self.model_dir) else
                                                               "llama" if is_gguf_export(self.model_dir) else
                                                               "transformers")
        if is_gguf_export(self.model_dir) and self.runtime_name != "llama":
            raise PredictorError(f"local:{argument}: a GGUF export runs on the llama runtime; use the merged/ "
                                 "folder beside it for other runtimes")
        if self.runtime_name not in RUNTIMES:
            raise PredictorError(f"local:{argument}: unknown runtime {self.runtime_name!r} "
                                 f"(known: {', '.join(RUNTIMES)})")
        if compute_type not in COMPUTE_TYPES:
            raise PredictorError(f"local:{argument}: unknown compute_type {compute_type!r} "
                                 f"(known: {', '.join(COMPUTE_TYPES)})")
        self.compute_type = compute_type
        try:
            auto = 4 if compute_type == "float32" or self.runtime_name == "llama" else 0
            self.prefix_cache = auto if prefix_cache == "auto" else int(prefix_cache)
        except ValueError:
            raise PredictorError(f"local:{argument}: prefix_cache must be a number or auto, got {prefix_cache!r}") \
                from None
        fingerprint = _fingerprint(self.model_dir)
        self._fingerprint = fingerprint
        # Predictions of the transformers runtime keep their old cache keys; ct2 and llama ones differ (other kernels).
        weights = compute_type
        if self.runtime_name == "llama":  # the GGUF's own weight type, or the one a conversion will write
            weights = meta.get("quantization") if is_gguf_export(self.model_dir) else GGUF_TYPES[compute_type]
        self.version = f"{type(self).version}.{fingerprint}" + \
            ("" if self.runtime_name == "transformers" else f".{self.runtime_name}-{weights}")
        self._runtime: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """`label` when given, else `local:PATH`."""
        return self.label or f"local:{self.argument}"

    # -- loading
    def runtime(self) -> Any:
        """Load (once) and return the inference runtime (nextedit.predictors.runtimes)."""
        if self._runtime is None:
            from nextedit.predictors.runtimes import load_runtime

            self._runtime = load_runtime(self.runtime_name, self.model_dir, fingerprint=self._fingerprint,
                                         dtype=self.dtype, threads=self.threads, compute_type=self.compute_type,
                                         prefix_cache=self.prefix_cache)
        return self._runtime

    def load(self) -> tuple[Any, Any]:
        """Load (once) and return the model (a torch model, or a CTranslate2 generator) and the tokenizer."""
        rt = self.runtime()
        return rt.model, rt.tokenizer

    # -- prediction
    def _budget(self, tokenizer: Any, example: Example, editable: tuple[int, int]) -> int:
        if self.max_new_tokens is not None:
            return self.max_new_tokens
        region = example.snapshot.text[editable[0]:editable[1]]
        n = len(tokenizer(region, add_special_tokens=False)["input_ids"])
        return int(n * 1.25) + 48  # the rewritten region, markers and a little growth

    def _generate(self, ids: list[int], max_new_tokens: int, sample: int) -> tuple[str, int, float]:
        out = self.runtime().generate(ids, max_new_tokens=max_new_tokens, stop=self.stop,
                                      temperature=self.temperature, top_p=self.top_p, seed=self.seed + sample,
                                      prompt_lookup=self.prompt_lookup_num_tokens if self.prompt_lookup else 0)
        return out.text, len(out.ids), out.ms

    def predict_sync(self, example: Example, *, samples: int = 1) -> list[Prediction]:
        """`samples` predictions (greedy decoding generates once and repeats it)."""
        from nextedit.formats import FormatError

        with self._lock:
            _, tokenizer = self.load()
            t_start = time.perf_counter()
            try:
                rendered = self.format.render(example.model_copy(update={"expected": []}), self.options, tokenizer)
            except FormatError as exc:
                return [Prediction(provider=self.name, sample=i, error=f"render: {exc}") for i in range(samples)]
            from nextedit.train.data import encode_prompt

            ids = encode_prompt(rendered, tokenizer)
            first = self._candidate_first(example, len(ids), t_start)
            if first is not None:
                return [first.model_copy(update={"sample": i}) for i in range(samples)]
            prefix = self.format.answer_prefix if self.prefill else ""
            prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"] if prefix else []
            budget = self._budget(tokenizer, example, rendered.editable)
            out: list[Prediction] = []
            for i in range(samples):
                if i > 0 and self.temperature <= 0:
                    out.append(out[0].model_copy(update={"sample": i}))
                    continue
                raw, n_out, ms = self._generate(ids + prefix_ids, budget, i)
                raw = prefix + raw
                usage = Usage(input_tokens=len(ids), output_tokens=n_out)
                parsed, error = None, None
                try:
                    parsed = self.format.parse(raw, example, self.options, tokenizer)
                except FormatError as exc:
                    error = f"parse: {exc}"
                pred = Prediction(provider=self.name, sample=i, raw=raw, latency_ms=round(ms, 1), usage=usage)
                if parsed is not None:
                    pred.patch, pred.cursor = parsed.patch, parsed.cursor
                t0 = time.perf_counter()
                pred = self._decide(example, pred, raw if parsed is not None else None, ids, tokenizer)
                if pred.patch is None:
                    pred.error = error
                pred.latency_ms = round(ms + (time.perf_counter() - t0) * 1000, 1)
                pred = self._guard(example, pred)
                if parsed is not None and parsed.locations:
                    pred.locations = list(parsed.locations)
                out.append(pred)
            return out

    def _candidate_first(self, example: Example, prompt_tokens: int, t_start: float) -> Prediction | None:
        """With candidates first (`candidate_margin` inf) and no confidence to record, the heuristic's edit when
        exactly one candidate proposes one: the model's own answer could not change the choice, so it is not
        generated (the seconds a generation and a scoring pass would cost); its latency counts from `t_start`
        (before the prompt was rendered). None when the model must answer."""
        if self.candidate_margin != float("inf") or self.confidence:
            return None
        proposed = {name: edit for name in self.candidates if (edit := CANDIDATES[name].edit(example))}
        if len(proposed) != 1:
            return None
        (name, edit), = proposed.items()
        pred = Prediction(provider=self.name, patch=edit, candidate=name,
                          latency_ms=round((time.perf_counter() - t_start) * 1000, 1),
                          usage=Usage(input_tokens=prompt_tokens, output_tokens=0))
        return self._guard(example, pred)

    def _guard(self, example: Example, pred: Prediction) -> Prediction:
        """The prediction under this predictor's abstention rules (nextedit.predictors.abstain.guard)."""
        return guard(example, pred, abstain_below=self.abstain_below, max_reversal=self.max_reversal,
                     allow_whitespace_only=self.allow_whitespace_only,
                     allow_repeated_lines=self.allow_repeated_lines, quiet_when_clean=self.quiet_when_clean)

    def _answers(self, example: Example, raw: str | None,
                 tokenizer: Any) -> tuple[Any, dict[str, tuple[str, int | None]], dict[str, tuple[str, int | None]]]:
        """The format's frame, the answers to weigh as regions of its editable window (the model's own ("") when
        `raw` parses, then each candidate whose region differs from those before it; a candidate whose region is
        the model's own answer replaces it) and each answer's whole edit as offered (patch, cursor)."""
        frame = self.format.frame(example, self.options, tokenizer)
        answers: dict[str, tuple[str, int | None]] = {}
        edits: dict[str, tuple[str, int | None]] = {}
        if raw is not None:
            answers[""] = self.format.decode_output(raw, frame)
            own = self.format.to_parsed(frame, *answers[""])
            edits[""] = (own.patch, own.cursor)
        for name in self.candidates:
            heuristic = CANDIDATES[name]
            edit = heuristic.edit(example)
            if not edit or any(edit == patch for patch, _ in edits.values()):
                continue
            region = heuristic.region(example, frame.window.editable) or frame.region
            same = next((n for n, (r, _) in answers.items() if r == region), None)
            if same == "":  # the model's own answer says the same in its window: the heuristic's edit extends it
                answers[name] = answers.pop("")
                del edits[""]
            elif same is not None:  # an earlier candidate already says the same in the window
                continue
            else:
                answers[name] = (region, None)
            edits[name] = (edit, None)
        return frame, answers, edits

    def _score(self, frame: Any, answers: dict[str, tuple[str, int | None]],
               edits: dict[str, tuple[str, int | None]], prompt_ids: list[int], tokenizer: Any) -> ScoredAnswers:
        targets = [self.format.encode_target(frame, region, cursor) for region, cursor in answers.values()]
        scores = self._logprobs(prompt_ids, [tokenizer(t, add_special_tokens=False)["input_ids"]
                                             for t in [*targets, self.format.no_edit_target(frame)]])
        return ScoredAnswers({n: edits[n] for n in answers}, dict(zip(answers, scores[:-1], strict=True)), scores[-1])

    def score_answers(self, example: Example, raw: str | None) -> ScoredAnswers | None:
        """The model's log-probabilities of a recorded answer `raw` (its full output, None or unparseable: no own
        answer), of each heuristic candidate and of the unchanged region: replaying recorded predictions under
        other decision rules (`ScoredAnswers.choose`) without generating again. None when there is nothing to weigh."""
        from nextedit.formats import FormatError
        from nextedit.train.data import encode_prompt

        with self._lock:
            _, tokenizer = self.load()
            rendered = self.format.render(example.model_copy(update={"expected": []}), self.options, tokenizer)
            if raw is not None:
                try:
                    self.format.parse(raw, example, self.options, tokenizer)
                except FormatError:
                    raw = None
            frame, answers, edits = self._answers(example, raw, tokenizer)
            if not answers:
                return None
            return self._score(frame, answers, edits, encode_prompt(rendered, tokenizer), tokenizer)

    def _decide(self, example: Example, pred: Prediction, raw: str | None, prompt_ids: list[int],
                tokenizer: Any) -> Prediction:
        """Score the model's own answer (None when unparseable), the heuristic candidates and the unchanged region
        under the model; offer what `ScoredAnswers.choose` picks, with its confidence (log-probability minus the
        unchanged region's)."""
        frame, answers, edits = self._answers(example, raw, tokenizer)
        if not answers:  # unparseable and no candidate
            return pred
        if list(answers) == [""] and not (self.confidence and pred.patch):
            if self.confidence:
                pred.confidence = 0.0
            return pred
        scored = self._score(frame, answers, edits, prompt_ids, tokenizer)
        name = scored.choose(self.candidate_margin)
        if name:
            patch, cursor = scored.answers[name]
            pred = pred.model_copy(update={"patch": patch, "cursor": cursor, "candidate": name})
        pred.confidence = round(scored.confidence(name), 4) if pred.patch else 0.0
        return pred

    def _logprobs(self, prompt_ids: list[int], completions: list[list[int]]) -> list[float]:
        """Sum of the token log-probabilities of each completion after the prompt (the runtime's scoring)."""
        return self.runtime().logprobs(prompt_ids, completions)

    async def predict(self, example: Example, *, samples: int = 1) -> list[Prediction]:
        """`predict_sync` in a worker thread (one generation at a time), so the event loop stays responsive."""
        return await asyncio.to_thread(self.predict_sync, example, samples=samples)
