"""Benchmark the local engine against the Ray engine on the same pipelines: throughput, peak memory, overhead.

Usage: .venv/bin/python bench/engine.py [--examples 100000] [--teacher-examples 2000] [--nodes 1,4,16]
                                        [--workdir DIR] [--no-append]

Two pipelines, each run once per engine in a fresh subprocess (Ray in local mode on this machine's CPUs):
  cpu      validate -> predict (noop) -> score over --examples synthetic examples (bench/runner.py's records)
  teacher  the teacher stage over --teacher-examples examples against tests/llm_server.py (a scripted local
           OpenAI-compatible server answering after 20 ms), 16 requests in flight per process
Reports wall time, examples/s, the ratio ray/local (same run), the peak RSS of the driver and the peak
summed RSS of its worker processes (sampled every 0.2 s), and the engine overhead per record
((ray - local) / records). Then projects wall time on N nodes from the measured per-record cost, with
its assumptions written beside it. Appends a section to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _report import append_section, markdown_table
from runner import generate

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
ASSUMPTIONS = ("Projected wall time for 1,000,000 records on N nodes of 16 cores (assumptions: the per-record "
               "core-seconds measured here on Ray; 80% of cores busy; 10 s cluster start; shards spread evenly; "
               "the driver's join of parts (~1 s per GB) and, for the teacher, the provider's rate limit are not "
               "the bottleneck; a teacher slot waiting on the server counts as busy, so that row is an upper "
               "bound):")


def _tree_rss_mb(root: int) -> float:
    """Summed RSS (MB) of every descendant process of `root` (not root itself)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            parents[int(entry)] = int(stat[1])
            rss[int(entry)] = int(stat[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        for child, parent in parents.items():
            if parent == pid:
                total += rss.get(child, 0)
                todo.append(child)
    return total / 1e6


def measure(pipeline: str, engine: str, src: Path, work: Path) -> dict:
    """Run one pipeline with one engine in this process; return seconds, records and memory."""
    from nextedit.pipeline import Step, get_stage, run_pipeline

    peak = [0.0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            peak[0] = max(peak[0], _tree_rss_mb(os.getpid()))

    threading.Thread(target=sample, daemon=True).start()
    if engine == "ray":
        import ray

        ray.init(address="local", include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(TESTS)])}})
    server = None
    if pipeline == "cpu":
        steps = [Step(get_stage("validate")(), work / f"{engine}.valid.jsonl"),
                 Step(get_stage("predict")({"provider": "noop"}), work / f"{engine}.pred.jsonl"),
                 Step(get_stage("score")(), work / f"{engine}.scored.jsonl")]
    else:
        sys.path.insert(0, str(TESTS))
        from llm_server import Fault, LLMServer, default_responder

        server = LLMServer(lambda api, body: Fault.delay(0.02, default_responder(api, body))).__enter__()
        steps = [Step(get_stage("teacher")({"provider": f"openai-compatible:{server.openai_url}#m",
                                            "max_tokens": 20, "client": {"cache": False}}),
                      work / f"{engine}.taught.jsonl", concurrency=16)]
    t0 = time.perf_counter()
    summaries = run_pipeline(steps, input=src, force=True, cache=False, progress=False, engine=engine)
    seconds = time.perf_counter() - t0
    stop.set()
    if server is not None:
        server.__exit__(None, None, None)
    return {"pipeline": pipeline, "engine": engine, "seconds": seconds, "records": summaries[0].processed
            + summaries[0].failed, "written": summaries[-1].written,
            "driver_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "workers_mb": peak[0]}


def run_child(pipeline: str, engine: str, src: Path, work: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(TESTS), str(ROOT / "bench")]),
           "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.run([sys.executable, __file__, "--child", pipeline, engine, str(src), str(work)],
                          capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{pipeline}/{engine} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=100_000)
    ap.add_argument("--teacher-examples", type=int, default=2000)
    ap.add_argument("--nodes", default="1,4,16")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="nextedit-bench-engine-"))
    work.mkdir(parents=True, exist_ok=True)
    rows, results = [], {}
    for pipeline, n in (("cpu", args.examples), ("teacher", args.teacher_examples)):
        src = work / f"{pipeline}.in.jsonl"
        generate(src, n)
        for engine in ("local", "ray"):
            r = results[pipeline, engine] = run_child(pipeline, engine, src, work)
            print(json.dumps(r), file=sys.stderr)
        local, ray = results[pipeline, "local"], results[pipeline, "ray"]
        assert local["written"] == ray["written"], (local, ray)
        for r in (local, ray):
            rows.append([pipeline, r["engine"], n, f"{r['seconds']:.1f}", f"{n / r['seconds']:,.0f}",
                         f"{r['seconds'] / local['seconds']:.2f}", f"{r['driver_mb']:.0f}", f"{r['workers_mb']:.0f}"])
        rows.append([pipeline, "overhead/record", "", f"{(ray['seconds'] - local['seconds']) / n * 1e3:.3f} ms",
                     "", "", "", ""])
    cores = os.cpu_count() or 1
    projection = []
    for pipeline, n in (("cpu", args.examples), ("teacher", args.teacher_examples)):
        ray = results[pipeline, "ray"]
        per_record_cpu_s = ray["seconds"] * cores / n  # all cores busy: core-seconds per record on Ray
        for nodes in (int(x) for x in args.nodes.split(",")):
            wall = 10 + 1_000_000 * per_record_cpu_s / (nodes * 16 * 0.8)
            projection.append([pipeline, nodes, f"{per_record_cpu_s * 1e3:.2f}", f"{wall / 60:,.1f}"])
    lines = [*markdown_table(rows, ("pipeline", "engine", "records", "seconds", "records/s", "ratio vs local",
                                    "driver peak MB", "workers peak MB"), "llrrrrrr"),
             "", ASSUMPTIONS, "",
             *markdown_table(projection, ("pipeline", "nodes", "core-ms per record", "minutes"), "lrrr")]
    print("\n".join(lines))
    if not args.no_append:
        append_section("Engines: local vs Ray (bench/engine.py)", lines,
                       note=" (wall time; Ray in local mode on this machine, shared and noisy)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(measure(sys.argv[2], sys.argv[3], Path(sys.argv[4]), Path(sys.argv[5]))))
    else:
        main()
