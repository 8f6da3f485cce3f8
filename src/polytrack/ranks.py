"""The ranks of a distributed job: one run for all of them, recorded by rank 0.

In a job of several processes (`RANK`/`WORLD_SIZE` and the other variables of
`polytrack.settings.RANK_VARIABLES`), every process calls `polytrack.init()`, as the same
script runs on each rank. What each rank does, and why:

- **One run id, agreed without talking.** `shared_run_id` derives it from what every
  rank of the job finds the same in its environment and no other job does
  (`Distributed.job`): torchrun's `TORCHELASTIC_RUN_ID`, Slurm's job and step, Open MPI's
  PMIx namespace, else the master's address and port completed by the parent process
  that started the ranks on one machine. `POLYTRACK_RUN_ID` wins over all of them: it
  is the way out where the rule cannot tell (ranks on several machines started by a
  launcher that names no job). A collective (`torch.distributed.broadcast_object_list`)
  would be exact, but `init()` often comes before `init_process_group`, and a tracker
  must not join, delay or break the job's collectives.
- **Rank 0 owns the run**: it creates it (or continues it, as `POLYTRACK_RUN_ID` always
  does), with the snapshot, the logs, params, metrics and the final status: `init()`
  there is `init()` anywhere, under the shared id. Its system metrics are labelled
  `system/rank0/...`, beside the other ranks'.
- **The other ranks never create the run**, nor write into its journal, which has one
  writer (`polytrack.store.journal`). `init()` returns a `RankRun`: every log call is a
  no-op (the usual `if rank == 0:` around logging is not needed), but its system sampler
  records the rank's own machine and process as `system/rank<N>/...` into a *side
  journal* of the run, `runs/<id>/ranks/<N>/`, of the journal's own format, so kill -9
  safety and damage reporting hold there as in the run's journal. Readers merge side
  journals into the run (`polytrack.store.reader`). A rank that starts before rank 0
  created the run writes its side journal all the same, without waiting: readers and
  rank 0 see a run directory with no events log of its own as no run yet.
- **Metrics from every rank** on request (`init(log_all_ranks=True)` or
  `POLYTRACK_LOG_ALL_RANKS=1`): rank N's go into its side journal as `rank<N>/<key>`;
  rank 0's stay as they are, the run's own.
- `finish()` on another rank closes its side journal and touches the run's directory
  (readers that index a finished run once see that it changed); the run's status is
  rank 0's alone.

Not covered: side journals are not synced to a backend (the local store has them), and a
rank's console output is not captured.
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from polytrack.errors import InvalidInputError, StoreError, TrackingWarning
from polytrack.models import FINAL_STATUSES
from polytrack.run import Collaborator, DisabledRun, _noop_log_metrics, exit_status
from polytrack.settings import Distributed, Settings
from polytrack.store.journal import EVENTS_RE, RANKS_DIR
from polytrack.store.liveness import hostname, process_started
from polytrack.store.writer import JournalWriter, LogMetrics, merge_named

__all__ = ["RankRun", "join_job", "shared_run_id"]

_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def shared_run_id(distributed: Distributed) -> str:
    """The id of the run that every rank of `distributed`'s job records into: eight
    base-36 characters, like an id `init()` draws at random, made of a hash of the job.

    Where the environment names no job (`Distributed.same_parent`), the job is completed
    by this machine's name and the parent process (its pid and start time): ranks that
    one process started here (`torch.multiprocessing.spawn`) agree, and the next job on
    the same master port does not reuse the id.

    Example:
        >>> shared_run_id(Distributed(rank=1, world_size=2, job="slurm:4242.0"))
        'tjv2pov8'
    """
    job = distributed.job
    if distributed.same_parent:
        parent = os.getppid()
        try:
            born = f"{process_started(parent):.2f}"
        except Exception:  # no /proc and no psutil answer: the pid alone, then
            born = "?"
        job = f"{job}:{hostname()}:{parent}:{born}"
    digest = hashlib.blake2b(job.encode(), digest_size=8, person=b"polytrack.rank").digest()
    number = int.from_bytes(digest, "big")
    chars = []
    for _ in range(8):
        number, digit = divmod(number, 36)
        chars.append(_ID_ALPHABET[digit])
    return "".join(chars)


def join_job(settings: Settings) -> Settings:
    """`settings` with the run id of its distributed job: `POLYTRACK_RUN_ID` where set,
    else `shared_run_id`. Settings outside a distributed job come back as they are."""
    if settings.distributed is None or settings.run_id is not None:
        return settings
    return settings.evolve(run_id=shared_run_id(settings.distributed))


class RankRun(DisabledRun):
    """What `init()` returns on a rank other than 0 of a distributed job.

    It stands for the shared run (`id`, `dir`) but records none of the loop's calls
    (params, tags, media, artifacts, and metrics unless `Settings.log_all_ranks`): rank
    0 records the run. Its system sampler records this rank's samples, labelled
    `system/rank<N>/`, into the run's side journal `ranks/<N>/`. See the module's
    docstring for why.

    Example:
        >>> run = polytrack.init()          # on rank 1 of a torchrun job
        >>> run.rank, run.world_size
        (1, 2)
        >>> run.log_metrics({"loss": 0.5})  # recorded by rank 0's run only
    """

    def __init__(
        self,
        *,
        run_id: str,
        directory: Path,
        settings: Settings,
        rank: int,
        world_size: int,
        writer: JournalWriter | None,
        on_finish: Callable[[DisabledRun], None] | None = None,
    ) -> None:
        super().__init__(on_finish=on_finish)
        self.id = run_id
        self.project = settings.project
        self.name = settings.run_name or run_id
        self.dir = directory  # the run's; this rank's own files are in ranks/<rank>/
        self._run_dir = directory
        self.settings = settings
        self.rank = rank
        self.world_size = world_size
        self.status = "running"
        self.attempt = writer.attempt if writer is not None else 0
        self._writer = writer
        self._pid = os.getpid()
        self._collaborators: list[Collaborator] = []
        if writer is not None and settings.log_all_ranks:
            self.log_metrics = _labelled(writer.make_log_metrics(), f"rank{rank}/")

    @classmethod
    def start(
        cls, settings: Settings, *, on_finish: Callable[[DisabledRun], None] | None = None
    ) -> RankRun:
        """Open this rank's side journal in the run's directory and start its sampler.

        Never creates the run itself, and never fails for the store: where the side
        journal cannot be made, it warns once (`TrackingWarning`) and records nothing.
        A rank with nothing to record (no system capture, no `log_all_ranks`) makes no
        side journal at all.

        Raises:
            InvalidInputError: `settings` is not that of a rank other than 0 with a run id.
        """
        distributed, run_id = settings.distributed, settings.run_id
        if distributed is None or distributed.rank == 0 or run_id is None:
            raise InvalidInputError("RankRun.start() needs a rank other than 0, and a run id")
        directory = settings.home / "runs" / run_id
        side = directory / RANKS_DIR / str(distributed.rank)
        writer = None
        if settings.capture_system or settings.log_all_ranks:  # else no files, no threads
            writer = _open_side_journal(settings, run_id, side, distributed.rank)
        run = cls(
            run_id=run_id,
            directory=directory,
            settings=settings,
            rank=distributed.rank,
            world_size=distributed.world_size,
            writer=writer,
            on_finish=on_finish,
        )
        if writer is not None and settings.capture_system:
            run._start_sampler(writer)
        return run

    def _start_sampler(self, writer: JournalWriter) -> None:
        from polytrack.capture.snapshot import QUIET_START
        from polytrack.capture.system import SystemSampler, rank_prefix

        try:
            sampler = SystemSampler(
                writer.write_sample,
                interval=self.settings.system_interval,
                run_id=f"{self.id}-rank{self.rank}",
                delay=QUIET_START,  # stop() cuts it short: one sample at least
                prefix=rank_prefix(self.rank),
            )
            sampler.start()
        except Exception as exc:
            writer.warn_once(
                "capture-system", f"polytrack could not start capturing system: {exc!r}"
            )
            return
        self._collaborators.append(sampler)

    def __repr__(self) -> str:
        return f"<polytrack.RankRun {self.id} rank {self.rank}/{self.world_size} {self.status}>"

    def finish(self, status: str = "succeeded", *, message: str | None = None) -> None:
        """Stop this rank's sampler and close its side journal; a second call does
        nothing. `status` and `message` are checked, not recorded: the run's status is
        rank 0's."""
        if status not in FINAL_STATUSES:
            raise InvalidInputError(
                f"status must be one of {', '.join(sorted(FINAL_STATUSES))}; got {status!r}"
            )
        if self.finished or os.getpid() != self._pid:
            return
        self.status, self.finished = status, True
        self.log_metrics = _noop_log_metrics
        while self._collaborators:
            collaborator = self._collaborators.pop()
            try:
                collaborator.stop()
            except Exception as exc:  # the journal must be closed regardless
                self._warn(f"polytrack could not stop {collaborator!r}: {exc!r}")
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
                # A finished run is read again by the index when its directory changed
                # (`LocalStore.refresh`); the side journal is a directory further down.
                now = time.time()
                os.utime(self._run_dir, (now, now))
            except OSError as exc:
                writer.warn_once("store", f"polytrack could not close {writer.directory}: {exc}")
        if self._on_finish is not None:
            self._on_finish(self)

    def hand_over(self, owner: str) -> None:
        """As `finish()`: the run is rank 0's to hand over."""
        self.finish()

    def detach_after_fork(self) -> None:
        """In a forked child: never write into the parent's side journal."""
        self._collaborators = []
        self._writer = None
        self._pid = -1
        self.log_metrics = _noop_log_metrics
        self.status, self.finished = "stopped", True

    def __enter__(self) -> RankRun:
        return self

    def __exit__(self, *exc_info: object) -> None:
        exc = exc_info[1] if len(exc_info) > 1 else None
        status, message = exit_status(exc if isinstance(exc, BaseException) else None)
        self.finish(status, message=message)

    def _warn(self, message: str) -> None:
        if self._writer is not None:
            self._writer.warn_once("stop", message, stacklevel=3)


def _open_side_journal(
    settings: Settings, run_id: str, side: Path, rank: int
) -> JournalWriter | None:
    """The started writer of a new attempt of the side journal `side`; None, after a
    warning, where it cannot be made: training goes on whatever the disk says."""
    writer: JournalWriter | None = None
    try:
        writer = JournalWriter.create(
            side,
            run_id=run_id,
            attempt=_next_attempt(side),
            fsync_interval=settings.fsync_interval,
            heartbeat_interval=settings.heartbeat_interval,
            first_segment_bytes=settings.first_segment_bytes,
            max_segment_bytes=settings.max_segment_bytes,
            speedups=settings.speedups,
        )
        writer.start()
    except (StoreError, OSError, RuntimeError) as exc:
        if writer is not None:
            writer.close()
        warnings.warn(
            f"polytrack cannot write rank {rank}'s journal in {side} ({exc}); "
            "this rank records nothing",
            TrackingWarning,
            stacklevel=4,
        )
        return None
    return writer


def _next_attempt(side: Path) -> int:
    """One past every attempt of a side journal (a restarted job's rank writes anew)."""
    try:
        names = os.listdir(side)
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise StoreError(f"cannot read {side}: {exc.strerror or exc}") from exc
    return 1 + max((int(m.group(1)) for m in map(EVENTS_RE.match, names) if m), default=-1)


def _labelled(log: LogMetrics, prefix: str) -> LogMetrics:
    """`log` with each key (and `epoch`) labelled by `prefix`: a rank's own series."""

    def log_metrics(
        metrics: Mapping[str, Any] | None = None,
        step: int | None = None,
        epoch: int | None = None,
        **named: Any,
    ) -> None:
        if named:
            metrics = merge_named(metrics, named)
        if not isinstance(metrics, Mapping):
            log(metrics, step)  # raises, naming what came instead of a mapping
            return
        # A key that is no string is passed as it is, for the writer to refuse by name.
        labelled = {
            (prefix + key if isinstance(key, str) else key): value for key, value in metrics.items()
        }
        if epoch is not None:
            labelled[prefix + "epoch"] = epoch
        log(labelled, step)

    return log_metrics
