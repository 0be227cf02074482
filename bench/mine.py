"""Benchmark `nextedit mine` on a generated repository of 1,000+ commits.

Usage: .venv/bin/python bench/mine.py [--commits 1200] [--files 30] [--samples 3] [--no-append]
Builds a git repository with `git fast-import` (synthetic Python modules edited by renames, new
functions with call sites, line edits, deletions and lock-file bumps), then mines it with one worker
and with one worker per CPU, each in its own process. Reports commits/s, examples/s and peak RSS (of the
main process, and of its whole process tree: workers and git, sampled every 50 ms), and
the ratio to a baseline measured in the same run: `git log -p` over the same commits (what just
reading the history costs). Wall times on a shared machine swing with its load, so CPU times (user + system
of the whole process tree: mining workers and git) are reported beside them, and the ratio to `git log -p`
is also given by CPU time. `--baseline-src DIR` mines once more (1 worker) with another checkout's `src`
(e.g. the main branch) in the same run, interleaved, to report the speed-up and check the output is identical.
Appends a section to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import append_section, markdown_table, print_rows

WORDS = ("order", "price", "total", "item", "user", "cart", "tax", "rate", "count", "value", "name", "index",
         "offset", "limit", "page", "score", "weight", "delta", "buffer", "cache", "token", "event", "state")


def _ident(rng: random.Random) -> str:
    return "_".join(rng.sample(WORDS, rng.choice((1, 2))))


def _function(rng: random.Random, name: str) -> list[str]:
    args = sorted({_ident(rng) for _ in range(rng.randint(1, 3))})
    lines = [f"def {name}({', '.join(args)}):\n", f'    """Compute the {name.replace("_", " ")}."""\n']
    local = args[0]
    for _ in range(rng.randint(2, 8)):
        target = _ident(rng)
        op = rng.choice("+-*")
        lines.append(f"    {target} = {local} {op} {rng.randint(1, 99)}\n")
        local = target
    lines += [f"    return {local}\n", "\n", "\n"]
    return lines


class History:
    """Synthetic files edited commit by commit, written as a git fast-import stream."""

    def __init__(self, n_files: int, seed: int):
        self.rng = random.Random(seed)
        self.files: dict[str, list[str]] = {}
        for i in range(n_files):
            lines = [f'"""Module {i}."""\n', "\n", "\n"]
            for _ in range(self.rng.randint(4, 12)):
                lines += _function(self.rng, f"{_ident(self.rng)}_{self.rng.randint(0, 999)}")
            self.files[f"pkg/mod_{i:03d}.py"] = lines
        self.files["requirements.lock"] = ["a==1\n"]

    def _functions(self, path: str) -> list[int]:
        return [i for i, line in enumerate(self.files[path]) if line.startswith("def ")]

    def edit(self) -> list[str]:
        rng = self.rng
        code = [p for p in self.files if p.endswith(".py")]
        path = rng.choice(code)
        lines = self.files[path]
        kind = rng.choices(["rename", "new_function", "modify", "delete", "typo", "lock"], [3, 3, 4, 1, 2, 1])[0]
        if kind == "rename":
            words = sorted({w for line in lines for w in line.replace("(", " ").replace(")", " ").split()
                            if w.isidentifier() and "_" in w})
            if words:
                old = rng.choice(words)
                new = old + "_" + rng.choice(WORDS)
                self.files[path] = [line.replace(old, new) for line in lines]
        elif kind == "new_function":
            name = f"{_ident(rng)}_{rng.randint(1000, 9999)}"
            at = rng.choice(self._functions(path) or [len(lines)])
            self.files[path] = lines[:at] + _function(rng, name) + lines[at:]
            caller = rng.choice(code)
            body = [i for i, line in enumerate(self.files[caller]) if line.startswith("    return ")]
            if body:
                i = rng.choice(body)
                self.files[caller].insert(i, f"    extra = {name}({rng.randint(1, 9)})\n")
            return [path, caller]
        elif kind == "modify":
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(len(lines))
                if " = " in lines[i]:
                    lines[i] = lines[i].rstrip("\n") + f" + {rng.randint(1, 9)}\n"
        elif kind == "delete":
            starts = self._functions(path)
            if len(starts) > 3:
                k = rng.randrange(len(starts) - 1)
                del lines[starts[k]:starts[k + 1]]
        elif kind == "typo":
            i = rng.randrange(len(lines))
            lines[i] = lines[i].replace("Compute", "Computes")
        else:
            self.files["requirements.lock"].append(f"p{rng.randint(0, 10**6)}==1\n")
            return ["requirements.lock"]
        return [path]

    def stream(self, n_commits: int) -> bytes:
        out: list[bytes] = []
        t0 = 1_700_000_000

        def commit(i: int, paths: list[str]) -> None:
            out.append(f"commit refs/heads/main\nmark :{i + 1}\n"
                       f"committer Bench <b@example.com> {t0 + 3600 * i} +0000\n".encode())
            msg = f"change {i}\n".encode()
            out.append(b"data %d\n%s" % (len(msg), msg))
            if i:
                out.append(f"from :{i}\n".encode())
            for p in paths:
                data = "".join(self.files[p]).encode()
                out.append(f"M 100644 inline {p}\ndata {len(data)}\n".encode() + data + b"\n")

        commit(0, list(self.files))
        for i in range(1, n_commits):
            commit(i, sorted(set(self.edit())))
        return b"".join(out)


def build_repo(dest: Path, n_commits: int, n_files: int) -> float:
    subprocess.run(["git", "init", "-q", "-b", "main", str(dest)], check=True)
    data = History(n_files, seed=0).stream(n_commits)
    t0 = time.perf_counter()
    subprocess.run(["git", "-C", str(dest), "fast-import", "--quiet"], input=data, check=True)
    return time.perf_counter() - t0


_CHILD = r"""
import json, resource, sys, time
from nextedit.mine.config import MineConfig
from nextedit.mine.miner import mine
repo, out, workers, samples = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
limit = int(sys.argv[5]) or None
t0 = time.perf_counter()
s = mine(repo, out, MineConfig(workers=workers, samples_per_commit=samples, max_commits=limit), progress=False)
wall = time.perf_counter() - t0
print(json.dumps({"wall": wall, "commits": s.mined + s.skipped, "mined": s.mined, "examples": s.examples,
                  "failed": s.failed, "rss_main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _tree_rss_mb(root: int) -> float:
    """Resident memory of a process and all its descendants (Linux /proc), in MB."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, grew = {root}, True
    while grew:
        new = {pid for pid, ppid in parents.items() if ppid in tree and pid not in tree}
        tree |= new
        grew = bool(new)
    total_kb = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb / 1024


def _children_cpu() -> float:
    """CPU seconds of the finished child processes of this process (and of theirs)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_mine(repo: Path, out: Path, workers: int, samples: int, max_commits: int = 0, src: Path | None = None
             ) -> dict:
    """Mine in a child process (importing nextedit from `src` when given); sample the RSS of its whole
    process tree (workers, git) every 50 ms; CPU time of that tree."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    cpu0 = _children_cpu()
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(repo), str(out), str(workers), str(samples),
                             str(max_commits)],
                            stdout=subprocess.PIPE, text=True, env=env)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, _tree_rss_mb(proc.pid))
        time.sleep(0.05)
    stdout = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        raise SystemExit(f"mining failed (exit {proc.returncode})")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["rss_tree_mb"] = peak
    result["cpu"] = _children_cpu() - cpu0
    return result


def git_log_time(repo: Path, commits: int, repeats: int = 3) -> tuple[float, float]:
    """(wall, CPU) seconds of `git log -p` over the first `commits` commits: the fastest of `repeats` runs."""
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        c0, t0 = _children_cpu(), time.perf_counter()
        subprocess.run(["git", "-C", str(repo), "log", "-p", "--no-merges", "--histogram",
                        f"--max-count={commits}", "HEAD"], check=True, stdout=subprocess.DEVNULL)
        best = min(best, (time.perf_counter() - t0, _children_cpu() - c0))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commits", type=int, default=1200)
    ap.add_argument("--files", type=int, default=30)
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--repo", type=Path, help="a real repository instead of the generated one: a git bundle "
                    "(cloned into a temporary folder) or a repository folder; --commits limits the commits mined")
    ap.add_argument("--baseline-src", type=Path, help="another checkout's src folder to mine with too (1 worker)")
    ap.add_argument("--no-append", action="store_true", help="print only, do not append to BENCHMARKS.md")
    args = ap.parse_args()
    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        if args.repo is None:
            import_s = build_repo(repo, args.commits, args.files)
            what = f"{args.commits} commits over {args.files} Python files (fast-import {import_s:.1f} s)"
            limit = 0
        else:
            if args.repo.is_file():
                subprocess.run(["git", "clone", "-q", str(args.repo), str(repo)], check=True)
            else:
                repo = args.repo
            what = f"{args.repo.name}, first {args.commits} commits of `git log`"
            limit = args.commits
        git_log_s, git_log_cpu = git_log_time(repo, args.commits)
        old = None
        if args.baseline_src is not None:
            old = run_mine(repo, Path(tmp) / "old.jsonl", 1, args.samples, limit, src=args.baseline_src)
        one = run_mine(repo, Path(tmp) / "one.jsonl", 1, args.samples, limit)
        many = run_mine(repo, Path(tmp) / "many.jsonl", cpus, args.samples, limit)
        same = (Path(tmp) / "one.jsonl").read_bytes() == (Path(tmp) / "many.jsonl").read_bytes()
        same_old = old is not None and (Path(tmp) / "one.jsonl").read_bytes() == (Path(tmp) / "old.jsonl").read_bytes()

    git_rate = args.commits / git_log_s
    git_cpu_rate = args.commits / git_log_cpu
    rows = [
        ("repository", what),
        ("baseline: `git log -p` over the same commits (fastest of 3)",
         f"{git_log_s:.2f} s wall, {git_log_cpu:.2f} s CPU ({git_rate:.0f} commits/s wall, {git_cpu_rate:.0f} per CPU-s)"),
    ]
    runs = [("mine, 1 worker", one), (f"mine, {cpus} workers", many)]
    if old is not None:
        runs.insert(0, ("mine, 1 worker, --baseline-src", old))
    for label, r in runs:
        rows += [
            (f"{label}: wall", f"{r['wall']:.2f} s ({r['wall'] / git_log_s:.1f}x git log -p)"),
            (f"{label}: commits/s", (f"{r['commits'] / r['wall']:.1f} "
                                    f"({100 * r['commits'] / r['wall'] / git_rate:.1f} % of git log -p; goal 20 %)")),
            (f"{label}: CPU (process tree)", (f"{r['cpu']:.2f} s = {r['commits'] / r['cpu']:.1f} commits per CPU-s "
                                             f"({100 * r['commits'] / r['cpu'] / git_cpu_rate:.1f} % of git log -p "
                                             "by CPU time)")),
            (f"{label}: examples/s", (f"{r['examples'] / r['wall']:.1f} ({r['examples']} examples, "
                                     f"{r['failed']} failed, {r['mined']} commits mined)")),
            (f"{label}: peak RSS main process / whole process tree", (f"{r['rss_main_mb']:.0f} MB / "
                                                                    f"{r['rss_tree_mb']:.0f} MB")),
        ]
    rows.append((f"speed-up {cpus} workers / 1 worker", f"{one['wall'] / many['wall']:.2f}x"))
    rows.append(("same output with 1 and N workers", "yes" if same else "NO"))
    if old is not None:
        rows.append(("speed-up over --baseline-src (1 worker): wall / CPU",
                     f"{old['wall'] / one['wall']:.2f}x / {old['cpu'] / one['cpu']:.2f}x"))
        rows.append(("same output as --baseline-src", "yes" if same_old else "NO"))
    print_rows(rows)
    if not args.no_append:
        append_section("mine", markdown_table(rows),
                       note=f" (wall time; each mining run in its own process, {args.samples} samples per commit)")


if __name__ == "__main__":
    main()
