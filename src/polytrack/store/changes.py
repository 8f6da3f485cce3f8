"""The changes log of a run: what was done to it after it was recorded.

Renaming, tagging, notes and the trash (`polytrack.history.manage`) never rewrite a run's
own files. Each change is an event (`RunRenamed`, `TagsChanged`, `NoteSet`, `RunTrashed`,
`RunRestored`, with who and when) appended to one more events log in the run directory,
`events-999.log` (`journal.CHANGES_FILE`). It has the format of an attempt's log, so:

- readers (`reader`, `LocalStore`, `polytrack index rebuild`) read it with the rest and
  apply it last (it sorts after every attempt): the index is still a cache of the files;
- the sync tail ships its events like any other, so a synced server gets each change.

Why one more log rather than a new attempt or the last attempt's log: an attempt's log
belongs to the process that records it (a live run maps it), and a new attempt per change
would make every change look like a resume. The changes log is written by short-lived
processes only, each under an exclusive `flock` on the run directory for the whole
append, so two `polytrack runs tag` at once take turns. Safety against `kill -9` is the
journal's: a frame's header is stored last, so a change cut short reads as the log's end
and is cut away by the next writer (`Events.open_existing`); readers never see half a
change. Each append also touches the run directory, whose mtime is the index's sign that a
run's files changed.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Sequence
from pathlib import Path

from polytrack.errors import StoreError
from polytrack.models import Event
from polytrack.store.journal import CHANGES_FILE, Events, fsync_dir

__all__ = ["append_changes"]


def append_changes(directory: Path, events: Sequence[Event]) -> None:
    """Append `events` to the changes log of the run in `directory`, durably (fsynced)
    before returning.

    Raises:
        StoreError: the directory is gone, or the log cannot be written.
    """
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise StoreError(f"cannot open the run directory {directory}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released by close, also when the process dies
        path = directory / CHANGES_FILE
        try:
            if path.exists():
                log, _ = Events.open_existing(path)
            else:
                log = Events.create(path)
                fsync_dir(directory)
        except OSError as exc:
            raise StoreError(f"cannot write {path}: {exc}") from exc
        try:
            for event in events:
                log.append(event)
        finally:
            log.close()  # trims to the frames written and fsyncs
        # A new mtime is what tells `LocalStore.refresh` (one stat per run) to read the
        # run again: appending to a file leaves its directory's mtime alone.
        os.utime(fd)
    finally:
        os.close(fd)
