"""The simulated feedback loop at full size: does preference training on accepts/rejects raise acceptance?

Usage: nice -n 10 .venv/bin/python bench/feedback_sim.py [--repos /work/shared/data/repos] [--work DIR]
       [--student PATH] [--users 20] [--fast] [--no-append]

1. Mines examples from two groups of the `*.bundle` repositories (cloned into --work): the SFT repositories
   train the current student (SmolLM2-135M, full fine-tune, cached in --work and reused by a re-run with the
   same settings; --student PATH uses an existing student folder instead); the simulation repositories give
   the scripted users' examples.
2. `nextedit.feedback.simulate.run_loop`: every scripted user works through their examples against a real
   uvicorn `nextedit serve` with the student as its only arm (accepting predictions whose deltaChrF against
   the mined next edit is >= 50, rejecting the rest, 10% of decisions flipped, 5% left undecided); the event
   store is exported split by user (30% held out); KTO and DPO train from the student on the training users'
   records (LoRA, beta 0.1, lr 1e-4, --pref-steps steps of 2 rows); the new students are evaluated online (the
   held-out users on a server with sft / kto / dpo arms: acceptance = accepted / shown and accepted per
   request, and matches = shown predictions that match the mined edit, the accepts that are not noise;
   paired differences to the SFT arm with 95% bootstrap intervals over users) and offline
   (`feedback eval` metrics on the held-out users' records, paired against the recorded SFT answers).
Appends a section to BENCHMARKS.md (the SFT student's training time is reported apart from the loop's).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from _report import append_section, markdown_table

from nextedit.feedback.simulate import LoopConfig, Policy, run_loop
from nextedit.mine.config import MineConfig
from nextedit.mine.miner import mine
from nextedit.record import parse_example

SFT_REPOS = ("encode--httpx", "serde-rs--json", "sindresorhus--ky")
SIM_REPOS = ("pallets--itsdangerous", "spf13--cobra", "square--javapoet")
FORMAT_OPTIONS = {"editable_tokens": 64, "context_tokens": 96, "related_tokens": 0, "history_tokens": 96,
                  "history_events": 2, "diagnostics": False}
MINE = {"editable_tokens": 64, "context_tokens": 96}


def mined(repos: Path, names: tuple[str, ...], work: Path, commits: int, samples: int) -> list:
    """Examples mined from the newest `commits` commits of each named bundle (cloned once into `work`)."""
    out = []
    for name in names:
        bundle = repos / f"{name}.bundle"
        if not bundle.is_file():
            print(f"skipping {name}: no {bundle}", file=sys.stderr)
            continue
        clone = work / "repos" / name
        if not clone.exists():
            subprocess.run(["git", "clone", "-q", str(bundle), str(clone)], check=True)
        path = work / f"mined-{name}-{commits}x{samples}.jsonl"
        mine(clone, path, MineConfig(max_commits=commits, samples_per_commit=samples, workers=1, seed=0, **MINE),
             progress=False)
        out += [parse_example(line) for line in path.read_bytes().splitlines() if line.strip()]
    return out


def train_student(examples: list, work: Path, steps: int) -> tuple[Path, dict]:
    """SmolLM2-135M fully fine-tuned on the SFT examples (reused when the same config already ran)."""
    from nextedit.jsonl import write_examples
    from nextedit.train.config import TrainConfig
    from nextedit.train.sft import train

    data = work / "sft-train.jsonl"
    write_examples(data, examples)
    out = work / f"student-{steps}"
    config = TrainConfig.model_validate({
        "base_model": "smollm2-135m-instruct", "output_dir": str(out), "format": "zeta1",
        "format_options": FORMAT_OPTIONS, "method": "full",
        "data": {"train": str(data), "max_length": 512},
        "train": {"max_steps": steps, "batch_size": 2, "learning_rate": 1e-4, "packing": True,
                  "save_steps": steps, "eval_steps": steps, "logging_steps": max(steps // 4, 1), "warmup_ratio": 0.1},
        "export": {"merged": True, "adapter": False}})
    record = out / "train.json"
    if record.is_file() and (out / "merged" / "nextedit.json").is_file():
        saved = json.loads(record.read_text())
        if saved.get("config") == config.model_dump(mode="json"):
            return out / "merged", saved
    train(config)
    return out / "merged", json.loads(record.read_text())


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _ci(ci: list | tuple | None, scale: float = 100.0, digits: int = 1) -> str:
    return "" if not ci else f" [{scale * ci[0]:+.{digits}f}, {scale * ci[1]:+.{digits}f}]"


def matches(result, threshold: float) -> Counter:
    """Per arm: the held-out users' shown predictions that match the mined edit (deltaChrF >= `threshold`), i.e.
    the ones accepted before the policy's noise; the rest of the accepts are flipped decisions."""
    held = set(result.users["eval"])
    return Counter(it["arm"] for it in result.interactions
                   if it["user"] in held and it["shown"] and (it["match"] or 0.0) >= threshold)


def tables(result, threshold: float) -> list[str]:
    """The BENCHMARKS.md lines: online acceptance, offline metrics, training, timings."""
    on = result.online
    matched = matches(result, threshold)
    lines = [(f"Online: the {on['users']} held-out simulated users on each arm of a real server "
             "(paired: same users, same examples, same decision draws); `matches` = shown predictions with "
             f"deltaChrF >= {threshold:g} against the mined edit, the accepts that are not noise flips."), ""]
    rows = []
    for arm, a in on["arms"].items():
        diff = "–" if arm == on["baseline"] else (
            f"{100 * a['acceptance_diff']:+.1f} pts{_ci(a.get('acceptance_diff_ci'))}" if "acceptance_diff" in a
            else "–")
        per = "–" if arm == on["baseline"] else (
            f"{100 * a['accepted_per_request_diff']:+.1f} pts{_ci(a.get('accepted_per_request_diff_ci'))}")
        rows.append((arm, a["requests"], a["shown"], matched[arm], a["accepted"], _pct(a["acceptance"]), diff,
                     _pct(a["accepted_per_request"]), per))
    lines += markdown_table(rows, ("arm", "requests", "shown", "matches", "accepted", "acceptance",
                                   "vs sft [95% CI]", "accepted / request", "vs sft [95% CI]"), "lrrrrrrrr")
    off = result.offline
    if off:
        lines += ["", (f"Offline (`feedback eval` metrics): the held-out users' {off['records']} shown records "
                  f"({', '.join(f'{n} {k}' for k, n in off['outcomes'].items())}), each new student against the "
                  "recorded SFT answers."), ""]
        from nextedit.feedback.offline import METRICS

        rows = []
        for name, paired in off["paired"].items():
            for key, (_, label) in METRICS.items():
                d = paired.get(key)
                if d is None:
                    continue
                scale, digits = (1.0, 2) if key == "delta_chrf" else (1.0, 3)
                base = off["models"][off["current"]][key]["mean"]
                rows.append((name, label, f"{base:.{digits}f}", f"{d['mean'] + base:.{digits}f}",
                             f"{d['mean']:+.{digits}f}{_ci(d['ci'], scale, digits)}", d["records"], d["verdict"]))
        lines += markdown_table(rows, ("model", "metric", "sft", "new", "new - sft [95% CI]", "records",
                                       "verdict"), "llrrrrl")
    lines += ["", "Training (from the SFT student, LoRA r16, beta 0.1, lr 1e-4): "
              + "; ".join(f"{m}: {t['rows']} rows"
                          + (f" ({t['desirable']} desirable / {t['undesirable']} undesirable)" if m == "kto"
                             else f" ({t['pairs']} pairs)")
                          + f", {t['steps']} steps, loss {t['loss_first']:.3f} -> {t['loss_last']:.3f}"
                          for m, t in result.training.items()) + "."]
    lines += ["", "Export: " + "; ".join(result.export) + ".",
              "", "Seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in result.seconds.items()) + "."]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=Path, default=Path("/work/shared/data/repos"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/nextedit-feedback-sim"))
    parser.add_argument("--student", type=Path, default=None, help="an SFT student folder (skips SFT)")
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--sim-commits", type=int, default=40, help="commits mined per simulation repository "
                        "(two samples each)")
    parser.add_argument("--sft-steps", type=int, default=24)
    parser.add_argument("--pref-steps", type=int, default=8)
    parser.add_argument("--fast", action="store_true", help="a smoke run: few users, commits and steps")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    if args.fast:
        args.users, args.sim_commits, args.sft_steps, args.pref_steps = 6, 4, 2, 2
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    sim = mined(args.repos, SIM_REPOS, args.work, args.sim_commits, 2)
    sft_note = ""
    if args.student is None:
        sft = mined(args.repos, SFT_REPOS, args.work, 8 if args.fast else 60, 2)
        t1 = time.monotonic()
        student, saved = train_student(sft, args.work, args.sft_steps)
        sft_note = (f"SFT student: SmolLM2-135M full fine-tune, {saved['steps']} steps x 2 rows on "
                    f"{saved['train_rows']} rows from {', '.join(SFT_REPOS)} ({time.monotonic() - t1:.0f} s, "
                    "0 when reused from --work).")
    else:
        student = args.student
        record = student.parent / "train.json"
        saved = json.loads(record.read_text()) if record.is_file() else None
        sft_note = (f"SFT student: {student}" + (f" ({saved['base_model']}, {saved['method']} fine-tune, "
                                                  f"{saved['steps']} steps on {saved['train_rows']} rows)"
                                                  if saved else "") + ".")
    print(f"{len(sim)} simulation examples; student {student}", file=sys.stderr)
    loop = LoopConfig(users=args.users, eval_users=0.3, policy=Policy(), max_length=512,
                      predictor_options={"max_new_tokens": 96}, resamples=1000,
                      preference={"max_steps": args.pref_steps, "batch_size": 2, "learning_rate": 1e-4,
                                  "beta": 0.1})
    result = run_loop(sim, student, args.work / "loop", loop, say=lambda s: print(s, file=sys.stderr))
    total = time.monotonic() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    lines = [f"Simulation examples: {len(sim)} mined from {', '.join(SIM_REPOS)} (two samples per commit), "
             f"dealt to {args.users} scripted users ({len(result.users['eval'])} held out by the export's hash). "
             "Users accept a prediction whose deltaChrF against the mined next edit is >= 50, reject the rest, "
             "flip 10% of decisions and leave 5% undecided; the region then settles to the mined edit. "
             + sft_note + f" Whole run {total:.0f} s wall, {cpu:.0f} s CPU (this process, all threads).", "",
             *tables(result, loop.policy.accept_threshold)]
    print("\n".join(lines))
    (args.work / "result.json").write_text(json.dumps({"online": result.online, "offline": result.offline,
                                                       "training": result.training, "seconds": result.seconds,
                                                       "users": result.users, "interactions": result.interactions},
                                                      indent=2, default=str))
    if not args.no_append:
        append_section("feedback loop: KTO/DPO on simulated accepts and rejects", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
