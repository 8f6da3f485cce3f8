"""Artifacts and models: copied into the blob store in the background, read back by name.

`Run.log_artifact(path)` validates on the caller's thread (a stat, the name) and queues a
request; the run's artifacts thread (`polytrack-artifacts-<run id>`, started on the first
request and stopped by `finish()`) walks the file or directory, copies each file into the
home's blob store (`polytrack.store.blobs`) while hashing it, syncs the store, and only then
appends one `ArtifactLogged` event to the journal. An event in the journal therefore
always points at blobs that are there, whatever kills the process and whenever.

Digests follow `DataRef` (`polytrack.capture.data`): a file's is the SHA-256 of its bytes,
a directory's the SHA-256 of its sorted manifest, walked by the same rules (symlinks to
files followed, to directories not, `.git` skipped). The same directory therefore has the
same digest whether it was logged as a data ref or as an artifact.

Memory stays bounded: one 1 MiB copy buffer, and at most `MAX_QUEUED` waiting requests
(a caller queueing more waits for room). `finish()` waits for every queued copy. A copy
that fails (the file vanished, the disk is full) warns once with `TrackingWarning` and
never raises into the training loop.
"""

from __future__ import annotations

import contextlib
import os
import queue
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Final

from attrs import field, frozen

from polytrack._text import has_surrogates, safe_repr
from polytrack.errors import InvalidInputError, StoreError
from polytrack.models import ArtifactFile, ArtifactLogged, Event
from polytrack.store.blobs import BlobStore

__all__ = [
    "MAX_QUEUED",
    "ArtifactCopier",
    "ArtifactRequest",
    "ArtifactView",
    "check_artifact_name",
    "latest",
    "read_artifacts",
]

MAX_QUEUED: Final = 1024
# Files this run copied, remembered by stat so that logging them again unchanged reads
# nothing (checkpoints logged each epoch). Bounded: the oldest are forgotten first.
MAX_REMEMBERED: Final = 50_000
# A file changed less than this before it was read is not trusted by stat next time: its
# timestamps may not move on its next change (as `RACY_SECONDS` in `polytrack.capture.data`).
RACY_SECONDS: Final = 2
_STOP: Final = object()


def check_artifact_name(value: object, label: str = "name") -> str:
    """`value` if it is a name an artifact can have, else `InvalidInputError` naming `label`.

    A name is a relative, "/"-separated path ("model", "checkpoints/best"): downloads
    rebuild it under a directory, so it may not be absolute, empty, or hold "." or ".."
    parts, and backslashes count as separators for that check.
    """
    if not isinstance(value, str) or not value.strip() or len(value) > 256:
        raise InvalidInputError(
            f"{label} must be a non-empty string of at most 256 characters; got {safe_repr(value)}"
        )
    if has_surrogates(value):  # a file name's undecodable bytes: no reader could take it
        raise InvalidInputError(f"{label} {value!r} holds a lone surrogate, which is not text")
    if value.startswith(("/", "\\")) or PureWindowsPath(value).drive:
        raise InvalidInputError(
            f"{label} {value!r} is absolute: artifact names are relative paths such as 'model'"
        )
    if "\0" in value or any(
        part in ("", ".", "..") for part in value.replace("\\", "/").split("/")
    ):
        raise InvalidInputError(
            f"{label} {value!r} would escape the store: use a relative name without "
            "'.', '..' or empty parts, such as 'model' or 'checkpoints/best'"
        )
    return value


@frozen
class ArtifactRequest:
    """A file or directory to copy into the store and record: checked, not yet read."""

    name: str
    path: str  # absolute
    kind: str | None  # None: "file" or "directory", as found
    role: str
    framework: str | None = None
    metadata: dict[str, Any] = field(factory=dict)
    logged_at: float = 0.0


class ArtifactCopier:
    """The run's artifacts thread and its queue: see the module docstring.

    Owned by the run (`Run.own`); `stop()` waits until every queued copy is recorded.

    Example:
        >>> copier = ArtifactCopier(store=BlobStore(home), record=writer.append_event,
        ...                         warn=writer.warn_once, run_id=run.id)
        >>> copier.start()
        >>> copier.submit(ArtifactRequest("model", "/abs/model.pt", None, "output"))
        >>> copier.stop()
    """

    def __init__(
        self,
        *,
        store: BlobStore,
        record: Callable[[Event], None],
        warn: Callable[[str, str], None],
        run_id: str,
        max_queued: int = MAX_QUEUED,
        racy_seconds: float = RACY_SECONDS,
    ) -> None:
        self.store = store
        self._racy_ns = int(racy_seconds * 1e9)
        self._record = record
        self._warn = warn
        self._run_id = run_id
        self._queue: queue.Queue[Any] = queue.Queue(max_queued)
        self._changed = threading.Condition()
        self._pending: dict[str, int] = {}  # name -> requests queued or being copied
        self._failed: dict[str, str] = {}  # name -> why its latest copy failed
        self._thread: threading.Thread | None = None
        self._stopping = False
        # path -> ((size, mtime_ns, ctime_ns, inode), digest, size); the thread's own
        self._copied: OrderedDict[str, tuple[tuple[int, int, int, int], str, int]] = (
            OrderedDict()
        )

    def __repr__(self) -> str:
        return f"<polytrack.ArtifactCopier {self._run_id}>"

    def start(self) -> None:
        """Start the thread that copies."""
        self._thread = threading.Thread(
            target=self._loop, name=f"polytrack-artifacts-{self._run_id}", daemon=True
        )
        self._thread.start()

    def submit(self, request: ArtifactRequest) -> bool:
        """Queue a copy; waits only while `max_queued` requests are waiting already.

        Returns False, queueing nothing, once `stop()` was called.
        """
        with self._changed:
            if self._stopping:
                return False
            self._pending[request.name] = self._pending.get(request.name, 0) + 1
        self._queue.put(request)
        return True

    def wait(self, name: str, timeout: float | None = None) -> str | None:
        """Wait until no copy of `name` is queued or under way.

        Returns why the latest copy of `name` failed, or None (it was recorded, or there
        was none). Raises TimeoutError after `timeout` seconds.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: not self._pending.get(name), timeout):
                raise TimeoutError(f"artifact {name!r} is still being copied")
            return self._failed.get(name)

    def stop(self) -> None:
        """Copy and record everything queued, then end the thread. Idempotent."""
        with self._changed:
            if self._stopping:
                return
            self._stopping = True
        if self._thread is None:
            return
        self._queue.put(_STOP)  # behind every request: they are all done first
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _loop(self) -> None:
        while True:
            request = self._queue.get()
            if request is _STOP:
                return
            failure: str | None = None
            try:
                self._record(self.copy(request))
            except Exception as exc:  # a tracking failure: never the training loop's
                failure = str(exc)
                self._warn_safely(
                    f"polytrack could not store artifact {request.name!r} from "
                    f"{request.path}: {exc}"
                )
            with self._changed:
                self._pending[request.name] -= 1
                if not self._pending[request.name]:
                    del self._pending[request.name]
                if failure is None:
                    self._failed.pop(request.name, None)
                else:
                    self._failed[request.name] = failure
                self._changed.notify_all()

    def _warn_safely(self, message: str) -> None:
        # A warning filter that turns warnings into errors must not end the thread.
        with contextlib.suppress(Exception):
            self._warn("artifact", message)

    def _put(self, path: str) -> tuple[str, int]:
        """Store one file: its digest and size. A file this copier stored before, whose
        stat is unchanged and whose blob is there, costs a stat and is not read again."""
        st = os.stat(path)
        key = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        known = self._copied.get(path)
        if known is not None and known[0] == key and self.store.exists(known[1]):
            self._copied.move_to_end(path)
            return known[1], known[2]
        trusted_before = time.time_ns() - self._racy_ns
        stored = self.store.put_file(path)
        if stored.source is not None and max(stored.source[1:3]) < trusted_before:
            self._copied[path] = (stored.source, stored.digest, stored.size)
            self._copied.move_to_end(path)
            if len(self._copied) > MAX_REMEMBERED:
                self._copied.popitem(last=False)
        return stored.digest, stored.size

    def copy(self, request: ArtifactRequest) -> ArtifactLogged:
        """Store a request's files as blobs, sync the store; the event to record.

        Raises:
            FileNotFoundError: the file or directory is gone.
            StoreError, InvalidInputError: it cannot be read, or the store written.
        """
        # On this thread: the module and its imports (sqlite3, ...) cost the first
        # `log_artifact` call ~20 ms otherwise. Its walk and manifest rules make a
        # directory's digest the same as its `DataRef`'s.
        from polytrack.capture.data import manifest_digest, walk_files

        root = request.path
        mode = os.stat(root).st_mode
        if stat.S_ISDIR(mode):
            names, _ = walk_files(root, with_stat=False)
            names.sort()
            files: list[ArtifactFile] = []
            for name in names:
                try:
                    digest, size = self._put(os.path.join(root, name))
                except FileNotFoundError:
                    continue  # removed while we copied: not part of the artifact
                files.append(ArtifactFile(path=name, digest=digest, size=size))
            digest = manifest_digest(
                [f.path for f in files], [f.digest for f in files], [f.size for f in files]
            )
            kind = "directory"
        elif stat.S_ISREG(mode):
            digest, size = self._put(root)
            files = [ArtifactFile(path=os.path.basename(root), digest=digest, size=size)]
            kind = "file"
        else:
            raise StoreError(f"{root} is neither a regular file nor a directory")
        self.store.flush()  # the blobs are durable before the event that points at them
        return ArtifactLogged(
            name=request.name,
            kind=request.kind or kind,
            role=request.role,
            digest=digest,
            size=sum(f.size for f in files),
            files=tuple(files),
            source=root,
            framework=request.framework,
            metadata=request.metadata,
            logged_at=request.logged_at,
        )


@frozen
class ArtifactView:
    """A recorded artifact, as readers see it; `download()` rebuilds it from the store.

    Example:
        >>> view = polytrack.get_run("a1b2").artifact("model")
        >>> view.digest, view.size, [f.path for f in view.files]
        >>> view.download("restored/")
    """

    name: str
    kind: str
    role: str
    digest: str
    size: int
    files: tuple[ArtifactFile, ...]
    source: str | None
    framework: str | None
    metadata: dict[str, Any]
    logged_at: float
    home: Path = field(repr=False)  # the store whose blobs hold the bytes

    @classmethod
    def of(cls, event: ArtifactLogged, home: Path) -> ArtifactView:
        return cls(
            name=event.name,
            kind=event.kind,
            role=event.role,
            digest=event.digest,
            size=event.size,
            files=event.files,
            source=event.source,
            framework=event.framework,
            metadata=event.metadata,
            logged_at=event.logged_at,
            home=home,
        )

    @property
    def is_directory(self) -> bool:
        """Whether a directory was logged: a file's artifact is its one file, same digest
        (a directory's digest hashes its manifest, so never equals a file's)."""
        return not (len(self.files) == 1 and self.files[0].digest == self.digest)

    def download(self, dir: str | os.PathLike[str]) -> Path:
        """Rebuild the artifact under `dir` from the blob store; returns what was written.

        A file comes back as `dir/<its file name>`, a directory as `dir/<artifact name>/`
        with its files. Every file's bytes are checked against their digest before they
        take their name; existing files of the same names are replaced.

        Raises:
            StoreError: a blob is missing or corrupt, `dir` cannot be written, or a
                recorded path would land outside `dir` (the file is refused).

        Example:
            >>> polytrack.get_run("a1b2").artifact("model").download("restored")
            PosixPath('restored/model.pt')
        """
        root = Path(dir).expanduser()
        try:
            root.mkdir(parents=True, exist_ok=True)
            inside = root.resolve()
        except OSError as exc:
            raise StoreError(f"cannot write to {root}: {exc.strerror or exc}") from exc
        store = BlobStore(self.home)
        if not self.is_directory:
            file = self.files[0]
            target = self._target(root, inside, file.path)
            store.export(file.digest, target)
            return target
        base = self._target(root, inside, self.name)
        for file in self.files:
            store.export(file.digest, self._target(root, inside, f"{self.name}/{file.path}"))
        try:
            base.mkdir(parents=True, exist_ok=True)  # an empty directory comes back empty
        except OSError as exc:
            raise StoreError(f"cannot write {base}: {exc.strerror or exc}") from exc
        return base

    def _target(self, root: Path, inside: Path, relative: str) -> Path:
        """`root/relative`, its parent directories made; refused unless it stays in `root`."""
        parts = PurePosixPath(relative).parts
        separators = {os.sep, os.altsep} - {None, "/"}
        if (
            not parts
            or PurePosixPath(relative).is_absolute()
            or PureWindowsPath(relative).drive
            or any(p in (".", "..") or any(s in p for s in separators if s) for p in parts)
        ):
            raise StoreError(
                f"artifact {self.name!r}: refusing to write {relative!r} outside {root}"
            )
        target = root.joinpath(*parts)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            parent = target.parent.resolve()
        except OSError as exc:
            raise StoreError(f"cannot write {target}: {exc.strerror or exc}") from exc
        # A symlink already in `dir` could lead a write elsewhere: follow, then check.
        if not parent.is_relative_to(inside):
            raise StoreError(
                f"artifact {self.name!r}: refusing to write {relative!r}, which leads "
                f"outside {root} (through a symlink)"
            )
        return target


def read_artifacts(directory: Path) -> list[ArtifactLogged]:
    """Every artifact recorded in a run directory, every attempt, in the order logged."""
    # The journal reader needs numpy and SQLite: loaded only when artifacts are read back.
    from polytrack.store.local import read_events

    return [event for event in read_events(directory) if isinstance(event, ArtifactLogged)]


def latest(artifacts: list[ArtifactLogged], name: str) -> ArtifactLogged | None:
    """The last artifact logged under `name`, or None."""
    for artifact in reversed(artifacts):
        if artifact.name == name:
            return artifact
    return None
