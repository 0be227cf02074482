"""Secret scrubbing: recall on the planted-secret corpus, false positives on clean code and real repositories.

The baseline is the scrubber as it was before issue 16 (`git show BASE:src/nextedit/teacher/scrub.py`,
run in the same process): it read every text as `prompt.txt`. Both scrub the same texts; recall is
per planted secret, false positives are findings in the clean corpus (should be 0) and findings per
1,000 lines of real repositories (git bundles under ../shared/data/repos, tests included; most
findings there are test credentials, so this is an upper bound on false positives).

    python bench/scrub.py [--base REV] [--repos DIR] [--no-append]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import types
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(ROOT / "bench")]

from _report import append_section, markdown_table
from secret_corpus import CLEAN, PLANTED, all_secrets

from nextedit.privacy.scrub import Scrubber


def baseline_module(rev: str) -> types.ModuleType | None:
    """The scrubber module at `rev` (before the privacy package), or None when git cannot show it."""
    try:
        source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:src/nextedit/teacher/scrub.py"],
                                check=True, capture_output=True, text=True).stdout
    except subprocess.CalledProcessError:
        return None
    module = types.ModuleType("scrub_baseline")
    sys.modules["scrub_baseline"] = module
    exec(compile(source, "scrub_baseline.py", "exec"), module.__dict__)  # noqa: S102 - our own file at REV
    return module


def repo_files(repos: Path, limit: int) -> list[tuple[str, str]]:
    """(path, text) of up to `limit` text files from each git bundle, cloned to a temporary folder."""
    out: list[tuple[str, str]] = []
    tmp = Path(tempfile.mkdtemp(prefix="scrub-bench-"))
    for bundle in sorted(repos.glob("*.bundle")):
        dest = tmp / bundle.stem
        subprocess.run(["git", "clone", "-q", str(bundle), str(dest)], check=True, capture_output=True)
        files = [p for p in sorted(dest.rglob("*")) if p.is_file() and ".git" not in p.parts
                 and p.stat().st_size < 200_000]
        for p in files[:limit]:
            try:
                out.append((f"{bundle.stem}/{p.relative_to(dest)}", p.read_text(encoding="utf-8")))
            except (UnicodeDecodeError, OSError):
                continue
    return out


def measure(scrub_file, label: str, texts: list[tuple[str, str]]) -> dict[str, object]:
    """Recall on the corpus, clean-corpus false positives, repository findings and speed for one scrubber."""
    missed: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for f in PLANTED:
        out = scrub_file(f.text, f.path)
        for kind, value in f.secrets:
            total[f.file_type] += 1
            if value in out:
                missed[f.file_type] += 1
    fp_clean = sum(1 for path, text in CLEAN if scrub_file(text, path) != text)
    lines = sum(t.count("\n") for _, t in texts)
    t0 = time.perf_counter()
    changed = found = 0
    for path, text in texts:
        out = scrub_file(text, path)
        if out != text:
            changed += 1
            found += out.count("<SECRET_")
    seconds = time.perf_counter() - t0
    n = sum(total.values())
    return {"label": label, "recall": (n - sum(missed.values())) / n, "missed": missed, "total": total,
            "fp_clean": fp_clean, "repo_findings": found, "repo_files_changed": changed, "repo_lines": lines,
            "repo_files": len(texts), "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default="7c8eeb7", help="git revision of the baseline scrubber")
    ap.add_argument("--repos", type=Path, default=ROOT.parent.parent / "shared" / "data" / "repos")
    ap.add_argument("--files-per-repo", type=int, default=150)
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args()

    texts = repo_files(args.repos, args.files_per_repo) if args.repos.is_dir() else []
    results = []
    base = baseline_module(args.base)
    if base is not None:
        results.append(measure(lambda text, path: base.Scrubber().scrub(text), f"before (`{args.base}`, baseline)",
                               texts))
    results.append(measure(lambda text, path: Scrubber().scrub(text, path=path), "now (real path)", texts))

    secrets = all_secrets()
    kinds, types_ = {k for _, k, _ in secrets}, {t for t, _, _ in secrets}
    ref = results[0]
    rows = []
    for r in results:
        per_kloc = 1000 * r["repo_findings"] / max(r["repo_lines"], 1)
        speed = r["repo_lines"] / r["seconds"] if r["seconds"] else 0
        rows.append((r["label"], f"{100 * r['recall']:.1f}%", f"{r['fp_clean']}/{len(CLEAN)}",
                     f"{per_kloc:.2f}", f"{r['repo_files_changed']}/{r['repo_files']}",
                     f"{speed:,.0f}", f"{speed / (ref['repo_lines'] / ref['seconds']):.2f}" if ref["seconds"] else "–"))
    lines = markdown_table(rows, ("scrubber", "planted secrets scrubbed", "clean files changed",
                                  "repo findings / 1k lines", "repo files changed", "lines/s", "x baseline speed"),
                           "lrrrrrr")
    missed_now = results[-1]["missed"]
    by_type = ", ".join(f"{t} {results[-1]['total'][t] - missed_now[t]}/{results[-1]['total'][t]}"
                        for t in sorted(results[-1]["total"]))
    base_missed = ", ".join(f"{t} {n}" for t, n in sorted(ref["missed"].items())) if base is not None else "–"
    lines += ["", (f"Corpus: {len(secrets)} planted secrets of {len(kinds)} kinds in {len(PLANTED)} files of "
                  f"{len(types_)} file types (tests/secret_corpus.py); clean corpus: {len(CLEAN)} files. Now, by "
                  f"file type: {by_type}. Missed by the baseline, by file type: {base_missed}."),
              (f"Repositories: {len(texts)} files, {ref['repo_lines']:,} lines from {args.repos.name}/*.bundle "
              f"(up to {args.files_per_repo} files each, tests included: most findings there are test credentials "
              "of HTTP and auth libraries, so findings/1k lines bounds the false-positive rate from above).")]
    print("\n".join(lines))
    if not args.no_append:
        append_section("scrub (planted secrets, false positives)", lines)


if __name__ == "__main__":
    main()
