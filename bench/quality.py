"""Quality benchmark: train (or take) a student, calibrate its abstention on validation data, and compare it with
its base model, noop and propagate on eval sets nobody trained on (held-out repositories, Zed's eval cases).

Usage:
  .venv/bin/python bench/quality.py --train-config recipes/cpu-train.toml --dev DEV.jsonl \
      --test held-out=TEST.jsonl [--zed ../shared/data/zed-evals] --out out/quality [--base smollm2-135m-instruct]
  .venv/bin/python bench/quality.py --student out/quality/student/merged ...   (skip training)

Per eval set it prints (and with --append adds to BENCHMARKS.md) one table: deltaChrF with 95% bootstrap
intervals, exact-lines F1, reversal ratio, no-edit rate and precision/recall, parse errors, and the paired
difference student - best baseline with its interval; plus one verdict line per set. Every step caches, so a
re-run resumes. The threshold is chosen on --dev only (never on a test set). Without --zed, the Zed-format
eval sets that are present are evaluated: ../shared/data/zed-evals (Zed's own cases) and
bench/cases/handwritten (nextedit's handwritten cases); --no-zed skips them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from _report import append_section

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ZED = (ROOT.parent / "shared" / "data" / "zed-evals", ROOT / "bench" / "cases" / "handwritten")


def zed_sets(folders: list[Path] | None) -> list[tuple[str, Path]]:
    """(set name, folder) per Zed Markdown eval folder: the folders given, else the default ones that exist. The
    name is the folder's name (`zed-evals`, `handwritten`), made unique."""
    chosen = folders if folders is not None else [p for p in DEFAULT_ZED if p.is_dir()]
    out: list[tuple[str, Path]] = []
    for folder in chosen:
        if not folder.is_dir():
            raise SystemExit(f"error: --zed {folder}: no such folder")
        name, k = folder.resolve().name, 2
        while name in {n for n, _ in out}:
            name, k = f"{folder.resolve().name}-{k}", k + 1
        out.append((name, folder))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-config", type=Path, help="nextedit train TOML; the student is trained first")
    ap.add_argument("--base-model", help="the base model to fine-tune (overrides the config's base_model)")
    ap.add_argument("--train", type=Path, help="training examples (overrides the config's data.train)")
    ap.add_argument("--student", type=Path, help="an exported student folder (instead of --train-config)")
    ap.add_argument("--dev", type=Path, required=True, help="validation examples: the abstention threshold")
    ap.add_argument("--test", action="append", default=[], metavar="NAME=JSONL", help="eval set (repeatable)")
    ap.add_argument("--zed", type=Path, action="append", metavar="DIR",
                    help="a folder of Zed Markdown eval cases, an eval set named after the folder (repeatable; "
                         "default: ../shared/data/zed-evals and bench/cases/handwritten when present)")
    ap.add_argument("--no-zed", action="store_true", help="evaluate no Zed-format set")
    ap.add_argument("--base", help="also evaluate this base model with the student's format (e.g. "
                                   "smollm2-135m-instruct)")
    ap.add_argument("--limit", type=int, help="at most N examples per set")
    ap.add_argument("--base-limit", type=int, default=30, help="the base model on the first N examples of each set")
    ap.add_argument("--max-reversal", type=float, default=0.5, help="the student's reversal guard (-1: off)")
    ap.add_argument("--min-gain", type=float, default=0.0, help="abstain only if it gains this many points on dev")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--title", default="quality")
    ap.add_argument("--append", action="store_true", help="append the tables to BENCHMARKS.md")
    args = ap.parse_args()
    zed = [] if args.no_zed else zed_sets(args.zed)  # checked before any training

    from nextedit.evaluate.quality import (
        calibrate,
        compare_to_baselines,
        markdown,
        merge_predictions,
        predict_all,
        quality,
        score_file,
        student_contenders,
        verdict,
    )
    from nextedit.evaluate.running import import_markdown, markdown_inputs
    from nextedit.train.export import read_metadata

    t0 = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    train_info: dict = {}
    if args.train_config:
        from nextedit.train.config import load_config
        from nextedit.train.sft import train

        overrides = {"output_dir": str((args.out / "student").resolve()),
                     "data.train": str(args.train.resolve()) if args.train else None,
                     "data.eval": str(args.dev.resolve()), "base_model": args.base_model}
        cfg = load_config(args.train_config, **overrides)
        result = train(cfg)
        student = Path(result.exported["merged"])
        train_info = {"steps": result.steps, "rows": result.train_rows, "tokens_per_s": result.tokens_per_s,
                      "seconds": round(result.seconds), "eval_loss": [result.eval_loss_before, result.eval_loss_after],
                      "method": result.method, "format": cfg.format}
        print("\n".join(result.lines()))
    elif args.student:
        student = args.student
    else:
        ap.error("give --train-config or --student")
    meta = read_metadata(student) or {}
    reversal = None if args.max_reversal < 0 else args.max_reversal
    contenders = student_contenders(str(student), base=args.base,
                                    base_options={"format": meta.get("format", "zeta1"),
                                                  "format_options": meta.get("format_options", {})},
                                    max_reversal=reversal)
    base = [c for c in contenders if c.label == "base"]
    contenders = [c for c in contenders if c.label != "base"]
    t_train = time.monotonic() - t0

    dev_file = predict_all(args.dev, args.out / "dev", contenders, limit=args.limit)
    dev = score_file(dev_file, args.out / "dev" / "scored.jsonl", max_reversal=reversal)
    threshold = calibrate(dev, min_gain=args.min_gain)
    print(f"abstention threshold chosen on {args.dev}: {threshold}")

    sets = [tuple(s.split("=", 1)) for s in args.test]
    for name, folder in zed:
        zed_file = args.out / f"{name}.jsonl"
        import_markdown(markdown_inputs([folder]) or [], zed_file)  # a folder's README is no case
        sets.append((name, str(zed_file)))
    results: dict = {"student": str(student), "threshold": threshold, "max_reversal": reversal, "train": train_info,
                     "sets": {}}
    lines: list[str] = []
    order = ["student", "base", "noop", "propagate"]
    for name, path in sets:
        preds = predict_all(Path(path), args.out / name, contenders, limit=args.limit)
        examples = score_file(preds, args.out / name / "scored.jsonl", abstain_below=threshold, max_reversal=reversal)
        if base:
            limit = min(args.base_limit, args.limit or args.base_limit)
            base_preds = predict_all(Path(path), args.out / name / "base", base, limit=limit)
            merge_predictions(examples, score_file(base_preds, args.out / name / "base" / "scored.jsonl"))
        table = quality(examples)
        diffs = compare_to_baselines(table, "student", ["noop", "propagate"])
        results["sets"][name] = {"table": {k: v.row() for k, v in table.items()}, "diffs": diffs,
                                 "verdict": verdict("student", diffs)}
        lines += [f"**{name}** ({table['student'].examples if 'student' in table else 0} examples"
                  + (f", the base model on the first {table['base'].examples}" if "base" in table else "")
                  + f"; abstention threshold {threshold} from validation, reversal guard {reversal})", "",
                  markdown(table, order), "", verdict("student", diffs), ""]
    results["seconds"] = round(time.monotonic() - t0)
    results["train_seconds"] = round(t_train)
    (args.out / "quality.json").write_text(json.dumps(results, indent=2, default=str))
    text = "\n".join(lines)
    print(text)
    if args.append:
        extra = (f"student {student} ({json.dumps(train_info)}); total {results['seconds']} s, "
                 f"training {results['train_seconds']} s")
        append_section(f"quality: {args.title}", lines, extra=extra)


if __name__ == "__main__":
    main()
