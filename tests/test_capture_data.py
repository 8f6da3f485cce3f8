"""Content hashes of files, directories, arrays, frames and bytes, and their cache."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from polytrack.capture.data import DataHash, HashCache, hash_source
from polytrack.errors import InvalidInputError, TrackingWarning

MiB = 1 << 20
# A fixed mtime for the files a test writes: the test decides whether a change moves it.
OLD_NS = 1_600_000_000 * 10**9


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write(path: Path, data: bytes, mtime_ns: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def rewrite_in_place(path: Path, data: bytes) -> None:
    """Overwrite the file's bytes through the same inode, as an in-place editor would."""
    with open(path, "r+b") as f:
        f.write(data)
        f.truncate()


def bytes_read() -> int:
    """Bytes this process has read through read(2) and friends, from /proc/self/io."""
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


needs_proc_io = pytest.mark.skipif(
    not os.path.exists("/proc/self/io"), reason="counts reads through /proc/self/io (Linux)"
)


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[HashCache]:
    # racy_seconds=0: the files of a test are seconds old, and the test means to cache them.
    opened = HashCache.open(tmp_path / "cache" / "hashes.sqlite3", racy_seconds=0)
    yield opened
    opened.close()


def manifest_digest(manifest: dict[str, tuple[str, int]]) -> str:
    """The documented directory digest, computed independently of the module."""
    lines = sorted(f"{k}\0{d}\0{s}\n".encode() for k, (d, s) in manifest.items())
    return sha(b"".join(lines))


# -- files --------------------------------------------------------------------------------


def test_file_digest_is_sha256_of_its_bytes(tmp_path: Path) -> None:
    """A file's digest is the SHA-256 of its content, with its size and absolute path."""
    data = os.urandom(3 * MiB + 17)  # several chunks and a partial one
    path = write(tmp_path / "data.bin", data)
    found = hash_source(path)
    assert found == DataHash("file", sha(data), len(data), 1, str(path), None)
    assert hash_source(str(path)).digest == sha(data)


def test_empty_file(tmp_path: Path) -> None:
    """An empty file hashes to the SHA-256 of no bytes."""
    found = hash_source(write(tmp_path / "empty", b""))
    assert (found.digest, found.size) == (sha(b""), 0)


def test_relative_path_is_reported_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative path is resolved against the working directory."""
    write(tmp_path / "a.txt", b"abc")
    monkeypatch.chdir(tmp_path)
    assert hash_source("a.txt").path == str(tmp_path / "a.txt")


def test_digest_is_stable_across_caches_and_processes(tmp_path: Path) -> None:
    """Two caches, no cache and another interpreter agree; hashing imports no numpy/pandas."""
    data = os.urandom(MiB + 5)
    path = write(tmp_path / "data.bin", data, OLD_NS)
    first = HashCache.open(tmp_path / "one.sqlite3")
    second = HashCache.open(tmp_path / "two.sqlite3")
    digests = {hash_source(path, cache=c).digest for c in (first, second, first, None)}
    first.close()
    second.close()
    code = (
        "import sys; from polytrack.capture.data import hash_source, HashCache; "
        "from pathlib import Path; c = HashCache.open(Path(sys.argv[2])); "
        "print(hash_source(sys.argv[1], cache=c).digest, hash_source(b'x').digest); "
        "print('numpy' in sys.modules, 'pandas' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code, str(path), str(tmp_path / "one.sqlite3")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    assert digests == {sha(data)}
    assert out[0] == f"{sha(data)} {sha(b'x')}"
    assert out[1] == "False False"


def test_one_byte_change_is_detected(tmp_path: Path, cache: HashCache) -> None:
    """Changing one byte (same size, new mtime) changes the digest, through the cache."""
    data = bytearray(os.urandom(256 * 1024))
    path = write(tmp_path / "data.bin", bytes(data), OLD_NS)
    before = hash_source(path, cache=cache).digest
    data[1000] ^= 0x01
    write(path, bytes(data), OLD_NS + 10**9)
    after = hash_source(path, cache=cache).digest
    assert before != after == sha(bytes(data))


def test_in_place_edit_with_mtime_restored_is_detected(tmp_path: Path, cache: HashCache) -> None:
    """An edit that keeps size, inode and mtime (restored by utime) still moves ctime."""
    path = write(tmp_path / "data.bin", b"a" * 4096, OLD_NS)
    inode = path.stat().st_ino
    assert hash_source(path, cache=cache).digest == sha(b"a" * 4096)
    time.sleep(0.05)  # past a tick of the kernel's coarse clock, which stamps the ctime
    rewrite_in_place(path, b"b" * 4096)
    os.utime(path, ns=(OLD_NS, OLD_NS))
    st = path.stat()
    assert (st.st_size, st.st_mtime_ns, st.st_ino) == (4096, OLD_NS, inode)
    assert hash_source(path, cache=cache).digest == sha(b"b" * 4096)


def test_atomic_replace_with_same_size_and_mtime_is_detected(
    tmp_path: Path, cache: HashCache
) -> None:
    """A file replaced by rename (new inode), same size and mtime, gets its new digest."""
    out = tmp_path / "out"
    path = write(out / "model.bin", b"1" * 1000, OLD_NS)
    assert hash_source(path, cache=cache).digest == sha(b"1" * 1000)
    assert hash_source(out, cache=cache).files == 1
    os.replace(write(tmp_path / "model.tmp", b"2" * 1000, OLD_NS), path)
    assert hash_source(path, cache=cache).digest == sha(b"2" * 1000)
    assert hash_source(out, cache=cache).manifest == {"model.bin": (sha(b"2" * 1000), 1000)}


@needs_proc_io
def test_cache_hit_reads_nothing(tmp_path: Path, cache: HashCache) -> None:
    """An unchanged file is answered from its stat and the cache, without reading it."""
    path = write(tmp_path / "big.bin", os.urandom(8 * MiB), OLD_NS)
    first = hash_source(path, cache=cache)
    start = bytes_read()
    again = hash_source(path, cache=cache)
    assert bytes_read() - start < MiB  # the cache's own pages, not the file
    assert again == first
    start = bytes_read()
    hash_source(path)  # without a cache, the file is read
    assert bytes_read() - start >= 8 * MiB


@needs_proc_io
def test_recently_changed_file_is_read_again(tmp_path: Path) -> None:
    """A file changed within `racy_seconds` of its hash is not trusted from the cache."""
    cache = HashCache.open(tmp_path / "hashes.sqlite3")  # the default window, 2 s
    path = write(tmp_path / "data" / "fresh.bin", os.urandom(2 * MiB))  # ctime: now
    for source in (path, path.parent):  # a file, and a directory holding it
        first = hash_source(source, cache=cache)
        start = bytes_read()
        assert hash_source(source, cache=cache) == first
        assert bytes_read() - start >= 2 * MiB
    cache.close()


def test_cache_limit_same_stat_keeps_stale_digest(tmp_path: Path, cache: HashCache) -> None:
    """The documented limit: content changed under an identical key is not seen.

    Only a clock set back can produce that; here the cache row is rewritten to the new
    key instead, which shows that the key alone decides and the content is never re-read.
    """
    path = write(tmp_path / "data.bin", b"v1" * 100, OLD_NS)
    stale = hash_source(path, cache=cache).digest
    rewrite_in_place(path, b"v2" * 100)
    os.utime(path, ns=(OLD_NS, OLD_NS))
    st = path.stat()
    key = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    cache._put_file(str(path), key, stale)  # what a hash at the same ctime would have left
    assert hash_source(path, cache=cache).digest == stale != sha(b"v2" * 100)


# -- directories --------------------------------------------------------------------------


def make_tree(root: Path, files: dict[str, bytes]) -> dict[str, tuple[str, int]]:
    for rel, data in files.items():
        write(root / rel, data, OLD_NS)
    return {rel: (sha(data), len(data)) for rel, data in files.items()}


TREE = {
    "train/a.csv": b"x,y\n1,2\n",
    "train/b.csv": b"x,y\n3,4\n",
    "test/deep/c.bin": bytes(range(256)) * 10,
    "README": b"",
    "caf\u00e9.txt": b"unicode name",
}


def test_directory_manifest_and_digest(tmp_path: Path) -> None:
    """A directory yields a manifest of relative paths and the hash of its sorted lines."""
    expected = make_tree(tmp_path / "ds", TREE)
    found = hash_source(tmp_path / "ds")
    assert found.kind == "directory"
    assert found.manifest == expected
    assert found.digest == manifest_digest(expected)
    assert (found.files, found.size) == (5, sum(len(d) for d in TREE.values()))
    assert found.path == str(tmp_path / "ds")


def test_directory_digest_ignores_order_and_mtimes(tmp_path: Path) -> None:
    """The same files created in another order, at other times, give the same digest."""
    make_tree(tmp_path / "one", TREE)
    for i, (rel, data) in enumerate(reversed(TREE.items())):
        write(tmp_path / "two" / rel, data, OLD_NS + i * 10**9)
    assert hash_source(tmp_path / "one").digest == hash_source(tmp_path / "two").digest


def test_renaming_a_file_changes_the_digest(tmp_path: Path) -> None:
    """Names are part of a directory's content."""
    make_tree(tmp_path / "ds", TREE)
    before = hash_source(tmp_path / "ds").digest
    (tmp_path / "ds" / "README").rename(tmp_path / "ds" / "README.md")
    assert hash_source(tmp_path / "ds").digest != before


def test_empty_directory(tmp_path: Path, cache: HashCache) -> None:
    """An empty directory has no files and the digest of an empty manifest, cached or not."""
    (tmp_path / "empty").mkdir()
    for _ in range(2):
        found = hash_source(tmp_path / "empty", cache=cache)
        assert (found.digest, found.files, found.size, found.manifest) == (sha(b""), 0, 0, {})


@needs_proc_io
def test_changed_directory_rereads_only_the_changed_file(tmp_path: Path, cache: HashCache) -> None:
    """After one file changes, only it is read again, and the manifests differ in it alone."""
    root = tmp_path / "ds"
    make_tree(root, {f"part-{i:02d}.bin": os.urandom(256 * 1024) for i in range(20)})
    before = hash_source(root, cache=cache)

    start = bytes_read()
    assert hash_source(root, cache=cache) == before  # unchanged: nothing read
    assert bytes_read() - start < 256 * 1024

    new = os.urandom(256 * 1024)
    write(root / "part-07.bin", new, OLD_NS + 10**9)
    start = bytes_read()
    after = hash_source(root, cache=cache)
    read = bytes_read() - start
    assert 256 * 1024 <= read < 2 * 256 * 1024  # that one file (and the cache's pages)

    assert before.manifest is not None and after.manifest is not None
    changed = {k for k in before.manifest if before.manifest[k] != after.manifest.get(k)}
    assert changed == {"part-07.bin"}
    assert after.manifest["part-07.bin"] == (sha(new), len(new))
    assert after.digest == manifest_digest(after.manifest) != before.digest
    assert hash_source(root) == after  # the cache's answer is what a full read gives


def test_cached_directory_sees_added_and_removed_files(tmp_path: Path, cache: HashCache) -> None:
    """Files added or removed since the cached walk change manifest and digest."""
    root = tmp_path / "ds"
    make_tree(root, TREE)
    hash_source(root, cache=cache)
    write(root / "train" / "new.csv", b"5,6\n", OLD_NS)
    (root / "README").unlink()
    found = hash_source(root, cache=cache)
    assert found.manifest is not None
    assert "train/new.csv" in found.manifest and "README" not in found.manifest
    assert found == hash_source(root)


def test_symlinks_special_files_and_git_in_a_directory(tmp_path: Path) -> None:
    """File links are followed; dir links, broken or looping links, FIFOs, .git: skipped."""
    outside = write(tmp_path / "outside.bin", b"target content")
    root = tmp_path / "ds"
    expected = make_tree(root, {"data/x.bin": b"x"})
    (root / "link.bin").symlink_to(outside)
    (root / "dirlink").symlink_to(root / "data", target_is_directory=True)
    (root / "broken").symlink_to(tmp_path / "missing")
    (root / "loop").symlink_to(root / "loop")  # resolving it fails with ELOOP
    write(root / ".git" / "index", b"rewritten by git status")
    os.mkfifo(root / "pipe")  # reading it would block: skipped without opening
    found = hash_source(root)
    assert found.manifest == {**expected, "link.bin": (sha(b"target content"), 14)}


def test_symlink_to_a_directory_as_the_source_is_followed(tmp_path: Path) -> None:
    """Naming a link to a directory hashes the directory, under the link's path."""
    make_tree(tmp_path / "real", TREE)
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    found = hash_source(tmp_path / "alias")
    assert found.digest == hash_source(tmp_path / "real").digest
    assert found.path == str(tmp_path / "alias")


def test_directory_survives_a_reopened_cache(tmp_path: Path) -> None:
    """A manifest written by one cache instance answers another on the same file."""
    root = tmp_path / "ds"
    make_tree(root, TREE)
    first = HashCache.open(tmp_path / "c.sqlite3", racy_seconds=0)
    expected = hash_source(root, cache=first)
    first.close()
    second = HashCache.open(tmp_path / "c.sqlite3", racy_seconds=0)
    assert hash_source(root, cache=second) == expected
    second.close()


def test_processes_share_a_cache(tmp_path: Path) -> None:
    """Two processes hashing through one cache file at once agree, and neither warns."""
    root = tmp_path / "ds"
    make_tree(root, {f"{i}.txt": str(i).encode() * 100 for i in range(300)})
    code = (
        "import sys; from pathlib import Path; "
        "from polytrack.capture.data import HashCache, hash_source; "
        "c = HashCache.open(Path(sys.argv[2]), racy_seconds=0); "
        "print(*{hash_source(sys.argv[1], cache=c).digest for _ in range(3)})"
    )
    argv = [sys.executable, "-W", "error", "-c", code, str(root), str(tmp_path / "c.sqlite3")]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [proc.communicate(timeout=60)[0].strip() for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    assert outputs == [hash_source(root).digest] * 2


def test_open_waits_for_another_process_creating_the_cache(tmp_path: Path) -> None:
    """Opening a new cache while another connection holds its write lock waits, not warns."""
    path = tmp_path / "c.sqlite3"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # as a second process creating the tables would
    release = threading.Timer(0.2, other.rollback)
    release.start()
    try:
        cache = HashCache.open(path)
    finally:
        release.join()
        other.close()
    assert cache._db is not None
    cache.close()


# -- errors and a broken cache ------------------------------------------------------------


def test_missing_path_names_it(tmp_path: Path) -> None:
    """A path that does not exist is an InvalidInputError naming it."""
    missing = tmp_path / "nope" / "data.csv"
    with pytest.raises(InvalidInputError, match=str(missing)):
        hash_source(missing)
    with pytest.raises(InvalidInputError, match="empty"):
        hash_source("")  # not the working directory


def test_fifo_as_the_source_is_refused(tmp_path: Path) -> None:
    """A source that is neither a file nor a directory is refused, without blocking."""
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(InvalidInputError, match="neither a regular file nor a directory"):
        hash_source(tmp_path / "pipe")


@pytest.mark.parametrize("source", [3.5, {"a": 1}, None, [b"x"]])
def test_unsupported_type_names_it(source: object) -> None:
    """Objects of other types are an InvalidInputError naming their type."""
    with pytest.raises(InvalidInputError, match=type(source).__qualname__):
        hash_source(source)


def test_corrupt_cache_degrades_to_no_cache(tmp_path: Path) -> None:
    """A cache file that is not a database warns once; hashing goes on without it."""
    bad = write(tmp_path / "hashes.sqlite3", b"this is not a database" * 100)
    data = write(tmp_path / "data.bin", b"content", OLD_NS)
    with pytest.warns(TrackingWarning, match="hashes.sqlite3"):
        cache = HashCache.open(bad)
    assert hash_source(data, cache=cache).digest == sha(b"content")
    assert hash_source(tmp_path, cache=cache).files == 2
    cache.close()
    cache.close()  # idempotent


def test_unwritable_cache_location_degrades_to_no_cache(tmp_path: Path) -> None:
    """A cache whose directory cannot be created (a file is in the way) warns once."""
    write(tmp_path / "blocker", b"a file, not a directory")
    with pytest.warns(TrackingWarning):
        cache = HashCache.open(tmp_path / "blocker" / "hashes.sqlite3")
    assert hash_source(b"abc", cache=cache).digest == sha(b"abc")


def test_closed_cache_still_hashes(tmp_path: Path, cache: HashCache) -> None:
    """After close(), the cache misses quietly and hashing reads the file."""
    path = write(tmp_path / "data.bin", b"content", OLD_NS)
    cache.close()
    assert hash_source(path, cache=cache).digest == sha(b"content")


# -- bytes and arrays ---------------------------------------------------------------------


def test_bytes_like_objects() -> None:
    """bytes, bytearray and memoryviews (even strided ones) hash their bytes."""
    data = bytes(range(256)) * 4
    for source in (data, bytearray(data), memoryview(data)):
        assert hash_source(source) == DataHash("bytes", sha(data), len(data), 0, None)
    assert hash_source(memoryview(data)[::2]).digest == sha(data[::2])
    matrix = memoryview(bytearray(data)).cast("B", (32, 32))
    assert hash_source(matrix).digest == sha(data)


def array_digest(arr: np.ndarray) -> str:
    """The documented array digest, computed independently of the module."""
    header = json.dumps({"dtype": arr.dtype.str, "shape": list(arr.shape)}, separators=(",", ":"))
    return sha(header.encode() + b"\n" + arr.tobytes(order="C"))


def test_array_digest_covers_dtype_shape_and_values() -> None:
    """An array's digest is its dtype, shape and C-order bytes: all three matter."""
    arr = np.arange(12, dtype=np.float64).reshape(3, 4)
    found = hash_source(arr)
    assert found == DataHash("array", array_digest(arr), 96, 0, None)
    assert hash_source(arr.astype(np.float32)).digest != found.digest
    assert hash_source(arr.reshape(4, 3)).digest != found.digest
    changed = arr.copy()
    changed[2, 3] = -1.0
    assert hash_source(changed).digest != found.digest
    assert hash_source(np.float64(3.0) * np.ones(())).digest == array_digest(np.array(3.0))


def test_array_layout_does_not_matter() -> None:
    """C order, Fortran order and strided views of equal values hash the same."""
    base = np.arange(3 * 300_000, dtype=np.float64).reshape(3, 300_000)
    fortran = np.asfortranarray(base)  # rows over 1 MiB: copied in chunks of a row
    strided = np.repeat(base, 2, axis=1)[:, ::2]
    small = np.arange(40, dtype=np.int16).reshape(5, 8)
    digests = {hash_source(a).digest for a in (base, fortran, strided)}
    assert digests == {array_digest(base)}
    assert hash_source(small.T).digest == hash_source(np.ascontiguousarray(small.T)).digest
    assert hash_source(small[:, ::3]).digest == array_digest(small[:, ::3])


def test_array_dtypes_without_a_buffer_format() -> None:
    """datetime64 and structured arrays hash; object arrays are refused."""
    dates = np.array(["2024-01-01", "2024-06-30"], dtype="datetime64[D]")
    assert hash_source(dates).digest == array_digest(dates)
    records = np.zeros(3, dtype=[("x", "<i4"), ("y", "<f8")])
    assert hash_source(records).kind == "array"
    with pytest.raises(InvalidInputError, match="object"):
        hash_source(np.array([1, "a", None], dtype=object))
    with pytest.raises(InvalidInputError, match="masked"):
        hash_source(np.ma.masked_array([1, 2], mask=[False, True]))


# -- pandas -------------------------------------------------------------------------------


def test_dataframe_digest() -> None:
    """A frame's digest is stable and moves with values, index, column names and dtypes."""
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    found = hash_source(df)
    assert found.kind == "dataframe" and found.files == 0 and found.size > 0
    assert hash_source(df.copy()).digest == found.digest
    variants = [
        df.assign(a=[1, 2, 4]),
        df.rename(columns={"b": "c"}),
        df.astype({"a": "float64"}),
        df.set_axis([10, 11, 12], axis=0),
        df[["b", "a"]],
    ]
    assert len({found.digest, *(hash_source(v).digest for v in variants)}) == 6
    series = hash_source(df["a"])
    assert series.kind == "dataframe" and series.digest != found.digest
    assert hash_source(df["a"].rename("other")).digest != series.digest


def test_dataframe_digest_is_stable_across_processes(tmp_path: Path) -> None:
    """Another interpreter gets the same digest for the same frame."""
    pd = pytest.importorskip("pandas")
    make = "pd.DataFrame({'a': [1.5, 2.5], 'b': ['x', None]}, index=['r1', 'r2'])"
    code = (
        "import pandas as pd; from polytrack.capture.data import hash_source; "
        f"print(hash_source({make}).digest)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == hash_source(eval(make, {"pd": pd})).digest


def test_unhashable_dataframe_is_refused() -> None:
    """A frame holding unhashable cells (lists) is an InvalidInputError."""
    pd = pytest.importorskip("pandas")
    with pytest.raises(InvalidInputError, match="DataFrame"):
        hash_source(pd.DataFrame({"a": [[1], [2]]}))


# -- progress -----------------------------------------------------------------------------


def test_progress_true_writes_one_rewritten_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """progress=True writes a `\\r` line to stderr, ended by a newline; False writes nothing."""
    path = write(tmp_path / "data.bin", os.urandom(2 * MiB))
    hash_source(path, progress=False)
    assert capsys.readouterr().err == ""
    hash_source(path, progress=True)
    err = capsys.readouterr().err
    assert err.startswith(f"\rhashing {path}: ") and err.endswith(" s\n")
    assert "2.0/2.0 MiB" in err and "100%" in err and "MiB/s" in err
    hash_source(tmp_path, progress=True)
    assert "1/1 files" in capsys.readouterr().err


def test_progress_by_default_only_for_large_inputs_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By default a terminal gets a progress line for inputs over 256 MiB, not for small."""
    big = tmp_path / "sparse.bin"
    with open(big, "wb") as f:
        f.truncate(257 * MiB)  # a hole: no disk used, reads as zeros
    small = write(tmp_path / "small.bin", b"small")
    primary, secondary = os.openpty()
    with open(secondary, "w", closefd=True) as tty:
        monkeypatch.setattr(sys, "stderr", tty)
        hash_source(small)
        hash_source(big)
        monkeypatch.undo()
    chunks = []
    while True:  # the terminal hands its buffer over in pieces; EIO once it is drained
        try:
            chunk = os.read(primary, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    shown = b"".join(chunks).decode()
    assert "small.bin" not in shown
    assert f"hashing {big}" in shown and "257.0/257.0 MiB" in shown
