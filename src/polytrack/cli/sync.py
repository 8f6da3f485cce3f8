"""`polytrack sync`: ship runs to the backend, after the fact or alongside a live run; and
the home's background uploader.

For runs recorded offline, runs whose `finish()` could not wait for the server, runs of a
process killed in mid-sync, and, with `--watch`, as an uploader left running beside
training (`nohup polytrack sync --all --watch &`). Safe to run at any time, any number of
times: a run goes to a backend from one process at a time (the others skip it), and every
batch lands once.

Choosing runs: named ones, or `--all`, `--project P`, `--where EXPR` (the where-language of
`runs ls`). `--dry-run` says what would go (runs, points, bytes) without a connection, and
a choice that would create more than `CONFIRM_ABOVE` runs on the server is confirmed first
(`--yes`; refused without a terminal), so that a mistyped backend or a forgotten filter
never floods a team's server with a home's every experiment.

`--uploader` is what a `finish()` that could not wait starts in the background: it takes
the home's uploader lock (one uploader per home), sends the runs handed to it
(`polytrack.sync.uploader`) with backoff, and exits when none is left or after
`--retry-for` seconds (an hour by default). `--status` shows it and the runs left;
`--stop` stops it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any, Final

from polytrack.cli._context import Context
from polytrack.cli._format import format_duration, format_time, to_json
from polytrack.cli._parser import Parser, add_command
from polytrack.cli._snapshot import format_bytes
from polytrack.cli._table import Cell, Column, render
from polytrack.errors import (
    BackendAuthError,
    BackendUnavailableError,
    InvalidInputError,
    StoreError,
)

if TYPE_CHECKING:
    from polytrack.cli._parser import Subcommands
    from polytrack.models import RunInfo
    from polytrack.store.local import LocalStore
    from polytrack.sync.backends.base import Backend
    from polytrack.sync.backends.target import SyncTarget
    from polytrack.sync.engine import RunSync
    from polytrack.sync.uploader import UploaderLock

__all__ = ["CONFIRM_ABOVE", "UPLOADER_RETRY_FOR", "register", "sync"]

# More new runs than this on a server are confirmed first (`--yes` skips the question).
CONFIRM_ABOVE: Final = 5
# How long `polytrack sync` keeps retrying an unreachable server for a run.
RETRY_FOR: Final = 300.0
# How long the background uploader lives at most, however much is left.
UPLOADER_RETRY_FOR: Final = 3600.0  # = polytrack.sync.uploader.LIFETIME, kept cheap to import
# The uploader's longest wait between two tries of a server that fails.
_UPLOADER_BACKOFF: Final = 60.0


def register(commands: Subcommands, parent: Parser) -> None:
    """Add `sync` to the `polytrack` parser."""
    parser = add_command(
        commands,
        parent,
        "sync",
        help="send runs to the tracking server (MLflow, Polyaxon, ...)",
        description=(
            "Send runs in the local store to the backend: what they recorded since the last\n"
            "sync, their files and their status. The backend is --backend, else\n"
            "$POLYTRACK_BACKEND, else the config file's `backend`.\n\n"
            "examples:\n"
            "  polytrack sync 3f9a2c1b                   one run\n"
            "  polytrack sync --project mnist --dry-run  what would go: runs, points, bytes\n"
            "  polytrack sync --where \"tags has 'best'\"  the runs a query selects\n"
            "  polytrack sync --all                      every run with something to send\n"
            "  polytrack sync --all --watch              keep sending, also live runs (Ctrl-C)\n"
            "  polytrack sync --status                   the background uploader, runs left\n"
            "  polytrack sync --stop                     stop the background uploader\n\n"
            f"Creating more than {CONFIRM_ABOVE} runs on the server asks first (--yes skips\n"
            "the question; without a terminal it is refused). A finish() that could not wait\n"
            "for the server leaves the rest to the home's one background uploader\n"
            "(`polytrack sync --uploader`), which gives up after --retry-for seconds\n"
            f"({UPLOADER_RETRY_FOR:.0f} by default)."
        ),
    )
    parser.add_argument("runs", nargs="*", metavar="RUN", help="run ids, prefixes or names")
    parser.add_argument("--all", action="store_true", help="every run in the store")
    parser.add_argument("--project", metavar="P", help="only runs of project P")
    parser.add_dash_value_option(
        "--where",
        metavar="EXPR",
        help='only runs matching EXPR, as in `runs ls --where` ("params.lr < 0.1")',
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="list what would be sent (runs, points, bytes); send nothing, connect nowhere",
    )
    parser.add_argument(
        "--yes",
        action="store_true",
        help=f"create more than {CONFIRM_ABOVE} runs on the server without asking",
    )
    parser.add_argument(
        "--watch", action="store_true", help="keep going: send what runs add, until Ctrl-C"
    )
    parser.add_argument("--backend", metavar="URI", help="e.g. mlflow+http://host:5000")
    parser.add_argument(
        "--artifact-store", metavar="URL", help="an fsspec URL for artifacts (s3://bucket/p)"
    )
    parser.add_argument(
        "--interval", type=float, default=5.0, metavar="S", help="--watch: seconds between rounds"
    )
    parser.add_argument(
        "--retry-for",
        type=_seconds,
        default=None,
        metavar="S",
        help=(
            f"keep retrying an unreachable server this long before giving up on a run "
            f"(default {RETRY_FOR:.0f}); with --uploader, how long it lives at most "
            f"(default {UPLOADER_RETRY_FOR:.0f})"
        ),
    )
    parser.add_argument("--quiet", action="store_true", help="no progress, only problems")
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument(
        "--status",
        action="store_true",
        help="show the background uploader and the runs left for it (points, bytes)",
    )
    modes.add_argument("--stop", action="store_true", help="stop the background uploader")
    modes.add_argument(
        "--uploader",
        action="store_true",
        help="be the home's background uploader: send the runs handed to it, then exit",
    )
    parser.add_argument("--json", action="store_true", help="--status: print a JSON object")
    # The uploader lock that a finish() took for the uploader it starts (`uploader.claim`).
    parser.add_argument("--lock-fd", type=int, default=None, help=argparse.SUPPRESS)
    parser.set_defaults(handler=sync)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def sync(args: argparse.Namespace, context: Context) -> int:
    """Send the chosen runs; 0 when all are up to date, 1 when some are not."""
    from polytrack.settings import Settings
    from polytrack.store.local import LocalStore
    from polytrack.sync.backends.target import resolve_target

    if args.status:
        return _status(args, context)
    if args.json:
        raise InvalidInputError("--json goes with --status")
    if args.stop:
        return _stop(context)
    _check_choice(args)
    settings = Settings.from_env(context.environ).evolve(mode="online", home=context.home)
    if args.artifact_store:
        settings = settings.evolve(artifact_store=args.artifact_store)
    target = resolve_target(args.backend, settings, context.environ)
    if target is None:
        raise InvalidInputError(
            "no backend to sync to: pass --backend URI, set POLYTRACK_BACKEND, or set "
            "`backend` in the config file (see `polytrack sync --help`)"
        )
    if not (context.home / "runs").is_dir():
        context.note(f"there is no store at {context.home}")
        return 0
    if args.dry_run:
        with LocalStore.open(context.home) as store:
            return _dry_run(store, _choose(store, args), target.key, context)
    if args.uploader:
        return _upload(target, args, context)
    return _send(target, args, context)


def _send(target: SyncTarget, args: argparse.Namespace, context: Context) -> int:
    """Send the runs chosen on the command line: chosen, and agreed to, before the backend
    is opened, so that a refusal connects nowhere."""
    from polytrack.store.local import LocalStore

    with LocalStore.open(context.home) as store:
        infos = _choose(store, args)
        if not args.runs:
            _confirm(store, infos, target.key, args, context)
        backend = target.open_backend()
        artifact_store = target.open_store(context.environ)
        try:
            shipper = _Shipper(store, backend, target.key, artifact_store, args, context)
            if not args.watch:
                outcomes = [shipper.ship(info.id) for info in infos]
                if not args.runs:
                    outcomes += _ship_trashed(backend, target.key, artifact_store, args, context)
                return 0 if all(outcome in _SENT for outcome in outcomes) else 1
            while True:  # Ctrl-C ends it: main() turns that into exit code 130
                for info in infos:
                    shipper.ship(info.id)
                time.sleep(args.interval)
                infos = _choose(store, args)  # runs started since join in
        finally:
            if target.owned:
                backend.close()
            if artifact_store is not None:
                artifact_store.close()


def _ship_trashed(
    backend: Backend, key: str, artifact_store: Any, args: argparse.Namespace, context: Context
) -> list[str]:
    """Send what changed in the runs moved to the trash after they were sent to `key`:
    their `RunTrashed` event, so that the server deletes them too."""
    from polytrack.history.manage import trash_store
    from polytrack.sync.engine import state_path

    with trash_store(context.home) as trash:
        try:
            names = sorted(os.listdir(trash.runs_dir))
        except OSError:
            return []
        sent = [name for name in names if state_path(trash.run_dir(name), key).is_file()]
        shipper = _Shipper(trash, backend, key, artifact_store, args, context)
        return [shipper.ship(run_id) for run_id in sent]


def _check_choice(args: argparse.Namespace) -> None:
    by_filter = args.all or args.project is not None or args.where is not None
    if args.uploader:
        if args.runs or by_filter or args.dry_run or args.watch:
            raise InvalidInputError(
                "--uploader sends the runs handed to it: it takes no RUN, --all, --project, "
                "--where, --dry-run or --watch"
            )
    elif args.runs and by_filter:
        raise InvalidInputError(
            "name runs, or choose them with --all, --project, --where: not both"
        )
    elif not args.runs and not by_filter:
        raise InvalidInputError(
            "name the runs to send, or choose them with --all, --project P or --where EXPR"
        )


def _choose(store: LocalStore, args: argparse.Namespace) -> list[RunInfo]:
    """The runs named, or those --project and --where select (all with --all), oldest first."""
    if args.runs:
        ids = list(dict.fromkeys(store.resolve(ref) for ref in args.runs))
        return store.infos(ids)
    infos = store.query(project=args.project, where=args.where)
    return sorted(infos, key=lambda info: (info.created_at, info.id))


def _confirm(
    store: LocalStore,
    infos: Sequence[RunInfo],
    key: str,
    args: argparse.Namespace,
    context: Context,
) -> None:
    """Ask before creating more than CONFIRM_ABOVE runs on the server; raise if not agreed."""
    from polytrack.sync.engine import state_path

    if args.yes:
        return
    new = [info for info in infos if not state_path(store.run_dir(info.id), key).is_file()]
    if len(new) <= CONFIRM_ABOVE:
        return
    projects = sorted({info.project for info in new})
    shown = ", ".join(projects[:5]) + (", ..." if len(projects) > 5 else "")
    what = f"this would create {len(new)} runs at {key} (projects: {shown})"
    if not _interactive():
        raise InvalidInputError(
            f"{what}; pass --yes to send them, or choose fewer with --project or --where "
            "(--dry-run lists them)"
        )
    context.stderr.write(f"{what}. Send them? [y/N] ")
    context.stderr.flush()
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise InvalidInputError("not confirmed: nothing was sent")


def _interactive() -> bool:
    """Whether a person can answer a question on stdin."""
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, OSError, ValueError):  # closed, or replaced by a harness
        return False


# -- --dry-run and --status ------------------------------------------------------------------


def _dry_run(store: LocalStore, infos: Sequence[RunInfo], key: str, context: Context) -> int:
    """What `polytrack sync` would send: read from disk, no backend opened."""
    from polytrack.sync.engine import read_backlog

    rows: list[tuple[RunInfo, Any]] = []
    for info in infos:
        live = info.status == "running"
        try:
            backlog = read_backlog(store.run_dir(info.id), key, live=live)
        except (StoreError, OSError) as exc:
            context.note(f"{info.id}: cannot be read ({exc}); skipped")
            continue
        if backlog.up_to_date or (live and backlog.points == backlog.events == 0):
            continue
        rows.append((info, backlog))
    if rows:
        context.out(
            render(
                [
                    Column("id", [Cell(info.id) for info, _ in rows]),
                    Column("name", [Cell(info.name) for info, _ in rows], max_width=30),
                    Column("project", [Cell(info.project) for info, _ in rows], max_width=20),
                    Column("status", [Cell(info.status) for info, _ in rows]),
                    Column("new", [Cell("new" if b.new else "") for _, b in rows]),
                    Column("points", [Cell(f"{b.points:,}", True) for _, b in rows]),
                    Column("bytes", [Cell(format_bytes(b.bytes), True) for _, b in rows]),
                ]
            )
        )
    new = sum(1 for _, backlog in rows if backlog.new)
    points = sum(backlog.points for _, backlog in rows)
    size = sum(backlog.bytes for _, backlog in rows)
    context.note(
        f"would send {len(rows)} runs to {key} ({new} new there): {points:,} points, "
        f"about {format_bytes(size)}; nothing was sent"
    )
    return 0


def _status(args: argparse.Namespace, context: Context) -> int:
    """The home's uploader and the runs handed to it, with what each has left to send."""
    from polytrack.sync.engine import read_backlog
    from polytrack.sync.uploader import pending_runs, running_uploader

    home = context.home
    info = running_uploader(home)
    rows: list[dict[str, Any]] = []
    for pending in pending_runs(home):
        row: dict[str, Any] = {
            "run": pending.run_id,
            "backend": pending.backend,
            "since": pending.since,
            "points": None,
            "bytes": None,
            "new": None,
            "error": None,
        }
        directory = home / "runs" / pending.run_id
        if not directory.is_dir():
            continue  # deleted: the uploader forgets it
        try:
            # Handed off by its finish(): the journal is closed, every record final.
            backlog = read_backlog(directory, pending.backend, live=False)
        except (StoreError, OSError) as exc:
            row["error"] = str(exc)
        else:
            if backlog.up_to_date:
                continue  # sent meanwhile (`polytrack sync RUN`): the uploader forgets it
            row.update(points=backlog.points, bytes=backlog.bytes, new=backlog.new)
        rows.append(row)
    if args.json:
        context.out(
            to_json({"uploader": None if info is None else info.to_json(), "pending": rows})
        )
        return 0
    now = time.time()
    if info is None:
        context.out("uploader: none running")
    else:
        since = info.started_at
        running_for = format_duration(None if since is None else now - since)
        context.out(
            f"uploader: pid {info.pid}, sending to {info.backend or '?'} since "
            f"{format_time(since, seconds=True)} ({running_for})"
            + (f", gives up at {format_time(info.until, seconds=True)}" if info.until else "")
        )
    if not rows:
        context.out("pending: none")
        return 0
    points = sum(row["points"] or 0 for row in rows)
    size = sum(row["bytes"] or 0 for row in rows)
    context.out(f"pending: {len(rows)} runs, {points:,} points, {format_bytes(size)}")
    context.out(
        render(
            [
                Column("run", [Cell(row["run"]) for row in rows]),
                Column("backend", [Cell(row["backend"]) for row in rows], max_width=50),
                Column("points", [_count(row["points"]) for row in rows]),
                Column("bytes", [Cell(_size(row["bytes"]), True) for row in rows]),
                Column("since", [Cell(format_time(row["since"])) for row in rows]),
                Column(
                    "note", [Cell(row["error"] or ("new" if row["new"] else "")) for row in rows]
                ),
            ]
        )
    )
    return 0


def _count(value: int | None) -> Cell:
    return Cell("?" if value is None else f"{value:,}", True)


def _size(value: int | None) -> str:
    return "?" if value is None else format_bytes(value)


def _stop(context: Context) -> int:
    from polytrack.sync.uploader import pending_runs, stop_uploader

    info = stop_uploader(context.home)
    if info is None:
        context.note("no uploader is running")
        return 0
    left = len(pending_runs(context.home))
    context.note(
        f"stopped the uploader (pid {info.pid}); {left} runs left pending: "
        "`polytrack sync --status` lists them"
    )
    return 0


# -- the background uploader -----------------------------------------------------------------


class _Stopped(BaseException):
    """SIGTERM (`polytrack sync --stop`): end now; what is not recorded as sent goes again."""


@contextlib.contextmanager
def _stopped_by_sigterm() -> Iterator[None]:
    """Turn SIGTERM into `_Stopped` while the uploader works, in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Stopped

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _upload(target: SyncTarget, args: argparse.Namespace, context: Context) -> int:
    """Be the home's uploader: send its pending runs for the target until none is left, or
    the time is up; 0 when all went (or another uploader runs), 1 when some are left."""
    from polytrack.store.local import LocalStore
    from polytrack.sync.uploader import UploaderLock, running_uploader

    home, key = context.home, target.key
    bound = UPLOADER_RETRY_FOR if args.retry_for is None else args.retry_for
    until = time.time() + bound
    lock = None
    if args.lock_fd is not None:
        lock = UploaderLock.adopt(home, args.lock_fd, backend=key, until=until)
    if lock is None:
        lock = UploaderLock.acquire(home, backend=key, until=until)
    if lock is None:
        running = running_uploader(home)
        pid = f" (pid {running.pid})" if running is not None else ""
        context.note(f"an uploader runs already{pid}: it sends the runs handed to it")
        return 0
    try:
        context.note(
            f"{format_time(time.time(), seconds=True)} uploader (pid {os.getpid()}) for "
            f"{key}: sends the runs handed to it, for {format_duration(bound)} at most"
        )
        backend = target.open_backend()
        artifact_store = target.open_store(context.environ)
        try:
            with LocalStore.open(home) as store:
                shipper = _Shipper(store, backend, key, artifact_store, args, context)
                return _upload_rounds(shipper, lock, key, bound, args, context)
        finally:
            if target.owned:
                backend.close()
            if artifact_store is not None:
                artifact_store.close()
    finally:
        lock.release()


def _upload_rounds(
    shipper: _Shipper,
    lock: UploaderLock,
    key: str,
    bound: float,
    args: argparse.Namespace,
    context: Context,
) -> int:
    from polytrack.sync.engine import Backoff
    from polytrack.sync.uploader import UploaderLock, pending_runs

    home = context.home
    deadline = time.monotonic() + bound
    backoff = Backoff(maximum=_UPLOADER_BACKOFF)
    try:
        with _stopped_by_sigterm():
            while True:
                runs = [pending.run_id for pending in pending_runs(home, key)]
                if not runs:
                    # Let go before the last look: a finish() that hands off a run now
                    # either sees no uploader and starts one, or its run is seen here.
                    lock.release()
                    if not pending_runs(home, key):
                        context.note("nothing left to send")
                        return 0
                    left = deadline - time.monotonic()
                    again = UploaderLock.acquire(home, backend=key, until=time.time() + left)
                    if again is None:
                        return 0  # another uploader took over
                    lock = again
                    continue
                if time.monotonic() >= deadline:
                    context.note(
                        f"gave up after {format_duration(bound)}: {len(runs)} runs left "
                        "(`polytrack sync --status` lists them, `polytrack sync RUN` sends one)"
                    )
                    return 1
                failure = shipper.round(runs)
                pause = args.interval
                if failure is not None:
                    pause = backoff.next_delay(failure.retry_after)
                    context.note(f"{failure}; trying again in {pause:.1f} s")
                else:
                    backoff.reset()
                if pending_runs(home, key):
                    time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
    except _Stopped:
        left = len(pending_runs(home, key))
        context.note(f"stopped (SIGTERM); {left} runs left")
        return 0
    finally:
        lock.release()  # a lock taken again here; the first one's release is idempotent


# -- sending ---------------------------------------------------------------------------------

# What `_Shipper.ship` says of a run.
_DONE: Final = "done"  # all there, status final: nothing will ever change
_CURRENT: Final = "current"  # all there for now: the run is live
_BUSY: Final = "busy"  # another process is sending it
_FAILED: Final = "failed"  # the server failed; some of it is left
_SENT: Final = (_DONE, _CURRENT)


class _Shipper:
    """Sends one run at a time, with retries, progress and a line of outcome."""

    def __init__(
        self,
        store: LocalStore,
        backend: Backend,
        key: str,
        artifact_store: Any,
        args: argparse.Namespace,
        context: Context,
    ) -> None:
        self._store = store
        self._backend = backend
        self._key = key
        self._artifact_store = artifact_store
        self._args = args
        self._context = context
        self._done: set[str] = set()  # up to date and final: nothing will ever change
        self._tty = context.stderr.isatty()
        self._failure: BackendUnavailableError | None = None

    def ship(self, run_id: str) -> str:
        """Send what `run_id` holds; say whether it is now all at the backend."""
        from polytrack.sync.engine import RunSync, SyncBusyError
        from polytrack.sync.uploader import settle

        if run_id in self._done:
            return _DONE
        directory = self._store.run_dir(run_id)
        try:
            sync = RunSync.open(
                directory, self._backend, artifact_store=self._artifact_store, warn=self._note
            )
        except SyncBusyError as exc:
            if not self._args.watch and not self._args.uploader:
                self._note(f"{run_id}: skipped: {exc}")
            return _BUSY
        try:
            outcome = _DONE if sync.up_to_date() else self._ship(run_id, sync)
        finally:
            sync.close()
        if outcome == _DONE:
            self._done.add(run_id)
            with contextlib.suppress(OSError):
                settle(self._store.home, run_id, self._key)  # the uploader's no more
        return outcome

    def round(self, run_ids: Sequence[str]) -> BackendUnavailableError | None:
        """The uploader's pass over its runs: each tried once; stops at the first failure
        of the server (the others would fail the same way), which it returns."""
        from polytrack.sync.uploader import settle

        for run_id in run_ids:
            if not self._store.run_dir(run_id).is_dir():
                self._note(f"{run_id}: deleted; forgotten")
                settle(self._store.home, run_id, self._key)
                continue
            try:
                outcome = self.ship(run_id)
            except StoreError as exc:  # this run only: its files cannot be read
                self._note(f"{run_id}: {exc}; skipped")
                continue
            if outcome == _FAILED:
                return self._failure
            if outcome == _CURRENT:
                # Handed off with its journal closed yet "running": handed over (to a
                # cluster job, `Run.hand_over`), whose process sends the rest itself.
                settle(self._store.home, run_id, self._key)
        return None

    def _ship(self, run_id: str, sync: RunSync) -> str:
        from polytrack.sync.engine import Backoff

        info = self._store.read_run(run_id).info
        live = info.status == "running"
        # A crashed run ended with its last record (issue 13): its end time on the server.
        crashed_at = info.finished_at if info.status == "crashed" else None
        quiet = self._args.quiet or self._args.uploader  # the uploader writes to a log
        total = sync.state.points + sync.backlog(live=live) if not quiet else 0
        sent = points = artifacts = 0
        backoff = Backoff()
        # The uploader tries each run once a round, and backs off between rounds.
        retry_for = 0.0 if self._args.uploader else self._args.retry_for
        give_up_at = time.monotonic() + (RETRY_FOR if retry_for is None else retry_for)
        while True:
            try:
                result = sync.step(live=live, crashed_at=crashed_at)
            except BackendAuthError:
                raise  # every run would fail the same way: main() reports it once
            except BackendUnavailableError as exc:
                delay = backoff.next_delay(exc.retry_after)
                if time.monotonic() + delay > give_up_at:
                    self._failure = exc
                    if not self._args.uploader:
                        left = total - sent
                        self._note(f"{run_id}: {exc}; gave up for now, {left:,} points left")
                    return _FAILED
                if not quiet:
                    self._note(f"{run_id}: {exc}; retrying in {delay:.0f} s")
                time.sleep(delay)
                continue
            backoff.reset()
            points += result.points
            artifacts += result.artifacts
            sent = sync.state.points
            if not quiet and self._tty:
                self._progress(run_id, sent, total)
            if result.caught_up:
                break
        if live:
            return _CURRENT  # up to date for now; more may come
        if not quiet:
            if self._tty:
                self._context.stderr.write("\n")
            aside = len(sync.state.set_aside)
            extra = f"; {aside} set aside (see {sync.workdir}.json)" if aside else ""
            self._context.note(
                f"{run_id}: {points:,} points, {artifacts} files sent to {self._backend.key}"
                f", status {sync.state.status[0] if sync.state.status else '?'}{extra}"
            )
        return _DONE

    def _progress(self, run_id: str, sent: int, total: int) -> None:
        width = 30
        filled = width if total <= 0 else min(width, width * sent // total)
        bar = "#" * filled + "." * (width - filled)
        self._context.stderr.write(f"\r{run_id} [{bar}] {sent:,}/{total:,} points")
        self._context.stderr.flush()

    def _note(self, message: str) -> None:
        self._context.note(message)
