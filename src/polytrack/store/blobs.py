"""The home's content-addressed blob store: each file's bytes kept once, named by digest.

```
$POLYTRACK_HOME/blobs/sha256/<first 2 hex>/<other 62 hex>    a blob, read-only (0444)
$POLYTRACK_HOME/blobs/tmp/<pid>-<random>.tmp                  a blob being written
```
A digest is `sha256:<hex>`, the SHA-256 of the file's bytes (what `sha256sum` prints).
Blobs are written once and never changed, so any number of runs and processes may share
them. `BlobStore.put_file` hashes a file while it copies it, 1 MiB at a time through one
buffer, into a temporary file on the same filesystem; the digest names the blob only
once every byte is read, so the copy cannot go straight to its final name. If that blob
exists already (the same bytes logged before, by any run) the copy is dropped unsynced;
else it is fsynced and renamed into place, and `flush()` fsyncs the directories that got
new entries. Only after `flush()` is a blob sure to survive a power loss.

What is hashed is what was written, so a file the user rewrites while it is copied still
yields a blob whose name matches its bytes. No hard links: a hard link would share the
user's later in-place edits with the blob. On filesystems that can share extents
(btrfs, XFS, bcachefs; Linux `FICLONE`), the copy is a reflink that costs no data
writes, and the clone, which no later edit of the source reaches, is what gets hashed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import stat
import sys
import threading
from pathlib import Path
from typing import BinaryIO, Final

import attrs
from attrs import frozen

from polytrack.errors import StoreError
from polytrack.store.journal import fsync_dir

__all__ = ["BlobStore", "Stored", "blob_path"]

CHUNK: Final = 1 << 20
# The ioctl that clones one file's extents into another (linux/fs.h: _IOW(0x94, 9, int)).
_FICLONE: Final = 0x40049409
# What a filesystem (or a pair of them) answers when it cannot clone: copy instead.
_NO_CLONE: Final = frozenset(
    {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EBADF}
)
_DIGEST_RE: Final = re.compile(r"sha256:[0-9a-f]{64}")
# O_NONBLOCK: a FIFO put in place of the file after it was checked must not hang the open.
_READ_FLAGS: Final = (
    os.O_RDONLY
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_BINARY", 0)
)
_NEW: Final = os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_CREATE_FLAGS: Final = os.O_RDWR | _NEW  # read back too: a clone is hashed from the copy
_EXPORT_FLAGS: Final = os.O_WRONLY | _NEW


def blob_path(home: Path, digest: str) -> Path:
    """Where the blob of `digest` ("sha256:<hex>") lives under `home`."""
    hexdigest = digest.removeprefix("sha256:")
    return home / "blobs" / "sha256" / hexdigest[:2] / hexdigest[2:]


@frozen
class Stored:
    """What `BlobStore.put_file` stored: the bytes' digest and size, and whether the blob
    is new (False: the same bytes were there already and nothing was written)."""

    digest: str
    size: int
    new: bool
    # The source's (size, mtime_ns, ctime_ns, inode) as it was read; None when it changed
    # while it was read (the blob then holds a mix, under its own right name).
    source: tuple[int, int, int, int] | None = None


class BlobStore:
    """The blob store of one home: files go in by content and come back out verified.

    Safe to use from several threads (each call has its own buffer, or waits for the
    shared one) and processes (blobs appear by atomic rename, and the same digest always
    names the same bytes).

    Example:
        >>> store = BlobStore(Path("~/.local/share/polytrack").expanduser())
        >>> stored = store.put_file("model.pt")
        >>> store.flush()                      # durable from here on
        >>> store.export(stored.digest, Path("/tmp/model.pt"))
    """

    def __init__(self, home: Path) -> None:
        self.home = home
        self._tmp = home / "blobs" / "tmp"
        self._reflink = sys.platform == "linux"  # off at the filesystem's first refusal
        self._lock = threading.Lock()  # guards `_unsynced`
        self._buffer_lock = threading.Lock()  # one copy at a time through `_buffer`
        self._buffer: bytearray | None = None  # made on first use, by the copying thread
        self._unsynced: set[Path] = set()  # directories with entries not yet fsynced

    def __repr__(self) -> str:
        return f"<polytrack.BlobStore {self.home}>"

    def path(self, digest: str) -> Path:
        """The blob file of `digest`; ValueError for anything but "sha256:<64 hex>"."""
        if not isinstance(digest, str) or not _DIGEST_RE.fullmatch(digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return blob_path(self.home, digest)

    def exists(self, digest: str) -> bool:
        """Whether the blob of `digest` is in the store."""
        return self.path(digest).is_file()

    # -- writing --------------------------------------------------------------------------

    def put_file(self, source: str | os.PathLike[str]) -> Stored:
        """Copy a regular file into the store, hashing it on the way; see the module doc.

        The blob is not durable until `flush()`.

        Raises:
            FileNotFoundError: `source` does not exist (any more).
            StoreError: `source` is not a regular file or cannot be read, or the store
                cannot be written (a full disk, say); the message names the path.
        """
        path = os.fspath(source)
        try:
            src = os.open(path, _READ_FLAGS)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from exc
        try:
            before = os.fstat(src)
            if not stat.S_ISREG(before.st_mode):
                raise StoreError(f"{path} is not a regular file")
            stored = self._put_fd(src, path)
            after = os.fstat(src)
        except OSError as exc:
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from exc
        finally:
            os.close(src)
        key = (before.st_size, before.st_mtime_ns, before.st_ctime_ns, before.st_ino)
        unchanged = key == (after.st_size, after.st_mtime_ns, after.st_ctime_ns, after.st_ino)
        if unchanged and stored.size == before.st_size:
            return attrs.evolve(stored, source=key)
        return stored

    def put_bytes(self, data: bytes | bytearray | memoryview) -> Stored:
        """Store bytes made in memory (an encoded image, a JSON payload): hashed first,
        so a blob already there costs no write at all. Not durable until `flush()`.

        Raises:
            StoreError: the store cannot be written (a full disk, say).
        """
        view = memoryview(data).cast("B")
        digest = "sha256:" + hashlib.sha256(view).hexdigest()
        final = blob_path(self.home, digest)
        if final.is_file():
            with contextlib.suppress(OSError):
                os.utime(final)  # in use again: see _put_fd
            with self._lock:
                self._unsynced.add(final.parent)
            return Stored(digest, len(view), new=False)
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
            temporary = self._tmp / f"{os.getpid()}-{os.urandom(8).hex()}.tmp"
            out = os.open(temporary, os.O_WRONLY | _NEW, 0o444)
        except OSError as exc:
            raise StoreError(f"cannot write to the blob store {self.home}: {exc}") from exc
        kept = False
        try:
            written = 0
            while written < len(view):
                written += os.write(out, view[written:])
            os.fsync(out)
            self._make_dirs(final.parent)
            os.replace(temporary, final)
            kept = True
        except OSError as exc:
            raise StoreError(f"cannot write to the blob store {self.home}: {exc}") from exc
        finally:
            os.close(out)
            if not kept:
                temporary.unlink(missing_ok=True)
        with self._lock:
            self._unsynced.add(final.parent)
        return Stored(digest, len(view), new=True)

    def read_bytes(self, digest: str) -> bytes:
        """The whole blob of `digest` (media payloads: small enough to hold in memory).

        Raises:
            StoreError: the store has no such blob.
        """
        with self.open(digest) as blob:
            return blob.read()

    def _put_fd(self, src: int, path: str) -> Stored:
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
            temporary = self._tmp / f"{os.getpid()}-{os.urandom(8).hex()}.tmp"
            out = os.open(temporary, _CREATE_FLAGS, 0o444)
        except OSError as exc:
            raise StoreError(f"cannot write to the blob store {self.home}: {exc}") from exc
        kept = False
        try:
            with self._buffer_lock:
                if self._buffer is None:
                    self._buffer = bytearray(CHUNK)
                if self._clone(src, out):
                    digest, size = _pump(self._buffer, out, None)  # hash the clone
                else:
                    digest, size = _pump(self._buffer, src, out)
            final = blob_path(self.home, digest)
            if final.is_file():
                # The same bytes are there already. Its writer may not have synced the
                # directory yet (and may never: killed), so this store's flush does.
                # A new mtime tells `polytrack gc` the blob is in use again, before the
                # run records the event that refers to it.
                with contextlib.suppress(OSError):
                    os.utime(final)
                with self._lock:
                    self._unsynced.add(final.parent)
                return Stored(digest, size, new=False)
            os.fsync(out)
            self._make_dirs(final.parent)
            os.replace(temporary, final)
            kept = True
            with self._lock:
                self._unsynced.add(final.parent)
            return Stored(digest, size, new=True)
        except _SourceError as exc:
            raise StoreError(f"cannot read {path}: {exc.__cause__}") from exc
        except OSError as exc:
            raise StoreError(f"cannot store {path} in the blob store {self.home}: {exc}") from exc
        finally:
            os.close(out)
            if not kept:
                temporary.unlink(missing_ok=True)

    def _clone(self, src: int, out: int) -> bool:
        """Reflink `src` into `out` where the filesystem can; False means copy instead."""
        if not self._reflink:
            return False
        import fcntl  # POSIX only, and only reached on Linux

        try:
            fcntl.ioctl(out, _FICLONE, src)
        except OSError as exc:
            if exc.errno in _NO_CLONE:
                self._reflink = False  # this filesystem (pair) never will: stop asking
            return False
        return True

    def _make_dirs(self, directory: Path) -> None:
        """`mkdir -p` that remembers each parent whose new entry must be fsynced."""
        missing: list[Path] = []
        while not directory.is_dir():
            missing.append(directory)
            directory = directory.parent
        for path in reversed(missing):
            try:
                path.mkdir()
            except FileExistsError:
                continue  # another writer made it: it fsyncs its parent
            with self._lock:
                self._unsynced.add(path.parent)

    def flush(self) -> None:
        """fsync every directory that got a new blob or subdirectory since the last flush.

        Raises:
            StoreError: the disk refused.
        """
        with self._lock:
            directories, self._unsynced = self._unsynced, set()
        # Deepest first: a new directory's own entries before its entry in its parent.
        for directory in sorted(directories, key=lambda p: len(p.parts), reverse=True):
            try:
                fsync_dir(directory)
            except OSError as exc:
                with self._lock:
                    self._unsynced.update(directories)
                raise StoreError(f"cannot sync the blob store {self.home}: {exc}") from exc

    # -- reading --------------------------------------------------------------------------

    def open(self, digest: str) -> BinaryIO:
        """The blob of `digest`, opened for reading.

        Raises:
            StoreError: the store has no such blob.
        """
        path = self.path(digest)
        try:
            return path.open("rb")
        except OSError as exc:
            raise StoreError(f"blob {digest} is missing from {self.home}: {exc}") from exc

    def verify(self, digest: str) -> bool:
        """Whether the blob of `digest` is there and its bytes still hash to `digest`."""
        try:
            fd = os.open(self.path(digest), _READ_FLAGS)
        except OSError:
            return False
        try:
            found, _ = _pump(bytearray(CHUNK), fd, None)
        except _SourceError:
            return False
        finally:
            os.close(fd)
        return found == digest

    def export(self, digest: str, target: Path) -> None:
        """Write the blob of `digest` to `target` (replacing it), checking its hash.

        The bytes go to a temporary file next to `target`, renamed over it only once
        their hash matched: `target` is never left half-written or wrong.

        Raises:
            StoreError: the blob is missing or corrupt, or `target` cannot be written.
        """
        source = self.path(digest)
        temporary = target.with_name(f".{target.name}.{os.urandom(4).hex()}.tmp")
        try:
            src = os.open(source, _READ_FLAGS)
        except OSError as exc:
            raise StoreError(f"blob {digest} is missing from {self.home}: {exc}") from exc
        try:
            out = os.open(temporary, _EXPORT_FLAGS, 0o666)
        except OSError as exc:
            os.close(src)
            raise StoreError(f"cannot write {target}: {exc.strerror or exc}") from exc
        kept = False
        try:
            try:
                found, _ = _pump(bytearray(CHUNK), src, out)
            except _SourceError as exc:
                raise StoreError(f"cannot read blob {digest}: {exc.__cause__}") from exc
            except OSError as exc:
                raise StoreError(f"cannot write {target}: {exc.strerror or exc}") from exc
            if found != digest:
                raise StoreError(
                    f"blob {digest} in {self.home} is corrupt: its bytes hash to {found}"
                )
            try:
                os.replace(temporary, target)
            except OSError as exc:
                raise StoreError(f"cannot write {target}: {exc.strerror or exc}") from exc
            kept = True
        finally:
            os.close(src)
            os.close(out)
            if not kept:
                temporary.unlink(missing_ok=True)


class _SourceError(Exception):
    """Reading the source failed (as opposed to writing the copy); `__cause__` says why."""


def _pump(buffer: bytearray, src: int, out: int | None) -> tuple[str, int]:
    """Read `src` to its end through `buffer`, hashing, and writing to `out` if given."""
    view = memoryview(buffer)
    h = hashlib.sha256()
    size = 0
    while True:
        try:
            n = os.readv(src, [buffer])  # a regular file: O_NONBLOCK never applies
        except OSError as exc:
            raise _SourceError() from exc
        if not n:
            break
        chunk = view[:n]
        h.update(chunk)
        size += n
        while out is not None and chunk:
            chunk = chunk[os.write(out, chunk) :]
    return "sha256:" + h.hexdigest(), size
