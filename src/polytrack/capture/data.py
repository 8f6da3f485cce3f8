"""Content hashes of the data a run reads or writes: files, directory trees, arrays, frames.

`hash_source(source)` returns a `DataHash`: kind, `sha256:<hex>` digest, size, file count
and, for a directory, its manifest. What each digest covers, so that anyone can recompute it:

- a **file**: SHA-256 of its bytes (what `sha256sum` prints), and so are **bytes**,
  `bytearray` and `memoryview` objects;
- a **directory**: SHA-256 of its manifest, one line `<relpath>\\0sha256:<hex>\\0<size>\\n`
  per file (relative POSIX path, UTF-8), the lines sorted by their bytes. Only contents and
  names count: not the order of `os.scandir`, not modification times or permissions. An
  empty directory has the digest of an empty file;
- a **numpy array**: SHA-256 of the header `{"dtype":"<f8","shape":[2,3]}\\n` (compact JSON;
  a structured dtype is written as its `descr`) followed by the elements in C order. The
  same values in another memory layout (Fortran order, a strided view) hash the same; another
  dtype or shape (byte order included) does not. Object and variable-width string arrays are
  refused: their buffers hold pointers, not values;
- a **pandas DataFrame or Series**: SHA-256 of a JSON header (column names and dtypes, index
  names and dtype, shape) followed by `pd.util.hash_pandas_object(obj, index=True)` as
  little-endian uint64. That row hash is pandas' own, stable for a given pandas version.

Inside a directory, the walk (`os.scandir`, recursive) follows symlinks to *files*, whose
content is hashed under the link's name, as a dataset built from links (Hugging Face's hub
cache, DVC) is meant to be read, but it never follows a symlink to a directory (no cycles,
no escaping the tree). Symlinks to directories, broken symlinks, FIFOs, sockets and devices
are skipped, and so is anything named `.git`: git rewrites its index on a mere `git status`,
which would change the digest of data that did not change. Nothing else is ignored.

**The cache.** Reading is the cost (a 10 GB file takes seconds), so `HashCache` keeps, in
one SQLite file, each hashed file's digest under its path and `(size, mtime_ns, ctime_ns,
inode)`, and each directory's whole manifest with every file's stat as one row. An unchanged
file then costs a `stat` and one lookup; an unchanged directory one walk with a `stat` per
file, one lookup and a list comparison, and only files whose stat changed are read again.
The ctime is there on top of the (path, size, mtime, inode) key of rsync and git because
nothing but the clock sets it: a tool that edits a file in place and then restores its mtime
(`touch -r`, `os.utime`, `cp -p`, `rsync -t` over an existing file) still changes it.

Limits, as for git and rsync: a change that keeps size, mtime, ctime and inode is not seen.
Only a clock set back, or writing to the disk behind the filesystem, does that. And a file
modified within the timestamp granularity of the moment it was hashed could keep all four,
git's "racy clean" problem: a file whose mtime or ctime is less than `RACY_SECONDS` older
than the hash is not trusted from the cache next time but read again (so a file written and
logged straight away is read once more the next time it is logged).

**Measured choices** (2 vCPUs, Linux VM, ext4, page cache warm): reading 1 MiB at a time
into one reused buffer with `os.readv` hashes a 1 GiB file in 0.79-0.83 s, where `openssl
dgst -sha256` takes 0.91-1.0 s (hashlib is OpenSSL's SHA-256 with SHA-NI; the difference
is process start and openssl's small reads); `hashlib.file_digest` is as fast but needs a
Python file object per file, costly for small ones. A reader thread filling a second
buffer while the first is hashed gains ~5%: not worth a thread. For 10,000 files of 4 KB a
thread pool made hashing 1.5-2.5x *slower* (each file is a few short syscalls, and the GIL
passes between threads at each one), so hashing stays on the caller's thread. A stat costs
~3 us here, so an unchanged 10,000-file directory costs ~30 ms of stat calls alone.
"""

from __future__ import annotations

import array
import contextlib
import errno
import hashlib
import importlib
import json
import os
import sqlite3
import stat
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

import attrs

from polytrack.errors import InvalidInputError, TrackingWarning

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["PROGRESS_MIN_BYTES", "RACY_SECONDS", "DataHash", "HashCache", "hash_source"]

# Inputs larger than this show a progress line on a terminal (`progress=None`).
PROGRESS_MIN_BYTES: Final = 256 << 20
# A file changed less than this long before it was hashed is not trusted from the cache.
# Covers coarse timestamps (FAT: 2 s; ext4: one kernel tick) and small clock skew.
RACY_SECONDS: Final = 2

_CHUNK: Final = 1 << 20
# O_NONBLOCK: a FIFO swapped in for a file after the check must not block the open.
_OPEN_FLAGS: Final = (
    os.O_RDONLY
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_BINARY", 0)
)
_DIR_FLAGS: Final = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
# Scanning a directory through its descriptor makes each stat resolve one name, not the
# whole path (POSIX; elsewhere, by path).
_SCANDIR_FD: Final = os.scandir in os.supports_fd
_SKIPPED_NAMES: Final = frozenset({".git"})
_SCHEMA_VERSION: Final = 1
_BUSY_TIMEOUT_S: Final = 2.0
# sqlite3 result codes (the `sqlite_errorcode` attribute exists from Python 3.11).
_SQLITE_BUSY: Final = 5
_SQLITE_LOCKED: Final = 6

# (size, mtime_ns, ctime_ns, inode): what tells a file changed without reading it.
_Key = tuple[int, int, int, int]


@attrs.frozen
class DataHash:
    """What `hash_source` found: the content hash of one input and how much it covered."""

    kind: str  # file | directory | array | dataframe | bytes
    digest: str  # "sha256:<64 hex>"
    size: int  # bytes hashed; for arrays and frames, the bytes of the data
    files: int  # 1 for a file, the count for a directory, 0 for an object in memory
    path: str | None  # absolute path, for files and directories
    # For a directory: its files as parallel columns (relative POSIX paths, digests,
    # sizes); `manifest` builds the mapping only when asked, as an unchanged directory
    # is mostly checked, not listed.
    entries: tuple[Sequence[str], Sequence[str], Sequence[int]] | None = attrs.field(
        default=None, repr=False
    )

    @property
    def manifest(self) -> dict[str, tuple[str, int]] | None:
        """For a directory: relative POSIX path -> (digest, size); None otherwise."""
        if self.entries is None:
            return None
        names, digests, sizes = self.entries
        return dict(zip(names, zip(digests, sizes, strict=True), strict=True))


# -- the cache ----------------------------------------------------------------------------


@attrs.frozen
class _StoredDir:
    """A directory's cached manifest, as stored: parallel columns in the last walk's order.

    `names` and `keys` stay encoded: an unchanged directory is told by comparing the walk,
    encoded the same way, with them (two memcmp), without decoding 10,000 entries.
    """

    digest: str
    names: bytes  # relative paths joined by NUL, UTF-8 (surrogateescape)
    # int64 little-endian, 4 per file: size, mtime_ns, ctime_ns, inode. A ctime of -1,
    # which no stat returns, marks a file to read again next time.
    keys: bytes
    digests: bytes  # "sha256:<hex>" per file, joined by newlines

    @classmethod
    def encode(
        cls, digest: str, names: list[str], keys: list[int], digests: list[str]
    ) -> _StoredDir:
        return cls(digest, _encode_names(names), _encode_keys(keys), "\n".join(digests).encode())

    def same(self, names: list[str], keys: list[int]) -> bool:
        return _encode_keys(keys) == self.keys and _encode_names(names) == self.names

    def decode(self) -> tuple[list[str], list[int], list[str]]:
        """Names, flat keys and digests; raises ValueError for a row that does not add up."""
        flat = array.array("q")
        flat.frombytes(self.keys)
        if sys.byteorder == "big":
            flat.byteswap()
        if not self.names:  # "".split("\0") is [""], not []
            names, digests = [], []
        else:
            names = self.names.decode("utf-8", "surrogateescape").split("\0")
            digests = self.digest_list()
        if not 4 * len(names) == 4 * len(digests) == len(flat):
            raise ValueError("inconsistent cached manifest")
        return names, flat.tolist(), digests

    def digest_list(self) -> list[str]:
        return self.digests.decode("ascii").split("\n") if self.digests else []


def _encode_names(names: list[str]) -> bytes:
    return "\0".join(names).encode("utf-8", "surrogateescape")


def _encode_keys(keys: list[int]) -> bytes:
    flat = array.array("q", keys)
    if sys.byteorder == "big":
        flat.byteswap()
    return flat.tobytes()


_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    digest TEXT NOT NULL,
    hashed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dirs (
    path TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    names BLOB NOT NULL,    -- relative paths joined by NUL, UTF-8 (surrogateescape)
    keys BLOB NOT NULL,     -- int64 little-endian, 4 per file: size, mtime_ns, ctime_ns, inode
    digests BLOB NOT NULL,  -- "sha256:<hex>" per file, joined by newlines
    hashed_at REAL NOT NULL
);
"""


class HashCache:
    """SQLite file cache: (path, size, mtime_ns, ctime_ns, inode) -> digest, and manifests.

    Safe to share between threads (one lock) and processes (SQLite WAL; a writer that
    finds the file locked for `_BUSY_TIMEOUT_S` skips its write). A cache that cannot be
    opened, read or written (corrupt file, read-only directory, newer format) turns itself
    off with one `TrackingWarning` and hashing goes on without it: it never raises.
    """

    def __init__(
        self,
        path: Path,
        connection: sqlite3.Connection | None,
        *,
        racy_seconds: float = RACY_SECONDS,
    ) -> None:
        self.path = path
        self.racy_ns = int(racy_seconds * 1e9)
        self._db = connection
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._warned = False

    @classmethod
    def open(cls, path: Path, *, racy_seconds: float = RACY_SECONDS) -> HashCache:
        """Open (creating it and its parent directories) the cache file at `path`.

        Never raises for cache problems: the cache is then off, with a `TrackingWarning`.

        Args:
            path: the SQLite file; several processes may use it at once.
            racy_seconds: a file changed less than this long before it is hashed is not
                trusted from the cache next time, but read again (see the module docstring).

        Example:
            >>> cache = HashCache.open(Path("~/.cache/polytrack/hashes.sqlite3").expanduser())
            >>> digest = hash_source("data/train.csv", cache=cache).digest
            >>> cache.close()
        """
        cache = cls(path, None, racy_seconds=racy_seconds)
        try:
            cache._db = _connect(path)
        except (OSError, sqlite3.Error) as exc:
            cache._disable(exc)
        return cache

    def close(self) -> None:
        """Close the file; later lookups miss and writes are skipped. Idempotent."""
        with self._lock:
            db, self._db = self._db, None
            if db is not None and os.getpid() == self._pid:
                db.close()

    # The lookups and writes below never raise: a cache problem costs a re-hash, not a run.

    def _get_file(self, path: str, key: _Key) -> str | None:
        row = self._query(
            "SELECT digest FROM files WHERE path = ? AND size = ? AND mtime_ns = ? "
            "AND ctime_ns = ? AND inode = ?",
            (path, *key),
        )
        return None if row is None else str(row[0])

    def _put_file(self, path: str, key: _Key, digest: str) -> None:
        self._write(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)",
            (path, *key, digest, time.time()),
        )

    def _get_dir(self, path: str) -> _StoredDir | None:
        row = self._query("SELECT digest, names, keys, digests FROM dirs WHERE path = ?", (path,))
        if row is None:
            return None
        digest, names, keys, digests = row
        if not all(isinstance(v, bytes) for v in (names, keys, digests)) or len(keys) % 32:
            return None  # a row we cannot read is a miss; the next write replaces it
        return _StoredDir(str(digest), names, keys, digests)

    def _put_dir(self, path: str, stored: _StoredDir) -> None:
        self._write(
            "INSERT OR REPLACE INTO dirs VALUES (?, ?, ?, ?, ?, ?)",
            (path, stored.digest, stored.names, stored.keys, stored.digests, time.time()),
        )

    def _query(self, sql: str, params: Sequence[object]) -> tuple[Any, ...] | None:
        with self._lock:
            db = self._connection()
            if db is None:
                return None
            try:
                row: tuple[Any, ...] | None = db.execute(sql, params).fetchone()
            except sqlite3.Error as exc:
                if not _is_busy(exc):
                    self._disable(exc)
                return None
            return row

    def _write(self, sql: str, params: Sequence[object]) -> None:
        with self._lock:
            db = self._connection()
            if db is None:
                return
            try:
                db.execute(sql, params)
            except sqlite3.Error as exc:
                if not _is_busy(exc):  # another process holds the lock: skip this write
                    self._disable(exc)

    def _connection(self) -> sqlite3.Connection | None:
        # A SQLite connection must not cross fork(): the child opens its own, and leaves
        # the parent's alone (closing it could release the parent's locks).
        if self._db is not None and os.getpid() != self._pid:
            self._pid = os.getpid()
            try:
                self._db = _connect(self.path)
            except (OSError, sqlite3.Error) as exc:
                self._disable(exc)
        return self._db

    def _disable(self, exc: BaseException) -> None:
        if self._db is not None and os.getpid() == self._pid:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
        self._db = None
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"hash cache {self.path} is unusable ({exc}); hashing without it. "
                "Deleting the file rebuilds it.",
                TrackingWarning,
                stacklevel=4,
            )


def _connect(path: Path) -> sqlite3.Connection:
    """Open the cache file and make sure it holds our tables, or raise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(
        path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    try:
        # WAL lets readers in other processes go on while one writes. Where the filesystem
        # cannot do WAL (some network filesystems) SQLite keeps its rollback journal.
        _use_wal(db)
        db.execute("PRAGMA synchronous=NORMAL")  # a cache: losing the last write is fine
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            db.executescript(_SCHEMA + f"PRAGMA user_version={_SCHEMA_VERSION};")
        elif version != _SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"cache format {version}, this polytrack reads 1")
    except BaseException:
        db.close()
        raise
    return db


def _use_wal(db: sqlite3.Connection) -> None:
    # Switching to WAL while another connection holds a write lock (a second process
    # creating the same new cache) fails at once with SQLITE_BUSY: SQLite skips the busy
    # handler there to avoid a deadlock, so `timeout=` does not cover it. Retry instead.
    deadline = time.monotonic() + _BUSY_TIMEOUT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return "locked" in str(exc)  # Python 3.10


# -- progress -----------------------------------------------------------------------------


class _Progress:
    """One line on stderr, rewritten in place: a long hash should not look like a hang."""

    _INTERVAL: Final = 0.2

    def __init__(
        self, stream: IO[str], label: str, *, total: int | None, files: int | None, after: int
    ) -> None:
        self._stream, self._label = stream, label
        self._total, self._files = total, files
        self._after = after  # show nothing before this many bytes are read
        self._done = self._files_done = 0
        self._started = time.monotonic()
        self._next = self._started
        self._shown = False

    def advance(self, nbytes: int, files: int = 0) -> None:
        self._done += nbytes
        self._files_done += files
        if self._done >= self._after and time.monotonic() >= self._next:
            self._show("")

    def finish(self) -> None:
        if self._shown or self._after == 0:
            self._show("\n")

    def _show(self, end: str) -> None:
        now = time.monotonic()
        self._next = now + self._INTERVAL
        elapsed = now - self._started
        parts = [f"{self._done / 2**20:,.1f}"]
        if self._total is not None:
            parts[0] += f"/{self._total / 2**20:,.1f}"
        parts[0] += " MiB"
        if self._total:
            parts.append(f"{100 * self._done / self._total:.0f}%")
        if self._files is not None:
            parts.append(f"{self._files_done:,}/{self._files:,} files")
        if elapsed > 0:
            parts.append(f"{self._done / 2**20 / elapsed:,.0f} MiB/s")
        if end:
            parts.append(f"{elapsed:.1f} s")
        try:
            self._stream.write(f"\rhashing {self._label}: {', '.join(parts)}{end}")
            self._stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stderr must not fail the hash
        self._shown = True


def _progress(
    progress: bool | None, label: str, *, total: int | None, files: int | None = None
) -> _Progress | None:
    """A progress line if asked for, or by default for a large input on a terminal."""
    stream = sys.stderr
    if progress is False or stream is None:  # no stderr at all under pythonw
        return None
    if progress:
        return _Progress(stream, label, total=total, files=files, after=0)
    if total is not None and total <= PROGRESS_MIN_BYTES:
        return None
    try:
        if not stream.isatty():
            return None
    except (AttributeError, ValueError):  # a stand-in without isatty, or a closed stream
        return None
    # Without a total (a directory seen for the first time), wait until it proves large.
    after = 0 if total is not None else PROGRESS_MIN_BYTES
    return _Progress(stream, label, total=total, files=files, after=after)


# -- files and directories ----------------------------------------------------------------


def _key(st: os.stat_result) -> _Key:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class _Reader:
    """Hashes files through one reused buffer: constant memory, no allocation per chunk."""

    def __init__(self, progress: _Progress | None) -> None:
        self._buf = bytearray(_CHUNK)
        self._view = memoryview(self._buf)
        self._bufs = [self._buf]
        self._progress = progress

    def hash_file(self, path: str) -> tuple[str, int, _Key]:
        """(digest, bytes read, stat taken before reading) of the file at `path`."""
        fd = os.open(path, _OPEN_FLAGS)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(errno.EINVAL, "not a regular file", path)
            expected = st.st_size
            key = (expected, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
            bufs, view, progress = self._bufs, self._view, self._progress
            if expected < _CHUNK:
                # One read answers a small file: a short read that ends where fstat said
                # the file ends is EOF, which saves a second read per file.
                n = os.readv(fd, bufs)
                if progress is not None:
                    progress.advance(n)
                if n == expected:
                    return "sha256:" + hashlib.sha256(view[:n]).hexdigest(), n, key
                h = hashlib.sha256(view[:n])  # it changed since the fstat: read to the end
                total = n
            else:
                if hasattr(os, "posix_fadvise"):
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
                h = hashlib.sha256()
                total = 0
            while n := os.readv(fd, bufs):
                h.update(view[:n])
                total += n
                if progress is not None:
                    progress.advance(n)
                if n < _CHUNK and total == expected:
                    break  # EOF, as above
        finally:
            os.close(fd)
        return "sha256:" + h.hexdigest(), total, key


def _hash_file(
    path: str, st: os.stat_result, cache: HashCache | None, progress: bool | None
) -> DataHash:
    if cache is not None:
        digest = cache._get_file(path, _key(st))
        if digest is not None:
            return DataHash("file", digest, st.st_size, 1, path)
    bar = _progress(progress, path, total=st.st_size)
    hashed_at = time.time_ns()
    try:
        digest, size, key = _Reader(bar).hash_file(path)
    except OSError as exc:
        raise _path_error(path, exc) from exc
    finally:
        if bar is not None:
            bar.finish()
    # Trust only a file read whole whose timestamps are sure to move on its next change.
    if cache is not None and size == key[0] and max(key[1], key[2]) < hashed_at - cache.racy_ns:
        cache._put_file(path, key, digest)
    return DataHash("file", digest, size, 1, path)


def walk_files(root: str, *, with_stat: bool) -> tuple[list[str], list[int]]:
    """The files under `root`: relative POSIX paths in scandir order, and (`with_stat`)
    their keys, 4 ints each.

    Each directory is scanned through its own descriptor, so a `stat` resolves one name,
    not the whole path. Without `with_stat` a file costs no syscall at all (d_type).
    """
    names: list[str] = []
    keys: list[int] = []
    add_name, add_keys, skipped = names.append, keys.extend, _SKIPPED_NAMES
    stack = [(root, "")]
    while stack:
        directory, prefix = stack.pop()
        fd = None
        try:
            if _SCANDIR_FD:
                fd = os.open(directory, _DIR_FLAGS)
            with os.scandir(directory if fd is None else fd) as entries:
                for entry in entries:
                    name = entry.name
                    try:
                        # d_type answers is_file/is_dir without a syscall, files first: most
                        # entries are files, and this loop is the cost of a warm check.
                        if entry.is_file(follow_symlinks=False):
                            if name in skipped:
                                continue
                        elif entry.is_dir(follow_symlinks=False):
                            if name not in skipped:
                                stack.append((f"{directory}/{name}", f"{prefix}{name}/"))
                            continue
                        elif not (entry.is_symlink() and entry.is_file()) or name in skipped:
                            continue  # a symlink to a directory, broken, a FIFO, a socket
                        if with_stat:
                            st = entry.stat()  # follows a symlink to its file
                            add_keys((st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
                    except OSError as exc:
                        # Removed while we walked (not part of the snapshot), or a link
                        # that loops or points where we may not look (skipped, as broken).
                        if isinstance(exc, FileNotFoundError) or entry.is_symlink():
                            continue
                        raise _path_error(f"{directory}/{name}", exc) from exc
                    add_name(prefix + name)
        except FileNotFoundError:
            if directory == root:
                raise
            # a subdirectory removed while we walked
        except OSError as exc:
            raise _path_error(directory, exc) from exc
        finally:
            if fd is not None:
                os.close(fd)
    return names, keys


def _hash_directory(root: str, cache: HashCache | None, progress: bool | None) -> DataHash:
    stored = cache._get_dir(root) if cache is not None else None
    try:
        names, keys = walk_files(root, with_stat=stored is not None)
    except OSError as exc:
        raise _path_error(root, exc) from exc
    if stored is not None and stored.same(names, keys):
        cached = stored.digest_list()
        if len(cached) == len(names):  # else a damaged row: hash as if it were not there
            return _directory_hash(root, stored.digest, names, keys, cached)

    hashed_at = time.time_ns()
    digests = [""] * len(names)
    if stored is None:
        # Nothing to compare with: every file is read, and its key comes from an fstat
        # of the open file (cheaper than a stat by name, and exactly what was read).
        keys = [0] * (4 * len(names))
        stale: Sequence[int] = range(len(names))
    else:
        try:
            old_names, old_keys, old_digests = stored.decode()
        except ValueError:
            old_names, old_keys, old_digests = [], [], []  # unreadable: read everything
        known = {
            name: (old_keys[4 * i : 4 * i + 4], old_digests[i]) for i, name in enumerate(old_names)
        }
        stale = []
        for i, name in enumerate(names):
            old = known.get(name)
            if old is not None and old[0] == keys[4 * i : 4 * i + 4]:
                digests[i] = old[1]
            else:
                stale.append(i)

    bar = _progress(
        progress,
        root,
        total=None if stored is None else sum(keys[4 * i] for i in stale),
        files=len(stale),
    )
    hash_file = _Reader(bar).hash_file
    base = root if root.endswith(os.sep) else root + os.sep
    racy_after = hashed_at - (cache.racy_ns if cache is not None else 0)
    vanished: list[int] = []
    try:
        for i in stale:
            try:
                digest, size, (expected, mtime, ctime, inode) = hash_file(base + names[i])
            except FileNotFoundError:
                vanished.append(i)  # removed since the walk: not part of the snapshot
                continue
            except OSError as exc:
                raise _path_error(base + names[i], exc) from exc
            digests[i] = digest
            # A file read while it changed, or changed too recently for its timestamps
            # to move on the next change, is stored with ctime -1: read again next time.
            if size != expected or mtime >= racy_after or ctime >= racy_after:
                ctime = -1
            keys[4 * i : 4 * i + 4] = (size, mtime, ctime, inode)
            if bar is not None:
                bar.advance(0, files=1)
    finally:
        if bar is not None:
            bar.finish()

    for i in reversed(vanished):
        del names[i], digests[i], keys[4 * i : 4 * i + 4]
    sizes = keys[0::4]
    digest = manifest_digest(names, digests, sizes)
    if cache is not None:
        cache._put_dir(root, _StoredDir.encode(digest, names, keys, digests))
    return _directory_hash(root, digest, names, keys, digests)


def _directory_hash(
    root: str, digest: str, names: list[str], keys: list[int], digests: list[str]
) -> DataHash:
    sizes = keys[0::4]
    return DataHash("directory", digest, sum(sizes), len(names), root, (names, digests, sizes))


def manifest_digest(names: list[str], digests: list[str], sizes: list[int]) -> str:
    """SHA-256 of the `<relpath>\\0<digest>\\0<size>\\n` lines sorted by their UTF-8 bytes."""
    lines = [f"{n}\0{d}\0{s}\n" for n, d, s in zip(names, digests, sizes, strict=True)]
    try:
        # Code point order is UTF-8 byte order, so sorting the text once is enough...
        data = "".join(sorted(lines)).encode("utf-8")
    except UnicodeEncodeError:
        # ...except for names with bytes that are not UTF-8 (surrogate-escaped by Python).
        data = b"".join(sorted(line.encode("utf-8", "surrogateescape") for line in lines))
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _path_error(path: str, exc: OSError) -> InvalidInputError:
    if isinstance(exc, FileNotFoundError):
        return InvalidInputError(f"data source {path!r} does not exist")
    return InvalidInputError(f"cannot read data source {path!r}: {exc.strerror or exc}")


# -- objects in memory --------------------------------------------------------------------


def _hash_buffer(data: bytes | bytearray | memoryview) -> DataHash:
    view = memoryview(data)
    if not view.c_contiguous:
        view = memoryview(view.tobytes())
    view = view.cast("B") if view.ndim != 1 or view.format != "B" else view
    return DataHash("bytes", "sha256:" + hashlib.sha256(view).hexdigest(), view.nbytes, 0, None)


def _hash_array(arr: npt.NDArray[Any], progress: bool | None) -> DataHash:
    import numpy as np  # only ever reached with an ndarray, so numpy is already loaded

    if isinstance(arr, np.ma.MaskedArray):
        raise InvalidInputError(
            "cannot hash a numpy masked array: its mask is not in its data; "
            "pass arr.filled(...) or np.ma.getdata(arr)"
        )
    dtype = arr.dtype
    if dtype.hasobject or dtype.kind == "T":
        raise InvalidInputError(
            f"cannot hash a numpy array of dtype {dtype}: its buffer holds pointers, not "
            "values; convert it first (e.g. arr.astype(str) or arr.astype(float))"
        )
    descr: object = dtype.str if dtype.names is None else dtype.descr
    header = json.dumps({"dtype": descr, "shape": list(arr.shape)}, separators=(",", ":"))
    h = hashlib.sha256(header.encode() + b"\n")
    bar = _progress(progress, f"array {arr.shape} {dtype}", total=arr.nbytes)
    try:
        for block in _c_order_blocks(np.asarray(arr)):
            h.update(block.data)
            if bar is not None:
                bar.advance(block.nbytes)
    finally:
        if bar is not None:
            bar.finish()
    return DataHash("array", "sha256:" + h.hexdigest(), arr.nbytes, 0, None)


def _c_order_blocks(arr: npt.NDArray[Any]) -> Iterator[np.ndarray[Any, Any]]:
    """The array's bytes in C order, as uint8 blocks of about `_CHUNK` bytes.

    A contiguous array is sliced without copying; any other layout is copied one block at a
    time, so a strided view of a huge array costs one chunk of memory, not a full copy.
    """
    import numpy as np

    if arr.flags.c_contiguous:
        flat = arr.reshape(-1).view(np.uint8)
        for start in range(0, flat.size, _CHUNK):
            yield flat[start : start + _CHUNK]
        return
    row_bytes = arr.itemsize
    for n in arr.shape[1:]:
        row_bytes *= n
    if arr.ndim == 1 or row_bytes <= _CHUNK:
        rows = max(1, _CHUNK // max(row_bytes, 1))
        for start in range(0, arr.shape[0], rows):
            yield np.ascontiguousarray(arr[start : start + rows]).reshape(-1).view(np.uint8)
    else:
        for row in arr:
            yield from _c_order_blocks(row)


def _hash_pandas(obj: Any) -> DataHash:
    # Only ever reached with a pandas object, so pandas is loaded already.
    pd = importlib.import_module("pandas")

    if isinstance(obj, pd.DataFrame):
        header: dict[str, object] = {
            "columns": obj.columns.tolist(),
            "dtypes": [str(dtype) for dtype in obj.dtypes],
        }
        size = int(obj.memory_usage(index=True, deep=True).sum())
    elif isinstance(obj, pd.Series):
        header = {"name": obj.name, "dtype": str(obj.dtype)}
        size = int(obj.memory_usage(index=True, deep=True))
    else:
        raise _unsupported(obj)
    header |= {
        "index_names": list(obj.index.names),
        "index_dtype": str(obj.index.dtype),
        "shape": list(obj.shape),
    }
    try:
        rows = pd.util.hash_pandas_object(obj, index=True)
    except TypeError as exc:
        raise InvalidInputError(f"cannot hash this pandas {type(obj).__name__}: {exc}") from exc
    h = hashlib.sha256(json.dumps(header, separators=(",", ":"), default=repr).encode() + b"\n")
    h.update(rows.to_numpy(dtype="<u8").tobytes())
    return DataHash("dataframe", "sha256:" + h.hexdigest(), size, 0, None)


def _unsupported(source: object) -> InvalidInputError:
    kind = type(source)
    return InvalidInputError(
        f"cannot hash a {kind.__module__}.{kind.__qualname__}: expected a path (str or "
        "os.PathLike) to a file or directory, bytes, a numpy array or a pandas DataFrame/Series"
    )


# -- the entry point ----------------------------------------------------------------------


def hash_source(
    source: object, *, cache: HashCache | None = None, progress: bool | None = None
) -> DataHash:
    """The content hash of a file, a directory tree, bytes, an array or a data frame.

    Reads in 1 MiB chunks through one buffer, so memory stays flat whatever the size. With
    a `cache`, an unchanged file costs a `stat` and a lookup, and an unchanged directory a
    `stat` per file; see the module docstring for what each digest covers and what the
    cache cannot see. numpy and pandas are imported only when given their objects.

    Args:
        source: a path (`str` or `os.PathLike`) to a file or directory; `bytes`,
            `bytearray` or `memoryview`; a numpy `ndarray`; a pandas `DataFrame` or `Series`.
        cache: digests of files already hashed, checked before reading.
        progress: a progress line on stderr: `None` shows one for inputs over 256 MiB when
            stderr is a terminal, `True` always, `False` never.

    Raises:
        InvalidInputError: the path does not exist or cannot be read, or the type (or an
            array's dtype) cannot be hashed; the message names the path or the type.

    Example:
        >>> hash_source(b"abc").digest
        'sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _hash_buffer(source)
    if isinstance(source, (str, os.PathLike)):
        given = os.fsdecode(source)
        if not given:
            raise InvalidInputError("data source path is empty")
        path = os.path.abspath(given)
        try:
            st = os.stat(path)
        except OSError as exc:
            raise _path_error(path, exc) from exc
        if stat.S_ISDIR(st.st_mode):
            return _hash_directory(path, cache, progress)
        if stat.S_ISREG(st.st_mode):
            return _hash_file(path, st, cache, progress)
        raise InvalidInputError(f"data source {path!r} is neither a regular file nor a directory")
    module = type(source).__module__.partition(".")[0]
    if module == "numpy":
        import numpy as np

        if isinstance(source, np.ndarray):
            return _hash_array(source, progress)
        if isinstance(source, np.generic):  # a numpy scalar: hashed as a 0-d array
            return _hash_array(np.asarray(source), progress)
    elif module == "pandas":
        return _hash_pandas(source)
    raise _unsupported(source)
