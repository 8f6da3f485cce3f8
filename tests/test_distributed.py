"""Distributed jobs: every rank calls `init()`, one run is recorded, rank 0 owns it, and the
other ranks' system metrics land in side journals that readers merge (docs/distributed.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterable
from pathlib import Path

import pytest

import polytrack
from polytrack.errors import InvalidInputError, TrackingWarning
from polytrack.ranks import RankRun, shared_run_id
from polytrack.settings import Distributed, Settings, distributed_from_env
from polytrack.store.local import LocalStore

# Only the sampler: no git, code or logs to wait for, in-process or in a subprocess.
_SYSTEM_ONLY = {
    "git": False,
    "code": False,
    "environment": False,
    "hardware": False,
    "logs": False,
    "system": True,
}
_RANK_NAMES = (
    "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID",
    "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS",
    "SLURM_STEP_ID", "SLURM_JOB_ID", "PMIX_NAMESPACE", "POLYTRACK_RUN_ID",
)  # fmt: skip


def _environ(home: Path, rank: int, **extra: str) -> dict[str, str]:
    """A rank's environment as torch's `env://` launchers set it, on one machine."""
    return {
        "POLYTRACK_HOME": str(home),
        "POLYTRACK_CACHE_DIR": os.environ["POLYTRACK_CACHE_DIR"],
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": "2",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29511",
        **extra,
    }


def _system_keys(keys: Iterable[str], label: str) -> list[str]:
    return sorted(key for key in keys if key.startswith(f"system/{label}/"))


# -- settings: who is which rank --------------------------------------------------------


def test_rank_variables_are_read_into_settings() -> None:
    """RANK/WORLD_SIZE/LOCAL_RANK with torchrun's job id give the rank and the job."""
    settings = Settings.from_env(
        {
            "RANK": "3",
            "WORLD_SIZE": "4",
            "LOCAL_RANK": "1",
            "TORCHELASTIC_RUN_ID": "abc",
            "MASTER_ADDR": "node0",
            "MASTER_PORT": "29500",
        }
    )
    assert settings.distributed == Distributed(
        rank=3, world_size=4, local_rank=1, source="torch", job="torchelastic:abc:node0:29500"
    )
    assert settings.log_all_ranks is False
    assert Settings.from_env({"POLYTRACK_LOG_ALL_RANKS": "1"}).log_all_ranks is True


def test_other_launchers_and_their_jobs() -> None:
    """Open MPI and srun are read after torch's variables; each names its job."""
    mpi = distributed_from_env(
        {"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2", "PMIX_NAMESPACE": "ns7"}
    )
    assert (mpi.source, mpi.rank, mpi.job, mpi.same_parent) == ("mpi", 1, "pmix:ns7", False)  # type: ignore[union-attr]
    slurm = {"SLURM_PROCID": "2", "SLURM_NTASKS": "8", "SLURM_JOB_ID": "42", "SLURM_STEP_ID": "0"}
    found = distributed_from_env(slurm)
    assert (found.source, found.rank, found.world_size, found.job) == ("slurm", 2, 8, "slurm:42.0")  # type: ignore[union-attr]
    # A batch script has SLURM_NTASKS too, but is one process: no step, no ranks.
    assert distributed_from_env({**slurm, "SLURM_STEP_ID": ""}) is None
    both = distributed_from_env({**slurm, "RANK": "0", "WORLD_SIZE": "2"})
    assert (both.source, both.rank, both.job) == ("torch", 0, "slurm:42.0")  # type: ignore[union-attr]


def test_torchruns_default_rendezvous_id_names_no_job() -> None:
    """TORCHELASTIC_RUN_ID "none" (torchrun's default with --master-port) is no job's name:
    two such jobs on one master port must not share a run, so the parent completes it."""
    env = {"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    found = distributed_from_env({**env, "TORCHELASTIC_RUN_ID": "none"})
    assert (found.job, found.same_parent) == ("local:127.0.0.1:29500:2", True)  # type: ignore[union-attr]


def test_no_job_without_two_processes_or_with_bad_variables() -> None:
    """A world of one is no distributed job; a malformed rank is refused by name."""
    assert distributed_from_env({}) is None
    assert distributed_from_env({"RANK": "0", "WORLD_SIZE": "1"}) is None
    assert distributed_from_env({"RANK": "0"}) is None
    with pytest.raises(InvalidInputError, match="RANK must be a whole number"):
        distributed_from_env({"RANK": "first", "WORLD_SIZE": "2"})
    with pytest.raises(InvalidInputError, match="rank 2 is not within the world size 2"):
        distributed_from_env({"RANK": "2", "WORLD_SIZE": "2"})


# -- the shared run id ------------------------------------------------------------------


def test_shared_id_is_the_jobs_and_only_the_jobs() -> None:
    """Every rank of a job gets one id in polytrack's format; another job another one."""
    one = [shared_run_id(Distributed(rank=r, world_size=4, job="slurm:42.0")) for r in range(4)]
    assert len(set(one)) == 1
    assert len(one[0]) == 8 and one[0].isalnum() and one[0] == one[0].lower()
    assert shared_run_id(Distributed(rank=0, world_size=4, job="slurm:43.0")) != one[0]


_PRINT_ID = (
    "import os; from polytrack.ranks import shared_run_id; "
    "from polytrack.settings import distributed_from_env; "
    "print(shared_run_id(distributed_from_env(os.environ)))"
)


def test_ranks_started_by_one_parent_agree_and_the_next_job_does_not(tmp_path: Path) -> None:
    """Without a job id, the parent process completes the job: siblings agree, and a job
    of another parent on the same master port gets another run."""
    script = textwrap.dedent(
        f"""
        import os, subprocess, sys
        ids = []
        for rank in (0, 1):
            env = {{**os.environ, "RANK": str(rank), "WORLD_SIZE": "2",
                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29511"}}
            out = subprocess.run([sys.executable, "-c", {_PRINT_ID!r}], env=env,
                                 capture_output=True, text=True, check=True)
            ids.append(out.stdout.strip())
        print(" ".join(ids))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in _RANK_NAMES}
    first, second = (
        subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        ).stdout.split()
        for _ in range(2)
    )
    assert first[0] == first[1] and second[0] == second[1]
    assert first[0] != second[0]


# -- one run, recorded by rank 0 --------------------------------------------------------

_WORKER = f"""
import os, sys, polytrack
run = polytrack.init(project="ddp", params={{"lr": 0.1}}, capture={_SYSTEM_ONLY!r})
rank = int(os.environ["RANK"])
for step in range(3):
    run.log_metrics({{"loss": 1.0 / (step + 1) + rank}}, step=step)
run.log_params({{"rank": rank}})
run.log_tags([f"rank{{rank}}"])
print(type(run).__name__, run.id, flush=True)
run.finish()
"""


def _run_ranks(tmp_path: Path, home: Path, *, order: str, **extra: str) -> list[str]:
    """Run rank 0 and rank 1 as real processes (together, or one after the other), as one
    parent launches them; returns what each printed."""
    worker = tmp_path / "worker.py"
    worker.write_text(_WORKER)
    base = {k: v for k, v in os.environ.items() if k not in _RANK_NAMES}
    envs = [{**base, **_environ(home, rank, **extra)} for rank in (0, 1)]
    if order == "together":
        procs = [
            subprocess.Popen(
                [sys.executable, str(worker)], env=env, stdout=subprocess.PIPE, text=True
            )
            for env in envs
        ]
        outs = [proc.communicate(timeout=120)[0] for proc in procs]
        assert [proc.returncode for proc in procs] == [0, 0]
        return outs
    ranks = (1, 0) if order == "rank1-first" else (0, 1)
    outs = {}
    for rank in ranks:
        done = subprocess.run(
            [sys.executable, str(worker)], env=envs[rank], capture_output=True, text=True,
            timeout=120, check=True,
        )  # fmt: skip
        outs[rank] = done.stdout
    return [outs[0], outs[1]]


def test_two_ranks_record_one_run_with_each_ranks_system_metrics(
    tmp_path: Path, home: Path
) -> None:
    """Two ranks started together: one run, rank 0's params, tags and metrics, and the
    system metrics of both, labelled with the rank."""
    outs = _run_ranks(tmp_path, home, order="together")
    kinds = [out.split()[0] for out in outs]
    ids = {out.split()[1] for out in outs}
    assert kinds == ["Run", "RankRun"] and len(ids) == 1
    (view,) = polytrack.runs(home=home)
    assert view.id in ids
    assert (view.status, view.project, view.attempts) == ("succeeded", "ddp", 1)
    assert view.params == {"lr": 0.1, "rank": 0}
    assert view.tags == ("rank0",)
    assert view.history("loss")[1].tolist() == [1.0, 0.5, pytest.approx(1 / 3)]
    assert not [k for k in view.metrics if not k.startswith("system/") and k != "loss"]
    rank0, rank1 = _system_keys(view.metrics, "rank0"), _system_keys(view.metrics, "rank1")
    assert "system/rank0/proc.rss" in rank0 and "system/rank1/proc.rss" in rank1
    assert [k.replace("rank0", "rank1") for k in rank0] == rank1
    assert not [k for k in view.metrics if k.startswith("system/") and "/rank" not in k]
    assert view.history("system/rank1/proc.rss")[0].size >= 1
    assert view.damaged == ()
    side = home / "runs" / view.id / "ranks" / "1"
    assert sorted(p.name for p in side.iterdir() if p.name.startswith("events"))


def test_a_rank_that_starts_first_creates_no_run(tmp_path: Path, home: Path) -> None:
    """Rank 1 done before rank 0 starts: no run is seen until rank 0 creates it, then
    one run of one attempt holds rank 1's samples too."""
    worker = tmp_path / "worker.py"
    worker.write_text(_WORKER)
    base = {k: v for k, v in os.environ.items() if k not in _RANK_NAMES}
    run = [sys.executable, str(worker)]
    subprocess.run(run, env={**base, **_environ(home, 1)}, check=True, timeout=120)
    assert polytrack.runs(home=home) == []
    (run_dir,) = (home / "runs").iterdir()
    assert [p.name for p in run_dir.iterdir()] == ["ranks"]
    subprocess.run(run, env={**base, **_environ(home, 0)}, check=True, timeout=120)
    (view,) = polytrack.runs(home=home)
    assert (view.id, view.status, view.attempts) == (run_dir.name, "succeeded", 1)
    assert "system/rank1/proc.rss" in view.metrics and "system/rank0/proc.rss" in view.metrics


# -- in one process: the ranks' order is the test's to choose ----------------------------


def test_other_ranks_log_nothing_and_do_not_set_the_status(home: Path) -> None:
    """A RankRun takes every call and records none; its finish() leaves the status to
    rank 0's run, whatever it is given."""
    rank0 = polytrack.init(capture=_SYSTEM_ONLY, environ=_environ(home, 0))
    rank1 = polytrack.init(capture=_SYSTEM_ONLY, environ=_environ(home, 1), reinit="create_new")
    assert isinstance(rank1, RankRun) and isinstance(rank1, polytrack.DisabledRun)
    assert (rank1.id, rank1.rank, rank1.world_size) == (rank0.id, 1, 2)
    rank1.log_metrics({"loss": 9.0}, step=0)
    polytrack.log_metrics({"acc": 0.5})  # the current run: rank 1's
    rank1.log_params({"lr": 1})
    rank1.log_tags("x")
    rank1.log_outputs(score=1)
    rank1.finish("failed", message="rank 1 failed")
    rank0.log_metrics({"loss": 1.0}, step=0)
    rank0.finish()
    view = polytrack.get_run(rank0.id, home=home)
    assert view.status == "succeeded"
    assert (view.params, view.tags, view.message) == ({}, (), None)
    assert view.history("loss")[1].tolist() == [1.0]
    assert "acc" not in view.metrics and "rank1/loss" not in view.metrics
    assert "system/rank1/proc.rss" in view.metrics


def test_log_all_ranks_labels_each_ranks_metrics(home: Path) -> None:
    """With log_all_ranks, rank 1's metrics (and epoch) are its own series, `rank1/...`;
    rank 0's stay the run's."""
    rank0 = polytrack.init(capture=False, environ=_environ(home, 0), log_all_ranks=True)
    environ = _environ(home, 1, POLYTRACK_LOG_ALL_RANKS="1")
    rank1 = polytrack.init(capture=False, environ=environ, reinit="create_new")
    rank1.log_metrics({"loss": 2.0}, step=0)
    rank1.log_metrics(loss=1.5, epoch=1)
    rank0.log_metrics({"loss": 1.0}, step=0)
    with pytest.raises(polytrack.InvalidMetricError, match="value must be a real number"):
        rank1.log_metrics({"loss": "high"})
    rank1.finish()
    rank0.finish()
    view = polytrack.get_run(rank0.id, home=home)
    assert sorted(view.metrics) == ["loss", "rank1/epoch", "rank1/loss"]
    assert view.history("rank1/loss")[0].tolist() == [0, 1]
    assert view.history("rank1/loss")[1].tolist() == [2.0, 1.5]
    assert view.history("rank1/epoch")[1].tolist() == [1.0]
    assert view.history("loss")[1].tolist() == [1.0]


def test_a_rank_finishing_after_the_run_is_indexed_is_read_again(home: Path) -> None:
    """Rank 0 done and its run indexed as finished; rank 1's later samples are not lost
    to the index: its finish() marks the run's directory changed."""
    rank0 = polytrack.init(capture=False, environ=_environ(home, 0))
    rank1 = polytrack.init(capture=_SYSTEM_ONLY, environ=_environ(home, 1), reinit="create_new")
    rank0.finish()
    assert "system/rank1/proc.rss" not in polytrack.runs(home=home)[0].metrics
    rank1.finish()
    (view,) = polytrack.runs(home=home)
    assert "system/rank1/proc.rss" in view.metrics


def test_rank_zero_alone_labels_its_system_metrics_only_in_a_job(home: Path) -> None:
    """Outside a distributed job system metrics keep their plain `system/` keys."""
    with polytrack.init(capture=_SYSTEM_ONLY, dir=home, environ={}) as run:
        pass
    keys = polytrack.get_run(run.id, home=home).metrics
    assert "system/proc.rss" in keys and not _system_keys(keys, "rank0")


def test_polytrack_run_id_names_the_shared_run(home: Path) -> None:
    """POLYTRACK_RUN_ID wins over the derived id, on every rank; a rank with nothing to
    record writes nothing."""
    rank0 = polytrack.init(capture=False, environ=_environ(home, 0, POLYTRACK_RUN_ID="job42"))
    rank1 = polytrack.init(
        capture=False, environ=_environ(home, 1, POLYTRACK_RUN_ID="job42"), reinit="create_new"
    )
    assert rank0.id == rank1.id == "job42"
    rank1.finish()
    rank0.finish()
    assert [r.id for r in polytrack.runs(home=home)] == ["job42"]
    # Nothing to record on rank 1 (no sampler, no metrics): no side journal at all.
    assert not (home / "runs" / "job42" / "ranks").exists()


def test_a_forked_child_of_a_rank_writes_nothing(home: Path) -> None:
    """A DataLoader worker forked from rank 1 records nothing into rank 1's side journal,
    and its finish() closes nothing of the parent's."""
    rank0 = polytrack.init(capture=False, environ=_environ(home, 0), log_all_ranks=True)
    environ = _environ(home, 1, POLYTRACK_LOG_ALL_RANKS="1")
    rank1 = polytrack.init(capture=False, environ=environ, reinit="create_new")
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            rank1.log_metrics({"loss": 9.0}, step=5)
            rank1.finish()
            code = 0 if rank1.status == "stopped" else 2
        finally:
            os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    rank1.log_metrics({"loss": 2.0}, step=0)
    rank1.finish()
    rank0.finish()
    view = polytrack.get_run(rank0.id, home=home)
    assert view.history("rank1/loss")[1].tolist() == [2.0]


# -- readers, on damaged or strange side files -------------------------------------------


def test_damaged_side_journal_is_reported_under_its_path(home: Path) -> None:
    """A side journal whose events log is garbage costs its own points only, reported as
    `ranks/1/...`; the run and rank 0's metrics read as before."""
    rank0 = polytrack.init(capture=False, environ=_environ(home, 0), log_all_ranks=True)
    rank1 = polytrack.init(
        capture=False, environ=_environ(home, 1), reinit="create_new", log_all_ranks=True
    )
    rank1.log_metrics({"loss": 2.0}, step=0)
    rank1.finish()
    rank0.log_metrics({"loss": 1.0}, step=0)
    rank0.finish()
    assert "rank1/loss" in polytrack.get_run(rank0.id, home=home).metrics
    side = home / "runs" / rank0.id / "ranks" / "1"
    events = side / "events-000.log"
    events.write_bytes(b"\xff" * 64 + b"\x13" * (events.stat().st_size - 64))
    (side.parent / "notarank").mkdir()
    (side.parent / "7").write_text("a file, not a journal")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", polytrack.DamagedRecordsWarning)
        view = polytrack.get_run(rank0.id, home=home)
        assert view.history("loss")[1].tolist() == [1.0]
    assert view.status == "succeeded" and "rank1/loss" not in view.metrics
    assert view.damaged and all(message.startswith("ranks/1/") for message in view.damaged)


def test_side_segments_are_cached_under_their_own_names(home: Path) -> None:
    """The index keeps sealed side segments apart from the run's same-named ones."""
    rank0 = polytrack.init(capture=False, environ=_environ(home, 0), log_all_ranks=True)
    rank1 = polytrack.init(
        capture=False, environ=_environ(home, 1), reinit="create_new", log_all_ranks=True
    )
    rank1.log_metrics({"loss": 2.0}, step=0)
    rank0.log_metrics({"loss": 1.0}, step=0)
    rank1.finish()
    rank0.finish()
    with LocalStore.open(home) as store:
        read = store.read_run(rank0.id)
        assert "ranks/1/points-000-000-00000.seg" in read.sealed
        assert "points-000-000-00000.seg" in read.sealed
        store.index_run(rank0.id)
        again = store.read_run(rank0.id)  # from the kept totals this time
    assert again.info.metrics["rank1/loss"].last == 2.0
    assert again.info.metrics["loss"].last == 1.0


def test_a_side_journal_that_cannot_be_written_warns_and_records_nothing(home: Path) -> None:
    """Rank 1 cannot make its journal (a file where its folder goes): it warns once and
    goes on, recording nothing; the job is not stopped."""
    settings = Settings.from_env(_environ(home, 1, POLYTRACK_RUN_ID="blocked"))
    (home / "runs" / "blocked").mkdir(parents=True)
    (home / "runs" / "blocked" / "ranks").write_text("in the way")
    with pytest.warns(TrackingWarning, match="cannot write rank 1's journal"):
        run = polytrack.init(settings=settings, capture=_SYSTEM_ONLY)
    assert isinstance(run, RankRun)
    run.log_metrics({"loss": 1.0})
    run.finish()


_KILLED_RANK = """
import sys, polytrack
run = polytrack.init(capture=False, log_all_ranks=True)
run.log_metrics({"loss": 2.0}, step=0)
run.log_metrics({"loss": 1.5, "acc": 0.5}, step=1)
print("logged", run.id, flush=True)
sys.stdin.read()  # killed here
"""


def test_a_rank_killed_with_sigkill_keeps_what_it_logged(home: Path) -> None:
    """kill -9 of rank 1 right after its log calls returned: its points are in the run,
    read without damage, beside rank 0's."""
    base = {k: v for k, v in os.environ.items() if k not in _RANK_NAMES}
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RANK],
        env={**base, **_environ(home, 1, TORCHELASTIC_RUN_ID="job-k9")},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    assert line[0] == "logged"
    rank0 = polytrack.init(capture=False, environ=_environ(home, 0, TORCHELASTIC_RUN_ID="job-k9"))
    assert rank0.id == line[1]
    rank0.log_metrics({"loss": 1.0}, step=0)
    rank0.finish()
    view = polytrack.get_run(rank0.id, home=home)
    assert view.history("rank1/loss")[1].tolist() == [2.0, 1.5]
    assert view.history("rank1/acc")[0].tolist() == [1]
    assert view.history("loss")[1].tolist() == [1.0]
    assert (view.status, view.damaged) == ("succeeded", ())


def test_resume_on_every_rank_continues_that_run(home: Path) -> None:
    """init(resume=<name>) on every rank of a new job: rank 1's metrics go into the run
    rank 0 continues, not into a side journal of the job's hashed id, read by no one."""
    first = polytrack.init(name="pretrain", capture=False, environ=_environ(home, 0))
    first.finish()
    job = {"TORCHELASTIC_RUN_ID": "second-job"}
    rank1 = polytrack.init(
        resume="pretrain", capture=False, log_all_ranks=True, environ=_environ(home, 1, **job)
    )
    rank1.log_metrics({"loss": 2.0}, step=5)
    rank1.finish()
    rank0 = polytrack.init(resume="pretrain", capture=False, environ=_environ(home, 0, **job))
    rank0.finish()
    assert rank1.id == rank0.id == first.id
    assert polytrack.get_run(first.id, home=home).history("rank1/loss")[1].tolist() == [2.0]
