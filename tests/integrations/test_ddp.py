"""A real torch DDP job of two CPU processes (gloo), each rank calling `polytrack.init()`:
one run, rank 0's metrics, both ranks' system metrics labelled (docs/distributed.md)."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import polytrack

# Only the jobs import torch: this process never does (its import would cost seconds,
# and leave torch's deprecated attributes to other tests' gc walks).
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="torch is not installed"
)

JOB = Path(__file__).with_name("ddp_job.py")
# A rank's variables that the test's own environment must not lend the job.
_JOB_VARIABLES = (
    "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID",
    "POLYTRACK_RUN_ID", "POLYTRACK_LOG_ALL_RANKS",
)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("launcher", ["torchrun", "spawn"])
def test_ddp_job_records_one_run(home: Path, launcher: str) -> None:
    """torchrun and torch.multiprocessing.spawn: exactly one run, its metrics from rank 0
    only, and system metrics from each rank under `system/rank<N>/`."""
    env = {k: v for k, v in os.environ.items() if k not in _JOB_VARIABLES}
    env.update(POLYTRACK_HOME=str(home), OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")
    if launcher == "torchrun":
        argv = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(JOB)]
    else:
        argv = [str(JOB), "spawn", str(_free_port())]
    done = subprocess.run(
        [sys.executable, *argv], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-4000:]
    lines = [line.split() for line in done.stdout.splitlines() if "Run " in line]
    printed = sorted(lines, key=lambda fields: fields[2])  # by rank
    assert [(kind, rank) for kind, _, rank in printed] == [("Run", "0"), ("RankRun", "1")]
    (view,) = polytrack.runs(home=home)
    assert {run_id for _, run_id, _ in printed} == {view.id}
    assert (view.status, view.project, view.attempts, view.params) == (
        "succeeded",
        "ddp",
        1,
        {"lr": 0.1},
    )
    steps, ranks = view.history("rank")
    assert steps.tolist() == [0, 1, 2, 3, 4] and ranks.tolist() == [0.0] * 5
    assert view.history("loss")[0].tolist() == [0, 1, 2, 3, 4]
    own = sorted(key for key in view.metrics if not key.startswith("system/"))
    assert own == ["loss", "rank"]
    for rank in (0, 1):
        assert f"system/rank{rank}/proc.rss" in view.metrics
        assert view.history(f"system/rank{rank}/proc.rss")[0].size >= 1
    assert not [k for k in view.metrics if k.startswith("system/") and "/rank" not in k]
    assert view.damaged == ()
