"""Data-parallel training: start `nextedit train` on several processes or nodes (torchrun) and keep the ranks in step.

`nextedit train` with `[distributed] processes > 1` (or `nodes > 1`) starts torchrun on this node; each
worker runs `python -m nextedit.train.distributed`, which reads the resolved config from the environment
and runs the same `train()` under torch DDP (the TRL trainer's accelerate backend does the wrapping).
A run started from outside (torchrun, srun, accelerate launch) is recognised by `WORLD_SIZE`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import fields
from typing import Any

from nextedit.train.config import DistributedConfig, TrainConfig, TrainConfigError

#: The worker's resolved config (TrainConfig as JSON), set by the launcher for every process it starts.
CONFIG_ENV = "NEXTEDIT_TRAIN_CONFIG"


def world_size() -> int:
    """Processes in this run (1 when not started by a distributed launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def rank() -> int:
    """This process's global rank (0 when not distributed)."""
    return int(os.environ.get("RANK", "0") or 0)


def local_world_size() -> int:
    """Processes of this run on this node."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)


def is_worker() -> bool:
    """Whether this process was started by a distributed launcher (torchrun sets WORLD_SIZE)."""
    return "WORLD_SIZE" in os.environ


def resolved_backend(dist: DistributedConfig) -> str:
    """nccl or gloo ("auto": nccl where CUDA is available)."""
    if dist.backend != "auto":
        return dist.backend
    import torch

    return "nccl" if torch.cuda.is_available() else "gloo"


def check(dist: DistributedConfig) -> None:
    """Raise TrainConfigError (before any work) for a distributed setup this machine cannot run."""
    if dist.launcher == "external":
        if not is_worker():
            raise TrainConfigError("distributed.launcher = \"external\" but WORLD_SIZE is not set: start with "
                                   "torchrun (or srun / accelerate launch), or use launcher = \"torchrun\"")
        return
    if dist.world_size == 1 or is_worker():
        return
    backend = resolved_backend(dist)
    if backend == "nccl":
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if gpus == 0:
            raise TrainConfigError("distributed.backend = \"nccl\" needs CUDA GPUs; use backend = \"gloo\" on CPUs")
        if dist.processes > gpus:
            raise TrainConfigError(f"distributed.processes = {dist.processes} but this node has {gpus} GPU(s): "
                                   "one process per GPU")


def needs_launch(dist: DistributedConfig) -> bool:
    """Whether `train()` must start torchrun itself (more than one process, not already a worker)."""
    return dist.launcher == "torchrun" and dist.world_size > 1 and not is_worker()


def torchrun_command(dist: DistributedConfig) -> list[str]:
    """The torchrun command line that starts this node's workers."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(dist.nodes),
           "--nproc-per-node", str(dist.processes)]
    if dist.nodes == 1:
        cmd.append("--standalone")  # a local rendezvous on a free port
    else:
        cmd += ["--rdzv-backend", "c10d", "--rdzv-endpoint", str(dist.rendezvous), "--rdzv-id", dist.job_id]
    return [*cmd, "-m", "nextedit.train.distributed"]


def launch(config: TrainConfig, *, console: Any = None) -> Any:
    """Run training on this node's share of the processes; returns rank 0's TrainResult (from train.json)."""
    from nextedit.train.sft import TrainError, TrainResult

    dist = config.distributed
    check(dist)
    say = console.print if console is not None else (lambda *a, **k: None)
    backend = resolved_backend(dist)
    say(f"data-parallel: {dist.world_size} processes ({dist.processes} per node x {dist.nodes} nodes, {backend})")
    config.output_dir.mkdir(parents=True, exist_ok=True)
    summary = config.output_dir / "train.json"
    started = summary.stat().st_mtime_ns if summary.exists() else None
    env = {**os.environ, CONFIG_ENV: config.model_dump_json()}
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // dist.processes)))
    run = subprocess.run(torchrun_command(dist), env=env, check=False)
    if run.returncode != 0:
        raise TrainError(f"data-parallel training failed (torchrun exit {run.returncode}); the workers' errors "
                         "are above")
    if not summary.exists() or summary.stat().st_mtime_ns == started:
        # Another node than rank 0's without a shared output_dir: rank 0's node holds the results.
        return TrainResult(output_dir=str(config.output_dir), base_model=str(config.base_model),
                           method=config.method, distributed={"world_size": dist.world_size, "backend": backend,
                                                              "results": "on the node of rank 0"})
    saved = json.loads(summary.read_text(encoding="utf-8"))
    return TrainResult(**{f.name: saved[f.name] for f in fields(TrainResult) if f.name in saved})


def _parameter_digests(model: Any) -> dict[str, str]:
    import torch

    out = {}
    for name, param in sorted(model.named_parameters(), key=lambda item: item[0]):
        t = param.detach().to("cpu").contiguous()
        h = hashlib.sha256(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        out[name] = h.hexdigest()
    return out


def _combine(digests: dict[str, str]) -> str:
    return hashlib.sha256("".join(digests.values()).encode()).hexdigest()


def weights_digest(model: Any) -> str:
    """sha256 over every parameter's name, dtype, shape and bytes (tied weights once): equal iff the weights are."""
    return _combine(_parameter_digests(model))


def same_weights_on_all_ranks(model: Any) -> list[str]:
    """Every rank's weights digest (rank order); raises TrainError on all ranks when they differ."""
    import torch.distributed as torch_dist

    from nextedit.train.sft import TrainError

    mine = _parameter_digests(model)
    every: list[Any] = [None] * torch_dist.get_world_size()
    torch_dist.all_gather_object(every, mine)
    digests = [_combine(d) for d in every]
    if len(set(digests)) != 1:
        differ = [name for name in mine if len({d.get(name) for d in every}) > 1]
        raise TrainError(f"data-parallel ranks ended with different weights ({len(differ)} of {len(mine)} "
                         f"parameters differ, first {differ[:1]}): "
                         + ", ".join(f"rank {i} {d[:12]}" for i, d in enumerate(digests)))
    return digests


def any_rank(flag: bool, device: Any) -> bool:
    """True on every rank when `flag` is true on at least one (so all ranks stop at the same step)."""
    import torch
    import torch.distributed as torch_dist

    t = torch.tensor([1 if flag else 0], device=device)
    torch_dist.all_reduce(t, op=torch_dist.ReduceOp.MAX)
    return bool(t.item())


def worker_main() -> int:
    """One torchrun worker: train with the config in $NEXTEDIT_TRAIN_CONFIG; rank 0 prints progress."""
    from nextedit.train.base_models import BaseModelError
    from nextedit.train.sft import TrainError, train

    config = TrainConfig.model_validate_json(os.environ[CONFIG_ENV])
    console = None
    if rank() == 0:
        from rich.console import Console

        console = Console(stderr=True)
    try:
        train(config, console=console)
    except (TrainError, BaseModelError) as exc:
        print(f"error: rank {rank()}: {exc}", file=sys.stderr)
        return 1
    import torch.distributed as torch_dist

    if torch_dist.is_initialized():
        torch_dist.barrier()  # the others wait until rank 0 has exported and written train.json
        torch_dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(worker_main())
