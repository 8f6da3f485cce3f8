"""A tiny DDP job for `test_ddp.py`: each rank calls `polytrack.init()` and logs what a
training loop logs, as a script written for one process does, with no `if rank == 0`.

    python -m torch.distributed.run --standalone --nproc-per-node=2 ddp_job.py
    python ddp_job.py spawn PORT      # torch.multiprocessing.spawn, env:// set by hand
"""

import os
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import polytrack

# The system sampler only: its first sample comes at finish() at the latest.
CAPTURE = {
    "git": False,
    "code": False,
    "environment": False,
    "hardware": False,
    "logs": False,
    "system": True,
}


def train() -> None:
    run = polytrack.init(project="ddp", params={"lr": 0.1}, capture=CAPTURE)
    dist.init_process_group("gloo")  # env://: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = DistributedDataParallel(nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(rank)
    for step in range(5):
        x = torch.randn(8, 4, generator=generator)
        loss = ((model(x) - x.sum(1, keepdim=True)) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        run.log_metrics({"loss": loss, "rank": rank}, step=step)
    dist.barrier()
    # One write of a whole line: the ranks share the pipe, and a line under PIPE_BUF
    # bytes is never interleaved with another rank's.
    os.write(1, f"{type(run).__name__} {run.id} {rank}\n".encode())
    run.finish()
    dist.destroy_process_group()


def spawned(rank: int, port: int) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE="2",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    train()


if __name__ == "__main__":
    if sys.argv[1:2] == ["spawn"]:
        torch.multiprocessing.spawn(spawned, args=(int(sys.argv[2]),), nprocs=2)
    else:
        train()
