"""`polytrack sync`: ship runs to the backend, after the fact or alongside a live run.

For runs recorded offline, runs whose `finish()` could not wait for the server, runs of a
process killed in mid-sync, and, with `--watch`, as an uploader left running beside
training (`nohup polytrack sync --all --watch &`). Safe to run at any time, any number of
times: a run goes to a backend from one process at a time (the others skip it), and every
batch lands once.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from polytrack.cli._context import Context
from polytrack.cli._parser import Parser, add_command
from polytrack.errors import BackendAuthError, BackendUnavailableError, InvalidInputError

if TYPE_CHECKING:
    from polytrack.cli._parser import Subcommands
    from polytrack.store.local import LocalStore
    from polytrack.sync.backends.base import Backend
    from polytrack.sync.engine import RunSync

__all__ = ["register", "sync"]


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
            "  polytrack sync 3f9a2c1b                 one run\n"
            "  polytrack sync --all                    every run with something to send\n"
            "  polytrack sync --all --watch            keep sending, also live runs (Ctrl-C)"
        ),
    )
    parser.add_argument("runs", nargs="*", metavar="RUN", help="run ids, prefixes or names")
    parser.add_argument("--all", action="store_true", help="every run in the store")
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
        type=float,
        default=300.0,
        metavar="S",
        help="keep retrying an unreachable server this long before giving up on a run",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress, only problems")
    parser.set_defaults(handler=sync)


def sync(args: argparse.Namespace, context: Context) -> int:
    """Send the chosen runs; 0 when all are up to date, 1 when some are not."""
    from polytrack.settings import Settings
    from polytrack.store.local import LocalStore
    from polytrack.sync.backends.target import resolve_target

    if not args.runs and not args.all:
        raise InvalidInputError("name the runs to send, or pass --all")
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
    backend = target.open_backend()
    artifact_store = target.open_store(context.environ)
    try:
        with LocalStore.open(context.home) as store:
            ids = [store.resolve(ref) for ref in args.runs]
            shipper = _Shipper(store, backend, artifact_store, args, context)
            if not args.watch:
                return 0 if all([shipper.ship(run_id) for run_id in _runs(store, ids)]) else 1
            while True:  # Ctrl-C ends it: main() turns that into exit code 130
                for run_id in _runs(store, ids):
                    shipper.ship(run_id)
                time.sleep(args.interval)
    finally:
        if target.owned:
            backend.close()
        if artifact_store is not None:
            artifact_store.close()


def _runs(store: LocalStore, ids: list[str]) -> Iterator[str]:
    if ids:
        yield from ids
        return
    runs = store.home / "runs"
    yield from sorted(entry.name for entry in os.scandir(runs) if entry.is_dir())


class _Shipper:
    """Sends one run at a time, with retries, progress and a line of outcome."""

    def __init__(
        self,
        store: LocalStore,
        backend: Backend,
        artifact_store: Any,
        args: argparse.Namespace,
        context: Context,
    ) -> None:
        self._store = store
        self._backend = backend
        self._artifact_store = artifact_store
        self._args = args
        self._context = context
        self._done: set[str] = set()  # up to date and final: nothing will ever change
        self._tty = context.stderr.isatty()

    def ship(self, run_id: str) -> bool:
        """Send what `run_id` holds; whether it is now all at the backend."""
        from polytrack.sync.engine import RunSync, SyncBusyError

        if run_id in self._done:
            return True
        directory = self._store.run_dir(run_id)
        try:
            sync = RunSync.open(
                directory, self._backend, artifact_store=self._artifact_store, warn=self._note
            )
        except SyncBusyError as exc:
            if not self._args.watch:
                self._note(f"{run_id}: skipped: {exc}")
            return False
        try:
            if sync.up_to_date():
                self._done.add(run_id)
                return True
            return self._ship(run_id, sync)
        finally:
            sync.close()

    def _ship(self, run_id: str, sync: RunSync) -> bool:
        from polytrack.sync.engine import Backoff

        info = self._store.read_run(run_id).info
        live = info.status == "running"
        crashed_at = info.updated_at if info.status == "crashed" else None
        quiet = self._args.quiet
        total = sync.state.points + sync.backlog(live=live) if not quiet else 0
        sent = points = artifacts = 0
        backoff = Backoff()
        give_up_at = time.monotonic() + self._args.retry_for
        while True:
            try:
                result = sync.step(live=live, crashed_at=crashed_at)
            except BackendAuthError:
                raise  # every run would fail the same way: main() reports it once
            except BackendUnavailableError as exc:
                delay = backoff.next_delay(exc.retry_after)
                if time.monotonic() + delay > give_up_at:
                    self._note(f"{run_id}: {exc}; gave up for now, {total - sent:,} points left")
                    return False
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
            return True  # up to date for now; more may come
        self._done.add(run_id)
        if not quiet:
            if self._tty:
                self._context.stderr.write("\n")
            aside = len(sync.state.set_aside)
            extra = f"; {aside} set aside (see {sync.workdir}.json)" if aside else ""
            self._context.note(
                f"{run_id}: {points:,} points, {artifacts} files sent to {self._backend.key}"
                f", status {sync.state.status[0] if sync.state.status else '?'}{extra}"
            )
        return True

    def _progress(self, run_id: str, sent: int, total: int) -> None:
        width = 30
        filled = width if total <= 0 else min(width, width * sent // total)
        bar = "#" * filled + "." * (width - filled)
        self._context.stderr.write(f"\r{run_id} [{bar}] {sent:,}/{total:,} points")
        self._context.stderr.flush()

    def _note(self, message: str) -> None:
        self._context.note(message)
