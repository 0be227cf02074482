"""A two-node Ray cluster on this machine (`ray start --head` plus `ray start --address`): a pipeline file with
`engine = "ray"` whose teacher step loses a worker process mid-run loses and duplicates nothing, and a rerun
makes no LLM request (the scripted server counts them)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from llm_server import Fault, LLMServer, default_responder
from test_runner import write_input

pytest.importorskip("ray")

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
RAY = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """Head and worker node, one CPU each, in the foreground (--block) so that ending them ends their processes."""
    tmp = tmp_path_factory.mktemp("ray")
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "RAY_AUTH_MODE": "disabled", "NEXTEDIT_LLM_CACHE": str(tmp / "llm.sqlite"), "HF_HUB_OFFLINE": "1"}
    common = ["--num-cpus=1", "--disable-usage-stats", "--block"]
    head = subprocess.Popen([RAY, "start", "--head", f"--port={port}", "--include-dashboard=false", *common],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"127.0.0.1:{port}"
    nodes = [head]
    try:
        _wait_nodes(address, env, 1)
        nodes.append(subprocess.Popen([RAY, "start", f"--address={address}", *common], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        _wait_nodes(address, env, 2)
        yield address, env
    finally:
        for proc in reversed(nodes):
            proc.send_signal(signal.SIGTERM)
        for proc in reversed(nodes):
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def _wait_nodes(address: str, env: dict[str, str], n: int) -> None:
    code = (f"import ray; ray.init(address={address!r}, log_to_driver=False); "
            "print(sum(1 for x in ray.nodes() if x['Alive']))")
    for _ in range(60):
        run = subprocess.run([sys.executable, "-c", code], check=False, env=env, capture_output=True, text=True,
                             timeout=120)
        if run.returncode == 0 and run.stdout.strip().splitlines()[-1:] == [str(n)]:
            return
        time.sleep(1)
    raise RuntimeError(f"the Ray cluster at {address} did not reach {n} nodes")


def _shard_workers() -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid,args"], check=True, capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "ray::run_shard" in line]


def _json_line(stdout: bytes):
    """The --json summary line (Ray may print its own lines on stdout too)."""
    return orjson.loads([x for x in stdout.splitlines() if x.startswith(b"[")][-1])


def test_killed_worker_loses_nothing_and_a_rerun_pays_nothing(cluster, tmp_path: Path) -> None:
    address, env = cluster
    n = 48
    write_input(tmp_path / "in.jsonl", n)

    def slow(api: str, body: dict):  # every answer takes a while: the kill lands mid-shard
        return Fault.delay(0.15, default_responder(api, body))

    with LLMServer(slow) as server:
        (tmp_path / "p.toml").write_text(
            f'input = "in.jsonl"\nengine = "ray"\nray_address = "{address}"\ncache = "cache.d/"\n'
            '[[stage]]\nname = "teacher"\noutput = "taught.jsonl"\nconcurrency = 2\n'
            f'config = {{provider = "openai-compatible:{server.openai_url}#m", max_tokens = 20, '
            'client = {cache = false}}\n'
            '[[stage]]\nname = "validate"\noutput = "out.jsonl"\n')
        cmd = [sys.executable, "-m", "nextedit", "pipeline", str(tmp_path / "p.toml"), "--json", "--no-progress"]
        run_env = {**env, "NEXTEDIT_RAY_SHARD_SIZE": "8"}
        driver = subprocess.Popen(cmd, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
        killed = None
        deadline = time.monotonic() + 240
        while killed is None and driver.poll() is None and time.monotonic() < deadline:
            workers = _shard_workers()
            if workers and server.count("/v1/chat/completions") >= 6:
                killed = workers[0]
                os.kill(killed, signal.SIGKILL)
            time.sleep(0.05)
        stdout, stderr = driver.communicate(timeout=300)
        assert driver.returncode == 0, stderr.decode()[-3000:]
        assert killed is not None, "the run ended before a worker could be killed"
        first = server.count("/v1/chat/completions")
        ids = [orjson.loads(line)["id"] for line in (tmp_path / "taught.jsonl").read_bytes().splitlines()]
        assert ids == [f"ex-{i}" for i in range(n)]  # nothing lost, nothing duplicated, input order
        assert first < n + 8  # at most the killed shard's in-flight requests were sent again
        summaries = _json_line(stdout)
        assert [s["engine"] for s in summaries] == ["ray", "ray"] and summaries[0]["written"] == n

        rerun = subprocess.run([*cmd, "--force"], check=False, env=run_env, capture_output=True, cwd=tmp_path,
                               timeout=300)
        assert rerun.returncode == 0, rerun.stderr.decode()[-3000:]
        assert server.count("/v1/chat/completions") == first  # every answer came from the cluster's cache
        again = _json_line(rerun.stdout)
        assert again[0]["from_cache"] == n
